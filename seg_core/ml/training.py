"""train(): one training run in this process, from a project's labeled images to checkpoints in its run folder.

The worker process (seg_core.ml.worker) calls it; tests and benchmarks call it directly.
"""

from __future__ import annotations

import json
import time

import keras

from seg_core.errors import TrainingError
from seg_core.files import atomic_write
from seg_core.ml import dataset, losses, models
from seg_core.ml.callbacks import RunMonitor, RunState, schedule
from seg_core.ml.config import PREVIEW_COUNT, TrainConfig
from seg_core.store import splits
from seg_core.store.project import Project
from seg_core.store.runs import RunSplit, RunStatus


def _configure(config: TrainConfig) -> None:
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    keras.utils.set_random_seed(config.seed)
    # Keras silently drops XLA while op determinism is on. XLA's compiled CPU step is deterministic on its own
    # (tests/test_training.py: the same seed gives the same losses); without XLA, TensorFlow's kernels need the flag.
    if config.xla:
        tf_config.disable_op_determinism()
    else:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(config.precision)


def run_split(project: Project, run_id: str, config: TrainConfig, resume: bool) -> RunSplit:
    """The images this run learns from and checks on, recorded on the run; a resumed run keeps its own."""
    if project.count_images(status="labeled") < 2:
        raise TrainingError("Training needs at least 2 labeled images (one to learn from, one to check on). "
                            "Paint more masks on the Annotate page.")
    recorded = project.runs.get(run_id).split
    split = recorded if resume and recorded is not None else splits.for_run(project, config.val_fraction, config.seed)
    if not split.train_ids or not split.val_ids:
        raise TrainingError("Training needs labeled images in both the train and the validation split; "
                            "change the split on the Data page.")
    project.runs.update(run_id, split=split)
    return split


def _compile(model, config: TrainConfig, num_classes: int, learning_rate: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=losses.get_loss(config.resolved_loss(num_classes)),
                  metrics=losses.keras_metrics(num_classes), jit_compile=config.xla)


def train(project: Project, run_id: str, config: TrainConfig, resume: bool = False,
          state: RunState | None = None, extra_callbacks: list | None = None) -> RunStatus:
    """Train in this process; returns the final status: completed or stopped.

    `state` lets a caller stop the run (state.term) or leave time uncounted (state.paused_s).
    """
    num_classes = len(project.classes)
    config.validate(num_classes)
    _configure(config)
    split = run_split(project, run_id, config, resume)
    train_items, val_items = dataset.examples(project, split.train_ids), dataset.examples(project, split.val_ids)
    spec = models.REGISTRY[config.model]
    channels = 3 if spec.pretrained else dataset.project_channels(project)
    size = (config.image_size, config.image_size)
    steps = config.steps_for(len(train_items))
    disk = project.layout.cache_dir / "train"
    train_ds = dataset.make_dataset(train_items, size, channels, config.batch_size, augment=config.augment,
                                    shuffle=True, repeat=True, seed=config.seed, disk_cache=disk,
                                    crop=None if spec.fixed_size else config.crop_size, resize=config.resize)
    val_ds = dataset.make_dataset(val_items, size, channels, config.batch_size, disk_cache=disk,
                                  resize=config.resize)

    files = project.layout.run(run_id)
    files.previews_dir.mkdir(parents=True, exist_ok=True)
    state = state if state is not None else RunState()
    state.started = time.time()
    if resume:
        last = files.checkpoint("last")
        if not last.exists():
            raise TrainingError(f"Run {run_id} has no last.keras to resume from; start a new run instead.")
        state.restore(json.loads(files.state.read_text()) if files.state.exists() else {})
        model = models.load_saved(last, compile=True)
        model.jit_compile = config.xla   # checkpoints saved before the setting existed compiled without XLA
        project.runs.delete_metrics_from(run_id, state.epoch)
    else:
        model = models.build(config, channels, num_classes)
        _compile(model, config, num_classes, config.learning_rate)
    atomic_write(files.config, json.dumps({
        **config.to_dict(), "channels": channels, "num_classes": num_classes,
        "classes": [c.to_dict() for c in project.classes], "train_images": len(train_items),
        "val_images": len(val_items), "summary": models.summarize(config, channels, num_classes)}, indent=2).encode())

    shown = val_items[:PREVIEW_COUNT]
    preview = next(iter(dataset.make_dataset(shown, size, channels, PREVIEW_COUNT, resize=config.resize)))
    boxes = [dataset.content_box(dataset.image_shape(e), size, config.resize) for e in shown]
    monitor = RunMonitor(project, run_id, config, state, steps, preview, preview_boxes=boxes)
    callbacks = [monitor, *schedule(config, monitor), *(extra_callbacks or [])]

    def fit(epochs: int) -> None:
        model.fit(train_ds, epochs=epochs, initial_epoch=state.epoch, steps_per_epoch=steps, validation_data=val_ds,
                  callbacks=callbacks, verbose=0, shuffle=False)

    freeze = config.freeze_encoder_epochs if spec.pretrained else 0
    if freeze and state.epoch < min(freeze, config.epochs):
        models.set_encoder_trainable(model, False)
        _compile(model, config, num_classes, float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        fit(min(freeze, config.epochs))
        if not model.stop_training and state.epoch < config.epochs:
            # Fine-tune everything with a gentler learning rate.
            models.set_encoder_trainable(model, True)
            _compile(model, config, num_classes, config.learning_rate / 10)
    if not model.stop_training and state.epoch < config.epochs:
        fit(config.epochs)
    return RunStatus.STOPPED if state.stopped_by == "user" else RunStatus.COMPLETED
