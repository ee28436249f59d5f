"""Predictor: a trained run's model, predicting at each image's own size, with an uncertainty score."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from seg_core.classes import ClassSpec
from seg_core.errors import NotFoundError, TrainingError
from seg_core.ml import losses as L
from seg_core.ml.class_map import ClassMap, class_map
from seg_core.store.project import Project
from seg_core.store.runs import RunRecord


@dataclass
class Prediction:
    probabilities: np.ndarray   # HxWxC float32 (C = number of classes; binary gives 2 channels)
    ids: np.ndarray             # HxW uint8 class ids
    uncertainty: float          # mean pixel entropy, 0 (sure) .. 1 (coin flip), normalised by log(C)


class Predictor:
    def __init__(self, model, config: dict, run_id: str = "", flip: bool = False):
        """flip: test-time augmentation, the mean of the model's answers on the image and its mirror image
        (twice the work)."""
        import tensorflow as tf

        from seg_core.ml import models, precision

        if precision.float32_needed(model):   # a bfloat16 run's model, on a CPU that would only emulate bfloat16
            model = models.float32_copy(model)
        self.flip = flip
        self.model = model
        self.config = config
        self.run_id = run_id
        self.size = int(config["image_size"])
        self.channels = int(config["channels"])
        self.resize = config.get("resize", "squash")   # runs saved before letterboxing squashed
        self.num_classes = int(config["num_classes"])
        self.classes = [ClassSpec.from_dict(c) for c in config.get("classes", [])]
        self.class_map: ClassMap | None = None   # set by for_project: the outputs in the project's numbering now
        # One traced function for any batch size at the training resolution: model.predict per image is
        # several times slower for interactive use.
        self._forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                                    input_signature=[tf.TensorSpec([None, self.size, self.size, self.channels], tf.float32)])

    @classmethod
    def from_run(cls, project: Project, run_id: str | None = None, checkpoint: str = "best") -> "Predictor":
        """The run's best.keras (or last.keras), loaded in Keras safe mode; default: the project's best run."""
        run, path = run_checkpoint(project, run_id, checkpoint)
        config = json.loads(project.layout.run(run.id).config.read_text())
        from seg_core.ml.models import load_saved

        model = load_saved(path)
        return cls(model, config, run.id)

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        from seg_core.ml.dataset import resize_image

        return resize_image(image, (self.size, self.size), self.channels, self.resize).astype(np.float32) / 255.0

    def probabilities(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[np.ndarray]:
        """Per image HxWxC class probabilities at the image's own size."""
        import tensorflow as tf

        from seg_core.ml.dataset import content_box

        out: list[np.ndarray] = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x = np.stack([self._prepare(im) for im in chunk])
            probs = self._forward(tf.convert_to_tensor(x)).numpy().astype(np.float32)
            if self.flip:
                mirrored = self._forward(tf.convert_to_tensor(x[:, :, ::-1])).numpy().astype(np.float32)
                probs = (probs + mirrored[:, :, ::-1]) / 2
            if probs.shape[-1] == 1:
                probs = np.concatenate([1.0 - probs, probs], axis=-1)
            if self.class_map is not None:   # at the model's resolution: cheaper than at the photo's
                probs = self.class_map.apply(probs)
            for im, p in zip(chunk, probs):
                h, w = np.asarray(im).shape[:2]
                top, left, ch, cw = content_box((h, w), (self.size, self.size), self.resize)
                full = tf.image.resize(p[top:top + ch, left:left + cw], (h, w), method="bilinear").numpy()
                out.append(np.clip(full, 0.0, 1.0))
        return out

    def predict(self, images: Sequence[np.ndarray] | np.ndarray, threshold: float = 0.5,
                batch_size: int = 8) -> list[Prediction]:
        single = isinstance(images, np.ndarray)
        batch = [images] if single else list(images)
        return [self.to_prediction(p, threshold) for p in self.probabilities(batch, batch_size)]

    def predict_one(self, image: np.ndarray, threshold: float = 0.5) -> Prediction:
        return self.predict([image], threshold)[0]

    @property
    def class_note(self) -> str | None:
        """What a person needs to know about the project's classes this model never learned; None when it knows all."""
        return self.class_map.note if self.class_map is not None else None

    def to_prediction(self, probs: np.ndarray, threshold: float = 0.5) -> Prediction:
        """Class ids and uncertainty from this predictor's probabilities; a class it never learned does not make it
        look surer."""
        classes = self.class_map.predicted if self.class_map is not None else None
        return Prediction(probs, ids_from_probabilities(probs, threshold), uncertainty(probs, classes))


def run_checkpoint(project: Project, run_id: str | None = None, checkpoint: str = "best") -> tuple[RunRecord, Path]:
    """The run a prediction or an export uses (default: the project's best) and its model file: `checkpoint`,
    else last.keras. One rule, so `maskloop predict` and `maskloop export-model` pick the same model."""
    run: RunRecord | None = project.runs.get(run_id) if run_id else project.runs.best()
    if run is None:
        raise NotFoundError("This project has no trained model yet; train one on the Train page.")
    files = project.layout.run(run.id)
    path = files.checkpoint(checkpoint)
    if not path.exists():
        path = files.checkpoint("last")
    if not path.exists():
        raise TrainingError(f"Run {run.id} has no saved model (it stopped before finishing an epoch).")
    return run, path


def ids_from_probabilities(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class ids from HxWxC probabilities: binary by `threshold` on the foreground, otherwise the likeliest class.

    Kept apart from the model so a page can move the threshold over cached probabilities without predicting again.
    """
    return np.asarray(L.hard_labels(probs, threshold)).astype(np.uint8)


def uncertainty(probs: np.ndarray, classes: int | None = None) -> float:
    """Mean pixel entropy normalised by log(C): 0 when every pixel is certain, 1 when every pixel is a coin flip.

    classes: C, when fewer of the channels than all can be non-zero (a model that never learned a class)."""
    c = classes or probs.shape[-1]
    p = np.clip(probs, 1e-7, 1.0)
    return float(-(p * np.log(p)).sum(axis=-1).mean() / np.log(c))


def for_project(project: Project, predictor: Predictor) -> Predictor:
    """The predictor answering in the project's class numbering now (ml/class_map.py); a TrainingError with a plain
    sentence when its classes cannot be matched with the project's any more. The model itself is shared."""
    mapping = class_map(project, predictor.run_id, predictor.config)
    if mapping.identity and predictor.class_map is None:
        return predictor
    mapped = copy.copy(predictor)
    mapped.class_map = None if mapping.identity else mapping
    return mapped
