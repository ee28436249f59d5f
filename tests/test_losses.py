"""Losses and metrics against hand-computed cases; numpy twins and tensor functions agree."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.ml import losses as L


def test_confusion_matrix_ignores_255():
    truth = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [2, 0, 2]])
    cm = L.confusion_matrix(truth, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_iou_dice_accuracy_by_hand():
    cm = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    # class 0: tp1 fp0 fn1 -> IoU 1/2, dice 2/3; class 1: tp1 fp1 fn1 -> 1/3, 1/2; class 2: tp1 fp1 fn0 -> 1/2, 2/3
    np.testing.assert_allclose(L.per_class_iou(cm), [1 / 2, 1 / 3, 1 / 2])
    np.testing.assert_allclose(L.per_class_dice(cm), [2 / 3, 1 / 2, 2 / 3])
    assert L.mean_iou(cm) == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3)
    assert L.pixel_accuracy(cm) == pytest.approx(3 / 5)


def test_absent_class_is_nan_not_zero():
    cm = L.confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 2), int), 2)
    iou = L.per_class_iou(cm)
    assert iou[0] == 1.0 and np.isnan(iou[1]) and L.mean_iou(cm) == 1.0


def test_soft_dice_binary_by_hand():
    import tensorflow as tf
    y = tf.constant([[[1, 0], [0, 255]]], tf.uint8)[..., None]          # one ignore pixel
    p = tf.constant([[[0.8, 0.2], [0.6, 0.9]]], tf.float32)[..., None]
    # valid pixels: p=(0.8,0.2,0.6), t=(1,0,0): inter 0.8, sum_t 1, sum_p 1.6
    assert float(L.soft_dice(y, p, smooth=0)) == pytest.approx(2 * 0.8 / 2.6, rel=1e-5)
    bce = -(np.log(0.8) + np.log(0.8) + np.log(0.4)) / 3
    assert float(L.binary_crossentropy(y, p)) == pytest.approx(bce, rel=1e-5)
    assert float(L.bce_dice(y, p)) == pytest.approx(bce + 1 - float(L.soft_dice(y, p)), rel=1e-5)


def test_sparse_ce_multiclass_by_hand():
    import tensorflow as tf
    y = tf.constant([[[0, 2]]], tf.uint8)
    p = tf.constant([[[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]]], tf.float32)
    assert float(L.sparse_crossentropy(y, p)) == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2, rel=1e-5)
    assert float(L.crossentropy(y, p)) == float(L.sparse_crossentropy(y, p))
    # per-class soft dice: c0 t=(1,0) p=(.7,.1); c1 t=(0,0) p=(.2,.1); c2 t=(0,1) p=(.1,.8)
    d = [(2 * .7 + 1) / (1 + .8 + 1), (0 + 1) / (0 + .3 + 1), (2 * .8 + 1) / (1 + .9 + 1)]
    assert float(L.soft_dice(y, p)) == pytest.approx(np.mean(d), rel=1e-5)
    assert float(L.ce_dice(y, p)) == pytest.approx(float(L.crossentropy(y, p)) + 1 - np.mean(d), rel=1e-5)


def test_keras_metrics_accumulate_over_batches_like_numpy():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, (4, 8, 8)).astype(np.uint8)
    truth[0, 0, :4] = 255
    probs = rng.dirichlet([1, 1, 1], (4, 8, 8)).astype(np.float32)
    (metric,) = L.keras_metrics(3)
    legacy = (L.Dice(3), L.MeanIoU(3), L.PixelAccuracy(3))   # as compiled into older checkpoints
    for i in range(0, 4, 2):  # two batches
        for m in (metric, *legacy):
            m.update_state(tf.constant(truth[i:i + 2]), tf.constant(probs[i:i + 2]))
    cm = L.confusion_matrix(truth, probs.argmax(-1), 3)
    assert np.array_equal(metric.cm.numpy(), cm)
    got = {k: float(v) for k, v in metric.result().items()}
    assert got["iou"] == pytest.approx(L.mean_iou(cm), rel=1e-5)
    assert got["dice"] == pytest.approx(np.mean(L.per_class_dice(cm)[1:]), rel=1e-5)
    assert got["accuracy"] == pytest.approx(L.pixel_accuracy(cm), rel=1e-5)
    assert [float(m.result()) for m in legacy] == pytest.approx([got["dice"], got["iou"], got["accuracy"]])
    metric.reset_state()
    assert float(metric.result()["dice"]) == 1.0


def test_binary_confusion_counts_the_sigmoid_channel_and_skips_ignored_pixels():
    import tensorflow as tf
    truth = np.array([[0, 1, 1, 255]], np.uint8)
    probs = np.array([[[0.2], [0.9], [0.4], [0.9]]], np.float32)
    assert L.confusion(tf.constant(truth), tf.constant(probs), 2).numpy().tolist() == [[1, 0], [1, 1]]


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="Unknown loss"):
        L.get_loss("focal-magic")
