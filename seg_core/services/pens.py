"""Which pen drew each object on the Annotate canvas, and which canvas pixels a new stroke covered.

The canvas may still hold strokes of the last pen when the person picks another one, and a stroke drawn just
before the new pen reached the browser is drawn with the old one. So the pen (class and tool) is written into the
colour of every object the canvas draws, in the third decimal of its alpha, too small to see: each object is
folded in as what it was drawn with, whatever the timing, and the canvas never has to be emptied on a pen change.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from seg_core.classes import ClassSpec

MAX_TAGS = 9          # tags 0..8: the alpha's third decimal, below the opacity rounded to two decimals
_RGBA = re.compile(r"^\s*rgba\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*([0-9.]+)\s*\)\s*$")


@dataclass(frozen=True)
class Ink:
    """What one canvas object was drawn with: its class, the tool's tag (None: an untagged colour) and opacity."""

    cls_id: int | None        # None: a colour no class of the project has (e.g. a class removed meanwhile)
    tag: int | None
    alpha: float
    rgb: tuple[int, int, int]


def colour(cls: ClassSpec, opacity: float, tag: int) -> str:
    """The CSS colour a pen of class `cls` and tool `tag` draws with, at (almost exactly) `opacity`."""
    if not 0 <= tag < MAX_TAGS:
        raise ValueError(f"a pen tag is 0..{MAX_TAGS - 1}, not {tag}")
    r, g, b = cls.color
    alpha = (round(float(opacity) * 100) * 10 - (tag + 1)) / 1000
    return f"rgba({r}, {g}, {b}, {alpha:.3f})"


def read(css: object, classes: Sequence[ClassSpec]) -> Ink | None:
    """The pen behind a colour the canvas echoes back (None: not an rgba() colour at all)."""
    m = _RGBA.match(css) if isinstance(css, str) else None
    if m is None:
        return None
    rgb = (int(m[1]), int(m[2]), int(m[3]))
    alpha = float(m[4])
    thousandths = round(alpha * 1000)
    below = math.ceil(thousandths / 10) * 10 - thousandths
    tag = below - 1 if 0 < below <= MAX_TAGS else None
    cls_id = next((c.id for c in classes if tuple(c.color) == rgb), None)
    return Ink(cls_id, tag, alpha, rgb)


def ink_of(obj: dict, classes: Sequence[ClassSpec]) -> Ink | None:
    """What drew a canvas object: its outline colour (every tool draws one), else its fill."""
    return read(obj.get("stroke"), classes) or read(obj.get("fill"), classes)


def covered(before: np.ndarray | None, after: np.ndarray, inks: Sequence[tuple[tuple[int, int, int], float]]
            ) -> np.ndarray:
    """Which of `inks` ((rgb, alpha) each) newly covers each canvas pixel, from the canvas's RGBA picture before
    and after some strokes were added on top: an int array at canvas size, -1 where none does.

    A pixel is covered by ink k when the picture after is nearer to "ink k laid fully over the picture before"
    than to the picture before: at least half covered, whatever lay under it (an earlier stroke of another class,
    or nothing). The strokes' own colours decide, never a guess from the blended colour.
    """
    after = np.asarray(after)
    out = np.full(after.shape[:2], -1, np.int16)
    if before is None or before.shape != after.shape:
        before = np.zeros_like(after)
    changed = (np.abs(after.astype(np.int16) - before.astype(np.int16)) > 2).any(axis=2) & (after[..., 3] > 0)
    if not changed.any() or not inks:
        return out

    def premultiplied(px: np.ndarray) -> np.ndarray:
        px = px.astype(np.float32) / 255
        return np.concatenate([px[:, :3] * px[:, 3:], px[:, 3:]], axis=1)

    a, b = premultiplied(after[changed]), premultiplied(before[changed])
    best = np.sum((a - b) ** 2, axis=1)
    choice = np.full(len(a), -1, np.int16)
    for k, (rgb, alpha) in enumerate(inks):
        ink = np.array([*(np.asarray(rgb, np.float32) / 255 * alpha), alpha], np.float32)
        full = ink + (1 - alpha) * b
        dist = np.sum((a - full) ** 2, axis=1)
        better = dist <= best       # a later ink wins a tie: it lies on top
        choice[better], best[better] = k, dist[better]
    out[changed] = choice
    return out
