"""Reviewing a run: predict many images, rank what to fix next, per-image and validation-set quality."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from seg_core.classes import ClassSpec
from seg_core.errors import NotFoundError
from seg_core.durable import atomic_write
from seg_core.formats import images
from seg_core.ml.config import run_config
from seg_core.ml.evaluation import Evaluation, Labeled, evaluate, image_score
from seg_core.ml.inference import Predictor, for_project, ids_from_probabilities
from seg_core.services import editing, gallery
from seg_core.store.project import Project
from seg_core.store.records import ImageStatus
from seg_core.store.runs import RunRecord

Progress = Callable[[int, int, str], None]
FEW_IMAGES = 5   # below this, one image more or less right moves every figure a lot


# ----- runs ------------------------------------------------------------------------------------
def run_label(run: RunRecord) -> str:
    when = run.when
    score = "no validation score" if run.best_score is None else f"validation dice {run.best_score:.3f}"
    config = run_config(run)
    kind = config.preset or config.model
    return f"{when} · {kind} · {score} · {run.status.word} ({run.id})"


# ----- one image ------------------------------------------------------------------------------
def read_upload(data: bytes, name: str) -> np.ndarray:
    """An uploaded photo as a uint8 array, checked like an import (size limits, broken files) but not stored."""
    _, img = images.decode(data, name)
    return np.asarray(img)


def probabilities(predictor: Predictor, image: np.ndarray) -> np.ndarray:
    return predictor.probabilities([image])[0]


def mask(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    return ids_from_probabilities(probs, threshold)


def heat_values(probs: np.ndarray, classes: Sequence[ClassSpec], class_id: int | None = None) -> tuple[np.ndarray, str]:
    """What a heat map shows and its colour bar's label.

    Binary: the foreground's probability. Multi-class: a chosen class's probability, or (None) the model's
    confidence, the probability of the class it picked: low values are where it hesitates.
    """
    name = {c.id: c.name for c in classes}
    if probs.shape[-1] == 2 and class_id is None:
        class_id = 1
    if class_id is None:
        return probs.max(axis=-1), "confidence (probability of the predicted class)"
    return probs[..., class_id], f"probability of '{name.get(class_id, class_id)}'"


# ----- many images ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictReport:
    run_id: str
    predicted: int
    skipped: int
    seconds: float


def predict_images(project: Project, predictor: Predictor, image_ids: Sequence[int], progress: Progress | None = None,
                   threshold: float = 0.5, batch_size: int = 4,
                   refine: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None) -> PredictReport:
    """Predict the images in batches and store each prediction with its uncertainty; progress once per image.
    refine(image, probabilities): the class ids to store instead of the model's own, or None to keep them (the
    proposals of services/snapping.py)."""
    predictor = for_project(project, predictor)
    start, done, skipped, total = time.perf_counter(), 0, 0, len(image_ids)
    for at in range(0, total, batch_size):
        recs, pictures = [], []
        for image_id in image_ids[at:at + batch_size]:
            try:
                rec = project.image(image_id)
                pictures.append(project.load_image(rec))
                recs.append(rec)
            except (NotFoundError, OSError):  # deleted meanwhile (e.g. from the Data page in another tab)
                skipped += 1
        for rec, picture, pred in zip(recs, pictures, predictor.predict(pictures, threshold) if pictures else []):
            better = refine(picture, pred.probabilities) if refine is not None else None
            ids = pred.ids if better is None else better
            project.predictions.save(rec.id, predictor.run_id, ids, pred.uncertainty)
            done += 1
            if progress:
                progress(done + skipped, total, rec.filename)
    return PredictReport(predictor.run_id, done, skipped, time.perf_counter() - start)


def predict_unlabeled(project: Project, predictor: Predictor, progress: Progress | None = None,
                      threshold: float = 0.5) -> PredictReport:
    return predict_images(project, predictor, project.image_ids(status=ImageStatus.UNLABELED), progress, threshold)


def predict_labeled(project: Project, predictor: Predictor, progress: Progress | None = None,
                    threshold: float = 0.5) -> PredictReport:
    return predict_images(project, predictor, project.image_ids(status=ImageStatus.LABELED), progress, threshold)


@dataclass(frozen=True)
class Ranked:
    image_id: int
    filename: str
    split: str
    score: float            # uncertainty (unlabeled) or disagreement, 1 - IoU (labeled): higher comes first
    created_at: float       # of the stored prediction, so a thumbnail knows when it is stale
    dice: float | None = None
    iou: float | None = None


def annotate_next(project: Project, run_id: str) -> list[Ranked]:
    """Unlabeled images with a prediction of this run, the one the model is least sure about first."""
    out = [Ranked(r["image_id"], r["filename"], r["split"], float(r["uncertainty"] or 0.0), r["created_at"])
           for r in project.predictions.rows(run_id, status=ImageStatus.UNLABELED)]
    return sorted(out, key=lambda r: (-r.score, r.image_id))


def review_worst_first(project: Project, run_id: str) -> list[Ranked]:
    """Labeled images with a prediction of this run, the one whose mask the model disagrees with most first.

    A large disagreement is either a model mistake or a mask mistake; both are worth a look.
    """
    n, out = len(project.classes), []
    for rec in project.list_images(status=ImageStatus.LABELED, predicted=True):
        stored, truth = project.predictions.get(rec.id), project.masks.load(rec)
        if stored is None or stored.run_id != run_id or truth is None or truth.shape != stored.ids.shape:
            continue
        s = image_score(truth, stored.ids, n)
        out.append(Ranked(rec.id, rec.filename, rec.split, s.disagreement, stored.created_at, s.dice, s.iou))
    return sorted(out, key=lambda r: (-r.score, r.image_id))


def prediction_thumbnail(project: Project, item: Ranked, side: int = 160) -> bytes:
    """JPEG of the image with its stored prediction blended in, kept on disk per prediction."""
    stamp = f"{item.created_at:.6f}".replace(".", "")
    path = project.layout.thumbnail(f"pred-{item.image_id}-{stamp}-{gallery.style_key(project)}-{side}.jpg")

    def ids():
        stored = project.predictions.get(item.image_id)
        return stored.ids if stored is not None else None

    return gallery.cached_overlay(project, path, f"pred-{item.image_id}-*-{side}.jpg", item.image_id, ids, side,
                                  alpha=0.5)


# ----- the validation set -----------------------------------------------------------------------
@dataclass
class ValidationSummary(Evaluation):
    """The evaluation of a run on the project's validation images (scope "validation"); without any, on the images
    the run set aside itself (scope "run"); failing that, on every labeled image (scope "labeled")."""

    scope: str = "validation"

    @property
    def note(self) -> str:
        if self.scope == "validation":
            return f"Measured on the {self._images} of the validation split, which training did not learn from."
        if self.scope == "run":
            return (f"This project has no validation split, so the model was measured on the {self._images} "
                    "its training run set aside and did not learn from. Set a validation split on the Data "
                    "page to compare runs on the same images.")
        return (f"This project has no labeled validation images, so these numbers come from all {self._images}, "
                "including the ones the model learned from: they look better than the model is. "
                "Set a validation split on the Data page.")

    @property
    def _images(self) -> str:
        return f"{self.images} labeled image{'' if self.images == 1 else 's'}"

    @property
    def caution(self) -> str | None:
        """A warning when the figures rest on too few images to trust."""
        if self.images >= FEW_IMAGES:
            return None
        names = ", ".join(f"'{row['image']}'" for row in self.per_image)
        return (f"Only {self.images} image{'' if self.images == 1 else 's'} measured ({names}): one image more or "
                f"less right moves these numbers a lot. Label at least {FEW_IMAGES} validation images (Data page) "
                "for numbers you can trust.")


def learned_from(project: Project, run_id: str, rec) -> bool:
    """Did this run train on this image (its recorded split, else the image's split)?"""
    split = project.runs.get(run_id).split
    return rec.id in split.train_ids if split is not None else rec.split == "train"


def validation_images(project: Project, run_id: str | None = None) -> tuple[list[int], str]:
    """The labeled images a run is measured on, and which they are (the scopes of ValidationSummary)."""
    ids = project.image_ids(status=ImageStatus.LABELED, split="val")
    if ids:
        return ids, "validation"
    split = project.runs.get(run_id).split if run_id else None
    if split is not None and split.source == "run":
        labeled = set(project.image_ids(status=ImageStatus.LABELED))
        held = [i for i in split.val_ids if i in labeled]
        if held:
            return held, "run"
    return project.image_ids(status=ImageStatus.LABELED), "labeled"


def _summary_path(project: Project, run_id: str, threshold: float):
    ids, scope = validation_images(project, run_id)
    recs = [project.image(i) for i in ids]
    # Any saved mask, moved image or renamed class gives another key: the cached numbers are then stale.
    key = json.dumps([run_id, round(float(threshold), 4), scope, [c.name for c in project.classes],
                      [(r.id, r.mask_version, r.mask_sha256) for r in recs]])
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return project.layout.review_cache(f"validation-{run_id}-{digest}.json"), ids, scope


def cached_validation_summary(project: Project, run_id: str, threshold: float = 0.5) -> ValidationSummary | None:
    """The summary computed earlier for this run and these masks, or None (nothing loads the model here)."""
    path, _, _ = _summary_path(project, run_id, threshold)
    try:
        return ValidationSummary(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def labeled_items(project: Project, image_ids: Sequence[int]) -> Iterator[Labeled]:
    """The project's images with their saved masks, read one at a time."""
    for image_id in image_ids:
        rec = project.image(image_id)
        truth = project.masks.load(rec)
        if truth is not None:
            yield Labeled(rec.filename, project.load_image(rec), truth, rec.id)


def validation_summary(project: Project, predictor: Predictor, threshold: float = 0.5,
                       progress: Progress | None = None, batch_size: int = 4) -> ValidationSummary:
    """Mean IoU, pixel accuracy, per-class IoU and dice and the confusion matrix over the validation images.

    Kept on disk per (run, threshold, mask versions), so it is computed once until a mask or the split changes.
    """
    predictor = for_project(project, predictor)
    cached = cached_validation_summary(project, predictor.run_id, threshold)
    if cached is not None:
        return cached
    path, ids, scope = _summary_path(project, predictor.run_id, threshold)
    result = evaluate(predictor, labeled_items(project, ids), project.classes, threshold, progress, len(ids), batch_size)
    summary = ValidationSummary(**result.to_dict(), scope=scope)
    try:
        atomic_write(path, json.dumps(asdict(summary)).encode())
    except OSError:
        pass   # a full or read-only disk: the scores are shown all the same, computed again next time
    return summary


def correct_in_annotate(project: Project, predictor: Predictor, image_id: int, probs: np.ndarray | None = None,
                        threshold: float = 0.5) -> str:
    """Make this run's mask the image's unsaved draft on the Annotate page; returns what was done, in a sentence.

    With `probs` (the picture being looked at) the mask is the one shown at `threshold`, which is stored as the
    image's prediction first; otherwise the stored prediction of this run, or a new one. Unsaved changes already
    on that image are kept: they may be someone's painting.
    """
    rec = project.image(image_id)
    if project.drafts.get(rec.id) is not None:
        return (f"'{rec.filename}' already has unsaved changes, so they were kept. To start over from the model's "
                "mask, Discard them, then press 'Start from prediction'.")
    if probs is not None:
        pred = for_project(project, predictor).to_prediction(probs, threshold)
        project.predictions.save(rec.id, predictor.run_id, pred.ids, pred.uncertainty)
    return editing.start_from_prediction(project, rec.id, predictor)
