"""The real thing: create a project, upload images, paint with the mouse on the canvas, save, reload."""

from __future__ import annotations

import numpy as np
from playwright.sync_api import expect

from browser_helpers import (canvas_box, canvas_pixels, choose, create_project, drag, open_page, settle, settle_canvas,
                             shot, wait_idle, wait_text, wait_until)
from helpers import png_bytes
from seg_core.classes import default_classes
from seg_core.store.project import Project
from seg_core.store.workspace import new_project

def test_create_upload_paint_save_reload(app_server, page, workspace, tmp_path):
    grey = [np.full((120, 160), v, np.uint8) for v in (110, 140)]
    files = []
    for i, g in enumerate(grey):
        path = tmp_path / f"grey_{i}.png"
        path.write_bytes(png_bytes(g))
        files.append(str(path))

    create_project(page, app_server.url, "painted")

    open_page(page, app_server, "Data")
    page.get_by_role("tab", name="Add images").click()   # already chosen for an empty project
    page.locator(".st-key-data_images_0 input[type='file']").set_input_files(files)
    wait_idle(page)
    page.get_by_role("button", name="Add to project").click()
    wait_text(page, "added 2 image(s)")
    shot(page, "annotate_flow_1_uploaded")
    project = Project(workspace / "painted")
    assert project.count_images() == 2

    open_page(page, app_server, "Annotate")
    box = settle_canvas(page)
    first = project.image_ids()[0]
    y = box["y"] + box["height"] * 0.5
    drag(page, [(box["x"] + box["width"] * f, y) for f in (0.2, 0.35, 0.5, 0.65, 0.8)])
    wait_text(page, "Unsaved strokes")
    after_one = project.drafts.get(first)
    assert after_one is not None  # every stroke is on disk before the page says "Unsaved strokes"
    # A second stroke, then Undo: the draft is back to the first stroke alone.
    drag(page, [(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * f) for f in (0.1, 0.2, 0.3)])
    wait_until(page, lambda: not np.array_equal(project.drafts.get(first).ids, after_one.ids),
               "the second stroke in the draft")
    settle(page)
    page.locator(".st-key-annotate_undo").get_by_role("button", name="Undo", exact=True).click()
    wait_until(page, lambda: np.array_equal(project.drafts.get(first).ids, after_one.ids),
               "Undo to take the second stroke out of the draft")
    wait_idle(page)
    shot(page, "annotate_flow_2_stroke")
    page.locator(".st-key-annotate_save button").click()
    wait_text(page, "Saved the mask of grey_0.png (version 1)")
    shot(page, "annotate_flow_3_saved")

    rec = project.image(first)
    assert rec.mask_version == 1 and rec.status == "labeled"
    mask = project.masks.load(first)
    assert mask[60, 40:120].min() == 1           # under the stroke: the object class
    assert (mask[:40] == 0).all() and (mask[85:] == 0).all()   # far from it: background
    assert project.drafts.get(first) is None

    page.reload()
    box = settle_canvas(page)

    def stroke_drawn():
        seen = canvas_pixels(page)
        h, w = seen.shape[:2]
        on_stroke, off_stroke = seen[h // 2, w // 2].astype(int), seen[h // 6, w // 2].astype(int)
        # The object class is red (230, 25, 75) blended over grey 110; away from the stroke the grey stays.
        return on_stroke[0] - on_stroke[1] > 40 and abs(off_stroke[0] - off_stroke[1]) < 10

    wait_until(page, stroke_drawn, "the saved stroke in red under the canvas after the reload")
    shot(page, "annotate_flow_4_reloaded")


def test_shapes_two_classes_erase_and_zoom_on_a_large_photo(app_server, page, workspace):
    classes = default_classes(["background", "leaf", "spot"])
    project = new_project(workspace / "shapes", classes)
    rng = np.random.default_rng(0)
    photo = (rng.random((1500, 2000, 3)) * 60 + 100).astype(np.uint8)
    project.add_image(png_bytes(photo), "large.png")
    page.goto(f"{app_server.url}/annotate?project=shapes")
    box = settle_canvas(page)
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]

    # Rectangle of 'leaf' over the left half's middle.
    choose(page, "annotate_tool", "Rectangle")
    drag(page, [(x + 0.1 * w, y + 0.3 * h), (x + 0.45 * w, y + 0.7 * h)])
    wait_text(page, "Unsaved strokes")
    # Polygon of 'spot' on the right: click the corners, then the first again to close it.
    choose(page, "annotate_class", "spot")
    choose(page, "annotate_tool", "Polygon")
    corners = [(0.6, 0.3), (0.9, 0.3), (0.9, 0.7), (0.6, 0.7), (0.6, 0.3)]
    for cx, cy in corners:
        page.mouse.click(x + cx * w, y + cy * h)
        page.wait_for_timeout(150)
    page.wait_for_timeout(600)
    wait_idle(page)
    # Erase a band through the rectangle with the background brush.
    choose(page, "annotate_class", "background", exact=False)
    choose(page, "annotate_tool", "Brush")
    box = canvas_box(page)
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    drag(page, [(x + 0.05 * w, y + 0.5 * h), (x + 0.5 * w, y + 0.5 * h)])

    def draft_ids():
        draft = project.drafts.get(1)
        return draft.ids if draft is not None else None

    def shapes_and_erase_in(ids) -> bool:
        return ids is not None and ids[int(0.5 * 1500), int(0.75 * 2000)] == 2 and ids[int(0.5 * 1500), int(0.25 * 2000)] == 0

    wait_until(page, lambda: shapes_and_erase_in(draft_ids()), "the polygon and the erased band in the draft")
    wait_idle(page)
    ids = draft_ids()
    assert ids[int(0.4 * 1500), int(0.25 * 2000)] == 1      # rectangle, above the erased band
    assert ids[int(0.5 * 1500), int(0.25 * 2000)] == 0      # erased
    assert ids[int(0.5 * 1500), int(0.75 * 2000)] == 2      # inside the polygon
    assert ids[int(0.1 * 1500), int(0.5 * 2000)] == 0
    shot(page, "annotate_shapes_before_zoom")

    # Zoom 8x into the bottom-left corner and draw a thin line at full resolution.
    choose(page, "annotate_class", "leaf")
    slider = page.locator(".st-key-annotate_zoom_1 input[type='range']")
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
        wait_idle(page)
    for key in ("annotate_cx_1", "annotate_cy_1"):
        s = page.locator(f".st-key-{key} input[type='range']")
        s.focus()
        s.press("Home" if key == "annotate_cx_1" else "End")
        wait_idle(page)
    page.locator(".st-key-annotate_brush input[type='range']").focus()
    page.locator(".st-key-annotate_brush input[type='range']").press("Home")
    for _ in range(3):   # a 4 px brush: about one image pixel at this zoom
        page.locator(".st-key-annotate_brush input[type='range']").press("ArrowRight")
    box = settle_canvas(page)
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    drag(page, [(x + 0.1 * w, y + 0.5 * h), (x + 0.9 * w, y + 0.5 * h)])
    wait_until(page, lambda: (draft_ids()[1500 - 188:, :250] == 1).any(), "the zoomed line in the draft")
    wait_idle(page)
    shot(page, "annotate_shapes_zoomed")
    zoomed = project.drafts.get(1).ids
    region = zoomed[1500 - 188:, :250]
    line_rows = np.nonzero((region == 1).any(axis=1))[0]
    assert len(line_rows) and line_rows.max() - line_rows.min() <= 2   # about one image pixel thick
    assert np.array_equal(zoomed[:1300], ids[:1300])   # nothing outside the zoomed region changed
    page.locator(".st-key-annotate_save button").click()
    wait_text(page, "Saved the mask of large.png (version 1)")

    assert np.array_equal(project.masks.load(1), zoomed)   # saved before the page said so
    page.reload()
    settle_canvas(page)
    expect(page.get_by_text("All changes saved")).to_be_visible()
    shot(page, "annotate_shapes_reloaded")
