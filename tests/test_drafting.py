"""Whose strokes win: two tabs on one image, a view older than the saved mask; strokes folded into the mask at
once, Undo and Redo of whole edits, the fill tools, and Discard that can be undone. The rules of services/drafting.py, without a browser."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from helpers import photo, png_bytes
from seg_core.classes import default_classes
from seg_core.errors import DraftConflictError, MaskConflictError
from seg_core.services import conflicts, drafting, editing, folding, pens, undo_history
from seg_core.store.workspace import new_project

CLASSES = default_classes(["background", "leaf"])
H, W = 60, 80
CANVAS = editing.view_for(W, H, 1, max_w=W, max_h=H)


@pytest.fixture
def project(tmp_path):
    p = new_project(tmp_path / "p", CLASSES)
    p.add_image(png_bytes(photo(H, W, seed=1)), "one.png")
    return p


def stripe(rows: slice, canvas=None) -> np.ndarray:
    """A canvas stroke image (RGBA at canvas size) with the leaf colour over these rows, added to `canvas`."""
    out = np.zeros((CANVAS.canvas_h, CANVAS.canvas_w, 4), np.uint8) if canvas is None else canvas.copy()
    out[rows, :] = (*CLASSES[1].color, 153)
    return out


BRUSH, SMART = 0, 6   # the tools' tags in the Annotate page's list


def drawing(picture: np.ndarray, objects: str, cls: int | str = 1, tag: int = BRUSH) -> dict:
    """What the canvas sends: its picture and its objects (one letter each, a stroke) drawn with the pen of tool
    `tag` and class `cls` (one digit per object, or one class for all), at the opacity the page draws it with."""
    classes = [int(c) for c in cls] if isinstance(cls, str) else [cls] * len(objects)
    inks = [pens.colour(CLASSES[c], 0.25 if c == 0 else 0.6, tag) for c in classes]
    url = "data:image/png;base64," + base64.b64encode(png_bytes(picture, "RGBA")).decode()
    return {"raw": {"objects": [{"type": "path", "stroke": ink, "name": c} for c, ink in zip(objects, inks)]},
            "data": url}


def paint(project, view, picture, objects: str, cls: int | str = 1):
    """Fold what the canvas sends into the view, as the page does for the painting tools."""
    outcome = "unchanged"
    for batch in folding.new_batches(view, drawing(picture, objects, cls), CLASSES, None):
        result = folding.paint(project, view, batch.hit, batch.ink.cls_id, CANVAS)
        outcome = result if result != "unchanged" else outcome
    return outcome


def test_two_tabs_never_write_over_each_other(project):
    a, b = drafting.open_view(project, 1, "a"), drafting.open_view(project, 1, "b")
    assert paint(project, a, stripe(slice(0, 10)), "a") == "drafted"
    assert paint(project, b, stripe(slice(40, 50)), "b") == drafting.OTHER_TAB   # B did not see A's stripe
    assert (project.drafts.get(1).ids[0:10] == 1).all() and (project.drafts.get(1).ids[40:50] == 0).all()
    saved = drafting.save(project, a)                                         # A saves exactly what A sees
    assert saved.mask_version == 1 and np.array_equal(project.masks.load(1), a.shown)
    with pytest.raises(DraftConflictError):
        drafting.save(project, b)                                             # B cannot save over it unasked
    assert np.array_equal(conflicts.theirs(project, b), a.shown)
    conflicts.save_mine(project, b)                                            # ...but may, when B says so
    assert (project.drafts.get(1).ids[40:50] == 1).all() and b.conflict == drafting.STALE
    new = conflicts.save_mine(project, b)
    assert new.mask_version == 2 and (project.masks.load(1)[40:50] == 1).all() and project.drafts.get(1) is None


def test_a_tab_that_saw_the_other_tabs_strokes_paints_on_top_of_them(project):
    a = drafting.open_view(project, 1, "a")
    paint(project, a, stripe(slice(0, 10)), "a")
    b = drafting.open_view(project, 1, "b")                                   # opened after A's stroke
    assert paint(project, b, stripe(slice(40, 50)), "b") == "drafted"
    both = project.drafts.get(1).ids
    assert (both[0:10] == 1).all() and (both[40:50] == 1).all()
    assert paint(project, a, stripe(slice(20, 25), stripe(slice(0, 10))), "ac") == drafting.OTHER_TAB
    with pytest.raises(DraftConflictError):
        drafting.save(project, a)
    assert np.array_equal(project.drafts.get(1).ids, both)


def test_a_stale_view_gets_the_conflict_on_its_stroke_and_on_save(project):
    old = drafting.open_view(project, 1, "old")                               # showing version 0
    project.masks.save(1, np.full((H, W), 1, np.uint8), 0, author="alice")    # version 1, saved elsewhere
    assert paint(project, old, stripe(slice(0, 10)), "a") == drafting.STALE
    draft = project.drafts.get(1)
    assert draft.base_version == 0                                            # the version the person looked at
    with pytest.raises(MaskConflictError):
        drafting.save(project, old)
    assert (project.masks.load(1) == 1).all()
    assert "saved again by alice" in conflicts.stale_message(project, old)
    conflicts.keep_theirs(project, old)
    assert project.drafts.get(1) is None and project.drafts.has_discarded(1)
    assert project.drafts.undo_discard(1).base_version == 0


def test_an_idle_view_follows_changes_made_elsewhere(project):
    view = drafting.open_view(project, 1, "v")
    project.masks.save(1, np.pad(np.ones((10, W), np.uint8), ((50, 0), (0, 0))), 0)
    assert drafting.outdated(project, view)
    fresh = drafting.open_view(project, 1, "v")
    assert fresh.base_version == 1 and not drafting.outdated(project, fresh)
    paint(project, fresh, stripe(slice(0, 5)), "a")
    project.drafts.save(1, np.zeros((H, W), np.uint8), 1)                     # another tab, after ours
    assert not drafting.outdated(project, fresh)                              # our strokes are at stake: ask


def test_strokes_are_folded_in_at_once_and_the_canvas_kept_across_pen_changes(project):
    view = drafting.open_view(project, 1, "v")
    token = view.token
    assert paint(project, view, stripe(slice(0, 10)), "a") == "drafted"
    assert view.token == token        # emptying the canvas now could cut the person's next stroke short
    two = stripe(slice(40, 50), stripe(slice(0, 10)))
    assert paint(project, view, two, "ab") == "drafted"                       # the canvas sends all it holds
    assert paint(project, view, two, "ab") == "unchanged"                     # a rerun with the same strokes
    ids = project.drafts.get(1).ids
    assert (ids[0:10] == 1).all() and (ids[40:50] == 1).all() and (ids[10:40] == 0).all()
    assert len(view.undo) == 2 and np.array_equal(view.under, np.zeros((H, W)))   # the strokes show themselves

    # The eraser (another pen) over the first stripe, on the same canvas: only its own pixels are folded in.
    eraser = two.copy()
    veil = 0.25 + 0.75 * 0.6                                                  # its light veil over the leaf stroke
    eraser[0:5] = (*np.round(0.75 * 0.6 * np.array(CLASSES[1].color) / veil), round(255 * veil))
    assert view.token == token and paint(project, view, eraser, "abe", cls="110") == "drafted"
    assert (view.shown[0:5] == 0).all() and (view.shown[5:10] == 1).all() and (view.shown[40:50] == 1).all()
    assert (view.under[0:5] == 0).all()                                       # the photo shows where it erased

    drafting.clear_canvas(view)                                               # Undo or a fill empties it
    assert view.token != token and np.array_equal(view.under, view.shown)
    assert paint(project, view, eraser, "abe", cls="110") == "unchanged"      # before the canvas was emptied
    assert paint(project, view, np.zeros_like(two), "") == "unchanged"        # the emptied canvas
    assert paint(project, view, stripe(slice(20, 25)), "f") == "drafted"      # a stroke on the empty canvas
    assert (view.shown[20:25] == 1).all() and (view.shown[0:5] == 0).all()


def test_each_stroke_is_folded_in_with_the_pen_that_drew_it(tmp_path):
    """The canvas may hold strokes of several pens: one drawn just before a new pen reached the browser, or sent in
    one batch with the next. Each keeps its own class, whatever lies under it and whatever the page's pen is."""
    classes = default_classes(["background", "leaf", "bud"])
    project = new_project(tmp_path / "buds", classes)
    project.add_image(png_bytes(photo(H, W, seed=2)), "two.png")
    view = drafting.open_view(project, 1, "v")
    leaf, bud = (pens.colour(classes[c], 0.6, BRUSH) for c in (1, 2))
    picture = np.zeros((CANVAS.canvas_h, CANVAS.canvas_w, 4), np.uint8)
    picture[0:30] = (*classes[1].color, 153)
    url = lambda p: "data:image/png;base64," + base64.b64encode(png_bytes(p, "RGBA")).decode()  # noqa: E731
    first = {"raw": {"objects": [{"type": "path", "stroke": leaf}]}, "data": url(picture)}
    for batch in folding.new_batches(view, first, classes, None):
        folding.paint(project, view, batch.hit, batch.ink.cls_id, CANVAS)
    # Two new strokes in one send, a bud stripe over the leaf and a leaf stripe below: blended colours on the
    # canvas, and still each pixel goes to the stroke on top of it.
    over = picture.copy()
    bud_rgb, leaf_rgb = np.array(classes[2].color, float), np.array(classes[1].color, float)
    a = 0.6 + 0.4 * 0.6
    over[20:40, :, :3] = np.round((0.6 * bud_rgb + 0.4 * 0.6 * leaf_rgb) / a)
    over[20:40, :, 3] = round(255 * a)
    over[30:40, :] = (*classes[2].color, 153)
    over[45:50, :] = (*classes[1].color, 153)
    second = {"raw": {"objects": [{"type": "path", "stroke": leaf}, {"type": "path", "stroke": bud},
                                  {"type": "path", "stroke": leaf, "n": 2}]}, "data": url(over)}
    batches = folding.new_batches(view, second, classes, None)
    assert [(b.ink.cls_id, b.ink.tag) for b in batches] == [(2, BRUSH), (1, BRUSH)]
    for batch in batches:
        folding.paint(project, view, batch.hit, batch.ink.cls_id, CANVAS)
    ids = view.shown
    assert (ids[0:20] == 1).all() and (ids[20:40] == 2).all() and (ids[40:45] == 0).all() and (ids[45:50] == 1).all()
    assert [e.what for e in view.undo] == ["stroke"] * 3                      # one Undo step per pen


def test_a_colour_says_which_pen_drew_it():
    leaf = CLASSES[1]
    for tag in range(pens.MAX_TAGS):
        for opacity in (0.25, 0.6, 1.0):
            ink = pens.read(pens.colour(leaf, opacity, tag), CLASSES)
            assert (ink.cls_id, ink.tag, ink.rgb) == (1, tag, tuple(leaf.color)) and abs(ink.alpha - opacity) < 0.01
    assert pens.read("rgba(1, 2, 3, 0.6)", CLASSES).cls_id is None            # no class of this colour
    assert pens.read("rgba(230, 25, 75, 0.60)", CLASSES).tag is None          # an untagged colour
    assert pens.read("#e6194b", CLASSES) is None and pens.read(None, CLASSES) is None
    with pytest.raises(ValueError):
        pens.colour(leaf, 0.6, pens.MAX_TAGS)


def test_undo_and_redo_take_whole_edits(project):
    view = drafting.open_view(project, 1, "v")
    assert drafting.undo(project, view) is None
    paint(project, view, stripe(slice(0, 10)), "a")
    paint(project, view, stripe(slice(40, 50)), "b")
    assert view.undo[-1].box == (40, 50, 0, W)                               # only the box the stroke changed
    assert drafting.undo(project, view) == "drafted"
    ids = project.drafts.get(1).ids
    assert (ids[0:10] == 1).all() and (ids[40:50] == 0).all()
    assert drafting.undo(project, view) == "undone" and project.drafts.get(1) is None   # back to the saved mask
    assert drafting.redo(project, view) == "drafted" and (project.drafts.get(1).ids[0:10] == 1).all()
    paint(project, view, stripe(slice(20, 30)), "c")                          # a new edit: no redo past it
    assert view.redo == [] and drafting.redo(project, view) is None
    ids = project.drafts.get(1).ids
    assert (ids[0:10] == 1).all() and (ids[20:30] == 1).all() and (ids[40:50] == 0).all()


def test_undo_history_is_bounded(project, monkeypatch):
    monkeypatch.setattr(undo_history, "MAX_UNDO", 3)
    view = drafting.open_view(project, 1, "v")
    for i, letter in enumerate("abcde"):
        paint(project, view, stripe(slice(i * 10, i * 10 + 5)), letter)
    assert len(view.undo) == 3
    while drafting.undo(project, view):
        pass
    ids = project.drafts.get(1).ids
    assert (ids[0:5] == 1).all() and (ids[10:15] == 1).all() and (ids[20:25] == 0).all()


def test_fill_clicks_and_fill_holes_are_edits(project):
    view = drafting.open_view(project, 1, "v")
    ring = np.zeros((H, W), np.uint8)
    ring[10:40, 10:40] = 1
    ring[15:35, 15:35] = 0
    drafting.change(project, view, ring, "stroke")
    click = {"type": "circle", "left": 25 - 4.5, "top": 25, "radius": 4, "strokeWidth": 1}
    outcome, filled = folding.fill_clicks(project, view, [click], 1, CANVAS)
    assert (outcome, filled) == ("drafted", 400) and (project.drafts.get(1).ids[15:35, 15:35] == 1).all()
    assert folding.fill_clicks(project, view, [click], 1, CANVAS) == ("unchanged", 0)
    drafting.undo(project, view)
    ids, holes, pixels = editing.fill_holes(view.shown, 1)
    assert (holes, pixels) == (1, 400)
    drafting.change(project, view, ids, "fill holes")
    assert view.undo[-1].what == "fill holes" and (project.drafts.get(1).ids[15:35, 15:35] == 1).all()


def test_smart_fill_strokes_of_one_class_are_a_stroke_then_the_fill_is_one_assisted_edit(project):
    view = drafting.open_view(project, 1, "v")
    calls = []

    def fill(scribbles):
        calls.append(scribbles.copy())
        if len(set(np.unique(scribbles).tolist()) - {255}) < 2:
            return None                                                       # not yet: one class
        return np.where(np.arange(H)[:, None] < 30, 1, 0).repeat(W, 1).astype(np.uint8)

    def smart(strokes, objects, cls=1):
        outcome = "unchanged"
        for batch in folding.new_batches(view, drawing(strokes, objects, cls, SMART), CLASSES, None):
            result = folding.scribble(project, view, batch.hit, batch.ink.cls_id, CANVAS, fill)
            outcome = result if result != "unchanged" else outcome
        return outcome

    assert smart(stripe(slice(0, 10)), "a") == "drafted"
    assert view.undo[-1].what == "stroke" and view.source == "painted"
    assert (view.shown[0:10] == 1).all() and view.shown[10:].max() == 0
    background = np.zeros((CANVAS.canvas_h, CANVAS.canvas_w, 4), np.uint8)
    background[50:55, :] = (0, 0, 0, 64)                                      # the eraser's veil: class 0
    assert smart(background, "b", 0) == "drafted"                             # the canvas held only "b" now
    assert view.undo[-1].what == "smart fill" and view.source == "assisted"
    assert (view.shown[:30] == 1).all() and (view.shown[30:] == 0).all()
    assert (calls[-1][50:55] == 0).all() and (calls[-1][0:10] == 1).all()    # both strokes were its scribbles
    drafting.undo(project, view)                                              # Undo fill: the first stroke again
    assert (view.shown[0:10] == 1).all() and view.shown[10:].max() == 0
    assert (view.scribbles[50:55] == 255).all()                               # and the scribbles before the fill


def test_discard_can_be_undone_until_painting_resumes(project):
    view = drafting.open_view(project, 1, "v")
    paint(project, view, stripe(slice(0, 10)), "a")
    project.drafts.discard(1, expect_rev=view.draft_rev, keep=True)
    assert project.drafts.get(1) is None and 1 not in project.drafts.image_ids()
    back = project.drafts.undo_discard(1)
    assert back is not None and (back.ids[0:10] == 1).all()
    project.drafts.discard(1, keep=True)
    project.drafts.save(1, np.zeros((H, W), np.uint8), 0)                     # painted again: no undo over it
    assert project.drafts.undo_discard(1) is None and project.drafts.get(1).ids.max() == 0


def test_the_draft_revision_is_read_from_the_header_alone(project):
    view = drafting.open_view(project, 1, "v")
    paint(project, view, stripe(slice(0, 10)), "a")
    assert project.drafts.rev(1) == view.draft_rev == project.drafts.get(1).rev != ""
    assert project.drafts.rev(2) is None
    project.drafts.discard(1, keep=True)
    assert project.drafts.rev(1) is None and project.drafts.has_discarded(1)


THREE = default_classes(["background", "leaf", "spot", "stem"])


def test_a_class_removed_in_another_tab_renumbers_what_this_tab_shows_and_its_undo(tmp_path):
    project = new_project(tmp_path / "three", THREE)
    project.add_image(png_bytes(photo(H, W, seed=1)), "one.png")
    saved = np.zeros((H, W), np.uint8)
    saved[:10], saved[10:20], saved[20:30] = 1, 2, 3          # leaf, spot, stem
    project.masks.save(1, saved, 0)
    view = drafting.open_view(project, 1, "a")
    stem = saved.copy()
    stem[40:50] = 3
    drafting.change(project, view, stem, "stroke")             # a stroke of stem, drafted over version 1
    assert project.drafts.get(1).base_version == 1

    removed = project.remove_class(2, pixels_to=0, author="alice")   # spot goes; stem becomes class 2
    assert removed == 1 and project.image(1).mask_version == 2
    draft = project.drafts.get(1)
    assert draft.base_version == 2 and (draft.ids[40:50] == 2).all()   # renumbered with the mask: not stale

    steps = drafting.follow_classes(project, view)
    assert [(s.removed, s.into, s.by, s.removed_id) for s in steps] == [("spot", "background", "alice", 2)]
    assert (view.shown[:10] == 1).all() and (view.shown[10:20] == 0).all() and (view.shown[20:30] == 2).all()
    assert (view.shown[40:50] == 2).all() and view.base_version == 2 and view.conflict is None
    assert drafting.follow_classes(project, view) == []       # once
    reloaded = drafting.open_view(project, 1, "reloaded")   # the history kept on disk was renumbered with the draft
    assert len(reloaded.undo) == 1 and (reloaded.undo[0].after == 2).all()
    # The tab paints on without a conflict, and Undo gives back the renumbered mask from before its stroke.
    more = view.shown.copy()
    more[50:55] = 1
    assert drafting.change(project, view, more, "stroke") == "drafted"
    drafting.undo(project, view)
    drafting.undo(project, view)
    assert drafting.undo(project, view) is None and project.drafts.get(1) is None   # back to the saved mask
    assert np.array_equal(view.shown, project.masks.load(1))


def test_a_tab_that_missed_too_many_removals_opens_the_image_afresh(tmp_path, monkeypatch):
    from seg_core.store import class_scheme

    monkeypatch.setattr(class_scheme, "KEEP", 1)
    project = new_project(tmp_path / "many", THREE)
    project.add_image(png_bytes(photo(H, W, seed=1)), "one.png")
    view = drafting.open_view(project, 1, "a")
    project.remove_class(3)
    project.remove_class(2)
    assert drafting.follow_classes(project, view) is None
    assert drafting.open_view(project, 1, "b").scheme == 2


def three_class_project(tmp_path):
    project = new_project(tmp_path / "three", THREE)
    project.add_image(png_bytes(photo(H, W, seed=1)), "one.png")
    return project


def rows(cls_rows: dict[int, slice], base=None) -> np.ndarray:
    out = np.zeros((H, W), np.uint8) if base is None else base.copy()
    for cls, r in cls_rows.items():
        out[r] = cls
    return out


def test_combine_both_keeps_both_tabs_strokes_the_later_on_top(tmp_path):
    project = three_class_project(tmp_path)
    a, b = drafting.open_view(project, 1, "a"), drafting.open_view(project, 1, "b")
    assert drafting.change(project, a, rows({1: slice(0, 20)}), "stroke") == "drafted"          # leaf
    assert drafting.change(project, b, rows({2: slice(10, 30)}), "stroke") == drafting.OTHER_TAB  # spot, later
    theirs, mine = project.drafts.get(1).ids, b.shown
    assert conflicts.combine(project, b) == "drafted"
    combined = project.drafts.get(1).ids
    assert np.array_equal(combined, rows({1: slice(0, 10), 2: slice(10, 30)}))   # B's later spot over A's leaf
    assert b.conflict is None and np.array_equal(b.shown, combined) and b.draft_rev == project.drafts.rev(1)
    assert conflicts.combine(project, b) == "unchanged"                                  # pressed twice
    assert drafting.undo(project, b) == "drafted" and np.array_equal(project.drafts.get(1).ids, theirs)
    assert drafting.undo(project, b) == "drafted" and np.array_equal(project.drafts.get(1).ids, mine)
    drafting.redo(project, b)
    drafting.redo(project, b)
    assert np.array_equal(project.drafts.get(1).ids, combined)
    assert drafting.save(project, b).mask_version == 1 and np.array_equal(project.masks.load(1), combined)


def test_combine_both_puts_the_other_tabs_later_strokes_on_top_and_keeps_their_erasing(tmp_path):
    project = three_class_project(tmp_path)
    project.masks.save(1, rows({3: slice(50, 60)}), 0)                              # stem, version 1
    a, b = drafting.open_view(project, 1, "a"), drafting.open_view(project, 1, "b")
    drafting.change(project, a, rows({1: slice(0, 5)}, a.shown), "stroke")
    assert drafting.change(project, b, rows({2: slice(10, 30)}, b.shown), "stroke") == drafting.OTHER_TAB
    drafting.change(project, a, rows({1: slice(15, 20), 0: slice(50, 55)}, a.shown), "stroke")   # A paints on after
    conflicts.combine(project, b)
    assert np.array_equal(project.drafts.get(1).ids,
                          rows({1: slice(0, 5), 2: slice(10, 15), 0: slice(50, 55), 3: slice(55, 60)},
                               rows({2: slice(10, 30), 1: slice(15, 20)})))


def test_combine_both_over_a_newer_saved_mask_drafts_over_it(tmp_path):
    project = three_class_project(tmp_path)
    project.masks.save(1, rows({1: slice(0, 10)}), 0)                               # version 1: leaf
    view = drafting.open_view(project, 1, "v")
    drafting.change(project, view, rows({3: slice(40, 50)}, view.shown), "stroke")
    project.masks.save(1, rows({2: slice(20, 30), 0: slice(0, 5)}, project.masks.load(1)), 1, author="alice")
    assert drafting.change(project, view, rows({3: slice(45, 55)}, view.shown), "stroke") == drafting.STALE
    assert conflicts.combine(project, view) == "drafted"
    expected = rows({1: slice(5, 10), 2: slice(20, 30), 3: slice(40, 55)})         # alice erased rows 0-5
    draft = project.drafts.get(1)
    assert np.array_equal(draft.ids, expected) and draft.base_version == 2 and view.conflict is None
    assert drafting.save(project, view).mask_version == 3 and np.array_equal(project.masks.load(1), expected)


def test_undo_history_outlives_a_reload_on_the_same_draft_only(project):
    a = drafting.open_view(project, 1, "a")
    for r, objects in ((slice(0, 10), "a"), (slice(20, 30), "ab"), (slice(40, 50), "abc")):
        paint(project, a, stripe(r), objects)
    drafting.undo(project, a)
    reloaded = drafting.open_view(project, 1, "reloaded")                       # a reload, or another tab
    assert [e.box for e in reloaded.undo] == [e.box for e in a.undo] and len(reloaded.redo) == 1
    assert not drafting.outdated(project, reloaded)
    assert drafting.redo(project, reloaded) == "drafted" and (project.drafts.get(1).ids[40:50] == 1).all()
    while drafting.undo(project, reloaded):
        pass
    assert project.drafts.get(1) is None                                        # back to the saved mask
    again = drafting.open_view(project, 1, "again")
    assert again.undo == [] and len(again.redo) == 3                            # Redo, too, after a reload
    drafting.redo(project, again)
    assert len(list(project.layout.drafts_dir.glob("1.undo.*.npz"))) == 3       # written once, none left over

    idle = drafting.open_view(project, 1, "idle")                               # its Undo is the history's
    project.drafts.save(1, np.ones((H, W), np.uint8), 0)                         # another writer: a new revision
    assert idle.undo and drafting.outdated(project, idle)                       # ...yet it follows the other writer
    other = drafting.open_view(project, 1, "other")
    assert other.undo == [] and other.redo == [] and drafting.undo(project, other) is None
    drafting.change(project, other, np.zeros((H, W), np.uint8), "stroke")
    paint(project, other, stripe(slice(0, 10)), "z")
    drafting.save(project, other)                                               # the draft became the mask
    assert list(project.layout.drafts_dir.glob("1.undo*")) == []
    assert drafting.open_view(project, 1, "after").undo == []
