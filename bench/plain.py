"""The plain methods the annotation assists are built on, as a person would call them from the libraries: the
baselines the assist benchmarks print beside the assists, on the same inputs.

- GrabCut: `cv2.grabCut` on the whole image at full size, started from the box (GC_INIT_WITH_RECT), 5 iterations;
  the object is its foreground and probable foreground.
- Trees: scikit-image's trainable segmentation recipe with extremely randomised trees: the per-pixel features of
  `skimage.feature.multiscale_basic_features` (intensity, edges and texture from sigma 1 to 16, each colour
  channel), a forest fitted on every stroked pixel, then every pixel classified.
"""

from __future__ import annotations

import numpy as np

from annotator import NO_STROKE

GRABCUT_ITERATIONS = 5
TREES = 50
TREE_DEPTH = 10


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def grabcut(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) bool: plain GrabCut's object inside `box` = (x0, y0, x1, y1)."""
    import cv2

    rgb = _rgb(image)
    x0, y0, x1, y1 = box
    mask = np.zeros(rgb.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(rgb, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    except cv2.error:     # one colour in the box: the whole box, as a person would be left with
        out = np.zeros(rgb.shape[:2], bool)
        out[y0:y1, x0:x1] = True
        return out
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def trees(image: np.ndarray, scribbles: np.ndarray, num_classes: int, seed: int = 0) -> np.ndarray:
    """(H, W) uint8 class ids: extremely randomised trees on multiscale_basic_features, learnt from the strokes
    (`scribbles`: class ids, NO_STROKE elsewhere)."""
    from sklearn.ensemble import ExtraTreesClassifier
    from skimage.feature import multiscale_basic_features

    image = np.asarray(image)
    feats = multiscale_basic_features(image, channel_axis=-1 if image.ndim == 3 else None)
    drawn = scribbles != NO_STROKE
    labels = scribbles[drawn]
    if len(np.unique(labels)) < 2:
        return np.full(scribbles.shape, labels[0] if labels.size else 0, np.uint8)
    forest = ExtraTreesClassifier(n_estimators=TREES, max_depth=TREE_DEPTH, n_jobs=-1, random_state=seed)
    forest.fit(feats[drawn], labels)
    out = forest.predict(feats.reshape(-1, feats.shape[-1])).reshape(scribbles.shape)
    return np.clip(out, 0, num_classes - 1).astype(np.uint8)
