"""Reviewing a run: predict-all with progress, rankings, per-image scores, the validation summary, with real data."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import box_mask, photo, png_bytes
from seg_core.ml import losses as L
from seg_core.services import editing, review
from seg_core.classes import IGNORE_ID, default_classes
from seg_core.errors import InvalidImageError, TrainingError
from seg_core.ml import evaluation
from seg_core.ml.inference import Predictor, for_project, ids_from_probabilities
from seg_core.store.workspace import new_project


@pytest.fixture
def predictor(trained_project):
    return Predictor.from_run(trained_project)


def test_usable_runs_put_the_best_first_and_skip_runs_without_a_model(trained_project):
    first = trained_project.runs.best()
    weaker = trained_project.runs.create(first.config)
    shutil.copy(trained_project.layout.runs_dir / first.id / "best.keras", trained_project.layout.runs_dir / weaker.id / "last.keras")
    trained_project.runs.update(weaker.id, status="stopped", best_score=first.best_score / 2)
    empty = trained_project.runs.create(first.config)  # stopped before its first epoch: nothing saved
    trained_project.runs.update(empty.id, status="stopped", best_score=0.99)
    runs = trained_project.runs.usable()
    assert [r.id for r in runs] == [first.id, weaker.id]
    label = review.run_label(runs[0])
    assert f"validation dice {first.best_score:.3f}" in label and first.id in label


def test_no_runs_means_nothing_to_choose(workspace):
    assert new_project(workspace / "empty").runs.usable() == []


def test_image_score_against_a_hand_computed_case():
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :2] = 1                     # 4 object pixels
    pred = np.zeros((4, 4), np.uint8)
    pred[:2, :3] = 1                      # 6 predicted, 4 of them right
    s = evaluation.image_score(truth, pred, 2)
    assert s.iou == pytest.approx(4 / 6) and s.dice == pytest.approx(2 * 4 / (4 + 6))
    assert s.pixel_accuracy == pytest.approx(14 / 16) and s.disagreement == pytest.approx(1 / 3)
    nothing = np.zeros((4, 4), np.uint8)
    assert evaluation.image_score(nothing, nothing, 2) == evaluation.ImageScore(1.0, 1.0, 1.0)
    ignored = truth.copy()
    ignored[0, 2] = 255                   # the one false positive falls on an "ignore" pixel
    assert evaluation.image_score(ignored, pred, 2).iou == pytest.approx(4 / 5)


def test_threshold_and_heat_values_come_from_the_probabilities():
    fg = np.array([[0.1, 0.4], [0.6, 0.9]], np.float32)
    probs = np.stack([1 - fg, fg], axis=-1)
    assert review.mask(probs, 0.5).tolist() == [[0, 0], [1, 1]]
    assert review.mask(probs, 0.3).tolist() == [[0, 1], [1, 1]]
    classes = default_classes(["background", "cell"])
    values, label = review.heat_values(probs, classes)
    assert np.allclose(values, fg) and "cell" in label
    three = np.zeros((1, 2, 3), np.float32)
    three[0, 0] = (0.2, 0.5, 0.3)
    three[0, 1] = (0.1, 0.1, 0.8)
    names = default_classes(["background", "a", "b"])
    conf, label = review.heat_values(three, names)
    assert np.allclose(conf, [[0.5, 0.8]]) and "confidence" in label
    b, label = review.heat_values(three, names, 2)
    assert np.allclose(b, [[0.3, 0.8]]) and "'b'" in label
    assert review.mask(three).tolist() == [[1, 2]]


def test_predict_unlabeled_stores_one_prediction_per_image_and_reports_each(trained_project, predictor):
    unlabeled = trained_project.image_ids(status="unlabeled")
    assert len(unlabeled) == 2 and not trained_project.predictions.image_ids()
    calls = []
    report = review.predict_unlabeled(trained_project, predictor, lambda *a: calls.append(a))
    names = [trained_project.image(i).filename for i in unlabeled]
    assert calls == [(1, 2, names[0]), (2, 2, names[1])]
    assert (report.predicted, report.skipped, report.run_id) == (2, 0, predictor.run_id)
    assert trained_project.predictions.image_ids() == set(unlabeled)
    for image_id in unlabeled:
        stored = trained_project.predictions.get(image_id)
        direct = predictor.predict_one(trained_project.load_image(image_id))
        # Batched and single forward passes may differ in the last float bit: a pixel exactly at 0.5 could flip.
        assert stored.run_id == predictor.run_id and (stored.ids != direct.ids).mean() < 1e-3
        assert stored.uncertainty == pytest.approx(direct.uncertainty, abs=1e-5)


def test_after_adding_a_class_the_model_predicts_what_it_learned_and_says_what_it_has_not(trained_project, predictor):
    project = trained_project
    val = project.image_ids(status="labeled", split="val")
    rec = project.image(val[0])
    project.predictions.save(rec.id, predictor.run_id, np.zeros((rec.height, rec.width), np.uint8))
    kept = project.predictions.image_ids()
    painted = project.masks.load(rec).copy()
    project.add_class("extra")
    painted[:2, :2] = 2                                    # the new class in one validation mask
    project.masks.save(rec.id, painted, rec.mask_version)
    report = review.predict_unlabeled(project, predictor)
    assert report.predicted == 2 and project.predictions.image_ids() == kept | set(project.image_ids(status="unlabeled"))
    image = project.load_image(project.image_ids(status="unlabeled")[0])
    probs = review.probabilities(for_project(project, predictor), image)
    assert probs.shape[-1] == 3 and not probs[..., 2].any()
    assert np.allclose(probs[..., :2], review.probabilities(predictor, image), atol=1e-6)
    s = review.validation_summary(project, predictor)
    extra = s.per_class[2]
    assert (extra["learned"], extra["iou"], extra["pixels"]) == (False, 0.0, 4) and s.per_class[1]["learned"]
    assert s.headline() == ("IoU of 'object'", pytest.approx(s.per_class[1]["iou"]))   # the unlearned class apart
    message = editing.start_from_prediction(project, project.image_ids(status="unlabeled")[1], predictor)
    assert "not learned the class 'extra' yet" in message
    project.masks.save(rec.id, np.minimum(painted, 1), rec.mask_version + 1)
    project.remove_class(2)                                # used by no mask nor prediction: nothing is deleted
    assert project.predictions.image_ids() == kept | set(project.image_ids(status="unlabeled"))
    assert for_project(project, predictor) is predictor


def test_a_removal_maps_the_model_and_renumbers_its_predictions(trained_multiclass_project):
    project = trained_multiclass_project
    predictor = Predictor.from_run(project)
    review.predict_labeled(project, predictor)
    before = {i: project.predictions.get(i).ids for i in project.predictions.image_ids()}
    assert any((ids == 2).any() for ids in before.values())
    project.remove_class(1, pixels_to=0)                   # class 2 becomes 1
    for image_id, ids in before.items():
        assert np.array_equal(project.predictions.get(image_id).ids, np.array([0, 0, 1], np.uint8)[ids])
    image = project.load_image(project.image_ids()[0])
    raw = review.probabilities(predictor, image)
    mapped = for_project(project, predictor)
    assert np.allclose(review.probabilities(mapped, image), np.stack([raw[..., 0] + raw[..., 1], raw[..., 2]], -1),
                       atol=1e-6)
    assert review.validation_summary(project, predictor).class_names == [c.name for c in project.classes]


def test_a_removal_into_ignore_refuses_the_model_with_a_sentence(trained_multiclass_project):
    project = trained_multiclass_project
    predictor = Predictor.from_run(project)
    name = project.classes[2].name
    project.remove_class(2, pixels_to=IGNORE_ID)
    with pytest.raises(TrainingError, match=f"learned the class '{name}', which was removed since"):
        review.predict_unlabeled(project, predictor)


@pytest.fixture
def hand_made(workspace):
    """Four images: 1 and 2 labeled (a 10x10 box), 3 and 4 unlabeled; predictions stored by hand."""
    p = new_project(workspace / "hand", default_classes(["background", "object"]))
    for i in range(4):
        p.add_image(png_bytes(photo(20, 20, seed=i)), f"img{i + 1}.png")
    truth = box_mask(20, 20, 1, (0, 0, 10, 10))
    p.masks.save(1, truth, 0)
    p.masks.save(2, truth, 0)
    p.predictions.save(1, "run-a", box_mask(20, 20, 1, (0, 0, 10, 5)), 0.1)   # half the box: IoU 0.5
    p.predictions.save(2, "run-a", truth, 0.3)                                # exact: IoU 1
    p.predictions.save(3, "run-a", truth, 0.2)
    p.predictions.save(4, "run-a", truth, 0.7)
    return p


def test_rankings_put_the_most_uncertain_and_the_worst_first(hand_made):
    nxt = review.annotate_next(hand_made, "run-a")
    assert [(r.image_id, r.score) for r in nxt] == [(4, pytest.approx(0.7)), (3, pytest.approx(0.2))]
    worst = review.review_worst_first(hand_made, "run-a")
    assert [r.image_id for r in worst] == [1, 2]
    assert worst[0].score == pytest.approx(0.5) and worst[0].iou == pytest.approx(0.5)
    assert worst[0].dice == pytest.approx(2 * 50 / 150) and worst[1].score == pytest.approx(0.0)
    # Another run's predictions are not this run's opinion.
    hand_made.predictions.save(4, "run-b", box_mask(20, 20), 0.9)
    assert [r.image_id for r in review.annotate_next(hand_made, "run-a")] == [3]
    assert [r.image_id for r in review.annotate_next(hand_made, "run-b")] == [4]
    # A labeled image's new mask changes its rank.
    hand_made.masks.save(2, np.zeros((20, 20), np.uint8), 1)
    assert [r.image_id for r in review.review_worst_first(hand_made, "run-a")] == [2, 1]


def test_prediction_thumbnail_is_kept_until_the_prediction_changes(hand_made):
    item = review.annotate_next(hand_made, "run-a")[0]
    data = review.prediction_thumbnail(hand_made, item, side=16)
    assert Image.open(io.BytesIO(data)).size == (16, 16)
    folder = hand_made.path / "cache" / "thumbs"
    assert len(list(folder.glob("pred-4-*-16.jpg"))) == 1
    hand_made.predictions.save(4, "run-a", np.zeros((20, 20), np.uint8), 0.8)
    newer = review.annotate_next(hand_made, "run-a")[0]
    review.prediction_thumbnail(hand_made, newer, side=16)
    files = list(folder.glob("pred-4-*-16.jpg"))
    assert len(files) == 1 and f"{newer.created_at:.6f}".replace(".", "") in files[0].name


def test_validation_summary_matches_a_hand_computed_confusion_matrix_and_is_cached(trained_project, predictor):
    val = trained_project.image_ids(status="labeled", split="val")
    assert val
    expected = np.zeros((2, 2), np.int64)
    for image_id in val:
        pred = predictor.predict_one(trained_project.load_image(image_id))
        expected += L.confusion_matrix(trained_project.masks.load(image_id), pred.ids, 2)
    assert review.cached_validation_summary(trained_project, predictor.run_id) is None
    calls = []
    s = review.validation_summary(trained_project, predictor, progress=lambda *a: calls.append(a))
    assert (s.scope, s.images, len(calls)) == ("validation", len(val), len(val))
    assert np.array_equal(np.array(s.confusion), expected)
    assert s.mean_iou == pytest.approx(L.mean_iou(expected))
    assert s.pixel_accuracy == pytest.approx(np.trace(expected) / expected.sum())
    assert [c["name"] for c in s.per_class] == ["background", "object"]
    assert s.per_class[1]["dice"] == pytest.approx(2 * expected[1, 1] / (expected[1].sum() + expected[:, 1].sum()))
    assert "validation split" in s.note
    again = review.cached_validation_summary(trained_project, predictor.run_id)
    assert again == s
    # A saved mask makes the numbers stale; so does another threshold.
    assert review.cached_validation_summary(trained_project, predictor.run_id, 0.3) is None
    rec = trained_project.image(val[0])
    trained_project.masks.save(rec.id, np.zeros((rec.height, rec.width), np.uint8), rec.mask_version)
    assert review.cached_validation_summary(trained_project, predictor.run_id) is None


def test_validation_falls_back_to_all_labeled_images_with_a_note(trained_project, predictor):
    labeled = trained_project.image_ids(status="labeled")
    trained_project.splits.set(labeled, "train")
    s = review.validation_summary(trained_project, predictor)
    assert (s.scope, s.images) == ("labeled", len(labeled))
    assert "no labeled validation images" in s.note


def test_without_a_validation_split_a_run_is_measured_on_what_it_set_aside(trained_project, predictor):
    from seg_core.store.runs import RunSplit

    labeled = trained_project.image_ids(status="labeled")
    trained_project.splits.set(labeled, "train")
    trained_project.runs.update(predictor.run_id, split=RunSplit("run", tuple(labeled[2:]), tuple(labeled[:2])))
    s = review.validation_summary(trained_project, predictor)
    assert (s.scope, s.images) == ("run", 2) and {r["image_id"] for r in s.per_image} == set(labeled[:2])
    assert "its training run set aside" in s.note


def test_correct_in_annotate_uses_the_mask_as_shown(trained_project, predictor):
    image_id = trained_project.image_ids(status="unlabeled")[0]
    probs = review.probabilities(predictor, trained_project.load_image(image_id))
    message = review.correct_in_annotate(trained_project, predictor, image_id, probs, threshold=0.2)
    draft = trained_project.drafts.get(image_id)
    assert draft.source == "prediction" and draft.base_version == 0
    assert np.array_equal(draft.ids, ids_from_probabilities(probs, 0.2))
    assert trained_project.predictions.get(image_id).run_id == predictor.run_id and "Save" in message


def test_read_upload_decodes_a_photo_and_refuses_a_broken_file():
    arr = photo(10, 12)
    assert np.array_equal(review.read_upload(png_bytes(arr), "x.png"), arr)
    with pytest.raises(InvalidImageError):
        review.read_upload(b"not an image at all", "broken.png")


def test_correct_in_annotate_keeps_unsaved_changes(trained_project, predictor):
    image_id = trained_project.image_ids(status="unlabeled")[0]
    rec = trained_project.image(image_id)
    painted = np.ones((rec.height, rec.width), np.uint8)
    trained_project.drafts.save(image_id, painted, 0, source="painted")
    message = review.correct_in_annotate(trained_project, predictor, image_id)
    assert "already has unsaved changes" in message
    draft = trained_project.drafts.get(image_id)
    assert draft.source == "painted" and np.array_equal(draft.ids, painted)
    assert trained_project.predictions.get(image_id) is None
