"""Mask editing on a canvas: which part of an image the canvas shows (zoom), its background, stroke colours."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from seg_core import masks, viz
from seg_core.classes import ClassSpec

# Zoom factors relative to "whole image fits the canvas"; a zoomed view is never smaller than this many pixels.
ZOOMS = (1, 2, 4, 8, 16)
MIN_REGION = 32
# The canvas's PNG of strokes and its background travel on every stroke: past ~1000 px wide the round trip
# grows with no gain in precision (zoom gives that).
MAX_CANVAS_W, MAX_CANVAS_H = 960, 720


@dataclass(frozen=True)
class CanvasView:
    """The region (x0, y0, x1, y1) of the image that a canvas of canvas_w x canvas_h pixels shows."""

    x0: int
    y0: int
    x1: int
    y1: int
    canvas_w: int
    canvas_h: int

    @property
    def region(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def scale(self) -> float:
        """Screen pixels per image pixel (above 1: painting finer than the image's own pixels)."""
        return self.canvas_w / (self.x1 - self.x0)

    @property
    def key(self) -> str:
        return f"{self.x0}_{self.y0}_{self.x1}_{self.y1}_{self.canvas_w}"


def max_zoom(width: int, height: int) -> int:
    """The largest zoom in ZOOMS that still shows at least MIN_REGION pixels each way."""
    return max(z for z in ZOOMS if z == 1 or min(width, height) / z >= MIN_REGION)


def view_for(width: int, height: int, zoom: float = 1, center: tuple[float, float] = (0.5, 0.5),
             max_w: int = MAX_CANVAS_W, max_h: int = MAX_CANVAS_H) -> CanvasView:
    """The canvas view of an image at `zoom`, centred at `center` (fractions of width and height).

    At zoom 1 the whole image fits the canvas; at zoom z a 1/z-wide region fills it. The centre is moved
    as little as needed to keep the region inside the image.
    """
    zoom = max(1.0, float(zoom))
    rw = max(1, min(width, round(width / zoom)))
    rh = max(1, min(height, round(height / zoom)))
    cx = min(max(float(center[0]), 0.0), 1.0) * width
    cy = min(max(float(center[1]), 0.0), 1.0) * height
    x0 = int(min(max(round(cx - rw / 2), 0), width - rw))
    y0 = int(min(max(round(cy - rh / 2), 0), height - rh))
    fit = min(max_w / rw, max_h / rh)
    cw, ch = max(1, round(rw * fit)), max(1, round(rh * fit))
    return CanvasView(x0, y0, x0 + rw, y0 + rh, int(cw), int(ch))


def background(image: np.ndarray, ids: np.ndarray | None, classes: Sequence[ClassSpec], view: CanvasView,
               opacity: float = 0.5, show_mask: bool = True, quality: int = 88) -> bytes:
    """JPEG of the viewed region at the canvas size with the mask blended in (a JPEG is ~10x lighter than PNG)."""
    x0, y0, x1, y1 = view.region
    size = (view.canvas_w, view.canvas_h)
    crop = np.ascontiguousarray(np.asarray(image)[y0:y1, x0:x1])
    upscale = view.scale > 1
    shown = np.asarray(Image.fromarray(crop).resize(size, Image.NEAREST if upscale else Image.BILINEAR))
    region_ids = None
    if ids is not None and show_mask:
        region_ids = np.asarray(Image.fromarray(np.ascontiguousarray(ids[y0:y1, x0:x1])).resize(size, Image.NEAREST))
    rgb = viz.overlay(shown, region_ids, classes, alpha=opacity)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def stroke_color(cls: ClassSpec, opacity: float) -> str:
    r, g, b = cls.color
    return f"rgba({r}, {g}, {b}, {opacity:.2f})"


def paint(ids: np.ndarray, strokes: np.ndarray | None, classes: Sequence[ClassSpec], view: CanvasView,
          stroke_opacity: float) -> np.ndarray:
    """`ids` with the canvas's strokes applied in the viewed region (a copy; `ids` itself is kept)."""
    if strokes is None:
        return ids.copy()
    return masks.apply_strokes(ids, strokes, classes, view.region, stroke_alpha=stroke_opacity)


def class_areas(ids: np.ndarray | None, classes: Sequence[ClassSpec]) -> list[dict]:
    """Per class: name, colour, pixels and percentage of the image, in class order (ignore pixels last)."""
    if ids is None:
        return []
    counts = masks.class_pixel_counts(ids)
    total = max(1, ids.size)
    rows = [{"id": c.id, "name": c.name, "color": c.hex, "pixels": counts.get(c.id, 0),
             "percent": 100.0 * counts.get(c.id, 0) / total} for c in classes]
    if counts.get(255):
        rows.append({"id": 255, "name": "ignore", "color": "#808080", "pixels": counts[255],
                     "percent": 100.0 * counts[255] / total})
    return rows
