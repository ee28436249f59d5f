"""Annotation assists: a whole mask from a few strokes, a box or a click. Pure numpy in and out, no streamlit.

- scribble_fill(image, scribbles): a pixel classifier (multi-scale features, randomised trees) trained on the strokes
- box_fill(image, box): the object inside a box (GrabCut on a crop with context, edges refined at full size)
- wand(image, point, tolerance): the connected region of similar colour around a click

Each works on a copy of at most WORK_SIDE pixels a side and brings its result back at the image's own size with
edges that follow the image (a guided filter), so a 2000x1500 photo costs about what a 512 px one does.
"""

from seg_core.assist.box import box_fill
from seg_core.assist.common import NO_SCRIBBLE, WORK_SIDE
from seg_core.assist.scribble import scribble_fill
from seg_core.assist.wand import wand

__all__ = ["NO_SCRIBBLE", "WORK_SIDE", "box_fill", "scribble_fill", "wand"]
