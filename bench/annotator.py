"""A simulated annotator for the assist benchmarks: strokes, boxes and clicks made from a ground-truth mask.

Strokes: short brush strokes (24 px long, 5 px wide at 512 px, scaled with the longer image side) started
among the most interior pixels of a class (top 20% of the distance to the class's border within a connected
region) and grown both ways, turning where needed, while its centre line stays half a brush + 1 px inside
the region (a third of the start's depth in thin structures), then clipped to the class: a careful annotator.
Each stroke of a class goes to the region with the most pixels per stroke it already has (regions of a
similar size get one each before any gets a second; the membrane network gets them all before a small ring
inside a cell), and a stroke in a region already stroked starts as far as possible from the earlier ones.
Strokes come from a seeded generator one after another, so the first k of 8 strokes are the strokes for k.
Thin regions (the brush does not fit 1.5 times across: membranes, poles, straps) get strokes along their
skeleton instead, as a person traces a line.
Objects: each connected region of each object class, except those under 0.5% of the image. A person's box is
never tight: each side of the bounding box is moved in or out by up to 5% of the box's size (drawn at random),
and a click lands off the centre, anywhere at least half as deep inside the object as its most interior point.
Corrections: after an assist, a person clicks where the result is most wrong: the most interior point of its
largest wrong region (taken in but not the object, or the object but left out), saying which it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

STROKE_LENGTH = 24  # pixels at 512 px (longer side)
STROKE_WIDTH = 5
INTERIOR_SHARE = 0.2  # strokes start among this share of a region's most interior pixels
START_CANDIDATES = 32  # starts tried when a region already has a stroke; the farthest from it wins
TURNS = (0.0, 0.2, 0.4, 0.6)  # radians a stroke may turn per pixel to stay inside its region
MIN_OBJECT_SHARE = 0.005
BOX_JITTER = 0.05       # of the box's width (left, right sides) or height (top, bottom), in or out
CLICK_DEPTH = 0.5       # a click's depth inside its object, at least this share of the deepest point's
THIN = 1.5              # a region is thin where its deepest point is under this many brush radii from its border
NO_STROKE = 255


def _depth(mask: np.ndarray) -> np.ndarray:
    """Distance to the nearest pixel outside `mask`, the image edge counting as outside."""
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def _regions(mask: np.ndarray) -> list[np.ndarray]:
    """Flat pixel indices of each connected region of `mask`, largest first."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    order = np.argsort(labels.ravel(), kind="stable")
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    regions = np.split(order, np.cumsum(counts)[:-1])[1:]
    return sorted(regions, key=len, reverse=True)


def correction_click(result: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None):
    """(x, y, is_object) where a person clicks to correct `result` (bool) against `truth` (bool), or None where
    nothing is wrong: the deepest point of the largest connected wrong region, with what is really there."""
    wrong = result != truth
    if valid is not None:
        wrong &= valid
    regions = _regions(wrong)
    if not regions:
        return None
    region = np.zeros(wrong.size, bool)
    region[regions[0]] = True
    depth = _depth(region.reshape(wrong.shape))
    y, x = np.unravel_index(int(depth.argmax()), depth.shape)
    return int(x), int(y), bool(truth[y, x])


@dataclass
class Object:
    class_id: int
    mask: np.ndarray   # (H, W) bool
    box: tuple[int, int, int, int]   # (x0, y0, x1, y1), x1 and y1 exclusive
    click: tuple[int, int]   # (x, y)


class Annotator:
    """Strokes, boxes and clicks for one ground-truth mask; `ignore` pixels get no stroke and are no object."""

    def __init__(self, truth: np.ndarray, seed: int = 0, ignore: int = 255):
        self.truth = truth
        self.seed = seed
        h, w = truth.shape
        scale = max(h, w) / 512
        self.length = max(4, round(STROKE_LENGTH * scale))
        self.radius = max(1.0, STROKE_WIDTH * scale / 2)
        self.classes = [int(c) for c in np.unique(truth) if c != ignore]
        self._strokes: dict[int, list[np.ndarray]] = {c: [] for c in self.classes}
        self._state: dict[int, tuple] = {}

    # ----- strokes -----

    def scribbles(self, k: int) -> np.ndarray:
        """(H, W) uint8: k strokes per class drawn with the class id, 255 elsewhere."""
        out = np.full(self.truth.shape, NO_STROKE, np.uint8)
        for c in self.classes:
            while len(self._strokes[c]) < k:
                self._strokes[c].append(self._next_stroke(c))
            for stroke in self._strokes[c][:k]:
                out.flat[stroke] = c
        return out

    def _next_stroke(self, c: int) -> np.ndarray:
        if c not in self._state:   # mask, depth, regions big enough for a brush, generator, starts per region
            mask = self.truth == c
            regions = [r for r in _regions(mask) if len(r) >= (2 * self.radius) ** 2] or _regions(mask)[:1]
            self._state[c] = (mask, _depth(mask), regions, np.random.default_rng([self.seed, c]), [[] for _ in regions])
        mask, depth, regions, rng, starts = self._state[c]
        j = int(np.argmax([len(r) / (len(s) + 1) for r, s in zip(regions, starts)]))
        flat_depth = depth.ravel()[regions[j]]
        interior = regions[j][flat_depth >= np.quantile(flat_depth, 1 - INTERIOR_SHARE)]
        w = mask.shape[1]
        if starts[j]:
            tried = rng.choice(interior, min(START_CANDIDATES, len(interior)), replace=False)
            ty, tx = np.divmod(tried, w)
            earlier = np.array(starts[j])
            gap = np.min((ty[:, None] - earlier[None, :, 0]) ** 2 + (tx[:, None] - earlier[None, :, 1]) ** 2, axis=1)
            start = int(tried[np.argmax(gap)])
        else:
            start = int(rng.choice(interior))
        y, x = divmod(start, w)
        starts[j].append((y, x))
        if flat_depth.max() < THIN * self.radius:
            return self._brush(mask, self._trace(mask, regions[j], (y, x)))
        path = self._walk(depth, (y, x), rng.uniform(0, math.pi))
        return self._brush(mask, path)

    def _trace(self, mask: np.ndarray, region: np.ndarray, start: tuple[int, int]) -> list[tuple[int, int]]:
        """A stroke along a thin region's skeleton: from its skeleton pixel nearest `start`, half the stroke's
        length each way, going straight on where the skeleton branches."""
        h, w = mask.shape
        ys, xs = np.divmod(region, w)
        y0, x0 = ys.min(), xs.min()
        local = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), bool)
        local[ys - y0, xs - x0] = True
        sy, sx = np.nonzero(skeletonize(local))
        if not len(sy):
            return [start]
        k = int(np.argmin((sy + y0 - start[0]) ** 2 + (sx + x0 - start[1]) ** 2))
        on = set(zip((sy + y0).tolist(), (sx + x0).tolist()))
        first = (int(sy[k] + y0), int(sx[k] + x0))
        path, seen = [first], {first}
        steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
        heading = None
        for _ in range(2):
            y, x = first
            for _ in range(self.length // 2):
                options = [(y + dy, x + dx) for dy, dx in steps
                           if (y + dy, x + dx) in on and (y + dy, x + dx) not in seen]
                if not options:
                    break
                if heading is not None:
                    options.sort(key=lambda p: -((p[0] - y) * heading[0] + (p[1] - x) * heading[1]))
                heading = (options[0][0] - y, options[0][1] - x)
                y, x = options[0]
                seen.add((y, x))
                path.append((y, x))
            heading = None
        return path

    def _walk(self, depth: np.ndarray, start: tuple[int, int], heading: float) -> list[tuple[int, int]]:
        """Pixels of a stroke through `start`: half its length each way, turning as little as keeps it inside."""
        h, w = depth.shape
        floor = min(self.radius + 1, max(1.0, depth[start] / 3))
        path = [start]
        for direction in (heading, heading + math.pi):
            y, x = map(float, start)
            for _ in range(self.length // 2):
                for turn in TURNS:
                    options = []
                    for a in {direction + turn, direction - turn}:
                        ny, nx = y + math.sin(a), x + math.cos(a)
                        iy, ix = round(ny), round(nx)
                        if 0 <= iy < h and 0 <= ix < w and depth[iy, ix] >= floor:
                            options.append((depth[iy, ix], a, ny, nx))
                    if options:
                        _, direction, y, x = max(options)
                        path.append((round(y), round(x)))
                        break
                else:
                    break
        return path

    def _brush(self, mask: np.ndarray, path: list[tuple[int, int]]) -> np.ndarray:
        """Flat indices of a round brush of the stroke's width along `path`, clipped to `mask`."""
        pts = np.array(path)
        r = math.ceil(self.radius)
        y0, x0 = np.maximum(pts.min(0) - r, 0)
        y1, x1 = np.minimum(pts.max(0) + r + 1, mask.shape)
        centre = np.ones((y1 - y0, x1 - x0), bool)
        centre[pts[:, 0] - y0, pts[:, 1] - x0] = False
        local = (ndimage.distance_transform_edt(centre) <= self.radius) & mask[y0:y1, x0:x1]
        ys, xs = np.nonzero(local)
        return (ys + y0) * mask.shape[1] + (xs + x0)

    # ----- boxes and clicks -----

    def objects(self, background: int | None = 0, min_share: float = MIN_OBJECT_SHARE) -> list[Object]:
        """Every connected region of every class but `background` with at least `min_share` of the image, with
        a person's box and click."""
        h, w = self.truth.shape
        rng = np.random.default_rng([self.seed, 1])
        found = []
        for c in self.classes:
            if c == background:
                continue
            for region in _regions(self.truth == c):
                if len(region) < min_share * h * w:
                    break
                mask = np.zeros(h * w, bool)
                mask[region] = True
                mask = mask.reshape(h, w)
                ys, xs = np.divmod(region, w)
                bx0, bx1, by0, by1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
                jx = rng.uniform(-BOX_JITTER, BOX_JITTER, 2) * (bx1 - bx0)
                jy = rng.uniform(-BOX_JITTER, BOX_JITTER, 2) * (by1 - by0)
                box = (int(np.clip(round(bx0 - jx[0]), 0, w - 4)), int(np.clip(round(by0 - jy[0]), 0, h - 4)),
                       int(np.clip(round(bx1 + jx[1]), 0, w)), int(np.clip(round(by1 + jy[1]), 0, h)))
                box = (box[0], box[1], max(box[2], box[0] + 4), max(box[3], box[1] + 4))
                crop = _depth(mask[by0:by1, bx0:bx1])
                cy, cx = np.nonzero(crop >= CLICK_DEPTH * crop.max())
                pick = int(rng.integers(len(cy)))
                found.append(Object(c, mask, box, (int(bx0 + cx[pick]), int(by0 + cy[pick]))))
        return found
