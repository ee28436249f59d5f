"""Annotation assists in the browser: Smart fill from one stroke per class, Undo fill, Box -> object and the clicks
that correct it, Save."""

from __future__ import annotations

import numpy as np

from browser_helpers import CANVAS, choose, drag, settle, settle_canvas, shot, wait_text, wait_until
from helpers import png_bytes
from seg_core.classes import default_classes
from seg_core.services.demo_scenes import render_scene
from seg_core.store.workspace import new_project

H, W = 360, 480
SCENE = 21     # a brown blob and a green block on a striped blue cloth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_smart_fill_undo_box_and_save(app_server, page, workspace):
    image, truth = render_scene(SCENE, W, H)
    project = new_project(workspace / "assist", default_classes(["background", "object"]))
    project.add_image(png_bytes(image), "scene.png")
    page.goto(f"{app_server.url}/annotate?project=assist")
    box = settle_canvas(page)

    def at(x: float, y: float) -> tuple[float, float]:   # image pixels to screen, measured each time
        b = page.locator(CANVAS).first.bounding_box() or box
        return b["x"] + x / W * b["width"], b["y"] + y / H * b["height"]

    def draft():
        d = project.drafts.get(1)
        return d.ids if d is not None else np.zeros((H, W), np.uint8)

    choose(page, "annotate_tool", "Smart fill")
    drag(page, [at(60, 230), at(85, 232), at(110, 230)])          # one stroke on the blob
    wait_text(page, "strokes of two classes")
    choose(page, "annotate_class", "background", exact=False)
    drag(page, [at(250, 90), at(300, 92), at(350, 90)])           # one on the cloth
    wait_until(page, lambda: iou(draft() == 1, truth == 1) >= 0.8, "Smart fill to cover the objects (IoU 0.8)")
    shot(page, "assist_1_smart_fill")

    settle(page)
    page.locator(".st-key-annotate_undo").get_by_role("button", name="Undo fill", exact=True).click()
    wait_until(page, lambda: 0 < (draft() == 1).sum() < 2000, "Undo fill: back to the object stroke alone")

    choose(page, "annotate_class", "object")
    choose(page, "annotate_tool", "Box → object")
    block = truth.astype(bool) & (np.arange(W)[None, :] > 170)
    drag(page, [at(105, 262), at(230, 310), at(362, 359)])
    wait_until(page, lambda: iou(draft().astype(bool) & (np.arange(W)[None, :] > 170), block) >= 0.8,
               "Box -> object to find the green block")
    wait_text(page, "object in the box")
    shot(page, "assist_2_box")

    # Right after the box, with the same tool, a click corrects it: on the block it says "not the object" there,
    # and a second click on that spot says "the object" again.
    ys, xs = np.nonzero(block)
    x, y = int(np.median(xs)), int(np.median(ys))
    page.mouse.click(*at(x + 0.5, y + 0.5))
    wait_until(page, lambda: draft()[y, x] == 0, "the click to take that part of the block out")
    wait_text(page, "Corrected with 1 click")
    shot(page, "assist_3_click")
    page.mouse.click(*at(x + 0.5, y + 0.5))
    wait_until(page, lambda: draft()[y, x] == 1, "the second click to give it back")
    wait_text(page, "Corrected with 2 clicks")
    assert iou(draft().astype(bool) & (np.arange(W)[None, :] > 170), block) >= 0.8
    page.locator(".st-key-annotate_save button").click()
    wait_text(page, "Saved the mask of scene.png (version 1)")
    assert project.image(1).mask_source == "assisted"
