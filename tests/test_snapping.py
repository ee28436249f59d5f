"""Proposals with their edges snapped to the photo (services/snapping.py), and used only where the run's own
validation images say it helps."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.ml.inference import Predictor
from seg_core.services import review, snapping


@pytest.fixture
def predictor(trained_project):
    return Predictor.from_run(trained_project)


def _scene(h=96, w=128, discs=((48, 40, 22), (50, 95, 18)), seed=0):
    """A noisy photo with discs of another colour, and their truth."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    truth = np.zeros((h, w), np.uint8)
    for cy, cx, r in discs:
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    image = np.where(truth[..., None] == 1, [205, 70, 60], [40, 120, 160]).astype(np.float64)
    return np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8), truth


def _blocky(truth: np.ndarray, cell: int = 8) -> np.ndarray:
    """(H, W, 2) probabilities as a small network at a reduced size draws them: the truth in blocks of `cell`."""
    h, w = truth.shape
    small = truth[cell // 2::cell, cell // 2::cell].astype(np.float32)
    fg = np.kron(small, np.ones((cell, cell), np.float32))[:h, :w]
    fg = 0.1 + 0.8 * fg
    return np.stack([1 - fg, fg], axis=-1)


def _iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_snapping_puts_a_blocky_proposal_on_the_photos_edges():
    image, truth = _scene()
    probs = _blocky(truth)
    raw = _iou(probs[..., 1] > 0.5, truth == 1)
    snapped = snapping.snap(image, probs, trust=1.0)
    assert snapped.dtype == np.uint8 and snapped.shape == truth.shape
    assert _iou(snapped == 1, truth == 1) > raw + 0.03, "the colour edge is where the object ends"
    assert _iou(snapping.snap(image, probs, trust=0.0) == 1, truth == 1) > raw, "a box per object helps on its own"


def test_snapping_leaves_out_specks_and_declines_many_objects_or_classes():
    image, truth = _scene()
    probs = _blocky(truth)
    probs[2:4, 2:4] = [0.1, 0.9]                      # a speck far from both objects
    snapped = snapping.snap(image, probs, trust=1.0)
    assert not snapped[:10, :10].any(), "a speck is not an object"
    assert snapping.snap(image, np.zeros((96, 128, 3), np.float32), 1.0) is None, "more than two classes"
    many = np.zeros((96, 128), np.uint8)
    for k in range(snapping.MAX_OBJECTS + 1):
        many[10 + 20 * (k // 5):20 + 20 * (k // 5), 10 + 22 * (k % 5):20 + 22 * (k % 5)] = 1
    assert snapping.snap(image, _blocky(many, 2), 1.0) is None, "cells and grains are left as the model drew them"
    empty = snapping.snap(image, _blocky(np.zeros_like(truth)), 1.0)
    assert empty is not None and not empty.any()


@pytest.mark.parametrize("used", [True, False])
def test_proposals_are_snapped_only_where_the_verdict_says_so(trained_project, predictor, monkeypatch, used):
    monkeypatch.setattr(snapping, "verdict", lambda project, p: snapping.Verdict(used, 2, 0.5, 0.6 if used else 0.4))
    cuts = []

    def snap(image, probs, trust):
        cuts.append(trust)
        return np.ones(probs.shape[:2], np.uint8)

    monkeypatch.setattr(snapping, "snap", snap)
    snapping.predict_unlabeled(trained_project, predictor)
    unlabeled = trained_project.image_ids(status="unlabeled")
    for image_id in unlabeled:
        stored = trained_project.predictions.get(image_id).ids
        direct = predictor.predict_one(trained_project.load_image(image_id)).ids
        assert stored.all() if used else (stored != direct).mean() < 1e-3
    assert len(cuts) == (len(unlabeled) if used else 0) and all(0.0 <= t <= 1.0 for t in cuts)
    cuts.clear()
    review.predict_labeled(trained_project, predictor)
    review.predict_unlabeled(trained_project, predictor)
    assert not cuts, "the review's predictions are the model's own: they score the model"


def test_the_verdict_compares_both_on_validation_images_and_is_kept_until_a_mask_changes(trained_project, predictor,
                                                                                        monkeypatch):
    ids, scope = review.validation_images(trained_project, predictor.run_id)
    assert scope != "labeled" and ids
    first = snapping.verdict(trained_project, predictor)
    assert first.images == min(len(ids), snapping.CHECK_IMAGES)
    assert first.used == (first.snapped_iou > first.model_iou)
    assert ("snapped to the photo (" in first.sentence) == first.used and f"{first.model_iou:.3f}" in first.sentence
    monkeypatch.setattr(snapping, "snap", lambda *a: pytest.fail("the kept verdict is read, not worked out again"))
    assert snapping.verdict(trained_project, predictor) == first
    rec = trained_project.image(ids[0])
    mask = trained_project.masks.load(rec)
    trained_project.masks.save(rec.id, 1 - mask, rec.mask_version)
    with pytest.raises(pytest.fail.Exception):
        snapping.verdict(trained_project, predictor)


def test_no_verdict_without_images_the_run_did_not_learn_from(trained_multiclass_project, trained_project, predictor,
                                                              monkeypatch):
    many = snapping.verdict(trained_multiclass_project, predictor)
    assert not many.used and many.images == 0, "more than two classes: nothing to snap"
    monkeypatch.setattr(review, "validation_images", lambda project, run_id: ([1, 2], "labeled"))
    learned = snapping.verdict(trained_project, predictor)
    assert not learned.used and learned.images == 0 and "no validation image" in learned.sentence
