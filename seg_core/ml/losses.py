"""Losses and metrics: pure tensor functions, thin Keras wrappers, and numpy twins for evaluation.

Labels are always integer class ids (B, H, W) with 255 = ignore. A binary model has one sigmoid output
channel (foreground probability); a multi-class model has C softmax channels.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf
import keras

from seg_core.classes import IGNORE_ID
SMOOTH = 1.0
EPS = 1e-7


# ----- pure tensor functions -----------------------------------------------------------------
def _targets(y_true: tf.Tensor, y_pred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(one-hot targets, probabilities, valid-pixel weights), all float32 and (B, H, W, C)."""
    y_pred = tf.cast(y_pred, tf.float32)
    labels = tf.cast(y_true, tf.int32)
    if labels.shape.rank == 4:
        labels = labels[..., 0]
    valid = tf.cast(tf.not_equal(labels, IGNORE_ID), tf.float32)[..., None]
    channels = y_pred.shape[-1]
    if channels == 1:
        onehot = tf.cast(tf.equal(labels, 1), tf.float32)[..., None]
    else:
        onehot = tf.one_hot(tf.where(labels == IGNORE_ID, 0, labels), channels, dtype=tf.float32)
    return onehot, y_pred, valid


def soft_dice(y_true, y_pred, smooth: float = SMOOTH) -> tf.Tensor:
    """Soft dice over the batch, per class then averaged (binary: the foreground class)."""
    t, p, w = _targets(y_true, y_pred)
    axes = (0, 1, 2)
    inter = tf.reduce_sum(t * p * w, axes)
    denom = tf.reduce_sum(t * w, axes) + tf.reduce_sum(p * w, axes)
    return tf.reduce_mean((2.0 * inter + smooth) / (denom + smooth))


def dice_loss(y_true, y_pred) -> tf.Tensor:
    return 1.0 - soft_dice(y_true, y_pred)


def binary_crossentropy(y_true, y_pred) -> tf.Tensor:
    t, p, w = _targets(y_true, y_pred)
    p = tf.clip_by_value(p, EPS, 1.0 - EPS)
    ce = -(t * tf.math.log(p) + (1.0 - t) * tf.math.log(1.0 - p))
    return tf.reduce_sum(ce * w) / tf.maximum(tf.reduce_sum(w), 1.0)


def sparse_crossentropy(y_true, y_pred) -> tf.Tensor:
    t, p, w = _targets(y_true, y_pred)
    p = tf.clip_by_value(p, EPS, 1.0)
    ce = -tf.reduce_sum(t * tf.math.log(p), axis=-1, keepdims=True)
    return tf.reduce_sum(ce * w) / tf.maximum(tf.reduce_sum(w), 1.0)


def crossentropy(y_true, y_pred) -> tf.Tensor:
    """BCE for a one-channel (binary) head, sparse CE for a softmax head."""
    return binary_crossentropy(y_true, y_pred) if y_pred.shape[-1] == 1 else sparse_crossentropy(y_true, y_pred)


def bce_dice(y_true, y_pred) -> tf.Tensor:
    return binary_crossentropy(y_true, y_pred) + dice_loss(y_true, y_pred)


def ce_dice(y_true, y_pred) -> tf.Tensor:
    return crossentropy(y_true, y_pred) + dice_loss(y_true, y_pred)


def hard_labels(probs, threshold: float = 0.5):
    """Probabilities (..., C) -> class ids (...), the one rule everywhere: a binary model's foreground (its one
    sigmoid channel, or the second of two) from `threshold`, otherwise the likeliest class.

    Tensors stay tensors (in a graph too); numpy arrays give a tensor that np.asarray reads.
    """
    channels = probs.shape[-1]
    if channels in (1, 2):
        return keras.ops.cast(probs[..., channels - 1] >= threshold, "int32")
    return keras.ops.cast(keras.ops.argmax(probs, axis=-1), "int32")


def confusion(y_true, y_pred, num_classes: int) -> tf.Tensor:
    """num_classes x num_classes confusion counts (rows: truth, columns: prediction), ignore excluded.

    One integer segment sum over truth * C + prediction, ignored pixels counted in an extra cell that is dropped:
    no boolean mask (a copy of the kept pixels), and unlike bincount it compiles with XLA (the training step does).
    """
    labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
    pred = tf.reshape(hard_labels(y_pred), [-1])
    cells = num_classes * num_classes
    index = tf.where(labels == IGNORE_ID, cells, labels * num_classes + pred)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(index), index, cells + 1)
    return tf.reshape(tf.cast(counts[:cells], tf.float64), (num_classes, num_classes))


def _cm_parts(cm):
    tp = tf.linalg.diag_part(cm)
    return tp, tf.reduce_sum(cm, 0) - tp, tf.reduce_sum(cm, 1) - tp


def cm_dice(cm) -> tf.Tensor:
    """Mean hard dice over the foreground classes (binary: the object class); 1 for a class absent from both."""
    tp, fp, fn = _cm_parts(cm)
    denom = 2 * tp + fp + fn
    dice = tf.where(denom > 0, 2 * tp / tf.maximum(denom, 1.0), tf.ones_like(tp))
    return tf.cast(tf.reduce_mean(dice[1:]), tf.float32)


def cm_iou(cm) -> tf.Tensor:
    """Mean IoU over all classes that occur in truth or prediction."""
    tp, fp, fn = _cm_parts(cm)
    union = tp + fp + fn
    iou = tf.boolean_mask(tp / tf.maximum(union, 1.0), union > 0)
    return tf.cast(tf.cond(tf.size(iou) > 0, lambda: tf.reduce_mean(iou), lambda: tf.constant(1.0, tf.float64)),
                   tf.float32)


def cm_accuracy(cm) -> tf.Tensor:
    return tf.cast(tf.linalg.trace(cm) / tf.maximum(tf.reduce_sum(cm), 1.0), tf.float32)


LOSSES: dict[str, Callable] = {
    "dice": dice_loss,
    "bce": binary_crossentropy,
    "bce_dice": bce_dice,
    "ce": crossentropy,
    "sparse_ce": sparse_crossentropy,
    "ce_dice": ce_dice,
}


def get_loss(name: str) -> Callable:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"Unknown loss '{name}'; choose one of {', '.join(LOSSES)}.") from None


# ----- Keras metrics (accumulate a confusion matrix over the epoch) --------------------------
class ConfusionMetric(keras.metrics.Metric):
    """Epoch-level hard metrics from an accumulated confusion matrix, not an average of batch values."""

    def __init__(self, num_classes: int, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.cm = self.add_variable(shape=(self.num_classes, self.num_classes), initializer="zeros",
                                    dtype="float64", name="cm")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.cm.assign_add(confusion(y_true, y_pred, self.num_classes))

    def reset_state(self):
        self.cm.assign(tf.zeros_like(self.cm))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


class SegMetrics(ConfusionMetric):
    """dice, iou and accuracy (logged under those names) from one confusion matrix a batch."""

    def __init__(self, num_classes: int, name: str = "seg_metrics", **kwargs):
        super().__init__(num_classes, name, **kwargs)

    def result(self):
        return {"dice": cm_dice(self.cm), "iou": cm_iou(self.cm), "accuracy": cm_accuracy(self.cm)}


# One metric each, as compiled into checkpoints saved before SegMetrics: a run resumed from one still loads.
class Dice(ConfusionMetric):
    def __init__(self, num_classes: int, name: str = "dice", **kwargs):
        super().__init__(num_classes, name, **kwargs)

    def result(self):
        return cm_dice(self.cm)


class MeanIoU(ConfusionMetric):
    def __init__(self, num_classes: int, name: str = "iou", **kwargs):
        super().__init__(num_classes, name, **kwargs)

    def result(self):
        return cm_iou(self.cm)


class PixelAccuracy(ConfusionMetric):
    def __init__(self, num_classes: int, name: str = "accuracy", **kwargs):
        super().__init__(num_classes, name, **kwargs)

    def result(self):
        return cm_accuracy(self.cm)


def keras_metrics(num_classes: int) -> list[keras.metrics.Metric]:
    return [SegMetrics(num_classes)]


CUSTOM_OBJECTS = {"SegMetrics": SegMetrics, "Dice": Dice, "MeanIoU": MeanIoU, "PixelAccuracy": PixelAccuracy,
                  **LOSSES}


# ----- numpy twins on hard masks, for evaluation ---------------------------------------------
def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: truth, columns: prediction; pixels labelled 255 in truth are left out."""
    truth = np.asarray(truth).ravel()
    pred = np.asarray(pred).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"truth has {truth.size} pixels, prediction {pred.size}")
    keep = truth != IGNORE_ID
    idx = truth[keep].astype(np.int64) * num_classes + np.clip(pred[keep].astype(np.int64), 0, num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for a class absent from both truth and prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def per_class_dice(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    ious = per_class_iou(cm)
    return float(np.nanmean(ious)) if np.any(~np.isnan(ious)) else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")
