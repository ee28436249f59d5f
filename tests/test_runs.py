"""store/runs.py: typed run records and statuses, and a run a newer version wrote, listed as it is stored."""

from __future__ import annotations

import json
import time

import pytest

from helpers import labeled_project
from seg_core.errors import TrainingError
from seg_core.ml.config import TrainConfig, run_config
from seg_core.services import planning, review
from seg_core.store.runs import RunSplit, RunStatus


def test_runs_are_typed_records(tmp_path):
    p = labeled_project(tmp_path / "p")
    config = TrainConfig(preset="fast", epochs=3)
    run = p.runs.create(config.to_dict())
    assert run.status is RunStatus.QUEUED and run.active and run.config == config.to_dict() and run.split is None
    split = RunSplit("run", (1, 2, 3, 4), (5, 6))
    p.runs.update(run.id, status=RunStatus.RUNNING, split=split)
    again = p.runs.get(run.id)
    assert again.status == "running" and again.split == split and again.preset_name == "fast"
    assert f"{again.status}" == "running" and again.to_dict()["status"] == "running"
    p.runs.update(run.id, status=RunStatus.COMPLETED)
    assert p.runs.get(run.id).status.finished


def test_a_run_a_newer_version_wrote_is_listed_as_it_is_stored(tmp_path):
    p = labeled_project(tmp_path / "p")
    ours = p.runs.create(TrainConfig(preset="fast").to_dict())
    p.runs.update(ours.id, status=RunStatus.COMPLETED)
    newer = {**TrainConfig(preset="fast").to_dict(), "mixup": 0.2}
    with p.db.connection() as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")   # as a newer schema that allows the status would
        conn.execute("INSERT INTO runs (id, status, config, created_at) VALUES ('newer', 'paused', ?, ?)",
                     (json.dumps(newer), time.time() + 60))
        conn.execute("PRAGMA ignore_check_constraints = OFF")
    run, mine = p.runs.list()
    assert (run.id, mine.id) == ("newer", ours.id)
    assert run.status == "paused" and f"{run.status}" == "paused" and run.status.word == "paused"
    assert not run.active and not run.status.finished and run.to_dict()["status"] == "paused"
    assert run.config == newer and run.preset_name == "fast"
    # ml reads what this version knows of the settings; the worker that would train it refuses the rest.
    assert run_config(run) == TrainConfig(preset="fast")
    with pytest.raises(TrainingError, match="mixup"):
        TrainConfig.from_dict(run.config)
    # The Train page's history and the review page's run names show it as it is stored.
    assert planning.history_rows(p, [run])[0]["status"] == "paused"
    assert review.run_label(run).endswith("· paused (newer)")
    # Neither active nor finished: it blocks no new run.
    assert p.runs.create(TrainConfig().to_dict()).active
