"""Colour masks: an RGB pixel as one number, the colours a mask holds, and colours read as class ids."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from seg_core.classes import IGNORE_COLOR, IGNORE_ID, ClassSpec, color_to_hex
from seg_core.errors import InvalidMaskError

Color = tuple[int, int, int]


def pack(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> HxW uint32, one number a colour, so colours compare and count as numbers."""
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def unpack(v: int) -> Color:
    return ((v >> 16) & 255, (v >> 8) & 255, v & 255)


def unique_colors(rgb: np.ndarray) -> dict[Color, int]:
    """Distinct colours of an HxWx3 array with their pixel counts, most frequent first."""
    vals, counts = np.unique(pack(rgb).ravel(), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {unpack(int(vals[i])): int(counts[i]) for i in order}


def border_colour(rgb: np.ndarray, candidates: Sequence[Color]) -> Color:
    """The candidate covering most of the image border: that is the background in a two-colour mask."""
    edge = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    packed = pack(edge[None])[0]
    scores = []
    for c in candidates:
        lum = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
        scores.append((int(np.count_nonzero(packed == pack(np.array([[c]], np.uint8))[0, 0])), -lum))
    return candidates[int(np.argmax([s[0] * 1e6 + s[1] for s in scores]))]


def describe_colors(colors: dict[Color, int], limit: int = 8) -> str:
    items = list(colors.items())
    text = ", ".join(f"{color_to_hex(c)} ({n} px)" for c, n in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def map_colors(rgb: np.ndarray, classes: Sequence[ClassSpec], name: str, hint: str) -> np.ndarray:
    """Class ids of an RGB mask painted in the classes' colours (and the ignore grey); any other colour is refused,
    with `hint` added to the message."""
    lut = {c.color: c.id for c in classes}
    lut.setdefault(IGNORE_COLOR, IGNORE_ID)
    packed = pack(rgb)
    vals, inverse = np.unique(packed.ravel(), return_inverse=True)
    mapped = np.empty(len(vals), np.uint8)
    unknown: dict[Color, int] = {}
    counts = np.bincount(inverse, minlength=len(vals))
    for i, v in enumerate(vals):
        c = unpack(int(v))
        if c in lut:
            mapped[i] = lut[c]
        else:
            unknown[c] = int(counts[i])
    if unknown:
        unknown = dict(sorted(unknown.items(), key=lambda kv: -kv[1]))
        known = ", ".join(f"{c.name} {c.hex}" for c in classes)
        raise InvalidMaskError(
            f"Mask '{name}' has colours that are not classes of this project: {describe_colors(unknown)}. "
            f"The classes are: {known}.{hint}"
        )
    return mapped[inverse].reshape(packed.shape)
