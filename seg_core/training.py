"""TrainConfig and presets, train() with its callbacks; `python -m seg_core.training` is the worker process.

The worker writes everything a page shows (status, per-epoch metrics, throttled per-batch progress,
previews, checkpoints) to the project, and stops cleanly when the project's stop flag is set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seg_core.augment import AugmentConfig
from seg_core.errors import SegError, TrainingError
from seg_core.files import atomic_write
from seg_core.project import Project

LOSS_CHOICES = ("auto", "dice", "bce", "bce_dice", "ce", "sparse_ce", "ce_dice")
SCHEDULES = ("plateau", "cosine", "constant")
PRECISIONS = ("float32", "mixed_bfloat16")
MONITOR = "val_dice"
HEARTBEAT_S = 5.0
PROGRESS_EVERY_S = 1.5
STOP_POLL_S = 0.5
PREVIEW_COUNT = 2
# models.REGISTRY's names, here so that checking a config does not import Keras (seconds, in a page);
# tests/test_planning.py keeps the two in step.
MODEL_NAMES = ("unet", "fcn", "mobilenetv2-unet", "densenet121-unet")


@dataclass
class TrainConfig:
    model: str = "unet"
    image_size: int = 256
    crop_size: int | None = None           # train on random crops of this size (whole images at validation)
    base_filters: int = 16
    depth: int = 4
    dropout: float = 0.0
    batchnorm: bool = True
    upsampling: str = "transpose"
    epochs: int = 40
    batch_size: int = 8
    learning_rate: float = 1e-3
    lr_schedule: str = "plateau"
    loss: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.2
    early_stopping_patience: int = 10      # epochs without val dice gain; 0 = off
    reduce_lr_patience: int = 4
    reduce_lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    seed: int = 0
    time_budget_minutes: float | None = None
    precision: str = "float32"
    pretrained: bool = False               # ImageNet encoder weights, from the local Keras cache only
    freeze_encoder_epochs: int = 0
    steps_per_epoch: int | None = None     # default: one pass over the training images
    preset: str | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TrainingError(f"Unknown training settings: {', '.join(sorted(unknown))}.")
        values = dict(d)
        values["augment"] = AugmentConfig.from_dict(values.get("augment"))
        return cls(**values)

    def resolved_loss(self, num_classes: int) -> str:
        if self.loss != "auto":
            return self.loss
        return "bce_dice" if num_classes == 2 else "ce_dice"

    def validate(self, num_classes: int | None = None) -> "TrainConfig":
        problems = []
        if self.model not in MODEL_NAMES:
            problems.append(f"model must be one of {', '.join(MODEL_NAMES)}")
        if not 32 <= self.image_size <= 2048 or self.image_size % 2 ** self.depth:
            problems.append(f"image size must be 32..2048 and divisible by {2 ** self.depth} (depth {self.depth})")
        if self.crop_size is not None and (self.crop_size > self.image_size or self.crop_size % 2 ** self.depth
                                           or self.crop_size < 2 ** self.depth):
            problems.append(f"crop size must be at most the image size and divisible by {2 ** self.depth}")
        if not 1 <= self.depth <= 6:
            problems.append("depth must be 1..6")
        if not 2 <= self.base_filters <= 256:
            problems.append("filters must be 2..256")
        if not 1 <= self.epochs <= 10_000:
            problems.append("epochs must be 1..10000")
        if not 1 <= self.batch_size <= 512:
            problems.append("batch size must be 1..512")
        if not 0 < self.learning_rate <= 1:
            problems.append("learning rate must be above 0 and at most 1")
        if self.lr_schedule not in SCHEDULES:
            problems.append(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}")
        if self.loss not in LOSS_CHOICES:
            problems.append(f"loss must be one of {', '.join(LOSS_CHOICES)}")
        if num_classes and num_classes > 2 and self.loss in ("bce", "bce_dice"):
            problems.append("binary cross-entropy is for two classes; use ce or ce_dice")
        if not 0 <= self.dropout < 1:
            problems.append("dropout must be 0..0.9")
        if not 0 < self.val_fraction < 1:
            problems.append("validation fraction must be between 0 and 1")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.time_budget_minutes is not None and self.time_budget_minutes <= 0:
            problems.append("the time budget must be positive")
        if problems:
            raise TrainingError("Training settings are not valid: " + "; ".join(problems) + ".")
        return self


# Chosen with bench/time_to_quality.py and bench/train_speed.py on a 2-core CPU (README "Performance").
# Random crops keep the full 256 px resolution at a quarter (128) or half (192) of the compute per step.
PRESETS: dict[str, TrainConfig] = {
    "fast": TrainConfig(preset="fast", image_size=256, crop_size=128, base_filters=16, depth=4, epochs=40,
                        batch_size=8, learning_rate=3e-3, lr_schedule="cosine", early_stopping_patience=0,
                        augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True, brightness_contrast=False)),
    "balanced": TrainConfig(preset="balanced", image_size=256, crop_size=192, base_filters=16, depth=4, epochs=80,
                            batch_size=8, learning_rate=2e-3, lr_schedule="cosine", early_stopping_patience=20,
                            augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True, shift_scale_rotate=True,
                                                  brightness_contrast=True)),
    "quality": TrainConfig(preset="quality", image_size=256, base_filters=32, depth=4, epochs=150, batch_size=8,
                           learning_rate=1e-3, lr_schedule="plateau", early_stopping_patience=30, dropout=0.1,
                           augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True, shift_scale_rotate=True,
                                                 brightness_contrast=True, hsv=True, gamma=True)),
}
PRESET_NOTES = {
    "fast": "A first model in a few minutes: learns on 128 px crops of 256 px images. Checks your labels work.",
    "balanced": "The usual choice: larger crops, more augmentation, stops when it no longer improves.",
    "quality": "Twice the filters and long training with strong augmentation; for a model you will keep.",
}


def preset(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise TrainingError(f"Unknown preset '{name}'; choose one of {', '.join(PRESETS)}.")
    base = PRESETS[name]
    config = dataclasses.replace(base, **overrides)
    if base.crop_size and "crop_size" not in overrides and ("image_size" in overrides or "depth" in overrides):
        # Keep the preset's crop-to-image ratio at the new size (crops must stay divisible by 2**depth).
        step = 2 ** config.depth
        crop = round(config.image_size * base.crop_size / base.image_size / step) * step
        config.crop_size = crop if step <= crop < config.image_size else None
    return config


def run_dir(project: Project, run_id: str) -> Path:
    return project.runs_dir / run_id


def preview_paths(project: Project, run_id: str) -> list[Path]:
    """The run's per-epoch preview pictures, oldest first (epoch_0001.png is epoch 1)."""
    folder = run_dir(project, run_id) / "previews"
    return sorted(folder.glob("epoch_*.png")) if folder.is_dir() else []


def _configure_tf(seed: int, precision: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(precision)
    return keras, tf


def _split_examples(project: Project, config: TrainConfig):
    from seg_core import dataset

    if project.count_images(status="labeled") < 2:
        raise TrainingError("Training needs at least 2 labeled images (one to learn from, one to check on). "
                            "Paint more masks on the Annotate page.")
    if not dataset.examples(project, "val"):
        project.assign_splits(val_fraction=config.val_fraction, seed=config.seed)
    train_items, val_items = dataset.examples(project, "train"), dataset.examples(project, "val")
    if not train_items or not val_items:
        raise TrainingError("Training needs labeled images in both the train and the validation split; "
                            "change the split on the Data page.")
    return train_items, val_items


class _Heartbeat(threading.Thread):
    """Keeps the run's heartbeat fresh even while a long epoch runs inside TensorFlow."""

    def __init__(self, project: Project, run_id: str):
        super().__init__(daemon=True, name="heartbeat")
        self.project, self.run_id, self.done = project, run_id, threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            try:
                self.project.update_run(self.run_id, heartbeat_at=time.time())
            except Exception:
                pass  # a locked DB for a moment is fine; the next beat will land


def _make_callbacks(keras, tf, project: Project, run_id: str, config: TrainConfig, model, val_items, channels,
                    num_classes, state: dict, steps: int, signals: dict):
    from seg_core import dataset, viz

    out = run_dir(project, run_id)
    (out / "previews").mkdir(parents=True, exist_ok=True)
    classes = project.classes
    size = (config.image_size, config.image_size)
    preview = list(dataset.make_dataset(val_items[:PREVIEW_COUNT], size, channels, PREVIEW_COUNT).take(1))[0]
    budget_s = config.time_budget_minutes * 60 if config.time_budget_minutes else None

    def elapsed() -> float:
        # signals["paused_s"]: time a caller (a benchmark scoring checkpoints) asks not to count.
        return state["elapsed_before"] + time.time() - state["started"] - signals.get("paused_s", 0.0)

    class Monitor(keras.callbacks.Callback):
        """Metrics to the DB, stop flag and time budget, checkpoints, previews."""

        def __init__(self):
            super().__init__()
            self.last_progress = self.last_poll = 0.0
            self.epoch_start = self.train_end = time.time()
            self.batches = 0

        def _should_stop(self) -> bool:
            now = time.time()
            if signals.get("term"):
                state["stopped_by"] = "user"
                return True
            if budget_s is not None and elapsed() >= budget_s:
                state["stopped_by"] = "time"
                return True
            if now - self.last_poll >= STOP_POLL_S:
                self.last_poll = now
                if project.stop_requested(run_id):
                    state["stopped_by"] = "user"
                    return True
            return False

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.time()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches = batch + 1
            now = time.time()
            if now - self.last_progress >= PROGRESS_EVERY_S:
                self.last_progress = now
                rate = self.batches * config.batch_size / max(now - self.epoch_start, 1e-6)
                project.add_metrics(run_id, state["epoch"], {
                    "loss": float(logs.get("loss", float("nan"))), "dice": float(logs.get("dice", float("nan"))),
                    "step": self.batches, "steps": steps, "images_per_s": rate,
                    "elapsed_s": elapsed()}, batch=self.batches)
            if self._should_stop():
                self.model.stop_training = True

        def on_test_begin(self, logs=None):
            self.train_end = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            state["epoch"] = epoch + 1
            now = time.time()
            train_s = max(self.train_end - self.epoch_start, 1e-6) if self.train_end > self.epoch_start else now - self.epoch_start
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            row = {k: float(v) for k, v in logs.items() if np.isscalar(v) or getattr(v, "shape", None) == ()}
            row.update({"lr": lr, "images_per_s": self.batches * config.batch_size / train_s,
                        "epoch_s": now - self.epoch_start,
                        "elapsed_s": elapsed()})
            # Checkpoints first: an epoch row in the DB then always has its checkpoint on disk.
            score = row.get(MONITOR)
            improved = score is not None and (state["best_score"] is None or score > state["best_score"])
            if improved:
                state["best_score"], state["best_epoch"] = score, epoch
                _save_model(self.model, out / "best.keras")
            _save_model(self.model, out / "last.keras")
            state["elapsed"] = row["elapsed_s"]
            atomic_write(out / "state.json", json.dumps({k: state[k] for k in
                                                         ("epoch", "best_score", "best_epoch", "elapsed")}).encode())
            project.add_metrics(run_id, epoch, row)
            if improved:
                project.update_run(run_id, best_score=score, best_epoch=epoch)
            self._preview(epoch)
            if self._should_stop():
                self.model.stop_training = True

        def _preview(self, epoch: int) -> None:
            images, truth = preview
            probs = self.model(images, training=False)
            pred = keras.ops.convert_to_numpy(_hard(keras, probs))
            rows = []
            for i in range(int(images.shape[0])):
                img = (np.asarray(images[i]) * 255).round().astype(np.uint8)
                img = img[..., 0] if img.shape[-1] == 1 else img
                t = np.asarray(truth[i])[..., 0]
                rows.append(np.concatenate([viz.overlay(img, None, classes), viz.overlay(img, t, classes, 0.55),
                                            viz.overlay(img, pred[i].astype(np.uint8), classes, 0.55)], axis=1))
            from PIL import Image
            import io
            buf = io.BytesIO()
            Image.fromarray(np.concatenate(rows, axis=0)).save(buf, "PNG", compress_level=1)
            atomic_write(out / "previews" / f"epoch_{epoch + 1:04d}.png", buf.getvalue())

    callbacks = [Monitor()]
    if config.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.reduce_lr_factor,
                                                           patience=config.reduce_lr_patience,
                                                           min_lr=config.min_learning_rate, verbose=0))
    elif config.lr_schedule == "cosine":
        lr0, lo, total = config.learning_rate, config.min_learning_rate, max(config.epochs, 1)

        def cosine(epoch: int, lr: float) -> float:
            # With a time budget the schedule runs over the budget, whichever ends first.
            frac = epoch / total
            if budget_s:
                frac = max(frac, elapsed() / budget_s)
            return lo + 0.5 * (lr0 - lo) * (1 + math.cos(math.pi * min(frac, 1.0)))

        callbacks.append(keras.callbacks.LearningRateScheduler(cosine, verbose=0))
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                                       patience=config.early_stopping_patience, verbose=0))
    return callbacks


def _hard(keras, probs):
    if probs.shape[-1] == 1:
        return keras.ops.cast(probs[..., 0] >= 0.5, "uint8")
    return keras.ops.cast(keras.ops.argmax(probs, axis=-1), "uint8")


def _save_model(model, path: Path) -> None:
    # Keras insists on the .keras suffix, so the temporary file keeps it.
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def build_model(keras, config: TrainConfig, channels: int, num_classes: int):
    from seg_core import models

    kwargs = dict(base_filters=config.base_filters, dropout=config.dropout, batchnorm=config.batchnorm,
                  upsampling=config.upsampling)
    spec = models.REGISTRY[config.model]
    if spec.pretrained:
        kwargs["weights"] = "imagenet" if config.pretrained else None
        shape = (config.image_size, config.image_size, 3)
    else:
        kwargs["depth"] = config.depth
        shape = (None, None, channels)
    return models.get_model(config.model, shape, num_classes, **kwargs)


def _compile(keras, model, config: TrainConfig, num_classes: int, learning_rate: float) -> None:
    from seg_core import losses

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=losses.get_loss(config.resolved_loss(num_classes)),
                  metrics=losses.keras_metrics(num_classes))


def train(project: Project, run_id: str, config: TrainConfig, resume: bool = False,
          signals: dict | None = None, extra_callbacks: list | None = None) -> str:
    """Train in this process; returns the final status: completed or stopped."""
    signals = signals if signals is not None else {}
    num_classes = len(project.classes)
    config.validate(num_classes)
    keras, tf = _configure_tf(config.seed, config.precision)
    from seg_core import dataset, losses, models

    train_items, val_items = _split_examples(project, config)
    channels = 3 if models.REGISTRY[config.model].pretrained else dataset.project_channels(project)
    size = (config.image_size, config.image_size)
    steps = config.steps_per_epoch or max(1, math.ceil(len(train_items) / config.batch_size))
    crop = None if models.REGISTRY[config.model].fixed_size else config.crop_size
    train_ds = dataset.make_dataset(train_items, size, channels, config.batch_size, augment=config.augment,
                                    shuffle=True, repeat=True, seed=config.seed, crop=crop)
    val_ds = dataset.make_dataset(val_items, size, channels, config.batch_size)

    out = run_dir(project, run_id)
    out.mkdir(parents=True, exist_ok=True)
    state = {"epoch": 0, "best_score": None, "best_epoch": None, "elapsed_before": 0.0, "started": time.time(),
             "stopped_by": None, "elapsed": 0.0}
    if resume:
        last = out / "last.keras"
        if not last.exists():
            raise TrainingError(f"Run {run_id} has no last.keras to resume from; start a new run instead.")
        saved = json.loads((out / "state.json").read_text()) if (out / "state.json").exists() else {}
        model = keras.saving.load_model(last, custom_objects=losses.CUSTOM_OBJECTS, compile=True, safe_mode=True)
        state.update(epoch=int(saved.get("epoch", 0)), best_score=saved.get("best_score"),
                     best_epoch=saved.get("best_epoch"), elapsed_before=float(saved.get("elapsed", 0.0)))
        project.delete_metrics_from(run_id, state["epoch"])
    else:
        model = build_model(keras, config, channels, num_classes)
        _compile(keras, model, config, num_classes, config.learning_rate)
    with open(out / "config.json", "w") as f:
        json.dump({**config.to_dict(), "channels": channels, "num_classes": num_classes,
                   "classes": [c.to_dict() for c in project.classes], "train_images": len(train_items),
                   "val_images": len(val_items), "summary": models.summarize(
                       config.model, config.image_size, channels, num_classes, **_summary_kwargs(config))}, f, indent=2)

    callbacks = _make_callbacks(keras, tf, project, run_id, config, model, val_items, channels, num_classes,
                                state, steps, signals) + list(extra_callbacks or [])
    if state["epoch"] < config.epochs:
        freeze = config.freeze_encoder_epochs if models.REGISTRY[config.model].pretrained else 0
        if freeze and state["epoch"] < freeze:
            models.set_encoder_trainable(model, False)
            _compile(keras, model, config, num_classes, float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
            model.fit(train_ds, epochs=min(freeze, config.epochs), initial_epoch=state["epoch"], steps_per_epoch=steps,
                      validation_data=val_ds, callbacks=callbacks, verbose=0, shuffle=False)
            if not model.stop_training and state["epoch"] < config.epochs:
                # Fine-tune everything with a gentler learning rate.
                models.set_encoder_trainable(model, True)
                _compile(keras, model, config, num_classes, config.learning_rate / 10)
        if not model.stop_training and state["epoch"] < config.epochs:
            model.fit(train_ds, epochs=config.epochs, initial_epoch=state["epoch"], steps_per_epoch=steps,
                      validation_data=val_ds, callbacks=callbacks, verbose=0, shuffle=False)
    return "stopped" if state["stopped_by"] == "user" else "completed"


def _summary_kwargs(config: TrainConfig) -> dict:
    from seg_core import models

    kw = dict(base_filters=config.base_filters, dropout=config.dropout, batchnorm=config.batchnorm,
              upsampling=config.upsampling)
    if not models.REGISTRY[config.model].pretrained:
        kw["depth"] = config.depth
    return kw


def run_worker(project_path: str, run_id: str, resume: bool = False) -> int:
    """The worker process body: run status bookkeeping around train()."""
    project = Project(project_path)
    run = project.run(run_id)
    signals: dict = {}
    signal.signal(signal.SIGTERM, lambda *_: signals.__setitem__("term", True))
    project.update_run(run_id, status="running", pid=os.getpid(), started_at=run.started_at or time.time(),
                       heartbeat_at=time.time(), error=None, ended_at=None, stop_requested=0)
    beat = _Heartbeat(project, run_id)
    beat.start()
    try:
        config = TrainConfig.from_dict(run.config)
        status = train(project, run_id, config, resume=resume, signals=signals)
        project.update_run(run_id, status=status, ended_at=time.time())
        return 0
    except SegError as exc:
        project.update_run(run_id, status="failed", ended_at=time.time(), error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the run's status
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError) or "OOM" in str(exc) or "out of memory" in str(exc).lower():
            text = ("Training ran out of memory. Use a smaller image size, fewer filters or a smaller batch. "
                    f"({text})")
        project.update_run(run_id, status="failed", ended_at=time.time(), error=text)
        traceback.print_exc()
        return 1
    finally:
        beat.done.set()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seg_core.training", description="Seg Studio training worker")
    ap.add_argument("--project", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    return run_worker(args.project, args.run, args.resume)


if __name__ == "__main__":
    sys.exit(main())
