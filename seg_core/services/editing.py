"""Mask editing on a canvas: strokes onto class ids, which part of an image the canvas shows (zoom), its background."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from seg_core import viz
from seg_core.errors import InvalidMaskError
from seg_core.formats import masks
from seg_core.classes import IGNORE_COLOR, IGNORE_ID, ClassSpec, color_to_hex
from seg_core.store.records import ImageStatus

# Zoom factors relative to "whole image fits the canvas"; a zoomed view is never smaller than this many pixels.
ZOOMS = (1, 2, 4, 8, 16)
MIN_REGION = 32
# The canvas's PNG of strokes and its background travel on every stroke: a wider canvas makes each round trip
# longer with no gain in precision (zoom gives that).
MAX_CANVAS_W, MAX_CANVAS_H = 860, 560


# A canvas stroke pixel counts as painted from this alpha (0..1, relative to the stroke's own opacity):
# anti-aliased edges below it are left out, so a stroke's mask is as wide as the brush looked.
STROKE_ALPHA_FRACTION = 0.5


def _nearest_neighbour_index(n_out: int, n_in: int) -> np.ndarray:
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def apply_strokes(ids: np.ndarray, strokes: np.ndarray, classes: Sequence[ClassSpec],
                  region: tuple[int, int, int, int] | None = None, stroke_alpha: float = 1.0) -> np.ndarray:
    """Paint a canvas's strokes onto a class-id mask; returns a new mask, `ids` is left as it was.

    strokes: HxWx4 RGBA at the canvas size, unpainted pixels have alpha 0 (streamlit-drawable-canvas's
    image_data). region: (x0, y0, x1, y1) of the mask that the canvas showed, default all of it; the
    strokes are scaled to it with nearest neighbour. A painted pixel (alpha >= half the stroke opacity)
    takes the class whose colour is nearest to its colour, so anti-aliased blends snap to a class and
    painting with the background class erases.
    """
    ids = np.asarray(ids)
    strokes = np.asarray(strokes)
    if ids.ndim != 2:
        raise InvalidMaskError(f"A mask must be a 2-D array of class ids; got shape {ids.shape}.")
    if strokes.ndim != 3 or strokes.shape[2] != 4 or strokes.dtype != np.uint8:
        raise InvalidMaskError(f"Strokes must be an RGBA uint8 image; got {strokes.dtype} {strokes.shape}.")
    h, w = ids.shape
    x0, y0, x1, y1 = region if region is not None else (0, 0, w, h)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InvalidMaskError(f"The painted region {x0},{y0}-{x1},{y1} is outside the {w}x{h} mask.")
    threshold = max(1, round(255 * float(stroke_alpha) * STROKE_ALPHA_FRACTION))
    painted = strokes[..., 3] >= threshold
    out = ids.copy()
    if not painted.any():
        return out
    colours = np.asarray([c.color for c in classes], np.int32)
    rgb = strokes[..., :3][painted].astype(np.int32)
    nearest = np.empty(len(rgb), np.uint8)
    for start in range(0, len(rgb), 1 << 18):  # bounded memory for a full-screen stroke
        chunk = rgb[start:start + (1 << 18)]
        dist = ((chunk[:, None, :] - colours[None, :, :]) ** 2).sum(axis=2)
        nearest[start:start + len(chunk)] = dist.argmin(axis=1)
    labels = np.zeros(painted.shape, np.uint8)
    labels[painted] = nearest
    rows = _nearest_neighbour_index(y1 - y0, strokes.shape[0])
    cols = _nearest_neighbour_index(x1 - x0, strokes.shape[1])
    sel = np.ix_(rows, cols)
    hit = painted[sel]
    out[y0:y1, x0:x1][hit] = labels[sel][hit]
    return out



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
               opacity: float = 0.5, show_mask: bool = True, quality: int = 88, outline: bool = True,
               edges: np.ndarray | None = None) -> bytes:
    """JPEG of the viewed region at the canvas size with the mask `ids` blended in (a JPEG is far lighter than
    a PNG), and with `outline` the edges between the classes of `edges` (default `ids`) dashed in black and white."""
    x0, y0, x1, y1 = view.region
    size = (view.canvas_w, view.canvas_h)
    crop = np.ascontiguousarray(np.asarray(image)[y0:y1, x0:x1])
    upscale = view.scale > 1
    shown = np.asarray(Image.fromarray(crop).resize(size, Image.NEAREST if upscale else Image.BILINEAR))

    def region(m: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(np.ascontiguousarray(m[y0:y1, x0:x1])).resize(size, Image.NEAREST))

    region_ids = region(ids) if ids is not None and show_mask else None
    rgb = viz.overlay(shown, region_ids, classes, alpha=opacity)
    if outline and region_ids is not None:
        rgb = viz.outlined(rgb, region_ids if edges is None else region(edges))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def paint_hits(ids: np.ndarray, hit: np.ndarray, cls_id: int, view: CanvasView) -> np.ndarray:
    """`ids` (a copy) with class `cls_id` wherever the canvas-sized boolean `hit` lands in the viewed region (nearest
    neighbour, as the canvas was stretched over it)."""
    out = np.array(ids, copy=True)
    x0, y0, x1, y1 = view.region
    rows = _nearest_neighbour_index(y1 - y0, hit.shape[0])
    cols = _nearest_neighbour_index(x1 - x0, hit.shape[1])
    out[y0:y1, x0:x1][hit[np.ix_(rows, cols)]] = cls_id
    return out


def paint_where(ids: np.ndarray, where: np.ndarray, cls_id: int) -> np.ndarray:
    """`ids` (a copy) with class `cls_id` wherever `where` (at the mask's size) is true."""
    return np.where(where, cls_id, ids).astype(ids.dtype)


def box_object(ids: np.ndarray, inside: np.ndarray, cls_id: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """Box -> object's result in the mask: inside the box (c0, r0, c1, r1) the class is exactly the object found
    (`inside`, at the mask's size), so what the class wrongly covered there before (a model's guess, an old stroke)
    goes back to background; outside the box nothing changes."""
    out = np.array(ids, copy=True)
    c0, r0, c1, r1 = box
    part = out[r0:r1, c0:c1]
    part[(part == cls_id) & ~inside[r0:r1, c0:c1]] = 0
    out[inside] = cls_id
    return out


def canvas_strokes(data_url: str | None) -> np.ndarray | None:
    """The canvas's strokes as RGBA at canvas size, from the PNG data URL the component sends (None: no drawing)."""
    if not data_url or ";base64," not in data_url:
        return None
    import base64

    with Image.open(io.BytesIO(base64.b64decode(data_url.split(";base64,", 1)[1]))) as im:
        return np.asarray(im.convert("RGBA"))


def click_point(obj: dict) -> tuple[float, float]:
    """Where a click of the canvas's point tool landed, in canvas pixels: the tool draws a small circle whose left
    edge (stroke included) is at `left` and whose centre row is `top`."""
    radius = float(obj.get("radius", 0)) * float(obj.get("scaleX", 1) or 1)
    return float(obj.get("left", 0)) + radius + float(obj.get("strokeWidth", 0)) / 2, float(obj.get("top", 0))


def rect_box(obj: dict) -> tuple[float, float, float, float]:
    """A rectangle drawn on the canvas, as (x0, y0, x1, y1) in canvas pixels (its top-left origin and size)."""
    x0, y0 = float(obj.get("left", 0)), float(obj.get("top", 0))
    w = float(obj.get("width", 0)) * float(obj.get("scaleX", 1) or 1)
    h = float(obj.get("height", 0)) * float(obj.get("scaleY", 1) or 1)
    return min(x0, x0 + w), min(y0, y0 + h), max(x0, x0 + w), max(y0, y0 + h)


def to_image(view: CanvasView, x: float, y: float) -> tuple[int, int]:
    """A canvas pixel (x, y) as the image pixel (column, row) under it."""
    col = view.x0 + int(np.floor(x * (view.x1 - view.x0) / view.canvas_w))
    row = view.y0 + int(np.floor(y * (view.y1 - view.y0) / view.canvas_h))
    return min(max(col, view.x0), view.x1 - 1), min(max(row, view.y0), view.y1 - 1)


def fill_region(ids: np.ndarray, point: tuple[int, int], cls: int) -> tuple[np.ndarray, int]:
    """A paint bucket: the pixels of the clicked pixel's class that are connected to it (4-neighbours) take `cls`.

    Outline a shape with the brush, click inside: the inside is filled up to the outline. Returns the new mask and
    how many pixels changed; `ids` is left as it was.
    """
    from scipy import ndimage

    col, row = point
    h, w = ids.shape
    if not (0 <= col < w and 0 <= row < h):
        raise InvalidMaskError(f"The point ({col}, {row}) is outside the {w}x{h} mask.")
    out = ids.copy()
    if ids[row, col] == cls:
        return out, 0
    labels, _ = ndimage.label(ids == ids[row, col])
    region = labels == labels[row, col]
    out[region] = cls
    return out, int(region.sum())


def fill_holes(ids: np.ndarray, cls: int) -> tuple[np.ndarray, int, int]:
    """Background pixels enclosed by class `cls` (not reachable from the image's edge without crossing it) take
    `cls`; other classes inside stay. Returns the new mask, the number of holes and of pixels filled."""
    from scipy import ndimage

    if cls == 0:
        raise InvalidMaskError("Fill holes needs an object class: holes in the background are objects.")
    outside, n = ndimage.label(ids != cls)   # 4-neighbours: a gap only touching at a corner does not leak
    edge = np.unique(np.concatenate([outside[0], outside[-1], outside[:, 0], outside[:, -1]]))
    enclosed = (outside > 0) & ~np.isin(outside, edge)
    holes = enclosed & (ids == 0)
    out = ids.copy()
    out[holes] = cls
    count = len(np.unique(outside[holes])) if holes.any() else 0
    return out, count, int(holes.sum())


def class_areas(ids: np.ndarray | None, classes: Sequence[ClassSpec]) -> list[dict]:
    """Per class: name, colour, pixels and percentage of the image, in class order (ignore pixels last)."""
    if ids is None:
        return []
    counts = masks.class_pixel_counts(ids)
    total = max(1, ids.size)
    rows = [{"id": c.id, "name": c.name, "color": c.hex, "pixels": counts.get(c.id, 0),
             "percent": 100.0 * counts.get(c.id, 0) / total} for c in classes]
    if counts.get(IGNORE_ID):
        rows.append({"id": IGNORE_ID, "name": "ignore", "color": color_to_hex(IGNORE_COLOR), "pixels": counts[IGNORE_ID],
                     "percent": 100.0 * counts[IGNORE_ID] / total})
    return rows


def legend_html(classes: Sequence[ClassSpec]) -> str:
    """Class colours as swatches with names: widget labels cannot hold arbitrary colours. Markdown still reads the
    text between the tags, so a name is escaped for HTML, then for Markdown; a long one is whole in the tooltip."""
    from html import escape

    from seg_core.markdown import md_escape, shorten

    return " ".join(
        f'<span title="{escape(c.name)}" style="display:inline-block;max-width:100%;overflow-wrap:anywhere;'
        f'margin-right:.8em"><span style="display:inline-block;width:.9em;'
        f'height:.9em;border-radius:2px;border:1px solid #888;vertical-align:middle;background:{c.hex}"></span> '
        f'{md_escape(escape(shorten(c.name), quote=False))}</span>' for c in classes)


def minimap(image: np.ndarray, ids: np.ndarray | None, classes: Sequence[ClassSpec], view: CanvasView,
            side: int = 240) -> np.ndarray:
    """A small picture of the whole image with the viewed region outlined, to see where a zoom is."""
    h, w = np.asarray(image).shape[:2]
    thumb = Image.fromarray(viz.overlay_thumbnail(image, ids, classes, max_side=side))
    sx, sy = thumb.width / w, thumb.height / h
    from PIL import ImageDraw

    draw = ImageDraw.Draw(thumb)
    box = (view.x0 * sx, view.y0 * sy, max(view.x0 * sx + 2, view.x1 * sx - 1), max(view.y0 * sy + 2, view.y1 * sy - 1))
    draw.rectangle(box, outline=(255, 255, 0), width=2)
    return np.asarray(thumb)


def start_from_prediction(project, image_id: int, predictor) -> str:
    """Make the model's mask for this image its unsaved draft, to correct and then save as ground truth.

    Uses the stored prediction when it came from the same run; returns a sentence saying what was done.
    """
    from seg_core.ml.inference import for_project

    predictor = for_project(project, predictor)   # first: a model that no longer fits the classes changes nothing
    rec = project.image(image_id)
    stored = project.predictions.get(rec.id)
    if stored is None or stored.run_id != predictor.run_id:
        pred = predictor.predict_one(project.load_image(rec))
        project.predictions.save(rec.id, predictor.run_id, pred.ids, pred.uncertainty)
        stored = project.predictions.get(rec.id)
    project.drafts.save(rec.id, stored.ids, rec.mask_version, source="prediction")
    return (f"Loaded the prediction of run {stored.run_id}: correct it, then Save to make it this image's mask."
            + (" It replaces the current mask only when you save." if rec.status == ImageStatus.LABELED else "")
            + (f" {predictor.class_note}" if predictor.class_note else ""))
