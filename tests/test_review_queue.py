"""The review queue in seg_core: its order, Accept with every refusal a sentence that changes nothing, Fix and Skip
counted, and the share of a model's proposals accepted as they were."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.errors import DraftConflictError, MaskConflictError, NotFoundError
from seg_core.ml.inference import Predictor
from seg_core.services import review, review_queue, snapping


@pytest.fixture
def predicted(trained_project):
    snapping.predict_unlabeled(trained_project, Predictor.from_run(trained_project))
    return trained_project


def test_the_queue_is_least_sure_first_and_skipped_images_go_to_the_end(predicted):
    run = predicted.runs.best().id
    items = review_queue.queue(predicted, run)
    assert [i.image_id for i in items] == [r.image_id for r in review.annotate_next(predicted, run)]
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True) and len(items) == 2
    first, second = items[0].image_id, items[1].image_id
    assert [i.image_id for i in review_queue.queue(predicted, run, [first])] == [second, first]


def test_accept_saves_the_proposal_as_the_mask_and_counts_it(predicted):
    run = predicted.runs.best().id
    head = review_queue.queue(predicted, run)[0].image_id
    proposal = predicted.predictions.get(head).ids
    rec, started = review_queue.accept(predicted, run, head, author="ann")
    assert (rec.status, rec.mask_version, rec.mask_source, rec.mask_updated_by) == ("labeled", 1, "accepted", "ann")
    assert np.array_equal(predicted.masks.load(head), proposal) and started is None
    assert [i.image_id for i in review_queue.queue(predicted, run)] != [head], "it left the queue"
    other = review_queue.queue(predicted, run)[0].image_id
    review_queue.fixed(predicted, run, other)
    review_queue.skip(predicted, run, other)
    tally, sentence = review_queue.acceptance(predicted, run)
    assert (tally.accepted, tally.fixed, tally.skipped, tally.rate) == (1, 1, 1, 0.5)
    assert sentence == "This model's proposals accepted as they were: 1 of 2 (50%); 1 opened to fix."


def test_accept_is_refused_with_a_sentence_where_it_would_replace_work(predicted):
    run = predicted.runs.best().id
    first, second = (i.image_id for i in review_queue.queue(predicted, run))
    rec = predicted.image(first)   # another tab saved a mask since this queue showed the image
    theirs = np.zeros((rec.height, rec.width), np.uint8)
    predicted.masks.save(first, theirs, 0, author="bob")
    with pytest.raises(MaskConflictError, match="was labeled by bob since this queue showed it"):
        review_queue.accept(predicted, run, first)
    assert np.array_equal(predicted.masks.load(first), theirs) and predicted.image(first).mask_version == 1

    rec = predicted.image(second)   # unsaved strokes on the Annotate page
    predicted.drafts.save(second, np.ones((rec.height, rec.width), np.uint8), 0)
    with pytest.raises(DraftConflictError, match="has unsaved strokes on the Annotate page"):
        review_queue.accept(predicted, run, second)
    assert predicted.image(second).status == "unlabeled" and predicted.drafts.get(second) is not None
    predicted.drafts.discard(second)
    with pytest.raises(NotFoundError, match="gone or was replaced by another model's"):
        review_queue.accept(predicted, "another-run", second)
    assert predicted.image(second).status == "unlabeled"
    assert review_queue.acceptance(predicted, run)[0].decided == 0, "refusals count as nothing"


def test_before_any_judgement_the_rate_says_so(predicted):
    tally, sentence = review_queue.acceptance(predicted, predicted.runs.best().id)
    assert tally.rate is None and sentence == "No proposal of this model has been accepted or fixed yet."
