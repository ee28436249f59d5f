"""Predictor: a trained run's model, predicting at each image's own size, with an uncertainty score."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from seg_core import losses as L
from seg_core.classes import ClassSpec
from seg_core.errors import NotFoundError, TrainingError
from seg_core.images import to_rgb
from seg_core.project import Project, RunRecord


@dataclass
class Prediction:
    probabilities: np.ndarray   # HxWxC float32 (C = number of classes; binary gives 2 channels)
    ids: np.ndarray             # HxW uint8 class ids
    uncertainty: float          # mean pixel entropy, 0 (sure) .. 1 (coin flip), normalised by log(C)

    def foreground(self) -> np.ndarray:
        """Probability of 'not background' per pixel."""
        return 1.0 - self.probabilities[..., 0]


class Predictor:
    def __init__(self, model, config: dict, run_id: str = ""):
        import tensorflow as tf

        self.model = model
        self.config = config
        self.run_id = run_id
        self.size = int(config["image_size"])
        self.channels = int(config["channels"])
        self.num_classes = int(config["num_classes"])
        self.classes = [ClassSpec.from_dict(c) for c in config.get("classes", [])]
        self._tf = tf
        # One traced function for any batch size at the training resolution: model.predict per image is
        # several times slower for interactive use.
        self._forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                                    input_signature=[tf.TensorSpec([None, self.size, self.size, self.channels], tf.float32)])

    @classmethod
    def from_run(cls, project: Project, run_id: str | None = None, checkpoint: str = "best") -> "Predictor":
        """The run's best.keras (or last.keras), loaded in Keras safe mode; default: the project's best run."""
        import keras

        run: RunRecord | None = project.run(run_id) if run_id else project.best_run()
        if run is None:
            raise NotFoundError("This project has no trained model yet; train one on the Train page.")
        folder = project.runs_dir / run.id
        path = folder / f"{checkpoint}.keras"
        if not path.exists():
            path = folder / "last.keras"
        if not path.exists():
            raise TrainingError(f"Run {run.id} has no saved model (it stopped before finishing an epoch).")
        config = json.loads((folder / "config.json").read_text())
        model = keras.saving.load_model(path, compile=False, safe_mode=True, custom_objects=L.CUSTOM_OBJECTS)
        return cls(model, config, run.id)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        arr = np.asarray(image)
        if self.channels == 3:
            arr = to_rgb(arr)
        elif arr.ndim == 3:
            arr = arr.mean(axis=2).round().astype(np.uint8)
        if arr.ndim == 2:
            arr = arr[..., None]
        x = tf.image.resize(tf.convert_to_tensor(arr, tf.float32) / 255.0, (self.size, self.size),
                            method="bilinear", antialias=True)
        return x.numpy()

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Per image HxWxC class probabilities at the image's own size."""
        import tensorflow as tf

        out: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x = np.stack([self._prepare(im) for im in chunk])
            probs = self._forward(tf.convert_to_tensor(x)).numpy().astype(np.float32)
            if probs.shape[-1] == 1:
                probs = np.concatenate([1.0 - probs, probs], axis=-1)
            for im, p in zip(chunk, probs):
                h, w = np.asarray(im).shape[:2]
                full = tf.image.resize(p, (h, w), method="bilinear").numpy()
                out.append(np.clip(full, 0.0, 1.0))
        return out

    def predict(self, images: Sequence[np.ndarray] | np.ndarray, threshold: float = 0.5,
                batch_size: int = 8) -> list[Prediction]:
        single = isinstance(images, np.ndarray)
        batch = [images] if single else list(images)
        preds = [self._to_prediction(p, threshold) for p in self.probabilities(batch, batch_size)]
        return preds

    def predict_one(self, image: np.ndarray, threshold: float = 0.5) -> Prediction:
        return self.predict([image], threshold)[0]

    def _to_prediction(self, probs: np.ndarray, threshold: float) -> Prediction:
        return Prediction(probs, ids_from_probabilities(probs, threshold), uncertainty(probs))


def ids_from_probabilities(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class ids from HxWxC probabilities: binary by `threshold` on the foreground, otherwise the likeliest class.

    Kept apart from the model so a page can move the threshold over cached probabilities without predicting again.
    """
    if probs.shape[-1] == 2:
        return (probs[..., 1] >= threshold).astype(np.uint8)
    return probs.argmax(axis=-1).astype(np.uint8)


def uncertainty(probs: np.ndarray) -> float:
    """Mean pixel entropy normalised by log(C): 0 when every pixel is certain, 1 when every pixel is a coin flip."""
    c = probs.shape[-1]
    p = np.clip(probs, 1e-7, 1.0)
    return float(-(p * np.log(p)).sum(axis=-1).mean() / np.log(c))


def check_classes(project: Project, predictor: Predictor) -> None:
    """A model predicts the class ids it was trained with; after a class was added or removed they mean other things."""
    if predictor.num_classes != len(project.classes):
        raise TrainingError(f"Run {predictor.run_id} was trained with {predictor.num_classes} classes but the project "
                            f"has {len(project.classes)} now (a class was added or removed since); train a new "
                            "model on the Train page first.")


def evaluate(predictor: Predictor, pairs: Iterable[tuple[str, np.ndarray, np.ndarray]], num_classes: int,
             threshold: float = 0.5) -> dict:
    """Mean IoU, per-class IoU and dice, pixel accuracy and a per-image table, at original resolution."""
    total = np.zeros((num_classes, num_classes), np.int64)
    rows = []
    for name, image, truth in pairs:
        pred = predictor.predict_one(image, threshold)
        cm = L.confusion_matrix(truth, pred.ids, num_classes)
        total += cm
        rows.append({"image": name, "mean_iou": _nan_none(L.mean_iou(cm)),
                     "pixel_accuracy": _nan_none(L.pixel_accuracy(cm)),
                     "dice": _nan_none(float(np.nanmean(L.per_class_dice(cm)[1:])) if num_classes > 1 else None),
                     "uncertainty": pred.uncertainty})
    iou, dice = L.per_class_iou(total), L.per_class_dice(total)
    names = [c.name for c in predictor.classes] or [str(i) for i in range(num_classes)]
    return {
        "run": predictor.run_id,
        "images_evaluated": len(rows),
        "mean_iou": _nan_none(L.mean_iou(total)),
        "pixel_accuracy": _nan_none(L.pixel_accuracy(total)),
        "per_class": [{"id": i, "name": names[i] if i < len(names) else str(i), "iou": _nan_none(iou[i]),
                       "dice": _nan_none(dice[i]), "pixels": int(total[i].sum())} for i in range(num_classes)],
        "confusion_matrix": total.tolist(),
        "images": rows,
    }


def _nan_none(x) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) or (np.isscalar(x) and np.isnan(x)) else float(x)


def load_pairs(images_dir: Path, masks_dir: Path, classes, kind: str = "auto"):
    """(name, image, ids) for every image in images_dir that has a mask in masks_dir (by base name)."""
    from seg_core import images, masks
    from seg_core.formats import mask_key

    by_key = {mask_key(p.name): p for p in sorted(Path(masks_dir).iterdir()) if images.is_image_name(p.name)}
    for p in sorted(Path(images_dir).iterdir()):
        if not images.is_image_name(p.name) or p.stem not in by_key:
            continue
        _, img = images.decode(p.read_bytes(), p.name)
        arr = np.asarray(img)
        reading = masks.read_mask(by_key[p.stem].read_bytes(), classes, by_key[p.stem].name,
                                  expected_size=(arr.shape[1], arr.shape[0]), kind=kind)
        yield p.name, arr, reading.ids


def predict_project_image(project: Project, image_id: int, predictor: Predictor):
    """Predict one of the project's images and keep it as that image's stored prediction."""
    check_classes(project, predictor)
    rec = project.image(image_id)
    pred = predictor.predict_one(project.load_image(rec))
    project.save_prediction(rec.id, predictor.run_id, pred.ids, pred.uncertainty)
    return project.prediction(rec.id)
