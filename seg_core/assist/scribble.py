"""Smart fill: a pixel classifier trained on a few strokes fills every other pixel (as ilastik does).

Features per pixel at several scales (ilastik's, from 0.7 to 16 px): smoothed intensity, edge strength and texture
(Hessian eigenvalues) of the luminance, and smoothed colour; a forest of extremely randomised trees (better than
a random forest from a few strokes: 0.84 vs 0.79 IoU on the demo scenes with 2 a class, bench/assist_quality.py)
learns them from a sample of the stroked pixels (fitting on every pixel of a dense mask takes 20 s; 3,000 a class
take 0.2 s). Two thirds of its trees split on one feature drawn at random ("totally randomised" trees, Geurts et
al. 2006): a few strokes cover a sliver of what a class looks like, and these trees, which cannot single out the
one feature that separates the strokes best, generalise further from them (membrane with 8 strokes a class 0.628 ->
0.653, demo scenes with 2 0.852 -> 0.857, CamVid with 2 0.319 -> 0.363); the other third choose among sqrt(F)
features as usual, which separating three classes by colour needs (3-class scenes with 2: 0.799 with choosing trees
alone, 0.784 mixed; 0.758 on a 10-image sample with random-feature trees alone).

With the project's trained model, its class probabilities (times the trust in each class) are features too, and
the answer is a blend of the trees' and the model's probabilities among the classes stroked, the model's share
PRIOR_BLEND at full trust: the trees learn where the strokes say the model is right, the blend carries the model
where a few strokes say nothing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from seg_core.assist.common import NO_SCRIBBLE, as_image, refine_up, shrink, shrink_labels, work_size
from seg_core.errors import AssistError

SIGMA_MIN, SIGMA_MAX = 0.7, 16.0
RIDGE_SIGMAS = (1.05, 2.0)       # at sigma <= 1 skimage smooths with a far wider kernel: slower, same lines
SAMPLES_PER_CLASS = 3000         # stroked pixels a class, at most, for the forest
LEARNED_PER_CLASS = 4000         # pixels a class from all the saved masks in `learn_from` together
RANDOM_FEATURE_TREES = 60   # trees that split on one feature drawn at random
CHOOSING_TREES = 30         # trees that choose the best of sqrt(F) features at each split
MAX_DEPTH = 18
PRIOR_BLEND = 0.5           # share of a fully trusted model's probabilities in the answer
_FEATURE_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()   # the same photo stroke after stroke
_CACHE_SIZE = 6


def features(small_rgb: np.ndarray) -> np.ndarray:
    """(h, w, F) float32 features of a working-size RGB image; kept for the last few images seen."""
    key = hashlib.sha1(small_rgb.tobytes()).hexdigest() + str(small_rgb.shape)
    if key in _FEATURE_CACHE:
        _FEATURE_CACHE.move_to_end(key)
        return _FEATURE_CACHE[key]
    import cv2
    from skimage.feature import hessian_matrix, hessian_matrix_eigvals, multiscale_basic_features

    lab = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
    parts = [multiscale_basic_features(lab[..., 0], intensity=True, edges=True, texture=True,
                                       sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX)]
    for sigma in RIDGE_SIGMAS:   # thin dark and light lines (membranes, veins, cracks): Sato's ridge filter,
        # both kinds from one Hessian (skimage.filters.sato computes it once for each)
        largest, smallest = hessian_matrix_eigvals(hessian_matrix(lab[..., 0], sigma, mode="reflect",
                                                               use_gaussian_derivatives=True))
        parts += [sigma**2 * np.maximum(largest, 0), sigma**2 * np.maximum(-smallest, 0)]
    if np.ptp(lab[..., 1]) > 0.02 or np.ptp(lab[..., 2]) > 0.02:   # a colour photo: its colour, smoothed
        for sigma in (1.0, 2.0, 4.0, 8.0, 16.0):
            parts.append(cv2.GaussianBlur(lab[..., 1:], (0, 0), sigma))
    out = np.concatenate([p if p.ndim == 3 else p[..., None] for p in parts], axis=2).astype(np.float32)
    _FEATURE_CACHE[key] = out
    while len(_FEATURE_CACHE) > _CACHE_SIZE:
        _FEATURE_CACHE.popitem(last=False)
    return out


def _sample(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices and classes of up to `per_class` labelled pixels of each class."""
    idx, cls = [], []
    flat = labels.ravel()
    for c in np.unique(flat):
        if c == NO_SCRIBBLE:
            continue
        where = np.flatnonzero(flat == c)
        if len(where) > per_class:
            where = rng.choice(where, per_class, replace=False)
        idx.append(where)
        cls.append(np.full(len(where), c, np.uint8))
    if not idx:
        return np.empty(0, np.int64), np.empty(0, np.uint8)
    return np.concatenate(idx), np.concatenate(cls)


def _prior(prior, trust, size: tuple[int, int], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's (h, w, C) probabilities at working size and the (C,) trust in each class, checked."""
    import cv2

    probs = np.asarray(prior, np.float32)
    if probs.ndim != 3 or probs.shape[:2] != (h, w):
        raise AssistError("The model's probabilities do not match the image's size.")
    weights = np.clip(np.asarray(trust, np.float32).reshape(-1), 0.0, 1.0)
    if weights.shape != (probs.shape[2],):
        raise AssistError("The model's trust needs one number per class.")
    # OpenCV shrinks by area at most 4 channels at a time
    parts = [cv2.resize(np.ascontiguousarray(probs[..., i:i + 4]), size, interpolation=cv2.INTER_AREA)
             for i in range(0, probs.shape[2], 4)]
    return np.concatenate([p if p.ndim == 3 else p[..., None] for p in parts], axis=2), weights


class _Forests:
    """Extremely randomised trees of both kinds, their class probabilities averaged over all trees."""

    def __init__(self, seed: int):
        from sklearn.ensemble import ExtraTreesClassifier

        common = dict(max_depth=MAX_DEPTH, min_samples_leaf=5, n_jobs=-1)
        self.forests = [ExtraTreesClassifier(n_estimators=RANDOM_FEATURE_TREES, max_features=1, random_state=seed,
                                             **common),
                        ExtraTreesClassifier(n_estimators=CHOOSING_TREES, max_features="sqrt",
                                             random_state=seed + 1, **common)]

    def fit(self, x: np.ndarray, y: np.ndarray) -> "_Forests":
        for forest in self.forests:
            forest.fit(x, y)
        self.classes_ = self.forests[0].classes_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        total = sum(f.n_estimators * f.predict_proba(x) for f in self.forests)
        return total / sum(f.n_estimators for f in self.forests)


def _strokes(scribbles, h: int, w: int, num_classes: int | None) -> np.ndarray:
    """The strokes as (h, w) uint8 class ids, checked against the image's size and the project's classes."""
    marks = np.asarray(scribbles)
    if marks.shape != (h, w):
        raise AssistError(f"The strokes are {marks.shape[1] if marks.ndim > 1 else '?'}x{marks.shape[0]} but the "
                          f"image is {w}x{h}.")
    marks = marks.astype(np.uint8, copy=False)
    used = np.unique(marks[marks != NO_SCRIBBLE])
    if num_classes is not None and used.size and used.max() >= num_classes:
        raise AssistError(f"The strokes use class {int(used.max())}, but the project has {num_classes} classes "
                          f"(0 to {num_classes - 1}).")
    return marks


def _learned_samples(learn_from: list, rng: np.random.Generator) -> tuple[list, list]:
    """Features and classes of pixels drawn from saved masks, LEARNED_PER_CLASS of each class over them all."""
    xs, ys = [], []
    for other_image, other_ids in learn_from:
        other = as_image(other_image)
        if np.asarray(other_ids).shape != other.shape[:2]:
            raise AssistError("A saved mask to learn from does not match its image's size.")
        osize = work_size(*other.shape[:2])
        ofeats = features(shrink(other, osize))
        olabels = shrink_labels(np.asarray(other_ids, np.uint8), osize)
        oidx, oy = _sample(olabels, LEARNED_PER_CLASS // len(learn_from), rng)
        xs.append(ofeats.reshape(-1, ofeats.shape[2])[oidx])
        ys.append(oy)
    return xs, ys


def scribble_fill(image, scribbles, num_classes: int | None = None, learn_from=None, seed: int = 0,
                  prior=None, trust=None) -> np.ndarray:
    """Every pixel's class from a few strokes: (H, W) uint8 ids; stroked pixels keep their class.

    image: (H, W) or (H, W, 3) uint8. scribbles: (H, W) uint8, NO_SCRIBBLE where nothing was drawn, else a class
    id. num_classes: the project's classes, to refuse ids beyond them. learn_from: optional (image, ids) pairs
    of saved masks to learn from too (their ignored pixels, NO_SCRIBBLE, teach nothing): with them an image gets a
    proposal from no strokes at all. prior: optional (H, W, C) class probabilities from the project's trained model, and trust: (C,)
    how far to follow it for each class (0 .. 1, from its validation quality). The trees learn from them beside
    the image's own features, and the answer leans on them as far as they are trusted.
    """
    rgb = as_image(image)
    h, w = rgb.shape[:2]
    marks = _strokes(scribbles, h, w, num_classes)
    rng = np.random.default_rng(seed)
    size = work_size(h, w)
    small = shrink(rgb, size)
    feats = features(small)
    small_marks = shrink_labels(marks, size)
    learn_from = list(learn_from or ())
    p_small, weights = None, None
    if prior is not None:
        p_small, weights = _prior(prior, trust, size, h, w)
        if weights.max() <= 0:   # a model trusted for no class: as without one
            p_small = None
        elif not learn_from:   # the saved masks' images have no model probabilities to learn beside
            feats = np.concatenate([feats, p_small * weights], axis=2)
    idx, y = _sample(small_marks, SAMPLES_PER_CLASS, rng)
    learned_x, learned_y = _learned_samples(learn_from, rng)
    x = np.concatenate([feats.reshape(-1, feats.shape[2])[idx], *learned_x])
    y = np.concatenate([y, *learned_y])
    classes = np.unique(y)
    if classes.size == 0:
        raise AssistError("Smart fill needs strokes: paint a little of the object and a little of the background.")
    if classes.size == 1:
        if learn_from:
            out = np.full((h, w), classes[0], np.uint8)
        else:
            raise AssistError("Smart fill needs strokes of at least two classes, for example one on the object and "
                              "one on the background.")
    else:
        forest = _Forests(seed).fit(x, y)
        probs = forest.predict_proba(feats.reshape(-1, feats.shape[2])).reshape(size[1], size[0], -1)
        if p_small is not None and forest.classes_.max() < p_small.shape[2]:
            # the model's say among the classes stroked, as far as it is trusted
            own = p_small[..., forest.classes_]
            own = own / np.maximum(own.sum(axis=2, keepdims=True), 1e-6)
            share = PRIOR_BLEND * weights[forest.classes_]
            probs = (1 - share) * probs + share * own
        full = refine_up(probs.astype(np.float32), small, rgb)
        out = forest.classes_[full.argmax(axis=2)].astype(np.uint8)
    hand = marks != NO_SCRIBBLE
    out[hand] = marks[hand]
    return out
