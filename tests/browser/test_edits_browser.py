"""Edits a person can see: erasing shows the photo, the fill tools close outlines, Undo takes back whole shapes,
quick strokes all land, and the canvas's own toolbar does not get in the way."""

from __future__ import annotations

import numpy as np
from playwright.sync_api import expect

from browser_helpers import (CANVAS, canvas_pixels, choose, drag, settle, settle_canvas, shot, wait_idle, wait_text,
                             wait_until)
from helpers import png_bytes
from seg_core.classes import default_classes
from seg_core.store.workspace import new_project

PINK = (250, 150, 160)   # a sofa; the leaf class is crimson (230, 25, 75)
H, W = 300, 400


def test_erase_fill_undo_and_quick_strokes(app_server, page, workspace):
    project = new_project(workspace / "edits", default_classes(["background", "leaf"]))
    rng = np.random.default_rng(3)
    project.add_image(png_bytes(np.clip(np.array(PINK) + rng.normal(0, 5, (H, W, 3)), 0, 255).astype(np.uint8)),
                      "sofa.png")
    page.goto(f"{app_server.url}/annotate?project=edits")
    box = settle_canvas(page)

    def at(fx: float, fy: float) -> tuple[float, float]:   # measured each time: the page may have scrolled
        b = page.locator(CANVAS).first.bounding_box() or box
        return b["x"] + fx * b["width"], b["y"] + fy * b["height"]

    def draft():
        d = project.drafts.get(1)
        return d.ids if d is not None else None

    def px(fx: float, fy: float):
        ids = draft()
        return None if ids is None else int(ids[int(fy * H), int(fx * W)])

    undo = page.locator(".st-key-annotate_undo").get_by_role("button", name="Undo", exact=True)
    expect(page.locator(CANVAS).first).to_be_visible()
    expect(page.get_by_role("button", name="Reset canvas & history")).to_be_hidden()   # its toolbar is hidden

    # An outline with the brush, then the fill tool inside it.
    drag(page, [at(.3, .3), at(.7, .3), at(.7, .7), at(.3, .7), at(.3, .3)])
    wait_until(page, lambda: px(.5, .3) == 1, "the outline in the draft")
    assert px(.5, .5) == 0
    choose(page, "annotate_tool", "Fill")
    page.mouse.click(*at(.5, .5))
    wait_until(page, lambda: px(.5, .5) == 1, "the inside of the outline filled")
    wait_text(page, "pixels with leaf")
    assert px(.1, .1) == 0 and px(.9, .9) == 0
    shot(page, "edits_1_fill_region")

    # Undo takes the whole fill back; "Fill holes" closes the same outline in one click.
    settle(page)
    undo.click()
    wait_until(page, lambda: px(.5, .5) == 0 and px(.5, .3) == 1, "Undo to take the whole fill back")
    settle(page)
    page.locator(".st-key-annotate_fill_holes").get_by_role("button", name="Fill holes in leaf").click()
    wait_text(page, "Filled 1 hole(s)")
    assert px(.5, .5) == 1

    # Erasing a band: the canvas shows the photo there, not black paint.
    choose(page, "annotate_class", "background", exact=False)
    choose(page, "annotate_tool", "Brush")
    drag(page, [at(.2, .5), at(.8, .5)])
    wait_until(page, lambda: px(.5, .5) == 0 and px(.5, .4) == 1, "the erased band in the draft")

    def photo_shows_where_erased() -> bool:
        # Under the eraser's light veil the photo's own hue (green/red 0.6), not the crimson tint (about 0.4).
        seen = canvas_pixels(page).astype(float)
        h, w = seen.shape[:2]
        erased, painted = seen[h // 2, w // 2], seen[int(h * .4), w // 2]
        return abs(erased[1] / erased[0] - 0.6) < 0.08 and erased[0] > 150 and painted[1] / painted[0] < 0.5

    wait_until(page, photo_shows_where_erased, "the photo under the erased band, the leaf colour beside it")
    shot(page, "edits_2_erase_shows_the_photo")

    # A polygon, then one Undo: the whole polygon goes, not its corners one by one.
    before = draft().copy()
    choose(page, "annotate_class", "leaf")
    choose(page, "annotate_tool", "Polygon")
    for cx, cy in [(.8, .08), (.95, .08), (.95, .25), (.8, .25), (.8, .08)]:
        page.mouse.click(*at(cx, cy))
        page.wait_for_timeout(150)
    wait_until(page, lambda: px(.87, .16) == 1, "the polygon in the draft")
    wait_idle(page)
    undo.click()
    wait_until(page, lambda: np.array_equal(draft(), before), "one Undo to take the whole polygon back")

    # Quick strokes with short pauses, as a fast painter makes them: every one lands in the draft.
    choose(page, "annotate_tool", "Brush")
    rows = np.linspace(.78, .96, 7)
    for i, fy in enumerate(rows):
        drag(page, [at(.1, fy), at(.25, fy), at(.4, fy)])
        page.wait_for_timeout((40, 250, 120, 0, 300, 80, 10)[i])
    wait_until(page, lambda: all(px(.25, fy) == 1 for fy in rows), "every quick stroke in the draft")
    wait_idle(page)
    shot(page, "edits_3_quick_strokes")
