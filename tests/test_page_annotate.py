"""Annotate page logic through AppTest: a drawing injected as the canvas would send it, drafts, save, conflicts."""

from __future__ import annotations

import base64
import itertools

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_pages.annotate_tools import ERASE_OPACITY, STROKE_OPACITY, TAGS
from helpers import ROOT, box_mask, photo, png_bytes
from seg_core.services import demo, pens
from seg_core.classes import default_classes
from seg_core.store.project import Project
from seg_core.store.workspace import new_project

CLASSES = default_classes(["background", "leaf", "spot"])


@pytest.fixture
def project(workspace) -> Project:
    p = new_project(workspace / "leaves", CLASSES)
    p.add_image(png_bytes(photo(60, 80, seed=1)), "first.png")
    p.add_image(png_bytes(photo(60, 80, seed=2)), "second.png")
    p.masks.save(1, box_mask(60, 80, 2, (0, 0, 10, 10)), 0)  # image 1 labeled, image 2 not
    return p


def open_annotate(project: Project, monkeypatch, image_id: int | None = None) -> AppTest:
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["project_path"] = str(project.path)
    if image_id is not None:
        at.session_state["annotate_image_id"] = image_id
    at.switch_page("app_pages/annotate.py")
    at.run()
    assert not at.exception, at.exception
    return at


_STROKES = itertools.count()


def drawing(strokes: np.ndarray, objects: list[dict] | None = None, stroke: str | None = None) -> dict:
    """What streamlit-drawable-canvas puts in session state for a drawing (see shared/CANVAS.md): a new stroke
    each call unless `objects` says what the canvas holds; `stroke`: the colour it was drawn with (the pen), else
    one that names no pen (the page's own pen is taken)."""
    url = "data:image/png;base64," + base64.b64encode(png_bytes(strokes, "RGBA")).decode()
    if objects is None:
        objects = [{"type": "path", "stroke": stroke, "n": next(_STROKES)}]
    return {"drawing": {"raw": {"version": "5.3.0", "objects": objects}, "data": url}}


def paint(at: AppTest, cls_id: int, rows: slice, cols: slice) -> AppTest:
    """A stroke of class `cls_id` over canvas rows/cols (the canvas shows the whole image at zoom 1)."""
    key = at.session_state["annotate_canvas_key"]
    w, h = key_size(at)
    strokes = np.zeros((h, w, 4), np.uint8)
    alpha = ERASE_OPACITY if cls_id == 0 else STROKE_OPACITY
    strokes[rows, cols] = (*CLASSES[cls_id].color, round(255 * alpha))
    at.session_state[key] = drawing(strokes, stroke=pens.colour(CLASSES[cls_id], alpha, TAGS["Brush"]))
    at.run()
    assert not at.exception, at.exception
    return at


def key_size(at: AppTest) -> tuple[int, int]:
    from seg_core.services.editing import view_for

    v = view_for(80, 60)
    return v.canvas_w, v.canvas_h


def button(at: AppTest, key: str):
    return at.button(key=key)


def test_no_project_and_no_images(workspace, monkeypatch):
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/annotate.py").run()
    assert "No project is open." in at.info[0].value
    empty = new_project(workspace / "empty")
    at.session_state["project_path"] = str(empty.path)
    at.run()
    assert "no images yet" in at.info[0].value


def test_opens_the_first_unlabeled_image_and_navigates(project, monkeypatch):
    at = open_annotate(project, monkeypatch)
    assert at.session_state["annotate_image_id"] == 2
    assert "**second.png** · 80x60 · unlabeled" in at.caption[0].value
    at.button(key="annotate_next_unlabeled")  # exists; there is no other unlabeled image
    next(b for b in at.button if b.label == "◀ Previous").click().run()
    assert at.session_state["annotate_image_id"] == 1
    assert "first.png" in at.caption[0].value and "mask version 1" in at.caption[0].value
    assert [r.value for r in at.radio if r.key == "annotate_class"][0] == 1


def test_stroke_becomes_a_draft_then_save_writes_the_mask_with_a_new_version(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=2)
    assert button(at, "annotate_save").disabled
    w, h = key_size(at)
    paint(at, 1, slice(0, h // 2), slice(0, w // 2))
    d = project.drafts.get(2)
    assert d is not None and d.base_version == 0
    assert (d.ids[:30, :40] == 1).all() and (d.ids[30:, :] == 0).all() and (d.ids[:, 40:] == 0).all()
    assert project.image(2).status == "unlabeled"  # nothing is saved before Save
    assert not button(at, "annotate_save").disabled
    button(at, "annotate_save").click().run()
    rec = project.image(2)
    assert (rec.status, rec.mask_version, rec.mask_source) == ("labeled", 1, "painted")
    assert np.array_equal(project.masks.load(2), d.ids)
    assert project.drafts.get(2) is None
    assert any("Saved the mask of second.png (version 1)" in s.value for s in at.markdown)
    # The canvas got a new key: the strokes are cleared and now part of the saved mask.
    assert at.session_state["annotate_canvas_key"].endswith("_1")


def test_erasing_and_a_second_class_on_a_labeled_image(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=1)
    w, h = key_size(at)
    sx, sy = w / 80, h / 60
    paint(at, 0, slice(0, int(5 * sy)), slice(0, int(10 * sx)))   # erase the top half of the 10x10 spot box
    key = at.session_state["annotate_canvas_key"]
    strokes = np.zeros((h, w, 4), np.uint8)
    strokes[0:int(5 * sy), 0:int(10 * sx)] = (0, 0, 0, 64)
    strokes[int(40 * sy):, int(60 * sx):] = (*CLASSES[1].color, 153)
    # The canvas still holds the eraser's stroke: only the new one is folded in, with the pen that drew it.
    at.session_state[key] = drawing(strokes, stroke=pens.colour(CLASSES[1], STROKE_OPACITY, TAGS["Brush"]))
    at.run()
    button(at, "annotate_save").click().run()
    m = project.masks.load(1)
    assert (m[:5, :10] == 0).all() and (m[5:10, :10] == 2).all()
    assert (m[41:, 61:] == 1).all() and project.image(1).mask_version == 2
    areas = at.dataframe[0].value
    assert list(areas["class"]) == ["background", "leaf", "spot"]


def test_unsaved_strokes_survive_switching_images_and_a_new_session(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=2)
    paint(at, 2, slice(0, 50), slice(0, 50))
    next(b for b in at.button if b.label == "◀ Previous").click().run()
    assert at.session_state["annotate_image_id"] == 1
    again = open_annotate(project, monkeypatch, image_id=2)   # a new browser session
    assert any("Unsaved strokes" in m.value for m in again.markdown)
    assert not button(again, "annotate_save").disabled
    button(again, "annotate_save").click().run()
    assert project.image(2).status == "labeled" and (project.masks.load(2) == 2).any()


def test_discard_drops_the_draft(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=1)
    paint(at, 1, slice(0, 50), slice(0, 50))
    button(at, "annotate_discard").click().run()
    assert project.drafts.get(1) is None and project.image(1).mask_version == 1
    assert np.array_equal(project.masks.load(1), box_mask(60, 80, 2, (0, 0, 10, 10)))


def test_conflicting_save_is_shown_and_never_silently_overwrites(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=1)
    paint(at, 1, slice(0, 50), slice(0, 50))
    theirs = np.full((60, 80), 2, np.uint8)
    project.masks.save(1, theirs, 1, author="alice")   # someone else saves meanwhile
    button(at, "annotate_save").click().run()
    assert "was saved again by alice" in at.error[0].value and "(version 2) after you opened version 1" in at.error[0].value
    mine = project.drafts.get(1)
    assert np.array_equal(project.masks.load(1), theirs) and mine is not None
    at.toggle(key="annotate_view_both").set_value(True).run()
    assert {"Theirs", "Yours"} <= {c for img in at.get("image") for c in img.captions}
    at.button(key="annotate_save_mine").click().run()
    assert project.image(1).mask_version == 3 and np.array_equal(project.masks.load(1), mine.ids)
    assert (mine.ids[:4, :4] == 1).all() and (mine.ids[30:, 30:] == 0).all()


def test_a_tab_in_conflict_says_so_and_can_combine_both(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=2)                      # unlabeled: "Nothing to paint" shows
    assert button(at, "annotate_all_background") is not None
    w, h = key_size(at)
    paint(at, 1, slice(0, h // 3), slice(0, w))
    theirs = project.drafts.get(2).ids.copy()
    theirs[40:] = 2
    project.drafts.save(2, theirs, 0)                                          # another tab paints on
    paint(at, 1, slice(h // 2, h // 2 + 5), slice(0, w))
    mine = at.session_state["annotate_view"].shown.copy()
    status = [m.value for m in at.markdown]
    assert any("Not saved" in v for v in status)
    assert not any("All changes saved" in v or "Unsaved strokes" in v for v in status)
    assert not [b for b in at.button if b.key == "annotate_all_background"]
    at.button(key="annotate_combine").click().run()
    combined = project.drafts.get(2).ids
    assert (combined[theirs == 2] == 2).all() and (combined[mine == 1] == 1).all()
    assert not [b for b in at.button if b.key == "annotate_combine"]           # the conflict is over
    assert any("Combined both tabs' strokes" in m.value for m in at.markdown)
    assert any("Unsaved strokes" in m.value for m in at.markdown) and not button(at, "annotate_save").disabled
    button(at, "annotate_undo").click().run()
    assert np.array_equal(project.drafts.get(2).ids, theirs)


def test_zoom_paints_only_the_zoomed_region(project, monkeypatch, workspace):
    big = new_project(workspace / "big", CLASSES)
    big.add_image(png_bytes(photo(600, 800, seed=5)), "big.png")
    at = open_annotate(big, monkeypatch)
    at.select_slider(key="annotate_zoom_1").set_value(4).run()
    at.slider(key="annotate_cx_1").set_value(100).run()
    at.slider(key="annotate_cy_1").set_value(100).run()
    key = at.session_state["annotate_canvas_key"]
    assert key.startswith("annotate_canvas_1_600_450_800_600_")
    from seg_core.services.editing import view_for

    v = view_for(800, 600, 4, (1.0, 1.0))
    strokes = np.zeros((v.canvas_h, v.canvas_w, 4), np.uint8)
    strokes[:, :] = (*CLASSES[1].color, 153)
    at.session_state[key] = drawing(strokes)
    at.run()
    d = big.drafts.get(1).ids
    assert (d[450:, 600:] == 1).all() and (d[:450] == 0).all() and (d[:, :600] == 0).all()
    assert any("Where the zoom is" in c for img in at.sidebar.get("image") for c in img.captions)  # the minimap


def test_start_from_model_prediction_then_save_as_corrected(workspace, monkeypatch):
    from seg_core.ml.config import TrainConfig
    from seg_core.ml.training import train

    p = demo.create_demo_project(workspace / "demo", count=6, unlabeled=1)
    config = TrainConfig(image_size=32, base_filters=4, depth=2, epochs=1, batch_size=4, early_stopping_patience=0,
                         xla=False)
    run = p.runs.create(config.to_dict())
    p.runs.update(run.id, status=train(p, run.id, config))
    unlabeled = p.image_ids(status="unlabeled")[0]
    at = open_annotate(p, monkeypatch, image_id=unlabeled)
    at.button(key="annotate_from_prediction").click().run()
    assert not at.exception, at.exception
    d = p.drafts.get(unlabeled)
    assert d is not None and d.source == "prediction" and p.predictions.get(unlabeled).run_id == run.id
    from seg_core.services import snapping
    assert snapping.kept_verdict(p, run.id) is not None, "an unlabeled image's proposal, as the queue makes it"
    assert any("Loaded the prediction of run" in s.value for s in at.markdown)
    button(at, "annotate_save").click().run()
    rec = p.image(unlabeled)
    assert (rec.status, rec.mask_source) == ("labeled", "corrected")


def test_undo_takes_back_whole_strokes_and_undoing_all_leaves_nothing_to_save(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=1)
    assert button(at, "annotate_undo").disabled and button(at, "annotate_redo").disabled
    paint(at, 1, slice(0, 50), slice(0, 50))
    first = project.drafts.get(1).ids
    paint(at, 2, slice(300, 400), slice(0, 400))
    w, h = key_size(at)
    at.session_state[at.session_state["annotate_canvas_key"]] = drawing(np.zeros((h, w, 4), np.uint8), [])
    at.run()                                           # the canvas, emptied after the stroke: nothing changes
    assert (project.drafts.get(1).ids == 2).any()
    button(at, "annotate_undo").click().run()
    assert np.array_equal(project.drafts.get(1).ids, first)
    button(at, "annotate_undo").click().run()
    assert project.drafts.get(1) is None and button(at, "annotate_save").disabled
    assert any("All changes saved" in m.value for m in at.markdown)
    assert button(at, "annotate_undo").disabled
    button(at, "annotate_redo").click().run()
    assert np.array_equal(project.drafts.get(1).ids, first) and not button(at, "annotate_save").disabled


def test_fill_tool_and_fill_holes(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=2)
    w, h = key_size(at)
    sx, sy = w / 80, h / 60
    ring = np.zeros((h, w, 4), np.uint8)                 # a leaf outline around image pixels 20..40 x 20..40
    ring[int(20 * sy):int(40 * sy), int(20 * sx):int(40 * sx)] = (*CLASSES[1].color, 153)
    ring[int(23 * sy):int(37 * sy), int(23 * sx):int(37 * sx)] = 0
    at.session_state[at.session_state["annotate_canvas_key"]] = drawing(ring)
    at.run()
    assert project.drafts.get(2).ids[30, 30] == 0
    at.sidebar.radio(key="annotate_tool").set_value("Fill").run()
    click = {"type": "circle", "left": 30 * sx - 4.5, "top": 30 * sy, "radius": 4, "strokeWidth": 1}
    at.session_state[at.session_state["annotate_canvas_key"]] = drawing(np.zeros((h, w, 4), np.uint8), [click])
    at.run()
    ids = project.drafts.get(2).ids
    assert (ids[25:35, 25:35] == 1).all() and ids[5, 5] == 0 and ids[50, 70] == 0
    assert any("Filled" in s.value and "leaf" in s.value for s in at.markdown)
    button(at, "annotate_undo").click().run()
    assert project.drafts.get(2).ids[30, 30] == 0
    at.sidebar.button(key="annotate_fill_holes").click().run()
    ids = project.drafts.get(2).ids
    assert (ids[25:35, 25:35] == 1).all() and ids[5, 5] == 0
    assert any("Filled 1 hole(s)" in s.value for s in at.markdown)
    at.sidebar.radio(key="annotate_class").set_value(0).run()
    assert at.sidebar.button(key="annotate_fill_holes").disabled


def test_nothing_to_paint_saves_an_all_background_mask(project, monkeypatch):
    at = open_annotate(project, monkeypatch, image_id=2)
    at.button(key="annotate_all_background").click().run()
    rec = project.image(2)
    assert rec.status == "labeled" and rec.mask_version == 1
    assert not project.masks.load(2).any()
    assert any("as all background" in s.value for s in at.markdown)


def disc_project(workspace) -> tuple[Project, np.ndarray]:
    """A reddish disc on a grainy green background, 120x160, unlabeled."""
    from test_assist import disc_scene

    image, disc = disc_scene(120, 160)
    p = new_project(workspace / "disc", default_classes(["background", "object"]))
    p.add_image(png_bytes(image), "disc.png")
    return p, disc


def test_assist_tools_smart_fill_box_and_wand(workspace, monkeypatch):
    p, disc = disc_project(workspace)
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["project_path"] = str(p.path)
    at.switch_page("app_pages/annotate.py").run()
    from seg_core.services.editing import view_for

    v = view_for(160, 120)
    sx, sy = v.canvas_w / 160, v.canvas_h / 120

    def canvas(rows, cols, cls, objects=None):
        strokes = np.zeros((v.canvas_h, v.canvas_w, 4), np.uint8)
        if rows is not None:
            color = (0, 0, 0, 64) if cls == 0 else (*default_classes(["background", "object"])[1].color, 153)
            strokes[int(rows.start * sy):int(rows.stop * sy), int(cols.start * sx):int(cols.stop * sx)] = color
        at.session_state[at.session_state["annotate_canvas_key"]] = drawing(strokes, objects)
        at.run()
        assert not at.exception, at.exception

    def iou(ids):
        return ((ids == 1) & disc).sum() / ((ids == 1) | disc).sum()

    at.sidebar.radio(key="annotate_tool").set_value("Smart fill").run()
    canvas(slice(58, 62), slice(60, 85), 1)                      # a stroke on the disc
    assert any("strokes of two classes" in t.value for t in at.markdown)
    assert (p.drafts.get(1).ids[58:62, 60:85] == 1).all()
    at.sidebar.radio(key="annotate_class").set_value(0).run()
    canvas(slice(10, 14), slice(120, 150), 0)                    # one on the background
    assert iou(p.drafts.get(1).ids) > 0.85
    assert button(at, "annotate_undo").label == "Undo fill"
    button(at, "annotate_undo").click().run()                    # Undo fill: back to the object stroke alone
    ids = p.drafts.get(1).ids
    assert (ids[58:62, 60:85] == 1).all() and (ids == 1).sum() < 200
    assert button(at, "annotate_undo").label == "Undo"           # the edit before it was a stroke
    button(at, "annotate_redo").click().run()
    assert iou(p.drafts.get(1).ids) > 0.85
    button(at, "annotate_save").click().run()
    assert p.image(1).mask_source == "assisted"

    # Box -> object over a start that wrongly gave the class a corner of the box (a model's guess): inside the box
    # the class becomes the object found, outside it nothing changes; the box's frame leaves the canvas.
    ys, xs = np.nonzero(disc)
    start = np.zeros((120, 160), np.uint8)
    start[ys.min() - 4:ys.min() + 2, xs.min() - 4:xs.min() + 2] = 1     # a box corner, outside the disc
    start[:4, :4] = 1                                                    # outside the box
    p.masks.save(1, start, 1)
    at.session_state["annotate_epoch"] = at.session_state["annotate_epoch"] + 1
    at.sidebar.radio(key="annotate_class").set_value(1).run()
    at.sidebar.radio(key="annotate_tool").set_value("Box → object").run()
    rect = {"type": "rect", "left": (xs.min() - 6) * sx, "top": (ys.min() - 6) * sy,
            "width": (xs.max() - xs.min() + 12) * sx, "height": (ys.max() - ys.min() + 12) * sy,
            "stroke": pens.colour(default_classes(["background", "object"])[1], 1.0, TAGS["Box → object"])}
    token = at.session_state["annotate_view"].token
    canvas(None, None, 1, [rect])
    boxed = p.drafts.get(1).ids
    assert iou(boxed) > 0.85 and (boxed[:4, :4] == 1).all()
    assert (boxed[ys.min() - 4:ys.min() - 1, xs.min() - 4:xs.min() - 1] == 0).all()
    assert any("object in the box" in t.value for t in at.markdown)
    assert at.session_state["annotate_view"].token != token              # the canvas is emptied of the frame
    assert button(at, "annotate_undo").label == "Undo box"

    # A click right after the box corrects it: in the rectangle tool a click is a rectangle as wide as its line.
    # On the object it says "this is not the object": the pixels under it leave the class.
    cy, cx = int(ys.mean()), int(xs.mean())
    click = {**rect, "left": cx * sx, "top": cy * sy, "width": 2, "height": 2}
    canvas(None, None, 1, [click])
    clicked = p.drafts.get(1).ids
    assert clicked[cy, cx] == 0 and iou(clicked) > 0.6 and (clicked[:4, :4] == 1).all()
    assert any("Corrected with 1 click" in t.value for t in at.markdown)
    assert button(at, "annotate_undo").label == "Undo click"
    button(at, "annotate_undo").click().run()                            # takes back the click alone
    np.testing.assert_array_equal(p.drafts.get(1).ids, boxed)
    # After another edit (here that Undo) a click has no box to correct: it asks for one and changes nothing.
    canvas(None, None, 1, [{**click, "left": (cx + 3) * sx}])
    np.testing.assert_array_equal(p.drafts.get(1).ids, boxed)
    assert any("draw a box around the object first" in t.value for t in at.markdown)
    button(at, "annotate_undo").click().run()
    assert p.drafts.get(1) is None
    p.masks.save(1, np.zeros((120, 160), np.uint8), 2)
    at.session_state["annotate_epoch"] = at.session_state["annotate_epoch"] + 1
    at.sidebar.radio(key="annotate_tool").set_value("Magic wand").run()
    click = {"type": "circle", "left": 72 * sx - 4, "top": 60 * sy, "radius": 3, "strokeWidth": 1}
    canvas(None, None, 1, [click])
    assert iou(p.drafts.get(1).ids) > 0.8


def test_a_save_that_makes_keep_learning_due_starts_its_run_and_says_so(trained_project, monkeypatch):
    from seg_core.services import jobs, keep_learning

    keep_learning.change(trained_project, on=True, every=1, minutes=0.5)
    unlabeled = trained_project.image_ids(status="unlabeled")[0]
    at = open_annotate(trained_project, monkeypatch, image_id=unlabeled)
    w, h = key_size(at)
    paint(at, 1, slice(0, h // 2), slice(0, w // 2))
    button(at, "annotate_save").click().run()
    try:
        run = trained_project.runs.list()[0]
        assert run.active and run.config["keep_learning"]
        assert any("Keep learning started a 0.5-minute run (from the current model) on 1 changed or new mask;"
                   in s.value for s in at.markdown)
    finally:
        jobs.stop(trained_project, trained_project.runs.list()[0].id, wait_s=1)   # ended at once
