"""Box -> object: the object inside a box, by GrabCut on a crop around it, and clicks that correct it.

The crop keeps a ring of context around the box (its colours are known background) and works at GRAB_SIDE pixels
a side: small enough for a box to answer at once, large enough that arms and legs stay wider than GrabCut's
smoothing cuts off. Where that finds almost nothing (the ring around a small box held mostly the object's own
colours), GrabCut tries again against the whole photo, and only then falls back to the magic wand. The result
comes back to full size along the photo's own edges; its holes are kept (the gap between an arm and the body is
one), and so are parts away from the box's middle (an arm's hand).

A click says "this is the object" or "this is not": its disc, grown to the patch of like colour around it,
becomes a hard seed and GrabCut runs again, its colour models learning from it. A click outside the box on the
object widens the box to take it in. Where the box's answer was the wand's, a click gives or takes its patch.

With the project's trained model, GrabCut starts from the model's answer inside the box instead of from "all of
the box may be the object": where the model says "not the object" is "probably background", and where it is sure
either way is a hard seed. How much of this it does follows the trust in the model (its validation quality for
the class): an untrusted model changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg_core.assist.common import NO_SCRIBBLE, as_image, refine_up, shrink
from seg_core.errors import AssistError

GRAB_SIDE = 640          # GrabCut works on a crop of at most this many pixels a side
CONTEXT = 0.15           # the crop reaches this share of the box's size beyond each side, ...
WIDE_CONTEXT = 100.0     # ... or, where GrabCut found almost nothing there, the whole photo
ITERATIONS = 3           # GrabCut's rounds: on real photos more found no better object, only later
MIN_SHARE = 0.05         # of the box: less than this found means GrabCut could not tell object from context
FALLBACK_TOLERANCE = 0.3
CLICK_RADIUS = 0.02      # a click's seed: a disc this share of the box's longer side across, ...
MIN_CLICK_RADIUS = 2     # ... and at least this many image pixels, ...
CLICK_REACH = 0.10       # ... grown to the pixels of like colour connected to it, within this share of that side
CLICK_TOLERANCE = 0.15   # "like colour", as the magic wand's tolerance
PRIOR_SURE = 0.05        # a fully trusted model's probability this close to 0 or 1 is a hard seed

Click = tuple[int, int, bool]   # (x, y, is_object) in image pixels


def _check_box(box, w: int, h: int) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    except (TypeError, ValueError):
        raise AssistError(f"A box is four numbers (x0, y0, x1, y1); got {box!r}.") from None
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        raise AssistError(f"The box {x0},{y0}-{x1},{y1} is outside the {w}x{h} image.")
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise AssistError(f"The box is {x1 - x0}x{y1 - y0} pixels inside the image: draw one around the object.")
    return x0, y0, x1, y1


def click_seeds(clicks: Sequence[Click], box: tuple[int, int, int, int], h: int, w: int) -> np.ndarray | None:
    """(H, W) uint8 seeds of the clicks (1 object, 0 not, NO_SCRIBBLE elsewhere), or None without clicks."""
    import cv2

    if not clicks:
        return None
    radius = max(MIN_CLICK_RADIUS, round(CLICK_RADIUS * max(box[2] - box[0], box[3] - box[1])))
    seeds = np.full((h, w), NO_SCRIBBLE, np.uint8)
    for click in clicks:
        try:
            x, y, is_object = int(click[0]), int(click[1]), bool(click[2])
        except (TypeError, ValueError, IndexError):
            raise AssistError(f"A click is (x, y, is_object); got {click!r}.") from None
        if not (0 <= x < w and 0 <= y < h):
            raise AssistError(f"The click at {x},{y} is outside the {w}x{h} image.")
        cv2.circle(seeds, (x, y), radius, 1 if is_object else 0, -1)
    return seeds


def _take_in(box: tuple[int, int, int, int], seeds: np.ndarray | None) -> tuple[int, int, int, int]:
    """The box widened to hold every "this is the object" seed."""
    if seeds is None or not (seeds == 1).any():
        return box
    ys, xs = np.nonzero(seeds == 1)
    return min(box[0], int(xs.min())), min(box[1], int(ys.min())), max(box[2], int(xs.max()) + 1), \
        max(box[3], int(ys.max()) + 1)


def box_fill(image, box, hint=None, clicks: Sequence[Click] = (), prior=None, trust: float = 0.0) -> np.ndarray:
    """(H, W) bool: the object inside `box` = (x0, y0, x1, y1) in image pixels. hint: optional (H, W) uint8
    strokes, NO_SCRIBBLE none, 0 background, 1 object, that GrabCut must respect; clicks: (x, y, is_object) corrections.
    prior: optional (H, W) probability of the object's class from a trained model, trusted as much as `trust`
    (0 not at all .. 1 fully: the model's quality on its validation images)."""
    rgb = as_image(image)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = _check_box(box, w, h)
    if hint is not None and np.asarray(hint).shape != (h, w):
        raise AssistError("The hint strokes do not match the image's size.")
    if prior is not None and np.asarray(prior).shape != (h, w):
        raise AssistError("The model's probabilities do not match the image's size.")
    if prior is not None and trust <= 0:
        prior = None
    seeds = click_seeds(clicks, (x0, y0, x1, y1), h, w)
    if seeds is not None:
        hint = seeds if hint is None else np.where(seeds != NO_SCRIBBLE, seeds, np.asarray(hint, np.uint8))
    box = _take_in((x0, y0, x1, y1), seeds)
    x0, y0, x1, y1 = box
    keep = np.zeros((h, w), bool)
    keep[y0:y1, x0:x1] = True
    near, wide = _crop(box, CONTEXT, h, w), _crop(box, WIDE_CONTEXT, h, w)
    for bounds in (near,) if wide == near else (near, wide):   # a crop already the whole photo is tried once
        found = _grab(rgb, box, hint, clicks, bounds, prior, trust)
        if found is not None:
            return _with_hint(found & keep, hint)
    # GrabCut found nothing even against the whole photo: the context looks like the object (a cell among cells).
    # The region of like colour around the box's middle, inside the box, is the better guess; its holes are
    # texture the tolerance missed, not gaps.
    from seg_core.assist.wand import wand

    found = _fill_holes(wand(rgb, ((x0 + x1) // 2, (y0 + y1) // 2), FALLBACK_TOLERANCE) & keep)
    if clicks:   # each click gives or takes the patch of like colour under it
        patches = _grow_clicks(np.full((h, w), NO_SCRIBBLE, np.uint8), rgb, clicks, _reach(box))
        found = np.where(patches == NO_SCRIBBLE, found, patches == 1)
    return _with_hint(found, hint)


def _reach(box) -> float:
    return CLICK_REACH * max(box[2] - box[0], box[3] - box[1])


def _crop(box, context: float, h: int, w: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a crop reaching `context` times the box's size beyond it, inside the image."""
    x0, y0, x1, y1 = box
    mx, my = round((x1 - x0) * context) + 2, round((y1 - y0) * context) + 2
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


def _grab(rgb: np.ndarray, box, hint, clicks, bounds: tuple[int, int, int, int], prior=None,
          trust: float = 0.0) -> np.ndarray | None:
    """(H, W) bool: GrabCut's object in `box` on the crop `bounds` around it, or None when it found almost
    nothing there."""
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = bounds
    crop = rgb[cy0:cy1, cx0:cx1]
    scale = min(1.0, GRAB_SIDE / max(crop.shape[:2]))
    size = (max(8, round(crop.shape[1] * scale)), max(8, round(crop.shape[0] * scale)))
    small = shrink(crop, size)
    sx, sy = size[0] / crop.shape[1], size[1] / crop.shape[0]
    rx0, ry0 = int((x0 - cx0) * sx), int((y0 - cy0) * sy)
    rx1, ry1 = min(size[0], max(rx0 + 2, int(np.ceil((x1 - cx0) * sx)))), \
        min(size[1], max(ry0 + 2, int(np.ceil((y1 - cy0) * sy))))
    mask = np.full((size[1], size[0]), cv2.GC_BGD, np.uint8)
    mask[ry0:ry1, rx0:rx1] = cv2.GC_PR_FGD
    if prior is not None:
        p = cv2.resize(np.asarray(prior, np.float32)[cy0:cy1, cx0:cx1], size, interpolation=cv2.INTER_AREA)
        _seed_from_prior(mask, p, (rx0, ry0, rx1, ry1), trust)
    marked = np.zeros(mask.shape, bool)   # the person's own "object" seeds
    if hint is not None:
        marks = cv2.resize(np.asarray(hint, np.uint8)[cy0:cy1, cx0:cx1], size, interpolation=cv2.INTER_NEAREST)
        if clicks:
            marks = _grow_clicks(marks, small, [((c[0] - cx0) * sx, (c[1] - cy0) * sy, c[2]) for c in clicks],
                                 _reach((rx0, ry0, rx1, ry1)))
        mask[marks == 0] = cv2.GC_BGD
        mask[marks == 1] = cv2.GC_FGD
        marked = marks == 1
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)   # GrabCut starts its colour models with k-means: the same box always gives the same object
    try:
        cv2.grabCut(small, mask, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:   # a box with one colour only: nothing to tell apart
        return _whole_box(h, w, box)
    obj = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    # Counted beyond the person's own "object" seeds: a click must not turn a box GrabCut failed on into GrabCut's
    # answer, it corrects what the box gave.
    if (obj & ~marked).sum() < MIN_SHARE * (rx1 - rx0) * (ry1 - ry0):
        return None
    soft = refine_up(obj.astype(np.float32)[..., None], small, crop)[..., 0] > 0.5
    out = np.zeros((h, w), bool)
    out[cy0:cy1, cx0:cx1] = soft
    return out


def _seed_from_prior(mask: np.ndarray, p: np.ndarray, box, trust: float) -> None:
    """GrabCut's start inside the box from the model: "probably background" where the model says it is not the
    object (all of the box is "probably object" without it) and hard seeds where it is sure, both the more of them
    the more the model is trusted."""
    import cv2

    rx0, ry0, rx1, ry1 = box
    inside = np.zeros(mask.shape, bool)
    inside[ry0:ry1, rx0:rx1] = True
    if (inside & (p >= 0.5)).sum() < MIN_SHARE * inside.sum():   # the model sees no such object here
        return
    mask[inside & (p < 0.5 * trust)] = cv2.GC_PR_BGD
    margin = PRIOR_SURE * trust
    mask[inside & (p > 1 - margin)] = cv2.GC_FGD
    mask[inside & (p < margin)] = cv2.GC_BGD


def _grow_clicks(marks: np.ndarray, rgb: np.ndarray, clicks, reach: float) -> np.ndarray:
    """Each click's seed grown to the pixels of like colour connected to it, up to `reach` pixels away (clicks in
    `rgb`'s pixels): a click means the patch under it, and a few seed pixels would barely move GrabCut's colour
    models."""
    from skimage.segmentation import flood

    from seg_core.assist.wand import MAX_DELTA_E, smooth_lab

    out, r = marks.copy(), max(1, int(np.ceil(reach)))
    for x, y, is_object in clicks:
        col, row = min(rgb.shape[1] - 1, max(0, int(x))), min(rgb.shape[0] - 1, max(0, int(y)))
        top, left = max(0, row - r), max(0, col - r)
        lab = smooth_lab(rgb[top:row + r + 1, left:col + r + 1])
        yy, xx = np.mgrid[0:lab.shape[0], 0:lab.shape[1]]
        near = (yy - (row - top)) ** 2 + (xx - (col - left)) ** 2 <= reach * reach
        like = flood(np.where(near, np.linalg.norm(lab - lab[row - top, col - left], axis=2), np.inf),
                     (row - top, col - left), tolerance=CLICK_TOLERANCE * MAX_DELTA_E)
        out[top:top + lab.shape[0], left:left + lab.shape[1]][like] = 1 if is_object else 0
    return out


def _with_hint(out: np.ndarray, hint) -> np.ndarray:
    """What the person marked wins over what was found."""
    if hint is not None:
        marks = np.asarray(hint, np.uint8)
        out[marks == 1] = True
        out[marks == 0] = False
    return out


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_fill_holes(mask)


def _whole_box(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros((h, w), bool)
    out[box[1]:box[3], box[0]:box[2]] = True
    return out
