"""Keep learning: a run started from another run's model (warm start), the rule for which model is used, and the
setting that starts a short run after every few saved masks."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from seg_core.errors import ProjectError
from seg_core.ml import models, warm
from seg_core.ml.config import run_config
from seg_core.services import jobs, keep_learning, planning
from seg_core.store.runs import RunStatus
from test_training import run_inline


def _weights(model) -> list[np.ndarray]:
    return [w for layer in model.layers for w in layer.get_weights()]


def _repaint(project, image_id: int) -> None:
    rec = project.image(image_id)
    ids = project.masks.load(rec) if rec.status == "labeled" else np.zeros((rec.height, rec.width), np.uint8)
    ids = ids.copy()
    ids[:5, :5] = 1 - ids[0, 0]
    project.masks.save(image_id, ids, rec.mask_version)


def test_a_warm_start_begins_with_the_earlier_runs_weights(trained_project):
    run = trained_project.runs.list()[0]
    saved = models.load_saved(trained_project.layout.run(run.id).checkpoint("best"), compile=False)
    model = models.build(run_config(run), 3, 2)
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(model), _weights(saved)))
    copied = warm.start_from(model, trained_project, run.id, [c.name for c in trained_project.classes])
    assert copied == sum(1 for layer in model.layers if layer.weights)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(model), _weights(saved)))


def test_a_class_added_since_starts_the_answering_layer_fresh(trained_project):
    run = trained_project.runs.list()[0]
    trained_project.add_class("puddle")
    saved = models.load_saved(trained_project.layout.run(run.id).checkpoint("best"), compile=False)
    model = models.build(run_config(run), 3, 3)
    copied = warm.start_from(model, trained_project, run.id, [c.name for c in trained_project.classes])
    head = [layer for layer in model.layers if layer.name in warm.HEAD and layer.weights]
    assert head and copied == sum(1 for layer in model.layers if layer.weights) - len(head)
    body = [layer for layer in model.layers if layer.weights and layer.name not in warm.HEAD]
    src = [layer for layer in saved.layers if layer.weights and layer.name not in warm.HEAD]
    assert all(np.array_equal(a, b) for x, y in zip(body, src) for a, b in zip(x.get_weights(), y.get_weights()))


def test_a_warm_run_scores_its_start_and_is_used_only_if_it_beats_it(trained_project):
    first = trained_project.runs.list()[0]
    config = dataclasses.replace(run_config(first), warm_start=first.id, keep_learning=True, epochs=1)
    second = run_inline(trained_project, config)
    assert second.status == RunStatus.COMPLETED and second.start_score is not None
    assert second.improved == (second.best_score > second.start_score)
    # Which model is used follows the rule, whatever this tiny run scored:
    trained_project.runs.update(second.id, start_score=second.best_score - 0.01)
    assert trained_project.runs.best().id == second.id, "it beat the model it started from: it stands in for it"
    trained_project.runs.update(second.id, start_score=second.best_score + 0.01)
    assert trained_project.runs.best().id == first.id, "worse than its start: kept, never used"
    [row] = [r for r in planning.history_rows(trained_project, trained_project.runs.list()) if r["run"] == second.id]
    assert row["preset"].startswith("keep learning: ")
    assert "not better than the model it started from" in row["what happened"]
    assert "kept in the history, not used" in row["what happened"]


def test_the_setting_refuses_bad_values_and_changes_nothing(trained_project):
    assert keep_learning.setting(trained_project) == keep_learning.Setting(False, 5, 2.0)
    keep_learning.change(trained_project, on=True, every=3, minutes=1.5)
    for bad in ({"every": 0}, {"every": 101}, {"minutes": 0.1}, {"minutes": 61}):
        with pytest.raises(ProjectError, match="Keep learning trains after|keep-learning run may take"):
            keep_learning.change(trained_project, **bad)
    assert keep_learning.setting(trained_project) == keep_learning.Setting(True, 3, 1.5)


def test_after_every_few_saved_masks_a_short_run_starts_from_the_current_model(trained_project):
    best = trained_project.runs.best()
    labeled = best.split.train_ids
    _repaint(trained_project, labeled[0])
    assert keep_learning.after_save(trained_project) is None, "off by default"
    keep_learning.change(trained_project, on=True, every=2, minutes=0.5)
    assert keep_learning.after_save(trained_project) is None
    assert keep_learning.describe(trained_project) == ("Keep learning is on: 1 of 2 changed or new masks saved since "
                                                       "the last run; then it trains for 0.5 minutes.")
    _repaint(trained_project, labeled[1])
    said = keep_learning.after_save(trained_project)
    try:
        assert said == ("Keep learning started a 0.5-minute run (from the current model) on 2 changed or new masks; "
                        "see it on the Train page.")
        run = trained_project.runs.list()[0]
        assert run.active and run.config["keep_learning"] and run.config["warm_start"] == best.id
        assert run.config["time_budget_minutes"] == 0.5
        assert run.config["learning_rate"] == pytest.approx(best.config["learning_rate"] * keep_learning.FINE_TUNE_LR)
        _repaint(trained_project, labeled[2])
        _repaint(trained_project, labeled[3])
        assert keep_learning.after_save(trained_project) is None, "never two runs at once"
        assert keep_learning.describe(trained_project) == "Keep learning is on, and training now."
    finally:
        jobs.stop(trained_project, trained_project.runs.list()[0].id, wait_s=1)   # ended at once


def test_a_failed_keep_learning_run_pauses_it_until_a_person_starts_one(trained_project):
    keep_learning.change(trained_project, on=True, every=1)
    best = trained_project.runs.best()
    failed = trained_project.runs.create(
        dataclasses.replace(run_config(best), keep_learning=True, warm_start=best.id).to_dict())
    trained_project.runs.update(failed.id, status="failed", error="Training ran out of memory.")
    _repaint(trained_project, best.split.train_ids[0])
    assert keep_learning.after_save(trained_project) is None
    assert keep_learning.describe(trained_project) == (
        "Keep learning is paused: its last run failed (Training ran out of memory.). It goes on after you start a "
        "run yourself.")
    mine = trained_project.runs.create(best.config)   # a person's run, finished: keep learning goes on
    trained_project.runs.update(mine.id, status="stopped")
    assert keep_learning.describe(trained_project).startswith("Keep learning is on: ")


def test_a_chain_of_keep_learning_runs_keeps_the_gentler_rate_without_compounding_it(trained_project):
    first = trained_project.runs.best()
    config = keep_learning._config(trained_project, trained_project.runs.list(), 1.0)
    assert config.learning_rate == pytest.approx(first.config["learning_rate"] * keep_learning.FINE_TUNE_LR)
    warm_run = trained_project.runs.create(config.to_dict())
    trained_project.runs.update(warm_run.id, status="completed", best_score=first.best_score + 0.01,
                                start_score=first.best_score, best_epoch=0)
    files = trained_project.layout.run
    shutil.copy(files(first.id).checkpoint("best"), files(warm_run.id).checkpoint("best"))
    assert trained_project.runs.best().id == warm_run.id
    again = keep_learning._config(trained_project, trained_project.runs.list(), 1.0)
    assert again.warm_start == warm_run.id and again.learning_rate == pytest.approx(config.learning_rate)


def test_keep_learnings_own_first_model_is_fine_tuned_at_the_gentler_rate(trained_project):
    first = trained_project.runs.best()
    cold = dataclasses.replace(run_config(first), keep_learning=True, warm_start=None)   # as keep learning starts one
    own = trained_project.runs.create(cold.to_dict())
    trained_project.runs.update(own.id, status="completed", best_score=first.best_score + 0.01, best_epoch=0)
    files = trained_project.layout.run
    shutil.copy(files(first.id).checkpoint("best"), files(own.id).checkpoint("best"))
    assert trained_project.runs.best().id == own.id
    config = keep_learning._config(trained_project, trained_project.runs.list(), 1.0)
    assert config.warm_start == own.id
    assert config.learning_rate == pytest.approx(cold.learning_rate * keep_learning.FINE_TUNE_LR), \
        "trained from scratch at the preset's rate: its fine-tuning takes the gentler one"
