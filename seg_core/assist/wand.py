"""Magic wand: the connected region around a click whose colour is close to the clicked pixel's."""

from __future__ import annotations

import numpy as np

from seg_core.assist.common import as_image, largest_with, refine_up, shrink, work_size
from seg_core.errors import AssistError

MAX_DELTA_E = 60.0       # tolerance 1 = this colour distance in CIELAB (about "any similar hue")
SMOOTH_SIGMA = 1.0       # at working size: sensor noise does not stop the region


def wand(image, point, tolerance: float = 0.2) -> np.ndarray:
    """(H, W) bool: pixels connected to `point` = (x, y) whose colour is within `tolerance` (0..1) of its own."""
    from skimage.segmentation import flood

    rgb = as_image(image)
    h, w = rgb.shape[:2]
    try:
        x, y = (int(round(float(v))) for v in point)
    except (TypeError, ValueError):
        raise AssistError(f"A click is two numbers (x, y); got {point!r}.") from None
    if not (0 <= x < w and 0 <= y < h):
        raise AssistError(f"The point ({x}, {y}) is outside the {w}x{h} image.")
    if not 0 <= float(tolerance) <= 1:
        raise AssistError(f"The tolerance is between 0 and 1; got {tolerance}.")
    size = work_size(h, w)
    small = shrink(rgb, size)
    lab = smooth_lab(small)
    sx, sy = min(size[0] - 1, int(x * size[0] / w)), min(size[1] - 1, int(y * size[1] / h))
    distance = np.linalg.norm(lab - lab[sy, sx], axis=2)
    region = flood(distance, (sy, sx), tolerance=float(tolerance) * MAX_DELTA_E)
    region = largest_with(region, _seed(region.shape, sx, sy))
    soft = refine_up(region.astype(np.float32)[..., None], small, rgb)[..., 0] > 0.5
    seed = _seed((h, w), x, y)
    out = largest_with(soft, seed)
    out[y, x] = True
    return out


def smooth_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (L in 0..100) of the image lightly smoothed: distances in it are colour differences as seen."""
    import cv2

    lab = cv2.cvtColor(cv2.GaussianBlur(rgb, (0, 0), SMOOTH_SIGMA), cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    lab[..., 1:] -= 128.0
    return lab


def _seed(shape: tuple[int, int], x: int, y: int) -> np.ndarray:
    seed = np.zeros(shape, bool)
    seed[y, x] = True
    return seed
