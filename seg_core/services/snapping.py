"""Proposals with their edges snapped to the photo: for an object-vs-background project, each object the model found
is cut out again by Box -> object (GrabCut) inside the object's own bounding box, with the model's probabilities as
its prior. A small network at a reduced size draws soft, blocky edges; the photo's colours put them back where
the object ends, which is what decides whether a person can accept a proposal as it is.

Used only if better: once per run (and per state of its validation masks), the run's validation images are
scored both ways; proposals are snapped only where that beats the model's own masks on images it did not learn
from. The ranking (least sure first) stays the model's own uncertainty.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from scipy import ndimage

from seg_core.durable import atomic_write
from seg_core.ml.evaluation import image_score
from seg_core.services import editing, priors, review
from seg_core.store.records import ImageStatus

if TYPE_CHECKING:
    from seg_core.ml.inference import Predictor
    from seg_core.store.project import Project

MAX_OBJECTS = 8      # more objects than this (cells, grains): one cut each is slow and a box per object is no help
MIN_SHARE = 0.05     # a part this much smaller than the largest object is a speck: left out of the proposal
CHECK_IMAGES = 8     # validation images scored both ways, at most: enough to see a difference, quick to do


def predict_unlabeled(project: Project, predictor: Predictor, progress: review.Progress | None = None,
                      threshold: float = 0.5) -> review.PredictReport:
    """The proposals a person accepts, fixes or skips: every unlabeled image, snapped where that is better."""
    return predict_proposals(project, predictor, project.image_ids(status=ImageStatus.UNLABELED), progress, threshold)


def predict_proposals(project: Project, predictor: Predictor, image_ids: Sequence[int],
                      progress: review.Progress | None = None, threshold: float = 0.5) -> review.PredictReport:
    """Predict these images as proposals (stored like any prediction), their edges snapped where this run's
    verdict says so; at another threshold than the model's own, as the model drew them."""
    return review.predict_images(project, predictor, image_ids, progress, threshold,
                                 refine=_snapper(project, predictor) if threshold == 0.5 else None)


def start_from_proposal(project: Project, image_id: int, predictor: Predictor) -> str:
    """Annotate's "Start from prediction": an unlabeled image starts from its proposal as the review queue makes
    it; a labeled image's prediction stays the model's own, which the review scores against the mask."""
    rec = project.image(image_id)
    stored = project.predictions.get(rec.id)
    if rec.status != ImageStatus.LABELED and (stored is None or stored.run_id != predictor.run_id):
        predict_proposals(project, predictor, [rec.id])
    return editing.start_from_prediction(project, rec.id, predictor)


def _snapper(project: Project, predictor: Predictor) -> Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None:
    from seg_core.ml.inference import for_project

    predictor = for_project(project, predictor)
    if not verdict(project, predictor).used:
        return None
    trust = priors.trust(priors.class_quality(project, predictor)[1])
    return lambda image, probs: snap(image, probs, trust)


def snap(image: np.ndarray, probs: np.ndarray, trust: float) -> np.ndarray | None:
    """(H, W) uint8 class ids: the model's object cut out again inside each object's bounding box; None where the
    proposal is not one to snap (more than two classes, or too many objects)."""
    from seg_core import assist
    from seg_core.ml.inference import ids_from_probabilities

    if probs.shape[-1] != 2:
        return None
    found = ids_from_probabilities(probs) == 1
    labels, n = ndimage.label(found)
    if n == 0:
        return found.astype(np.uint8)
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= MIN_SHARE * sizes.max()) + 1
    if len(keep) > MAX_OBJECTS:
        return None
    out, where = np.zeros(found.shape, bool), ndimage.find_objects(labels)
    for k in keep:
        ys, xs = where[k - 1]
        box = (xs.start, ys.start, xs.stop, ys.stop)
        if xs.stop - xs.start < 2 or ys.stop - ys.start < 2:   # too thin to cut: kept as the model drew it
            out |= labels == k
            continue
        out |= assist.box_fill(image, box, prior=probs[..., 1], trust=trust)
    return out.astype(np.uint8)


@dataclass(frozen=True)
class Verdict:
    used: bool
    images: int                  # validation images scored both ways
    model_iou: float | None      # their mean object IoU, the model's own masks
    snapped_iou: float | None    # ... snapped

    @property
    def sentence(self) -> str:
        if self.images == 0:
            return ("Proposals are the model's own masks (no validation image it did not learn from, to check "
                    "whether snapping their edges to the photo helps).")
        both = f"object IoU on {self.images} validation image{'' if self.images == 1 else 's'}: " \
               f"{self.model_iou:.3f} as the model drew them, {self.snapped_iou:.3f} snapped"
        if self.used:
            return f"Proposals have their edges snapped to the photo ({both})."
        return f"Proposals are the model's own masks: snapping their edges to the photo did not help ({both})."


def verdict(project: Project, predictor: Predictor) -> Verdict:
    """Whether this run's proposals are snapped, from its validation images; kept on disk until a mask changes."""
    if len(project.classes) != 2:
        return Verdict(False, 0, None, None)
    kept = kept_verdict(project, predictor.run_id)
    if kept is not None:
        return kept
    path, ids = _kept_at(project, predictor.run_id)
    trust = priors.trust(priors.class_quality(project, predictor)[1]) if ids else 0.0
    model, snapped = [], []
    for item in review.labeled_items(project, ids):
        probs = predictor.probabilities([item.image])[0]
        cut = snap(item.image, probs, trust)
        if cut is None:
            continue
        model.append(image_score(item.truth, review.mask(probs), 2).iou)
        snapped.append(image_score(item.truth, cut, 2).iou)
    result = Verdict(bool(model) and float(np.mean(snapped)) > float(np.mean(model)), len(model),
                     float(np.mean(model)) if model else None, float(np.mean(snapped)) if model else None)
    try:
        atomic_write(path, json.dumps(asdict(result)).encode())
    except OSError:
        pass   # a full or read-only disk: checked again next time
    return result


def kept_verdict(project: Project, run_id: str) -> Verdict | None:
    """The verdict worked out earlier for this run and these masks, or None (nothing loads the model here)."""
    try:
        return Verdict(**json.loads(_kept_at(project, run_id)[0].read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _kept_at(project: Project, run_id: str):
    """Where the verdict for this run and the present state of its validation masks is kept, and those images."""
    ids, scope = review.validation_images(project, run_id)
    ids = ids[:CHECK_IMAGES] if scope != "labeled" else []
    recs = [project.image(i) for i in ids]
    key = json.dumps([run_id, [c.name for c in project.classes], [(r.id, r.mask_version, r.mask_sha256) for r in recs]])
    return project.layout.review_cache(f"snap-{run_id}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"), ids
