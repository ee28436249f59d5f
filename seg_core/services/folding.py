"""What the Annotate canvas's new objects do to the mask a tab shows: each object as the pen it was drawn with.

The canvas sends everything it holds on each change (its objects as Fabric JSON and its picture as RGBA). Objects
already folded in are known by their signature; the new ones are grouped by the pen that drew them (pens.py) and
each group becomes one edit: painted pixels, Smart fill scribbles, or clicks for a fill tool.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from seg_core.assist.common import NO_SCRIBBLE
from seg_core.classes import ClassSpec
from seg_core.services import editing, pens
from seg_core.services.drafting import View, change, fill_from_scribbles
from seg_core.store.project import Project


@dataclass
class Batch:
    """Consecutive new objects of one pen, and the canvas pixels they cover (at least half)."""

    ink: pens.Ink
    objects: list[dict] = field(default_factory=list)
    hit: np.ndarray | None = None


def signature(obj: dict) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def canvas_objects(json_data: dict | None) -> tuple[str, ...] | None:
    """One signature per object on the canvas, to know which strokes are already folded in."""
    if not json_data:
        return None
    return tuple(signature(o) for o in json_data.get("objects", []))


def new_batches(view: View, drawing: dict, classes: Sequence[ClassSpec], default: pens.Ink) -> list[Batch]:
    """The canvas's objects not folded in yet, in drawing order, grouped by pen, each with the pixels it covers.

    Remembers what the canvas holds, so a rerun that brings the same objects again (one that came before the canvas
    was emptied) folds nothing twice. `default`: the pen of an object whose colour carries none.
    """
    raw = drawing.get("raw") or {}
    objects = list(raw.get("objects") or []) if raw else []
    held, sigs = view.objects, tuple(signature(o) for o in objects)
    known = set(held)
    if raw:
        view.objects = sigs
    batches: list[Batch] = []
    for obj, sig in zip(objects, sigs):
        if sig in known:
            continue
        ink = pens.ink_of(obj, classes)
        if ink is None or ink.tag is None:
            ink = default
        if not batches or (batches[-1].ink.cls_id, batches[-1].ink.tag) != (ink.cls_id, ink.tag):
            batches.append(Batch(ink))
        batches[-1].objects.append(obj)
    if not batches and sigs == held:
        return batches   # the very objects of the last fold: the picture is the one kept (no PNG to decode)
    picture = editing.canvas_strokes(drawing.get("data"))
    if batches and picture is not None:
        labels = pens.covered(view.picture, picture, [(b.ink.rgb, b.ink.alpha) for b in batches])
        for k, batch in enumerate(batches):
            batch.hit = labels == k
    if picture is not None:
        view.picture = picture
    return batches


def paint(project: Project, view: View, hit: np.ndarray | None, cls_id: int, canvas_view: editing.CanvasView) -> str:
    """Canvas pixels `hit` take class `cls_id`, as one stroke edit; painting background erases, and the photo then
    shows under the eraser's light veil."""
    if hit is None or not hit.any():
        return "unchanged"
    new = editing.paint_hits(view.base_ids, hit, cls_id, canvas_view)
    outcome = change(project, view, new, "stroke")
    if cls_id == 0:
        view.under = np.where(new == 0, 0, view.under)
    return outcome


def scribble(project: Project, view: View, hit: np.ndarray | None, cls_id: int, canvas_view: editing.CanvasView,
             fill, live: bool = True) -> str:
    """Smart fill: canvas pixels `hit` become scribbles of `cls_id` (kept per view); `fill(scribbles) -> ids` turns
    them into a whole mask, after each stroke when `live`, else when the page calls fill_from_scribbles."""
    if hit is None or not hit.any():
        return "unchanged"
    if view.scribbles is None:
        view.scribbles = np.full(view.base_ids.shape, NO_SCRIBBLE, np.uint8)
    before = view.scribbles
    view.scribbles = editing.paint_hits(before, hit, cls_id, canvas_view)
    if not live:
        view.pending_scribbles = True
        return "unchanged"
    return fill_from_scribbles(project, view, fill, before)


def scribble_hint(view: View, cls_id: int) -> np.ndarray | None:
    """The Smart fill strokes as a Box -> object hint: 1 where they say `cls_id`, 0 where they say another class,
    NO_SCRIBBLE where they say nothing (None: no strokes)."""
    if view.scribbles is None:
        return None
    s = view.scribbles
    return np.where(s == cls_id, 1, np.where(s == NO_SCRIBBLE, NO_SCRIBBLE, 0)).astype(np.uint8)


def marks(project: Project, view: View, objects: Sequence[dict], canvas_view: editing.CanvasView,
          fill: Callable, what: str = "fill") -> tuple[str, int]:
    """Tools that act on clicks rather than painting them: each click (the point tool's dot) among `objects`, in
    image pixels, goes to `fill(ids, point) -> ids`, all as one edit (boxes: boxing.py).

    Returns the outcome (as drafting.change) and how many pixels changed.
    """
    ids = view.base_ids
    for obj in objects:
        kind = obj.get("type", "").lower()
        if kind == "circle":
            ids = fill(ids, editing.to_image(canvas_view, *editing.click_point(obj)))
    changed = int((ids != view.base_ids).sum())
    return change(project, view, ids, what), changed


def fill_clicks(project: Project, view: View, objects: Sequence[dict], cls_id: int,
                canvas_view: editing.CanvasView) -> tuple[str, int]:
    """The fill tool: each click fills the region under it with class `cls_id`, like a paint bucket."""
    return marks(project, view, objects, canvas_view,
                 lambda ids, point: editing.fill_region(ids, point, cls_id)[0], "fill")
