"""Annotation assists on images the test makes: a disc on a textured background, two textures side by side."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core import assist
from seg_core.errors import AssistError

H, W = 160, 200


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def disc_scene(h: int = H, w: int = W, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reddish disc on a grainy grey-green background with a soft light gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - h * 0.5) ** 2 + (xx - w * 0.45) ** 2 < (min(h, w) * 0.28) ** 2
    image = np.empty((h, w, 3), np.float32)
    image[:] = (110, 130, 100)
    image[disc] = (190, 80, 70)
    image += rng.normal(0, 12, (h, w, 3)) + (xx / w * 30)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8), disc


def two_textures(h: int = H, w: int = W, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Same mean grey both sides: fine vertical stripes on the left, coarse noise on the right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    right = xx >= w // 2
    stripes = 128 + 60 * np.sign(np.sin(xx * 1.6))
    blotches = 128 + 60 * np.sign(np.kron(rng.standard_normal((h // 8 + 1, w // 8 + 1)), np.ones((8, 8)))[:h, :w])
    grey = np.where(right, blotches, stripes) + rng.normal(0, 6, (h, w))
    return np.clip(grey, 0, 255).astype(np.uint8), right


def strokes(h: int, w: int, marks: list[tuple[int, slice, slice]]) -> np.ndarray:
    out = np.full((h, w), 255, np.uint8)
    for cls, rows, cols in marks:
        out[rows, cols] = cls
    return out


def test_box_fill_finds_the_disc_inside_the_box():
    image, disc = disc_scene()
    ys, xs = np.nonzero(disc)
    found = assist.box_fill(image, (xs.min() - 8, ys.min() - 8, xs.max() + 8, ys.max() + 8))
    assert found.dtype == bool and found.shape == (H, W)
    assert iou(found, disc) > 0.9
    assert not found[:, xs.max() + 9:].any()                      # nothing outside the box


def test_box_fill_respects_hint_strokes():
    image, disc = disc_scene()
    hint = strokes(H, W, [(0, slice(78, 82), slice(40, 60))])      # "this part is background"
    found = assist.box_fill(image, (20, 20, 150, 140), hint=hint)
    assert not found[78:82, 40:60].any() and iou(found, disc) > 0.8


def disc_with_patch(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The disc scene with a blue patch touching the disc's right side: (image, disc, patch)."""
    image, disc = disc_scene(seed=seed)
    patch = np.zeros_like(disc)
    patch[70:90, 122:150] = True
    patch &= ~disc
    image[patch] = np.clip(np.random.default_rng(seed).normal((60, 70, 200), 10, (patch.sum(), 3)), 0, 255)
    return image, disc, patch


def test_the_same_box_always_gives_the_same_object():
    import cv2

    from seg_core.services.demo_scenes import render_scene

    image, truth = render_scene(3, 320, 240)   # a scene where GrabCut's start decides much of the result
    ys, xs = np.nonzero(truth)
    box = (max(0, xs.min() - 10), max(0, ys.min() - 10), xs.max() + 10, ys.max() + 10)
    first = assist.box_fill(image, box)
    cv2.randu(np.zeros((64, 64), np.uint8), 0, 255)   # anything else drawing from OpenCV's random numbers
    np.testing.assert_array_equal(assist.box_fill(image, box), first)


def test_a_click_on_a_part_taken_in_wrongly_takes_it_away():
    image, disc, patch = disc_with_patch()
    ys, xs = np.nonzero(disc | patch)
    box = (xs.min() - 6, ys.min() - 6, xs.max() + 6, ys.max() + 6)
    found = assist.box_fill(image, box)
    assert (found & patch).sum() > 0.8 * patch.sum()          # a box cannot tell the patch is not the object
    fixed = assist.box_fill(image, box, clicks=[(140, 80, False)])
    assert (fixed & patch).sum() < 0.1 * patch.sum() and iou(fixed, disc) > 0.9


def test_a_click_outside_a_tight_box_takes_in_the_part_the_box_cut_off():
    image, disc = disc_scene()
    ys, xs = np.nonzero(disc)
    box = (xs.min() - 6, ys.min() - 6, int(np.percentile(xs, 70)), ys.max() + 6)   # cuts the disc's right side
    assert iou(assist.box_fill(image, box), disc) < 0.85
    fixed = assist.box_fill(image, box, clicks=[(int(xs.max()) - 6, H // 2, True)])
    assert iou(fixed, disc) > 0.9


def test_clicks_are_seeds_the_result_keeps():
    image, disc = disc_scene()
    ys, xs = np.nonzero(disc)
    box = (xs.min() - 8, ys.min() - 8, xs.max() + 8, ys.max() + 8)
    out = assist.box_fill(image, box, clicks=[(int(xs.mean()), int(ys.mean()), False), (box[0] + 2, box[1] + 2, True)])
    assert not out[int(ys.mean()), int(xs.mean())] and out[box[1] + 2, box[0] + 2]


def test_wand_stays_inside_the_region_it_was_clicked_in():
    image, disc = disc_scene()
    inside = assist.wand(image, (int(W * 0.45), H // 2), 0.25)
    assert inside[H // 2, int(W * 0.45)] and iou(inside, disc) > 0.85 and not (inside & ~disc).sum() > 0.05 * disc.sum()
    outside = assist.wand(image, (5, 5), 0.25)
    assert not (outside & disc).sum() > 0.02 * disc.sum() and outside.sum() > 0.3 * (~disc).sum()
    assert assist.wand(image, (5, 5), 0.0).sum() < outside.sum()   # lower tolerance, smaller region


def test_scribble_fill_keeps_strokes_and_separates_two_textures():
    image, right = two_textures()
    marks = strokes(H, W, [(1, slice(40, 44), slice(140, 170)), (0, slice(110, 114), slice(20, 60))])
    ids = assist.scribble_fill(image, marks, num_classes=2)
    assert ids.shape == (H, W) and ids.dtype == np.uint8
    assert (ids[marks == 1] == 1).all() and (ids[marks == 0] == 0).all()
    assert iou(ids == 1, right) > 0.8 and iou(ids == 0, ~right) > 0.8


def test_scribble_fill_multiclass_and_colour():
    image, disc = disc_scene()
    marks = strokes(H, W, [(2, slice(78, 82), slice(80, 100)), (1, slice(10, 14), slice(150, 190)),
                           (0, slice(140, 144), slice(10, 40))])
    ids = assist.scribble_fill(image, marks, num_classes=3)
    assert set(np.unique(ids)) <= {0, 1, 2}
    assert (ids[disc] == 2).mean() > 0.85 and (ids[~disc] != 2).mean() > 0.9


def test_a_large_photo_is_worked_at_reduced_size_and_comes_back_at_full_size():
    image, disc = disc_scene(1500, 2000, seed=1)
    marks = strokes(1500, 2000, [(1, slice(745, 747), slice(850, 950)), (0, slice(100, 102), slice(100, 300))])
    ids = assist.scribble_fill(image, marks, num_classes=2)
    assert ids.shape == (1500, 2000) and (ids[745:747, 850:950] == 1).all()   # a 2 px stroke survives
    assert iou(ids == 1, disc) > 0.85
    # Edges follow the image at full size, not the working copy's pixels: few staircase errors at the rim.
    ys, xs = np.nonzero(disc)
    assert iou(assist.box_fill(image, (xs.min() - 40, ys.min() - 40, xs.max() + 40, ys.max() + 40)), disc) > 0.9


def test_learning_from_saved_masks_gives_a_proposal_without_strokes():
    image, disc = disc_scene(seed=2)
    other, other_disc = disc_scene(seed=3)
    ids = assist.scribble_fill(image, np.full((H, W), 255, np.uint8), num_classes=2,
                               learn_from=[(other, other_disc.astype(np.uint8))])
    assert iou(ids == 1, disc) > 0.8


@pytest.mark.parametrize("call, words", [
    (lambda im: assist.box_fill(im, (500, 500, 600, 600)), "outside"),
    (lambda im: assist.box_fill(im, (10, 10, 11, 60)), "draw one around"),
    (lambda im: assist.box_fill(im, ("a", 1, 2)), "four numbers"),
    (lambda im: assist.box_fill(im, (20, 20, 150, 140), clicks=[(W + 5, 10, True)]), "outside"),
    (lambda im: assist.box_fill(im, (20, 20, 150, 140), clicks=[(10, "x", True)]), "is \\(x, y, is_object\\)"),
    (lambda im: assist.wand(im, (W, 0), 0.2), "outside"),
    (lambda im: assist.wand(im, (3, 3), 1.5), "between 0 and 1"),
    (lambda im: assist.scribble_fill(im, np.full((H, W), 255, np.uint8)), "needs strokes"),
    (lambda im: assist.scribble_fill(im, strokes(H, W, [(1, slice(0, 5), slice(0, 5))])), "two classes"),
    (lambda im: assist.scribble_fill(im, strokes(H, W, [(3, slice(0, 5), slice(0, 5)), (0, slice(9, 12), slice(0, 5))]),
                                     num_classes=2), "has 2 classes"),
    (lambda im: assist.scribble_fill(im, np.full((10, 10), 255, np.uint8)), "strokes are"),
    (lambda im: assist.scribble_fill(np.zeros((1, 1, 3), np.uint8), np.full((1, 1), 255, np.uint8)), "at least"),
    (lambda im: assist.wand(im.astype(np.float32), (3, 3), 0.2), "8-bit"),
])
def test_bad_input_gets_a_clear_error(call, words):
    image, _ = disc_scene()
    with pytest.raises(AssistError, match=words):
        call(image)
