"""What every assist shares: checking its input, the reduced working copy, and the way back to full size."""

from __future__ import annotations

import numpy as np

from seg_core.classes import IGNORE_ID
from seg_core.errors import AssistError

WORK_SIDE = 512            # assists work on a copy no larger than this many pixels a side
# Strokes: nothing drawn here. It is a saved mask's "ignore", so Smart fill learns from saved masks as from strokes
# and skips their ignored pixels.
NO_SCRIBBLE = IGNORE_ID
MIN_SIDE = 8
GUIDE_RADIUS = 4           # guided filter window at working size, pixels
GUIDE_EPS = 1e-3           # its smoothing: smaller follows weaker image edges


def as_image(image) -> np.ndarray:
    """The image as (H, W, 3) uint8; a clear error for anything an assist cannot work on."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise AssistError(f"An assist needs an 8-bit image; got {arr.dtype}.")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise AssistError(f"An assist needs a grey or colour image; got an array of shape {np.asarray(image).shape}.")
    if min(arr.shape[:2]) < MIN_SIDE:
        raise AssistError(f"The image is {arr.shape[1]}x{arr.shape[0]} pixels: assists need at least "
                          f"{MIN_SIDE}x{MIN_SIDE}.")
    return np.ascontiguousarray(arr)


def work_size(h: int, w: int, side: int = WORK_SIDE) -> tuple[int, int]:
    """(width, height) of the working copy: the image's own size when it is small enough."""
    scale = min(1.0, side / max(h, w))
    return max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale))


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def shrink_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scribbles at working size: a working pixel takes the class that covers most of it, so a stroke thinner
    than the reduction survives (nearest neighbour would drop most of it)."""
    import cv2

    if (labels.shape[1], labels.shape[0]) == size:
        return labels
    out = np.full((size[1], size[0]), NO_SCRIBBLE, np.uint8)
    best = np.zeros((size[1], size[0]), np.float32)
    for cls in np.unique(labels):
        if cls == NO_SCRIBBLE:
            continue
        cover = cv2.resize((labels == cls).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        win = cover > best
        out[win], best[win] = cls, cover[win]
    return out


def grey(image: np.ndarray) -> np.ndarray:
    """Luminance in 0..1, the guide whose edges results follow."""
    return (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0


def refine_up(soft: np.ndarray, small_rgb: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Bring soft maps (h, w, C) in 0..1 from the working copy to the image's size with edges that follow it.

    The fast guided filter (He and Sun, 2015): the linear coefficients of the image's luminance are fitted at
    working size and applied at full size, so edges snap to the photo's own at the cost of two multiply-adds a
    full-size pixel.
    """
    import cv2

    h, w = image.shape[:2]
    guide = grey(small_rgb)
    r = (2 * GUIDE_RADIUS + 1,) * 2
    mean_i = cv2.boxFilter(guide, -1, r)
    var_i = cv2.boxFilter(guide * guide, -1, r) - mean_i * mean_i
    full_guide = grey(image)
    out = np.empty((h, w, soft.shape[2]), np.float32)
    for c in range(soft.shape[2]):
        p = np.ascontiguousarray(soft[..., c], dtype=np.float32)
        mean_p = cv2.boxFilter(p, -1, r)
        cov = cv2.boxFilter(guide * p, -1, r) - mean_i * mean_p
        a = cov / (var_i + GUIDE_EPS)
        b = mean_p - a * mean_i
        a, b = cv2.boxFilter(a, -1, r), cv2.boxFilter(b, -1, r)
        if (w, h) != (guide.shape[1], guide.shape[0]):
            a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
            b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
        out[..., c] = a * full_guide + b
    return out


def largest_with(mask: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
    """The connected parts of `mask` that hold a seed pixel (or its largest part without seeds)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    if seeds is not None and (hit := np.unique(labels[seeds & mask])).size and hit.max() > 0:
        return np.isin(labels, hit[hit > 0])
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()
