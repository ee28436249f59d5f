"""Box -> object on the Annotate canvas: each box finds its object, and clicks right after it correct that object.

The canvas's rectangle tool turns a click into a rectangle as wide as its line, so a rectangle no larger than
CLICK_PX either way is a click. A click says the opposite of what the last box's result shows under it: on a part
wrongly taken in, "this is not the object"; on a part left out, "this is the object". The box's object is then
found again with every click so far, over the mask as it was before the box, so pixels of other classes the
first result took come back. Clicks correct the last box only while its result is what the tab shows: after any
other edit (a stroke, Undo, another image) a click asks for a box first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from seg_core.services import editing
from seg_core.services.drafting import LastBox, View, change

CLICK_PX = 6   # canvas pixels


@dataclass
class Outcome:
    result: str = "unchanged"         # as drafting.change
    changed: int = 0                  # pixels
    boxes: int = 0
    clicks: int = 0
    orphan_clicks: int = 0            # clicks with no box of this class to correct


# find(image box, clicks) -> (H, W) bool: the object (seg_core.assist.box_fill with the page's hints)
Find = Callable[[tuple[int, int, int, int], list], np.ndarray]


def current(view: View, cls_id: int) -> LastBox | None:
    """The box that clicks of class `cls_id` would correct now, if any."""
    last = view.last_box
    return last if last is not None and last.version == view.version and last.cls_id == cls_id else None


def is_click(obj: dict) -> bool:
    x0, y0, x1, y1 = editing.rect_box(obj)
    return x1 - x0 <= CLICK_PX and y1 - y0 <= CLICK_PX


def apply(project, view: View, objects: Sequence[dict], cls_id: int, canvas_view: editing.CanvasView,
          find: Find) -> Outcome:
    """The canvas's new rectangles of the Box -> object pen, in drawing order, as one edit."""
    out = Outcome()
    ids, last = view.base_ids, current(view, cls_id)
    for obj in objects:
        if obj.get("type", "").lower() != "rect":
            continue
        x0, y0, x1, y1 = editing.rect_box(obj)
        if is_click(obj):
            if last is None:
                out.orphan_clicks += 1
                continue
            col, row = editing.to_image(canvas_view, x0, y0)   # the rectangle starts where the button went down
            last.clicks.append((col, row, bool(ids[row, col] != cls_id)))
            out.clicks += 1
        else:
            (c0, r0), (c1, r1) = editing.to_image(canvas_view, x0, y0), editing.to_image(canvas_view, x1, y1)
            last = LastBox((c0, r0, c1 + 1, r1 + 1), cls_id, ids)
            out.boxes += 1
        ids = editing.box_object(last.before, find(last.box, list(last.clicks)), cls_id, last.box)
    if last is None:
        return out
    out.changed = int((ids != view.base_ids).sum())
    out.result = change(project, view, ids, "box fill" if out.boxes else "box click")
    last.version = view.version
    view.last_box = last
    return out
