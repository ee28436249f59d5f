"""The simulated person of bench/loop.py: labels one image with the app's tools until its mask is good enough.

What the person does, in this order, stopping as soon as the mask reaches GOAL_IOU with the truth or after
MAX_INTERACTIONS interactions:
1. Where the project has a model and the condition allows it: a look at the model's proposal (the stored
   prediction, as "Start from the model's proposal" loads it). Good enough: accepted as it is.
2. Otherwise the assists (seg_core.assist), with the model as their prior where there is one
   (seg_core.services.priors): two classes and a few objects: Box -> object around each object (jittered boxes,
   bench/annotator.py), largest first; more classes or many objects: Smart fill with one stroke a class present. A proposal that was not good enough is
   still the start where it is better than what the assists give.
3. Corrections, always in the largest wrong region: after boxes, refine clicks on the object there (Box -> object
   again with every click so far); after Smart fill, one more stroke of the true class there (the fill again); when
   a correction does not raise the IoU it is undone and the person paints the rest with the brush. A brush stroke
   paints the true class over the wrong region around its most interior point: a brush as wide as the region (at
   most BRUSH_SIDE of the image's longer side) along it, up to STROKE_REACH from that point, kept inside the true
   class (a careful person).
"brush" (the floor): only brush strokes, from an all-background mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from annotator import Annotator, correction_click

GOAL_IOU = 0.90
MAX_INTERACTIONS = 20
MAX_BOXES = 8          # more objects than this (cells): Smart fill, as a person would rather than box each
MAX_CLICKS = 3          # refine clicks tried on an image before the brush
BRUSH_SIDE = 0.04       # the widest brush, as a share of the image's longer side (radius)
STROKE_REACH = 0.12     # how far one stroke reaches from where it starts, as a share of the longer side
COSTS = {"boxes": 3.0, "strokes": 2.0, "clicks": 1.0, "looks": 2.0}   # a person's seconds for each


@dataclass
class Tally:
    boxes: int = 0
    strokes: int = 0
    clicks: int = 0
    looks: int = 0
    seconds: float = 0.0          # the assists' own time on this machine
    accepted: bool = False        # the proposal was taken as it was
    iou: float = 0.0
    steps: list[str] = field(default_factory=list)

    @property
    def interactions(self) -> int:
        """Boxes, strokes and clicks: what the person does to the mask. A look at a proposal is not one; it is in
        person_seconds."""
        return self.boxes + self.strokes + self.clicks

    @property
    def person_seconds(self) -> float:
        return sum(COSTS[k] * getattr(self, k) for k in COSTS)


def score(ids: np.ndarray, truth: np.ndarray, num_classes: int, ignore: int = 255) -> float:
    """Two classes: the object's IoU. More: the mean IoU of the classes in the truth or the mask."""
    valid = truth != ignore
    if num_classes == 2:
        return _iou(ids == 1, truth == 1, valid)
    present = [c for c in range(num_classes) if ((truth == c) & valid).any() or ((ids == c) & valid).any()]
    return float(np.mean([_iou(ids == c, truth == c, valid) for c in present])) if present else 1.0


def _iou(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> float:
    a, b = a & valid, b & valid
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def _largest_wrong(ids: np.ndarray, truth: np.ndarray, ignore: int = 255) -> np.ndarray | None:
    """(H, W) bool: the largest connected region where the mask says another class than the truth."""
    wrong = (ids != truth) & (truth != ignore)
    best, size = None, 0
    for c in np.unique(truth[wrong]):   # a region holds one true class: one stroke paints one class
        labels, n = ndimage.label(wrong & (truth == c))
        if n:
            counts = np.bincount(labels.ravel())[1:]
            if counts.max() > size:
                size, best = int(counts.max()), labels == int(counts.argmax()) + 1
    return best


def brush_stroke(ids: np.ndarray, truth: np.ndarray, ignore: int = 255) -> np.ndarray | None:
    """The mask after one brush stroke in its largest wrong region, or None where nothing is wrong."""
    region = _largest_wrong(ids, truth, ignore)
    if region is None:
        return None
    h, w = region.shape
    depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    radius = min(max(1.0, float(depth.max())), BRUSH_SIDE * max(h, w))
    reach = STROKE_REACH * max(h, w)
    yy, xx = np.ogrid[:h, :w]
    near = (yy - y) ** 2 + (xx - x) ** 2 <= reach * reach
    line = skeletonize(region) & near
    line[y, x] = True
    painted = (ndimage.distance_transform_edt(~line) <= radius) & near & (truth == truth[y, x])
    out = ids.copy()
    out[painted] = truth[y, x]
    return out


class Person:
    """Labels images of one project with the tools a condition allows (see the module's docstring)."""

    def __init__(self, num_classes: int, proposals: bool = True, assists: bool = True, ignore: int = 255,
                 seed: int = 0):
        self.num_classes, self.proposals, self.assists, self.ignore, self.seed = \
            num_classes, proposals, assists, ignore, seed

    def label(self, image: np.ndarray, truth: np.ndarray, proposal: np.ndarray | None = None,
              prior=None) -> tuple[np.ndarray, Tally]:
        """The mask the person saves for `image`, and what it took. proposal: the model's class ids, or None;
        prior: the model's ModelPrior for the assists, or None."""
        import time

        tally = Tally()
        start = time.perf_counter()
        ids = np.zeros(truth.shape, np.uint8)
        if self.proposals and proposal is not None:
            tally.looks += 1
            ids = proposal.astype(np.uint8)
            if self._good(ids, truth, tally):
                tally.accepted = True
                tally.seconds = time.perf_counter() - start
                return ids, tally
        if self.assists:
            ids = self._assist(image, truth, ids, prior, tally)
        while not self._good(ids, truth, tally) and tally.interactions < MAX_INTERACTIONS:
            painted = brush_stroke(ids, truth, self.ignore)
            if painted is None:
                break
            ids, tally.strokes = painted, tally.strokes + 1
        tally.seconds = time.perf_counter() - start
        return ids, tally

    def _good(self, ids: np.ndarray, truth: np.ndarray, tally: Tally) -> bool:
        tally.iou = score(ids, truth, self.num_classes, self.ignore)
        return tally.iou >= GOAL_IOU

    def _assist(self, image, truth, start: np.ndarray, prior, tally: Tally) -> np.ndarray:
        """The assists' mask with their corrections, or `start` (the proposal) where that stays better."""
        base = score(start, truth, self.num_classes, self.ignore) if tally.looks else -1.0
        if self.num_classes == 2 and len(Annotator(truth, self.seed, self.ignore).objects(0)) <= MAX_BOXES:
            ids = self._boxes(image, truth, prior, tally)
        else:
            ids = self._fill(image, truth, prior, tally)
        if base > score(ids, truth, self.num_classes, self.ignore):
            return start
        return ids

    def _boxes(self, image, truth, prior, tally: Tally) -> np.ndarray:
        from seg_core import assist

        objects = Annotator(truth, self.seed, self.ignore).objects(0)
        p, trust = prior.of(1) if prior is not None else (None, 0.0)
        found = []
        for obj in objects:
            if tally.interactions >= MAX_INTERACTIONS:
                break
            tally.boxes += 1
            found.append([obj.box, [], assist.box_fill(image, obj.box, prior=p, trust=trust)])
        ids = self._union(found, truth.shape)
        while found and tally.clicks < MAX_CLICKS and not self._good(ids, truth, tally) \
                and tally.interactions < MAX_INTERACTIONS:
            click = correction_click(ids == 1, truth == 1, truth != self.ignore)
            if click is None:
                break
            tally.clicks += 1
            entry = min(found, key=lambda f: _box_distance(f[0], click[:2]))
            was = entry[2]
            entry[2] = assist.box_fill(image, entry[0], clicks=entry[1] + [click], prior=p, trust=trust)
            better = self._union(found, truth.shape)
            if score(better, truth, 2, self.ignore) <= tally.iou:   # no better: undone, the brush from here
                entry[2] = was
                break
            entry[1].append(click)
            ids = better
        return ids

    @staticmethod
    def _union(found, shape) -> np.ndarray:
        ids = np.zeros(shape, np.uint8)
        for _, _, mask in found:
            ids[mask] = 1
        return ids

    def _fill(self, image, truth, prior, tally: Tally) -> np.ndarray:
        from seg_core import assist

        marks = Annotator(truth, self.seed, self.ignore).scribbles(1)
        tally.strokes += len(np.unique(marks[marks != 255]))
        probs, trust = (prior.probs, prior.weights) if prior is not None else (None, None)

        def fill(strokes):
            return assist.scribble_fill(image, strokes, self.num_classes, prior=probs, trust=trust)

        ids = fill(marks)
        while not self._good(ids, truth, tally) and tally.interactions < MAX_INTERACTIONS:
            painted = brush_stroke(ids, truth, self.ignore)
            if painted is None:
                break
            tally.strokes += 1
            more = marks.copy()
            stroke = painted != ids
            more[stroke] = painted[stroke]
            again = fill(more)
            if score(again, truth, self.num_classes, self.ignore) <= tally.iou:
                return painted   # the fill no better than the stroke itself: the brush from here
            marks, ids = more, again
        return ids


def _box_distance(box, point) -> float:
    x0, y0, x1, y1 = box
    x, y = point
    return float(max(x0 - x, 0, x - x1) ** 2 + max(y0 - y, 0, y - y1) ** 2)
