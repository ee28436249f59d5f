"""How good a model is: one confusion-matrix evaluation behind `maskloop evaluate` and the Predict & review page.

Per image, IoU and dice are taken over the object classes (background would flatter an image that is mostly
background), and an image with no object in the mask nor the prediction scores 1. Over a set of images, the
confusion matrices are summed and every figure (mean IoU, per-class IoU and dice, pixel accuracy) comes from the
sum. Pixels labelled ignore (255) count for nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from seg_core.classes import ClassSpec
from seg_core.ml import losses as L

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ImageScore:
    iou: float            # mean over the object classes in the mask or the prediction; 1 when neither has any
    dice: float
    pixel_accuracy: float

    @property
    def disagreement(self) -> float:
        return 1.0 - self.iou


def _number(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def score_matrix(cm: np.ndarray) -> ImageScore:
    iou, dice = L.per_class_iou(cm)[1:], L.per_class_dice(cm)[1:]
    # Nothing to find and nothing found is full agreement, as the training metrics count it.
    fg_iou = float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 1.0
    fg_dice = float(np.nanmean(dice)) if np.any(~np.isnan(dice)) else 1.0
    acc = L.pixel_accuracy(cm)
    return ImageScore(fg_iou, fg_dice, 1.0 if np.isnan(acc) else acc)


def image_score(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> ImageScore:
    """How well one prediction matches one mask."""
    return score_matrix(L.confusion_matrix(truth, pred, num_classes))


@dataclass(frozen=True)
class Labeled:
    """An image and its mask, to be scored; image_id for a project image."""

    name: str
    image: np.ndarray
    truth: np.ndarray
    image_id: int | None = None


@dataclass
class Evaluation:
    run_id: str
    images: int
    threshold: float
    mean_iou: float | None       # over the classes present in the masks or the predictions, background included
    pixel_accuracy: float | None
    class_names: list[str]
    per_class: list[dict]        # id, name, iou, dice, pixels (in the masks), learned (by the model)
    confusion: list[list[int]]   # rows: the masks' class, columns: the model's
    per_image: list[dict] = field(default_factory=list)   # image_id, image, iou, dice, pixel_accuracy, uncertainty

    def to_dict(self) -> dict:
        return asdict(self)

    def headline(self) -> tuple[str, float | None]:
        """The figure to lead with, and its name: the object's IoU (binary), else the mean IoU of the object classes.

        Background stays apart: on photos that are mostly background it is easy and would flatter the model. A class
        the model never learned is left out (it would count as 0); so is one neither the masks nor the model have.
        """
        counted = [c for c in self.per_class[1:] if c["iou"] is not None and c.get("learned", True)]
        value = float(np.mean([c["iou"] for c in counted])) if counted else None
        if len(self.per_class) == 2 or len(counted) == 1:
            return f"IoU of '{counted[0]['name'] if counted else self.per_class[1]['name']}'", value
        return (f"Mean IoU of the {len(counted)} object classes" if counted else "Mean IoU of the object classes"), value

    @property
    def background_iou(self) -> float | None:
        return self.per_class[0]["iou"] if self.per_class else None


def evaluate(predictor, items: Iterable[Labeled], classes: Sequence[ClassSpec], threshold: float = 0.5,
             progress: Progress | None = None, total: int | None = None, batch_size: int = 4) -> Evaluation:
    """Predict each image at its own size and score it against its mask; the sums give the set's figures."""
    n = len(classes)
    cm_total, rows = np.zeros((n, n), np.int64), []
    batch: list[Labeled] = []

    def flush() -> None:
        nonlocal cm_total
        for item, pred in zip(batch, predictor.predict([b.image for b in batch], threshold)):
            cm = L.confusion_matrix(item.truth, pred.ids, n)
            cm_total += cm
            s = score_matrix(cm)
            rows.append({"image_id": item.image_id, "image": item.name, "iou": s.iou, "dice": s.dice,
                         "pixel_accuracy": s.pixel_accuracy, "uncertainty": pred.uncertainty})
            if progress:
                progress(len(rows), total or len(rows), item.name)
        batch.clear()

    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    iou, dice = L.per_class_iou(cm_total), L.per_class_dice(cm_total)
    mapping = getattr(predictor, "class_map", None)
    return Evaluation(
        run_id=predictor.run_id, images=len(rows), threshold=float(threshold),
        mean_iou=_number(L.mean_iou(cm_total)), pixel_accuracy=_number(L.pixel_accuracy(cm_total)),
        class_names=[c.name for c in classes],
        per_class=[{"id": c.id, "name": c.name, "iou": _number(iou[c.id]), "dice": _number(dice[c.id]),
                    "pixels": int(cm_total[c.id].sum()), "learned": mapping is None or mapping.learned(c.id)}
                   for c in classes],
        confusion=cm_total.tolist(), per_image=rows)


def folder_pairs(images_dir: Path, masks_dir: Path, classes: Sequence[ClassSpec], kind: str = "auto") -> Iterator[Labeled]:
    """Every image in images_dir that has a mask in masks_dir (by base name), read as class ids of `classes`."""
    from seg_core.formats import images, masks
    from seg_core.formats.layouts import mask_key

    by_key = {mask_key(p.name): p for p in sorted(Path(masks_dir).iterdir()) if images.is_image_name(p.name)}
    for p in sorted(Path(images_dir).iterdir()):
        if not images.is_image_name(p.name) or p.stem not in by_key:
            continue
        _, img = images.decode(p.read_bytes(), p.name)
        arr = np.asarray(img)
        reading = masks.read_mask(by_key[p.stem].read_bytes(), classes, by_key[p.stem].name,
                                  expected_size=(arr.shape[1], arr.shape[0]), kind=kind)
        yield Labeled(p.name, arr, reading.ids)
