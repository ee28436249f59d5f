"""What a training run reports while it learns: metrics to the project, stop flag and time budget, checkpoints,
previews, and the learning-rate schedules."""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
from PIL import Image

from seg_core import viz
from seg_core import faults
from seg_core.durable import atomic_write, commit_temp, storage_guard, sync_file, temp_path
from seg_core.ml import losses
from seg_core.ml.config import TrainConfig
from seg_core.store.project import Project

MONITOR = "val_dice"
PROGRESS_EVERY_S = 1.5
STOP_POLL_S = 0.5


@dataclass
class RunState:
    """Where a run stands; state.json keeps the part a resumed run needs."""

    epoch: int = 0                      # epochs finished
    best_score: float | None = None
    best_epoch: int | None = None       # counted from 0
    elapsed_before: float = 0.0         # training seconds of the run's earlier sessions (resume)
    started: float = 0.0                # when this session's training clock started
    paused_s: float = 0.0               # time a caller (a benchmark scoring checkpoints) asks not to count
    term: bool = False                  # SIGTERM arrived: stop after this batch
    stopped_by: str | None = None       # "user" or "time" once the run was told to stop

    def saved(self, elapsed: float) -> dict:
        return {"epoch": self.epoch, "best_score": self.best_score, "best_epoch": self.best_epoch, "elapsed": elapsed}

    def restore(self, saved: dict) -> None:
        """Continue from what `saved()` wrote."""
        self.epoch, self.best_score, self.best_epoch = int(saved.get("epoch", 0)), saved.get("best_score"), saved.get("best_epoch")
        self.elapsed_before = float(saved.get("elapsed", 0.0))


def save_model(model, path: Path) -> None:
    """A checkpoint written whole beside its name, synced, then renamed in: a crash leaves the previous one."""
    tmp = temp_path(path, ".tmp.keras")   # Keras insists on the .keras suffix, so the temporary file keeps it
    try:
        faults.point("write", tmp)
        model.save(tmp)
        sync_file(tmp)
        commit_temp(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunMonitor(keras.callbacks.Callback):
    """Per batch: throttled progress rows and the stop checks. Per epoch: checkpoints, the epoch's metrics row
    (after its checkpoint, so a row always has one on disk), a preview picture, then state.json."""

    def __init__(self, project: Project, run_id: str, config: TrainConfig, state: RunState, steps: int,
                 preview: tuple | None = None, clock: Callable[[], float] = time.time,
                 preview_boxes: list[tuple[int, int, int, int]] | None = None, batch: int | None = None):
        """preview: a batch (images, masks) drawn each epoch; preview_boxes: where each image lies in its input
        (dataset.content_box), so a letterboxed image is shown without its mirrored bands; batch: images a step
        (the global batch of a distributed run; default the config's batch size)."""
        super().__init__()
        self.project, self.run_id, self.config, self.state, self.steps = project, run_id, config, state, steps
        self.files = project.layout.run(run_id)
        self.preview_batch = preview
        self.preview_boxes = preview_boxes
        self.classes = project.classes
        self.budget_s = config.time_budget_minutes * 60 if config.time_budget_minutes else None
        self.lr_scale = 1.0          # what the cosine schedule's rates are multiplied by (fine-tuning: less)
        self.clock = clock
        self.last_progress = self.last_poll = 0.0
        self.epoch_start = self.train_end = clock()
        self.batches = 0
        self.batch = batch or config.batch_size
        self.task, self.agree = None, None

    @property
    def chief(self) -> bool:
        return not self.task

    def join_cluster(self, task: int, agree: Callable[[bool], bool], scratch: Path | None) -> None:
        """Train as worker `task` of a cluster. Stop checks move to epoch ends, where `agree` (an all-reduce) makes
        every worker take the same decision; a worker other than the chief (task 0) keeps its checkpoints in
        `scratch` (all save, as TensorFlow's multi-worker guide asks) and writes nothing into the project."""
        self.task, self.agree = task, agree
        if scratch is not None:
            from seg_core.store.layout import RunLayout
            self.files = RunLayout(scratch)

    def elapsed(self) -> float:
        return self.state.elapsed_before + self.clock() - self.state.started - self.state.paused_s

    def should_stop(self) -> bool:
        if not self.chief:   # the chief decides on the stop flag and the time budget for all
            return self.state.term
        if self.state.term:
            self.state.stopped_by = "user"
        elif self.budget_s is not None and self.elapsed() >= self.budget_s:
            self.state.stopped_by = "time"
        elif self.clock() - self.last_poll >= STOP_POLL_S:
            self.last_poll = self.clock()
            if self.project.runs.stop_requested(self.run_id):
                self.state.stopped_by = "user"
        return self.state.stopped_by is not None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = self.clock()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.batches = batch + 1
        now = self.clock()
        if now - self.last_progress >= PROGRESS_EVERY_S and self.chief:
            self.last_progress = now
            rate = self.batches * self.batch / max(now - self.epoch_start, 1e-6)
            self.project.runs.add_metrics(self.run_id, self.state.epoch, {
                "loss": float(logs.get("loss", float("nan"))), "dice": float(logs.get("dice", float("nan"))),
                "step": self.batches, "steps": self.steps, "images_per_s": rate, "elapsed_s": self.elapsed()},
                batch=self.batches)
        if self.agree is None and self.should_stop():
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self.train_end = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.state.epoch = epoch + 1
        train_s = self.train_end - self.epoch_start if self.train_end > self.epoch_start else now - self.epoch_start
        row = {k: float(v) for k, v in (logs or {}).items() if np.isscalar(v) or getattr(v, "shape", None) == ()}
        row.update({"lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                    "images_per_s": self.batches * self.batch / max(train_s, 1e-6),
                    "epoch_s": now - self.epoch_start, "elapsed_s": self.elapsed()})
        with storage_guard(f"epoch {epoch + 1} could not be saved, so the run stopped; the checkpoints saved before "
                           "are kept"):
            self._save_epoch(epoch, row)
        stop = self.should_stop()
        if self.agree is not None:
            print(f"task {self.task}: epoch {epoch + 1} done, {self.batches} steps", flush=True)
            if self.agree(stop) and self.state.stopped_by is None:
                self.state.stopped_by = "user"   # another worker was stopped (SIGTERM): all stop together
            stop = self.state.stopped_by is not None
        if stop:
            self.model.stop_training = True

    def _save_epoch(self, epoch: int, row: dict) -> None:
        score = row.get(MONITOR)
        improved = score is not None and (self.state.best_score is None or score > self.state.best_score)
        if improved:
            save_model(self.model, self.files.checkpoint("best"))
            self.state.best_score, self.state.best_epoch = score, epoch
        save_model(self.model, self.files.checkpoint("last"))
        if not self.chief:
            return
        # The state file is what a resume starts from, so it is written last: a worker killed before it redoes
        # this epoch (its metrics row is deleted then), never skips one whose row was not written.
        self.project.runs.add_metrics(self.run_id, epoch, row)
        if improved:
            self.project.runs.update(self.run_id, best_score=score, best_epoch=epoch)
        if self.preview_batch is not None:
            atomic_write(self.files.preview(epoch + 1), self._preview_png())
        atomic_write(self.files.state, json.dumps(self.state.saved(row["elapsed_s"])).encode())

    def _preview_png(self) -> bytes:
        """Validation images in rows: the photo, its mask, the model's mask."""
        images, truth = self.preview_batch
        pred = np.asarray(losses.hard_labels(self.model(images, training=False))).astype(np.uint8)
        rows = []
        for i in range(int(images.shape[0])):
            top, left, h, w = self.preview_boxes[i] if self.preview_boxes else (0, 0, *images.shape[1:3])
            img = (np.asarray(images[i]) * 255).round().astype(np.uint8)[top:top + h, left:left + w]
            img = img[..., 0] if img.shape[-1] == 1 else img
            truth_i = np.asarray(truth[i])[top:top + h, left:left + w, 0]
            rows.append(np.concatenate([viz.overlay(img, None, self.classes),
                                        viz.overlay(img, truth_i, self.classes, 0.55, outline=True),
                                        viz.overlay(img, pred[i][top:top + h, left:left + w], self.classes, 0.55,
                                                    outline=True)],
                                       axis=1))
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        buf = io.BytesIO()
        Image.fromarray(np.concatenate(rows, axis=0)).save(buf, "PNG", compress_level=1)
        return buf.getvalue()


def schedule(config: TrainConfig, monitor: RunMonitor) -> list:
    """The learning-rate schedule and early stopping that the config asks for."""
    out: list = []
    if config.lr_schedule == "plateau":
        out.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.reduce_lr_factor,
                                                     patience=config.reduce_lr_patience,
                                                     min_lr=config.min_learning_rate, verbose=0))
    elif config.lr_schedule == "cosine":
        lr0, lo, total = config.learning_rate, config.min_learning_rate, max(config.epochs, 1)

        def cosine(epoch: int, lr: float) -> float:
            # With a time budget the schedule runs over the budget, whichever ends first.
            frac = epoch / total
            if monitor.budget_s:
                frac = max(frac, monitor.elapsed() / monitor.budget_s)
            top = lr0 * monitor.lr_scale
            return min(lo, top) + 0.5 * (top - min(lo, top)) * (1 + math.cos(math.pi * min(frac, 1.0)))

        out.append(keras.callbacks.LearningRateScheduler(cosine, verbose=0))
    if config.early_stopping_patience:
        out.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                                 patience=config.early_stopping_patience, verbose=0))
    return out
