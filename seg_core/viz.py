"""Pictures for people: masks blended over images, colourised masks, thumbnails."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from seg_core.classes import IGNORE_ID, ClassSpec, palette_bytes
from seg_core.images import to_rgb


def colorize(ids: np.ndarray, classes: Sequence[ClassSpec]) -> np.ndarray:
    lut = np.asarray(palette_bytes(classes), np.uint8).reshape(256, 3)
    return lut[ids]


def overlay(image: np.ndarray, ids: np.ndarray | None, classes: Sequence[ClassSpec], alpha: float = 0.5,
            hidden: Sequence[int] = (0,)) -> np.ndarray:
    """The image with each class's colour blended in; background (and `hidden` ids) left clear."""
    rgb = to_rgb(image).astype(np.float32)
    if ids is None or alpha <= 0:
        return rgb.astype(np.uint8)
    if ids.shape != rgb.shape[:2]:
        raise ValueError(f"mask {ids.shape} and image {rgb.shape[:2]} differ in size")
    colors = colorize(ids, classes).astype(np.float32)
    show = ~np.isin(ids, list(hidden)) & (ids != IGNORE_ID)
    a = np.where(show, float(alpha), 0.0)[..., None]
    return (rgb * (1 - a) + colors * a).round().astype(np.uint8)


def thumbnail(rgb: np.ndarray, max_side: int = 256) -> np.ndarray:
    im = Image.fromarray(rgb)
    im.thumbnail((max_side, max_side), Image.BILINEAR)
    return np.asarray(im)


def overlay_thumbnail(image: np.ndarray, ids: np.ndarray | None, classes: Sequence[ClassSpec],
                      max_side: int = 256, alpha: float = 0.45) -> np.ndarray:
    return thumbnail(overlay(image, ids, classes, alpha), max_side)
