"""Box -> object: the object inside a box, by GrabCut on a crop around it.

Better than plain GrabCut on the whole photo: the crop keeps a ring of context around the box (its colours are
known background), works at GRAB_SIDE pixels, keeps only the parts that reach the box's middle, fills their
holes, and comes back to full size along the photo's own edges.
"""

from __future__ import annotations

import numpy as np

from seg_core.assist.common import as_image, largest_with, refine_up, shrink
from seg_core.errors import AssistError

GRAB_SIDE = 320          # GrabCut works on a crop of at most this many pixels a side
CONTEXT = 0.15           # the crop reaches this share of the box's size beyond each side
ITERATIONS = 5
MIN_SHARE = 0.05         # of the box: less than this found means GrabCut could not tell object from context
FALLBACK_TOLERANCE = 0.3


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


def box_fill(image, box, hint=None) -> np.ndarray:
    """(H, W) bool: the object inside `box` = (x0, y0, x1, y1) in image pixels. hint: optional (H, W) uint8
    strokes, 255 none, 0 background, 1 object, that GrabCut must respect."""
    import cv2

    rgb = as_image(image)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = _check_box(box, w, h)
    if hint is not None and np.asarray(hint).shape != (h, w):
        raise AssistError("The hint strokes do not match the image's size.")
    mx, my = round((x1 - x0) * CONTEXT) + 2, round((y1 - y0) * CONTEXT) + 2
    cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
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
    if hint is not None:
        marks = cv2.resize(np.asarray(hint, np.uint8)[cy0:cy1, cx0:cx1], size, interpolation=cv2.INTER_NEAREST)
        mask[marks == 0] = cv2.GC_BGD
        mask[marks == 1] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(small, mask, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:   # a box with one colour only: nothing to tell apart
        return _whole_box(h, w, (x0, y0, x1, y1))
    obj = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    centre = np.zeros_like(obj)
    qx, qy = max(1, (rx1 - rx0) // 4), max(1, (ry1 - ry0) // 4)
    centre[ry0 + qy:ry1 - qy, rx0 + qx:rx1 - qx] = True
    if hint is not None:
        centre |= (marks == 1)
    obj = _fill_holes(largest_with(obj, centre))
    if obj.sum() < MIN_SHARE * (rx1 - rx0) * (ry1 - ry0):
        # GrabCut found nothing: the context around the box looks like the object (a cell among cells). The
        # region of like colour around the box's middle, inside the box, is the better guess.
        from seg_core.assist.wand import wand

        keep = np.zeros((h, w), bool)
        keep[y0:y1, x0:x1] = True
        return _fill_holes(wand(rgb, ((x0 + x1) // 2, (y0 + y1) // 2), FALLBACK_TOLERANCE) & keep)
    soft = refine_up(obj.astype(np.float32)[..., None], small, crop)[..., 0] > 0.5
    out = np.zeros((h, w), bool)
    out[cy0:cy1, cx0:cx1] = soft
    keep = np.zeros((h, w), bool)
    keep[y0:y1, x0:x1] = True
    out &= keep
    if hint is not None:
        marks_full = np.asarray(hint, np.uint8)
        out[marks_full == 1] = True
        out[marks_full == 0] = False
    return out


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_fill_holes(mask)


def _whole_box(h: int, w: int, box: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros((h, w), bool)
    out[box[1]:box[3], box[0]:box[2]] = True
    return out
