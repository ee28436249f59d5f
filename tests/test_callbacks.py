"""The training run's callback on its own, driven by hand with a tiny model and a fake clock (no fit())."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image

from seg_core.ml import losses, models
from seg_core.ml.callbacks import PROGRESS_EVERY_S, RunMonitor, RunState, schedule
from seg_core.ml.config import TrainConfig
from seg_core.services import demo


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def setup(workspace):
    project = demo.create_demo_project(workspace / "d", count=4, unlabeled=0)
    config = TrainConfig(image_size=32, base_filters=4, depth=2, epochs=5, batch_size=2, time_budget_minutes=1,
                         lr_schedule="cosine")
    model = models.build(config, 3, 2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.get_loss("bce_dice"))
    run = project.runs.create(config.to_dict())
    clock = Clock()
    state = RunState(started=clock())
    preview = (np.random.default_rng(0).random((2, 32, 32, 3), np.float32), np.zeros((2, 32, 32, 1), np.uint8))
    monitor = RunMonitor(project, run.id, config, state, steps=4, preview=preview, clock=clock)
    monitor.set_model(model)
    return project, run.id, monitor, state, clock


def test_progress_rows_are_throttled_and_count_the_batches(setup):
    project, run_id, monitor, state, clock = setup
    monitor.on_epoch_begin(0)
    for batch in range(4):
        clock.t += PROGRESS_EVERY_S / 2
        monitor.on_train_batch_end(batch, {"loss": 0.5, "dice": 0.25})
    progress = project.runs.latest_progress(run_id)
    assert progress["step"] == 3 and progress["steps"] == 4 and progress["dice"] == 0.25
    with project.db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM metrics WHERE batch IS NOT NULL").fetchone()[0] == 2
    assert not monitor.model.stop_training and state.stopped_by is None


def test_an_epoch_saves_checkpoints_before_its_row_and_keeps_the_best(setup):
    project, run_id, monitor, state, clock = setup
    files = project.layout.run(run_id)
    for epoch, val_dice in enumerate((0.4, 0.6, 0.5)):
        monitor.on_epoch_begin(epoch)
        clock.t += 5
        monitor.on_epoch_end(epoch, {"loss": 1.0 - epoch / 10, "val_dice": val_dice})
        if epoch == 1:
            best_bytes = files.checkpoint("best").read_bytes()
    run = project.runs.get(run_id)
    assert (run.best_score, run.best_epoch) == (pytest.approx(0.6), 1)
    assert files.checkpoint("best").read_bytes() == best_bytes   # epoch 3 was worse: best.keras kept
    assert files.checkpoint("last").exists()
    assert json.loads(files.state.read_text()) == {"epoch": 3, "best_score": pytest.approx(0.6), "best_epoch": 1,
                                                   "elapsed": pytest.approx(15.0)}
    rows = project.runs.epoch_metrics(run_id)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[2]["lr"] == pytest.approx(1e-3)
    assert [p.name for p in files.previews()] == ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    assert Image.open(files.previews()[0]).size == (3 * 32, 2 * 32)   # photo | mask | model, one row an image


def test_the_state_file_a_resume_starts_from_is_written_after_the_epoch_row(setup, monkeypatch):
    """A worker that dies between writing the two must redo that epoch on resume, not skip its missing row."""
    project, run_id, monitor, state, clock = setup
    files = project.layout.run(run_id)
    monitor.on_epoch_begin(0)
    monitor.on_epoch_end(0, {"loss": 0.9, "val_dice": 0.4})

    def dies(*args, **kwargs):
        raise KeyboardInterrupt   # as a kill there would: nothing after it runs

    monkeypatch.setattr(project.runs, "add_metrics", dies)
    monitor.on_epoch_begin(1)
    with pytest.raises(KeyboardInterrupt):
        monitor.on_epoch_end(1, {"loss": 0.8, "val_dice": 0.5})
    assert json.loads(files.state.read_text())["epoch"] == 1
    assert [r["epoch"] for r in project.runs.epoch_metrics(run_id)] == [0]


def test_a_resumed_state_continues_the_clock_and_the_best_score(setup):
    _, _, monitor, state, clock = setup
    state.restore({"epoch": 2, "best_score": 0.7, "best_epoch": 1, "elapsed": 50.0})
    clock.t += 5
    assert monitor.elapsed() == pytest.approx(55.0) and (state.epoch, state.best_score) == (2, 0.7)
    state.paused_s = 3.0
    assert monitor.elapsed() == pytest.approx(52.0)


@pytest.mark.parametrize("cause", ["budget", "stop flag", "sigterm"])
def test_each_way_to_stop_ends_after_the_batch_and_says_why(setup, cause):
    project, run_id, monitor, state, clock = setup
    if cause == "budget":
        clock.t += 61
    elif cause == "stop flag":
        project.runs.request_stop(run_id)
        clock.t += 1
    else:
        state.term = True
    monitor.on_train_batch_end(0, {"loss": 0.5})
    assert monitor.model.stop_training
    assert state.stopped_by == ("time" if cause == "budget" else "user")


def test_the_cosine_schedule_follows_the_time_budget(setup):
    _, _, monitor, _, clock = setup
    cosine = schedule(monitor.config, monitor)[0]
    start = cosine.schedule(0, 1e-3)
    clock.t += 30                                   # half the one-minute budget, still epoch 0
    half = cosine.schedule(0, 1e-3)
    assert start == pytest.approx(1e-3) and half == pytest.approx((1e-3 + 1e-5) / 2)


def test_fine_tuning_keeps_its_gentler_rate_under_the_cosine_schedule(setup):
    """After a frozen encoder's epochs the whole network learns at a tenth of the rate: the schedule must not put
    the full rate back at the next epoch."""
    _, _, monitor, _, clock = setup
    cosine = schedule(monitor.config, monitor)[0]
    monitor.lr_scale = 0.1
    assert cosine.schedule(0, 1e-4) == pytest.approx(1e-4)
    clock.t += 60                                   # the budget's end
    assert cosine.schedule(2, 1e-4) == pytest.approx(1e-5)
