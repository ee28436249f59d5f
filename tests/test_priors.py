"""The project's model as a prior for the assists: followed as far as it is trusted, never when it is poor."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core import assist
from seg_core.errors import AssistError
from seg_core.services import priors
from test_assist import H, W, disc_with_patch, iou, strokes


def sure(mask: np.ndarray, p: float = 0.98) -> np.ndarray:
    """A model's probability of the object: `p` on the mask, 1 - p elsewhere."""
    return np.where(mask, p, 1 - p).astype(np.float32)


def boxed(disc, patch) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(disc | patch)
    return xs.min() - 6, ys.min() - 6, xs.max() + 6, ys.max() + 6


def test_a_trusted_model_keeps_the_box_from_taking_in_what_looks_like_part_of_it():
    image, disc, patch = disc_with_patch()
    box = boxed(disc, patch)
    alone = assist.box_fill(image, box)
    assert (alone & patch).sum() > 0.8 * patch.sum()      # the photo alone cannot tell the patch is not the object
    guided = assist.box_fill(image, box, prior=sure(disc), trust=1.0)
    assert (guided & patch).sum() < 0.1 * patch.sum() and iou(guided, disc) > 0.9


def test_an_untrusted_model_changes_nothing():
    image, disc, patch = disc_with_patch()
    box = boxed(disc, patch)
    wrong = sure(~disc)                                    # a model that has it backwards
    np.testing.assert_array_equal(assist.box_fill(image, box, prior=wrong, trust=0.0), assist.box_fill(image, box))
    marks = strokes(H, W, [(1, slice(78, 82), slice(80, 100)), (0, slice(10, 14), slice(150, 190))])
    probs = np.stack([1 - wrong, wrong], axis=2)
    np.testing.assert_array_equal(assist.scribble_fill(image, marks, 2, prior=probs, trust=[0.0, 0.0]),
                                  assist.scribble_fill(image, marks, 2))


def test_a_model_that_sees_no_such_object_in_the_box_leaves_the_box_to_the_photo():
    image, disc, patch = disc_with_patch()
    box = boxed(disc, patch)
    nothing = np.full((H, W), 0.01, np.float32)
    found = assist.box_fill(image, box, prior=nothing, trust=1.0)
    assert iou(found, disc | patch) > 0.8


def test_smart_fill_follows_a_trusted_model_where_the_strokes_cannot_tell():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 20, (H, W, 3)), 0, 255).astype(np.uint8)   # one grainy grey: no edge at all
    left = np.zeros((H, W), bool)
    left[:, :W // 2] = True
    marks = strokes(H, W, [(1, slice(70, 74), slice(20, 40)), (0, slice(70, 74), slice(160, 180))])
    alone = assist.scribble_fill(image, marks, 2)
    assert iou(alone == 1, left) < 0.8
    probs = np.stack([sure(~left), sure(left)], axis=2)
    guided = assist.scribble_fill(image, marks, 2, prior=probs, trust=[1.0, 1.0])
    assert iou(guided == 1, left) > 0.9
    assert (guided[marks == 1] == 1).all() and (guided[marks == 0] == 0).all()   # the strokes still win


def test_smart_fill_takes_a_model_of_many_classes():
    image, disc, _ = disc_with_patch()
    marks = strokes(H, W, [(1, slice(78, 82), slice(80, 100)), (0, slice(10, 14), slice(150, 190))])
    probs = np.full((H, W, 7), 0.1 / 6, np.float32)
    probs[..., 1] = np.where(disc, 0.9, 0.0)
    probs[..., 0] = np.where(disc, 0.1 / 6, 0.9)
    ids = assist.scribble_fill(image, marks, 7, prior=probs, trust=[1.0] * 7)
    assert iou(ids == 1, disc) > 0.9


@pytest.mark.parametrize("call, words", [
    (lambda im: assist.box_fill(im, (20, 20, 150, 140), prior=np.zeros((5, 5)), trust=1.0), "size"),
    (lambda im: assist.scribble_fill(im, strokes(H, W, [(1, slice(0, 5), slice(0, 5)), (0, slice(9, 12), slice(0, 5))]),
                                     2, prior=np.zeros((H, W, 2)), trust=[1.0]), "one number per class"),
    (lambda im: assist.scribble_fill(im, strokes(H, W, [(1, slice(0, 5), slice(0, 5)), (0, slice(9, 12), slice(0, 5))]),
                                     2, prior=np.zeros((H, 4, 2)), trust=[1.0, 1.0]), "size"),
])
def test_bad_model_input_gets_a_clear_error(call, words):
    image, _, _ = disc_with_patch()
    with pytest.raises(AssistError, match=words):
        call(image)


def test_trust_grows_with_validation_quality_from_nothing_to_full():
    assert priors.trust(None) == 0 and priors.trust(float("nan")) == 0
    assert priors.trust(priors.MIN_IOU) == 0 and priors.trust(0.2) == 0
    assert priors.trust(priors.FULL_IOU) == 1 and priors.trust(0.99) == 1
    middle = (priors.MIN_IOU + priors.FULL_IOU) / 2
    assert priors.trust(middle) == pytest.approx(0.5)


def test_the_page_sentence_names_the_run_and_why_a_class_was_left_out():
    prior = priors.ModelPrior("20261207-163936-678c", np.zeros((4, 4, 3), np.float32), (1.0, 0.8, 0.0),
                              (0.95, 0.85, 0.31), "07 Dec 16:39")
    said = priors.describe(prior, [1, 2], ["background", "person", "bag"])
    assert "Using the model from run 07 Dec 16:39 for person." in said
    assert "left out for bag (bag: validation IoU 0.31" in said
    assert prior.of(2) == (None, 0.0) and prior.of(7) == (None, 0.0)
    p, t = prior.of(1)
    assert p.shape == (4, 4) and t == 0.8


def test_a_trained_runs_prior_on_a_project_image(trained_project):
    from seg_core.ml.inference import Predictor

    rec = trained_project.list_images()[0]
    image = trained_project.load_image(rec)
    prior = priors.model_prior(trained_project, Predictor.from_run(trained_project), image)
    n = len(trained_project.classes)
    assert prior.probs.shape == (*image.shape[:2], n) and len(prior.trust) == len(prior.quality) == n
    assert prior.run_id == trained_project.runs.best().id
    assert all(t == priors.trust(q) for t, q in zip(prior.trust, prior.quality))
