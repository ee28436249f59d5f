"""Work is never replaced without a person's say, in a real browser: two tabs on one image, a view older than the
saved mask, a reload on any page, and Discard with its undo."""

from __future__ import annotations

import re

import numpy as np
from playwright.sync_api import expect

from browser_helpers import CANVAS, drag, open_page, settle_canvas, shot, wait_idle, wait_until
from helpers import png_bytes
from seg_core.store.workspace import new_project

W, H = 320, 240


def grey_project(workspace, name="kept", images=1):
    project = new_project(workspace / name)
    for i in range(images):
        project.add_image(png_bytes(np.full((H, W), 100 + 20 * i, np.uint8)), f"grey_{i}.png")
    return project


def open_image(page, url, project="kept", image=1):
    page.goto(f"{url}/annotate?project={project}&image={image}")
    return settle_canvas(page)


def stripe(page, box, fy):
    box = page.locator(CANVAS).first.bounding_box() or box   # where the canvas is now, should the page scroll
    drag(page, [(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy) for fx in (0.15, 0.4, 0.6, 0.85)])


def painted_rows(ids) -> set[int]:
    """The tenths of the image height that have object pixels."""
    return {int(r) * 10 // ids.shape[0] for r in np.nonzero((ids == 1).any(axis=1))[0]}


def draft_rows(project, image=1):
    draft = project.drafts.get(image)
    return painted_rows(draft.ids) if draft is not None else None


def two_tabs_in_conflict(app_server, page, second_page, workspace):
    """Tab A paints a stripe into the draft; tab B, which had not seen it, paints another: B is in conflict."""
    project = grey_project(workspace)
    a, b = page, second_page
    box_a, box_b = open_image(a, app_server.url), open_image(b, app_server.url)
    stripe(a, box_a, 0.25)
    wait_until(a, lambda: draft_rows(project) == {2}, "tab A's stripe in the draft")
    stripe(b, box_b, 0.75)
    expect(b.get_by_text("Another tab or window changed the unsaved strokes")).to_be_visible()
    return project, a, b


def test_two_tabs_on_one_image_never_overwrite_each_other(app_server, page, second_page, workspace):
    project, a, b = two_tabs_in_conflict(app_server, page, second_page, workspace)
    expect(b.locator(".st-key-annotate_save button")).to_be_disabled()
    assert draft_rows(project) == {2}          # B's stroke did not replace A's unsaved strokes
    shot(b, "kept_two_tabs_conflict")
    wait_idle(a)
    a.locator(".st-key-annotate_save button").click()
    expect(a.get_by_text("Saved the mask of grey_0.png (version 1)")).to_be_visible()
    assert painted_rows(project.masks.load(1)) == {2}   # exactly what A saw
    # B chooses: its own strokes win, first as the draft, then over the saved mask.
    b.locator(".st-key-annotate_save_mine button").click()
    expect(b.get_by_text("was saved again")).to_be_visible()
    b.locator(".st-key-annotate_save_mine button").click()
    expect(b.get_by_text("Saved your mask of grey_0.png over theirs (version 2)")).to_be_visible()
    assert painted_rows(project.masks.load(1)) == {7} and project.drafts.get(1) is None
    shot(b, "kept_two_tabs_resolved")


def test_two_tabs_in_conflict_can_combine_both(app_server, page, second_page, workspace):
    project, a, b = two_tabs_in_conflict(app_server, page, second_page, workspace)
    expect(b.get_by_text("Not saved", exact=True)).to_be_visible()   # not "All changes saved" beside the conflict
    expect(b.get_by_text("All changes saved")).to_have_count(0)
    expect(b.locator(".st-key-annotate_all_background")).to_have_count(0)
    shot(b, "kept_two_tabs_combine_offered")
    wait_idle(b)
    b.get_by_role("button", name="Combine both").click()
    expect(b.get_by_text("Combined both tabs' strokes")).to_be_visible()
    wait_until(b, lambda: draft_rows(project) == {2, 7}, "both stripes in the draft")
    expect(b.locator(".st-key-annotate_conflict")).to_have_count(0)
    expect(b.get_by_text("Unsaved strokes", exact=True)).to_be_visible()
    settle_canvas(b)
    shot(b, "kept_two_tabs_combined")
    b.locator(".st-key-annotate_save button").click()
    expect(b.get_by_text("Saved the mask of grey_0.png (version 1)")).to_be_visible()
    assert painted_rows(project.masks.load(1)) == {2, 7} and project.drafts.get(1) is None


def test_a_stale_view_gets_the_choice_instead_of_saving_over_newer_work(app_server, page, second_page, workspace):
    project = grey_project(workspace)
    a, b = page, second_page
    box_a, box_b = open_image(a, app_server.url), open_image(b, app_server.url)   # both show version 0
    stripe(a, box_a, 0.25)
    wait_until(a, lambda: draft_rows(project) == {2}, "tab A's stripe in the draft")
    wait_idle(a)
    a.locator(".st-key-annotate_save button").click()
    wait_until(a, lambda: project.image(1).mask_version == 1, "tab A's save")
    expect(a.get_by_text("(version 1)")).to_be_visible()          # the toast saying so
    stripe(b, box_b, 0.75)                      # B still shows version 0
    expect(b.get_by_text(re.compile(r"saved again by user .* \(version 1\) after you opened version 0"))).to_be_visible()
    expect(b.locator(".st-key-annotate_save button")).to_be_disabled()
    wait_until(b, lambda: project.drafts.get(1) is not None and project.drafts.get(1).base_version == 0,
               "B's strokes kept as a draft of version 0")
    assert project.image(1).mask_version == 1 and painted_rows(project.masks.load(1)) == {2}
    b.locator(".st-key-annotate_view_both label").click()
    expect(b.get_by_text("Theirs", exact=True)).to_be_visible()
    expect(b.get_by_text("Yours", exact=True)).to_be_visible()
    shot(b, "kept_stale_view_both")
    b.locator(".st-key-annotate_keep_theirs button").click()
    expect(b.locator(".st-key-annotate_undo_discard button")).to_be_visible()
    assert project.drafts.get(1) is None and painted_rows(project.masks.load(1)) == {2}
    shot(b, "kept_stale_kept_theirs")


def test_a_reload_on_any_page_keeps_the_project_and_the_image(app_server, page, workspace):
    grey_project(workspace, "first")
    grey_project(workspace, "second", images=2)
    page.goto(f"{app_server.url}/?project=second")
    expect(page.get_by_text("A look at")).to_be_visible()
    for title, path in (("Data", "data"), ("Train", "train"), ("Predict & review", "review"), ("Annotate", "annotate")):
        open_page(page, app_server, title)
        expect(page).to_have_url(re.compile(rf"/{path}\?(.*&)?project=second"))
        page.reload()
        expect(page.get_by_role("heading", name=title)).to_be_visible()
        wait_idle(page)
        expect(page.get_by_text("No project is open")).to_have_count(0)
    page.locator(".st-key-annotate_next_unlabeled button").click()   # first unlabeled is 1: go to image 2
    expect(page).to_have_url(re.compile(r"image=2"))
    page.reload()
    settle_canvas(page)
    expect(page.get_by_text("grey_1.png", exact=True)).to_be_visible()


def test_undo_and_redo_work_after_a_reload(app_server, page, workspace):
    project = grey_project(workspace)
    box = open_image(page, app_server.url)
    stripe(page, box, 0.25)
    wait_until(page, lambda: draft_rows(project) == {2}, "the first stripe in the draft")
    stripe(page, box, 0.75)
    wait_until(page, lambda: draft_rows(project) == {2, 7}, "both stripes in the draft")
    wait_idle(page)
    page.reload()
    settle_canvas(page)
    expect(page.get_by_text("Unsaved strokes", exact=True)).to_be_visible()
    undo, redo = (page.get_by_role("button", name=name, exact=True) for name in ("Undo", "Redo"))
    expect(undo).to_be_enabled()
    undo.click()
    wait_until(page, lambda: draft_rows(project) == {2}, "Undo to take back the second stripe")
    expect(redo).to_be_enabled()
    settle_canvas(page)
    shot(page, "kept_undo_after_reload")
    page.reload()
    settle_canvas(page)
    redo.click()
    wait_until(page, lambda: draft_rows(project) == {2, 7}, "Redo, after another reload, to put it back")


def test_discard_can_be_undone_until_painting_resumes(app_server, page, workspace):
    project = grey_project(workspace)
    box = open_image(page, app_server.url)
    stripe(page, box, 0.25)
    expect(page.get_by_text("Unsaved strokes", exact=True)).to_be_visible()
    wait_idle(page)
    page.get_by_role("button", name="Discard", exact=True).click()
    expect(page.get_by_text("Discarded the unsaved strokes.")).to_be_visible()
    assert project.drafts.get(1) is None
    page.locator(".st-key-annotate_undo_discard button").click()
    expect(page.get_by_text("Brought the discarded strokes back.")).to_be_visible()
    assert draft_rows(project) == {2}
    wait_idle(page)
    page.get_by_role("button", name="Discard", exact=True).click()
    expect(page.get_by_text("Discarded the unsaved strokes.")).to_be_visible()
    box = settle_canvas(page)
    stripe(page, box, 0.75)
    wait_until(page, lambda: draft_rows(project) == {7}, "the new stroke alone in the draft")
    expect(page.get_by_text("Discarded the unsaved strokes.")).to_have_count(0)
    expect(page.locator(".st-key-annotate_undo_discard button")).to_have_count(0)


def test_uploading_a_mask_never_replaces_a_painted_one_unasked(app_server, page, workspace, tmp_path):
    project = grey_project(workspace)
    painted = np.zeros((H, W), np.uint8)
    painted[50:70] = 1
    project.masks.save(1, painted, 0, source="painted")
    other = tmp_path / "grey_0.png"
    other.write_bytes(png_bytes(np.where(np.arange(H)[:, None] > 200, 255, 0).repeat(W, 1).astype(np.uint8)))
    page.goto(f"{app_server.url}/data?project=kept")
    page.get_by_role("tab", name="Add images").click()

    def upload(choice: str) -> None:
        page.locator(".st-key-data_existing_masks").get_by_text(choice).click()
        wait_idle(page)
        # The last round's uploader, still holding its file, stays on the page until the rerun that replaced it ends.
        uploader = page.locator("[class*='st-key-data_masks_'] input[type='file']")
        expect(uploader).to_have_count(1)
        uploader.set_input_files(str(other))
        expect(page.get_by_role("button", name="Add to project")).to_be_enabled()
        page.get_by_role("button", name="Add to project").click()

    upload("Keep it")
    expect(page.get_by_text("1 mask(s) were NOT imported")).to_be_visible()
    expect(page.get_by_text("has a mask painted in the app (version 1)")).to_be_visible()
    assert project.image(1).mask_version == 1 and np.array_equal(project.masks.load(1), painted)
    shot(page, "kept_upload_skipped")
    upload("Replace it")
    expect(page.get_by_text("1 mask(s) replaced the image's mask, as chosen")).to_be_visible()
    assert project.image(1).mask_version == 2 and painted_rows(project.masks.load(1)) == {8, 9}
    upload("Keep it")
    expect(page.get_by_text("1 mask(s) were identical to the project's: nothing changed.")).to_be_visible()
    assert project.image(1).mask_version == 2
