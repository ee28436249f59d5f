"""Reviewing a run: predict many images, rank what to fix next, per-image and validation-set quality."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from seg_core import editing, gallery, images, losses as L
from seg_core.classes import ClassSpec
from seg_core.errors import NotFoundError
from seg_core.files import atomic_write
from seg_core.inference import Predictor, check_classes, ids_from_probabilities, uncertainty
from seg_core.project import Project, RunRecord

FINISHED = ("completed", "stopped", "failed")
Progress = Callable[[int, int, str], None]


# ----- runs ------------------------------------------------------------------------------------
def usable_runs(project: Project) -> list[RunRecord]:
    """Finished runs that saved a model: the project's best run first, then by validation dice, then newest."""
    runs = [r for r in project.list_runs() if r.status in FINISHED
            and any((project.runs_dir / r.id / f"{c}.keras").exists() for c in ("best", "last"))]
    best = project.best_run()
    return sorted(runs, key=lambda r: (best is not None and r.id == best.id,
                                       -1.0 if r.best_score is None else r.best_score, r.created_at), reverse=True)


def run_label(run: RunRecord) -> str:
    when = time.strftime("%d %b %H:%M", time.localtime(run.created_at))
    score = "no validation score" if run.best_score is None else f"validation dice {run.best_score:.3f}"
    kind = run.config.get("preset") or run.config.get("model", "")
    return f"{when} · {kind} · {score} · {run.status} ({run.id})"


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


@dataclass(frozen=True)
class ImageScore:
    iou: float            # mean over the foreground classes in the mask or the prediction; 1 when neither has any
    dice: float
    pixel_accuracy: float

    @property
    def disagreement(self) -> float:
        return 1.0 - self.iou


def image_score(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> ImageScore:
    """How well a prediction matches a mask, on the objects: background would flatter an image of mostly background."""
    cm = L.confusion_matrix(truth, pred, num_classes)
    iou, dice = L.per_class_iou(cm)[1:], L.per_class_dice(cm)[1:]
    # Nothing to find and nothing found is full agreement, as the training metrics count it.
    fg_iou = float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 1.0
    fg_dice = float(np.nanmean(dice)) if np.any(~np.isnan(dice)) else 1.0
    acc = L.pixel_accuracy(cm)
    return ImageScore(fg_iou, fg_dice, 1.0 if np.isnan(acc) else acc)


# ----- many images ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictReport:
    run_id: str
    predicted: int
    skipped: int
    seconds: float


def predict_images(project: Project, predictor: Predictor, image_ids: Sequence[int], progress: Progress | None = None,
                   threshold: float = 0.5, batch_size: int = 4) -> PredictReport:
    """Predict the images in batches and store each prediction with its uncertainty; progress once per image."""
    check_classes(project, predictor)
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
        for rec, pred in zip(recs, predictor.predict(pictures, threshold) if pictures else []):
            project.save_prediction(rec.id, predictor.run_id, pred.ids, pred.uncertainty)
            done += 1
            if progress:
                progress(done + skipped, total, rec.filename)
    return PredictReport(predictor.run_id, done, skipped, time.perf_counter() - start)


def predict_unlabeled(project: Project, predictor: Predictor, progress: Progress | None = None,
                      threshold: float = 0.5) -> PredictReport:
    return predict_images(project, predictor, project.image_ids(status="unlabeled"), progress, threshold)


def predict_labeled(project: Project, predictor: Predictor, progress: Progress | None = None,
                    threshold: float = 0.5) -> PredictReport:
    return predict_images(project, predictor, project.image_ids(status="labeled"), progress, threshold)


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
           for r in project.prediction_rows(run_id, status="unlabeled")]
    return sorted(out, key=lambda r: (-r.score, r.image_id))


def review_worst_first(project: Project, run_id: str) -> list[Ranked]:
    """Labeled images with a prediction of this run, the one whose mask the model disagrees with most first.

    A large disagreement is either a model mistake or a mask mistake; both are worth a look.
    """
    n, out = len(project.classes), []
    for rec in project.list_images(status="labeled", predicted=True):
        stored, truth = project.prediction(rec.id), project.load_mask(rec)
        if stored is None or stored.run_id != run_id or truth is None or truth.shape != stored.ids.shape:
            continue
        s = image_score(truth, stored.ids, n)
        out.append(Ranked(rec.id, rec.filename, rec.split, s.disagreement, stored.created_at, s.dice, s.iou))
    return sorted(out, key=lambda r: (-r.score, r.image_id))


def prediction_thumbnail(project: Project, item: Ranked, side: int = 160) -> bytes:
    """JPEG of the image with its stored prediction blended in, kept on disk per prediction."""
    stamp = f"{item.created_at:.6f}".replace(".", "")
    path = project.path / "cache" / "thumbs" / f"pred-{item.image_id}-{stamp}-{side}.jpg"

    def ids():
        stored = project.prediction(item.image_id)
        return stored.ids if stored is not None else None

    return gallery.cached_overlay(project, path, f"pred-{item.image_id}-*-{side}.jpg", item.image_id, ids, side,
                                  alpha=0.5)


# ----- the validation set -----------------------------------------------------------------------
@dataclass
class ValidationSummary:
    run_id: str
    scope: str                   # "validation" or "labeled" (no labeled validation images: every labeled one)
    images: int
    threshold: float
    mean_iou: float | None
    pixel_accuracy: float | None
    class_names: list[str]
    per_class: list[dict]        # id, name, iou, dice, pixels (in the masks)
    confusion: list[list[int]]   # rows: the masks' class, columns: the model's
    per_image: list[dict] = field(default_factory=list)

    @property
    def note(self) -> str:
        if self.scope == "validation":
            return (f"Measured on the {self.images} labeled images of the validation split, which training did not "
                    "learn from.")
        return (f"This project has no labeled validation images, so these numbers come from all {self.images} labeled "
                "images, including the ones the model learned from: they look better than the model is. "
                "Set a validation split on the Data page.")


def validation_images(project: Project) -> tuple[list[int], str]:
    ids = project.image_ids(status="labeled", split="val")
    return (ids, "validation") if ids else (project.image_ids(status="labeled"), "labeled")


def _summary_path(project: Project, run_id: str, threshold: float):
    ids, scope = validation_images(project)
    recs = [project.image(i) for i in ids]
    # Any saved mask, moved image or renamed class gives another key: the cached numbers are then stale.
    key = json.dumps([run_id, round(float(threshold), 4), scope, [c.name for c in project.classes],
                      [(r.id, r.mask_version, r.mask_sha256) for r in recs]])
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return project.path / "cache" / "review" / f"validation-{run_id}-{digest}.json", ids, scope


def cached_validation_summary(project: Project, run_id: str, threshold: float = 0.5) -> ValidationSummary | None:
    """The summary computed earlier for this run and these masks, or None (nothing loads the model here)."""
    path, _, _ = _summary_path(project, run_id, threshold)
    try:
        return ValidationSummary(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def validation_summary(project: Project, predictor: Predictor, threshold: float = 0.5,
                       progress: Progress | None = None, batch_size: int = 4) -> ValidationSummary:
    """Mean IoU, pixel accuracy, per-class IoU and dice and the confusion matrix over the validation images.

    Kept on disk per (run, threshold, mask versions), so it is computed once until a mask or the split changes.
    """
    check_classes(project, predictor)
    path, ids, scope = _summary_path(project, predictor.run_id, threshold)
    try:
        return ValidationSummary(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        pass
    classes = project.classes
    n = len(classes)
    total, rows = np.zeros((n, n), np.int64), []
    for at in range(0, len(ids), batch_size):
        recs = [project.image(i) for i in ids[at:at + batch_size]]
        for rec, pred in zip(recs, predictor.predict([project.load_image(r) for r in recs], threshold)):
            truth = project.load_mask(rec)
            total += L.confusion_matrix(truth, pred.ids, n)
            s = image_score(truth, pred.ids, n)
            rows.append({"image_id": rec.id, "filename": rec.filename, "iou": s.iou, "dice": s.dice})
            if progress:
                progress(len(rows), len(ids), rec.filename)
    iou, dice = L.per_class_iou(total), L.per_class_dice(total)
    summary = ValidationSummary(
        run_id=predictor.run_id, scope=scope, images=len(rows), threshold=float(threshold),
        mean_iou=_number(L.mean_iou(total)), pixel_accuracy=_number(L.pixel_accuracy(total)),
        class_names=[c.name for c in classes],
        per_class=[{"id": c.id, "name": c.name, "iou": _number(iou[c.id]), "dice": _number(dice[c.id]),
                    "pixels": int(total[c.id].sum())} for c in classes],
        confusion=total.tolist(), per_image=rows)
    atomic_write(path, json.dumps(asdict(summary)).encode())
    return summary


def _number(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def correct_in_annotate(project: Project, predictor: Predictor, image_id: int, probs: np.ndarray | None = None,
                        threshold: float = 0.5) -> str:
    """Make this run's mask the image's unsaved draft on the Annotate page; returns what was done, in a sentence.

    With `probs` (the picture being looked at) the mask is the one shown at `threshold`, which is stored as the
    image's prediction first; otherwise the stored prediction of this run, or a new one. Unsaved changes already
    on that image are kept: they may be someone's painting.
    """
    rec = project.image(image_id)
    if project.draft(rec.id) is not None:
        return (f"'{rec.filename}' already has unsaved changes, so they were kept. To start over from the model's "
                "mask, Discard them, then press 'Start from prediction'.")
    if probs is not None:
        check_classes(project, predictor)
        project.save_prediction(rec.id, predictor.run_id, mask(probs, threshold), uncertainty(probs))
    return editing.start_from_prediction(project, rec.id, predictor)
