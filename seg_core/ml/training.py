"""train(): one training run in this process, from a project's labeled images to checkpoints in its run folder.

The worker process (seg_core.ml.worker) calls it; tests and benchmarks call it directly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from seg_core.errors import TrainingError
from seg_core.durable import atomic_write
from seg_core.ml import dataset, distribute, losses, models, warm
from seg_core.ml.callbacks import MONITOR, RunMonitor, RunState, schedule
from seg_core.ml.config import FINE_TUNE_LR_SCALE, FROZEN_BUDGET_SHARE, PREVIEW_COUNT, TrainConfig, require_labeled
from seg_core.ml.distribute import Plan
from seg_core.store.project import Project
from seg_core.store.records import ImageStatus
from seg_core.store.runs import RunSplit, RunStatus


def _configure(config: TrainConfig, plan: Plan) -> None:
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    keras.utils.set_random_seed(config.seed)
    # Keras silently drops XLA while op determinism is on. XLA's compiled CPU step is deterministic on its own
    # (tests/test_training.py: the same seed gives the same losses); without XLA, TensorFlow's kernels need the flag.
    if plan.xla(config.xla):
        tf_config.disable_op_determinism()
    else:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(plan.precision(config.precision))


def run_split(project: Project, run_id: str, config: TrainConfig, resume: bool, chief: bool = True) -> RunSplit:
    """The images this run learns from and checks on, recorded on the run; a resumed run keeps its own, and a
    worker that is not the chief takes the chief's."""
    if not chief:
        return project.runs.get(run_id).split
    require_labeled(project.count_images(status=ImageStatus.LABELED))
    recorded = project.runs.get(run_id).split
    split = recorded if resume and recorded is not None else project.splits.for_run(config.val_fraction, config.seed)
    if not split.train_ids or not split.val_ids:
        raise TrainingError("Training needs labeled images in both the train and the validation split; "
                            "change the split on the Data page.")
    if split.masks is None or not project.lineage.kept(run_id, split.masks):   # a resumed run keeps its masks
        split = dataclasses.replace(split, masks=project.lineage.keep(run_id, split.train_ids + split.val_ids))
    project.runs.update(run_id, split=split)
    return split


def for_devices(config: TrainConfig, plan: Plan, channels: int, num_classes: int, train_images: int) -> TrainConfig:
    """The settings this process trains with: on one machine's GPUs the batch grown to their memory and the
    learning rate with it (distribute.py's batch rule); elsewhere the run's own."""
    if not plan.gpus or plan.cluster is not None or not config.batch_to_memory:
        return config
    fixed = models.REGISTRY[config.model].fixed_size
    size = config.crop_size if config.crop_size and not fixed else config.image_size
    per_image = models.train_bytes_per_image(config, size, channels, num_classes)
    grown = distribute.memory_batch(config.batch_size, per_image, distribute.gpu_memory_bytes(), train_images,
                                    plan.local_replicas)
    if grown == config.batch_size:
        return config
    factor = grown / config.batch_size
    print(f"batch {config.batch_size} -> {grown} per GPU (it fits in their memory), "
          f"learning rate x{math.sqrt(factor):.2f}", flush=True)
    return dataclasses.replace(config, batch_size=grown, learning_rate=config.learning_rate * math.sqrt(factor))


def _compile(model, config: TrainConfig, num_classes: int, learning_rate: float, xla: bool | None = None) -> None:
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=losses.get_loss(config.resolved_loss(num_classes)),
                  metrics=losses.keras_metrics(num_classes), jit_compile=config.xla if xla is None else xla)
    _build_optimizer(model)


def _build_optimizer(model) -> None:
    """Create the optimizer's slots now, in the caller's strategy scope. Keras otherwise creates them inside the
    first traced train step, and TensorFlow then traces that step a second time: for a deep encoder that doubles
    the pause before the first epoch."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


class _Thaw(keras.callbacks.Callback):
    """Ends the frozen-encoder epochs once they have had their share of a time budget: on a slow CPU the epochs a
    config names could take all of it, and the encoder would never adapt to the project's images."""

    def __init__(self, monitor: RunMonitor):
        super().__init__()
        self.monitor, self.early = monitor, False

    def on_epoch_end(self, epoch, logs=None):
        budget = self.monitor.budget_s
        if budget and self.monitor.elapsed() >= FROZEN_BUDGET_SHARE * budget and not self.model.stop_training:
            self.early = self.model.stop_training = True


def train(project: Project, run_id: str, config: TrainConfig, resume: bool = False,
          state: RunState | None = None, extra_callbacks: list | None = None, plan: Plan | None = None) -> RunStatus:
    """Train in this process; returns the final status: completed or stopped.

    `state` lets a caller stop the run (state.term) or leave time uncounted (state.paused_s). `plan` (ml/distribute.py)
    says which devices and workers share the run; default this process's CPU, as one process always trained.
    A worker that is not a cluster's chief trains its share and writes nothing into the project.
    """
    policy = keras.mixed_precision.global_policy()
    try:
        return _train(project, run_id, config, resume, state, extra_callbacks, plan)
    finally:
        # The run's precision is the run's: models a caller builds afterwards in this process get the caller's own.
        keras.mixed_precision.set_global_policy(policy)


@dataclass
class _Run:
    """What this process trains with, settled before the first batch."""
    config: TrainConfig          # the run's settings as this process's devices train them (for_devices)
    plan: Plan
    strategy: object             # the tf.distribute strategy, or None for the default one
    xla: bool                    # whether the step is compiled by XLA on these devices
    spec: models.ModelSpec
    classes: list
    scheme: int
    channels: int
    devices: str                 # the run's line: what it trains on and computes in
    train_items: list
    val_items: list
    batch: int                   # the global batch: every replica's together
    steps: int                   # batches an epoch
    val_steps: int | None        # a cluster's whole global batches of validation; None: one pass

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def size(self) -> tuple[int, int]:
        return self.config.image_size, self.config.image_size


def _prepare(project: Project, run_id: str, config: TrainConfig, resume: bool, plan: Plan) -> _Run:
    """The settings checked, the split made (or taken), the strategy and devices set up, the batch sized."""
    scheme, classes = project.class_scheme.current(), project.classes   # recorded: ml/class_map.py reads them
    config.validate(len(classes))
    spec = models.REGISTRY[config.model]
    if config.xla != config.step_xla:
        config = dataclasses.replace(config, xla=False)
    # The split first: a cluster's other workers wait for the chief's, while the chief's strategy waits for them.
    split = run_split(project, run_id, config, resume, plan.chief)
    strategy = plan.make_strategy()   # before any other TensorFlow work, as MultiWorkerMirroredStrategy needs
    _configure(config, plan)
    train_items, val_items = dataset.run_examples(project, run_id, split)
    channels = 3 if spec.pretrained else dataset.project_channels(project)
    asked = config.batch_size
    config = for_devices(config, plan, channels, len(classes), len(train_items))
    devices = plan.describe(config.batch_size if config.batch_size != asked else None,
                            plan.precision(config.precision))   # the run's line says what it computes in
    if plan.chief:
        project.runs.update(run_id, devices=devices)
    batch = plan.global_batch(config.batch_size)
    # A cluster validates on whole global batches (the images repeated to fill the last one): a worker whose share
    # of a short last batch were empty would average a loss over no pixels.
    val_steps = math.ceil(len(val_items) / batch) if plan.cluster else None
    return _Run(config, plan, strategy, plan.xla(config.xla), spec, classes, scheme, channels, devices, train_items,
                val_items, batch, config.steps_for(len(train_items), batch), val_steps)


def _datasets(project: Project, run: _Run, scratch: Path | None):
    """The training batches (endless, augmented, shuffled) and the validation ones, cached on disk: in the
    project's cache, or in `scratch` on a cluster's worker that is not the chief."""
    config = run.config
    disk = project.layout.training_cache_dir if scratch is None else scratch / "cache"
    train_ds = dataset.make_dataset(run.train_items, run.size, run.channels, run.batch, augment=config.augment,
                                    shuffle=True, repeat=True, seed=config.seed, disk_cache=disk,
                                    crop=None if run.spec.fixed_size else config.crop_size, resize=config.resize)
    val_ds = dataset.make_dataset(run.val_items, run.size, run.channels, run.batch, disk_cache=disk,
                                  resize=config.resize, repeat=run.val_steps is not None)
    return train_ds, val_ds


def _model(project: Project, run_id: str, run: _Run, state: RunState, resume: bool):
    """The compiled model in the strategy's scope: a resumed run's last checkpoint (and its state), else a new
    network, from a warm start's model where the run has one."""
    config, files = run.config, project.layout.run(run_id)
    with run.plan.scope(run.strategy):
        if not resume:
            model = models.build(config, run.channels, run.num_classes)
            if config.warm_start:
                warm.start_from(model, project, config.warm_start, [c.name for c in run.classes])
            _compile(model, config, run.num_classes, config.learning_rate, run.xla)
            return model
        last = files.checkpoint("last")
        if not last.exists():
            raise TrainingError(f"Run {run_id} has no last.keras to resume from; start a new run instead.")
        state.restore(json.loads(files.state.read_text()) if files.state.exists() else {})
        model = models.load_saved(last, compile=True)
        _build_optimizer(model)
        model.jit_compile = run.xla   # checkpoints saved before the setting existed compiled without XLA
        if run.plan.chief:
            project.runs.delete_metrics_from(run_id, state.epoch)
        return model


def _record_config(project: Project, run_id: str, run: _Run) -> None:
    """The run's config.json: its settings as trained, with what a model needs to be read back and explained."""
    atomic_write(project.layout.run(run_id).config, json.dumps({
        **run.config.to_dict(), "channels": run.channels, "num_classes": run.num_classes,
        "classes": [c.to_dict() for c in run.classes], "class_scheme": run.scheme,
        "train_images": len(run.train_items), "val_images": len(run.val_items), "devices": run.devices,
        "global_batch": run.batch, "summary": models.summarize(run.config, run.channels, run.num_classes)},
        indent=2).encode())


def _monitor(project: Project, run_id: str, run: _Run, state: RunState, scratch: Path | None) -> RunMonitor:
    """The callback that records epochs, checkpoints and previews (on the chief), and stops the run when asked."""
    preview, boxes = None, None
    if run.plan.chief:
        shown = run.val_items[:PREVIEW_COUNT]
        preview = next(iter(dataset.make_dataset(shown, run.size, run.channels, PREVIEW_COUNT,
                                                 resize=run.config.resize)))
        boxes = [dataset.content_box(dataset.image_shape(e), run.size, run.config.resize) for e in shown]
    monitor = RunMonitor(project, run_id, run.config, state, run.steps, preview, preview_boxes=boxes,
                         batch=run.batch)
    if run.strategy is not None and run.plan.cluster is not None:
        monitor.join_cluster(run.plan.cluster.task, distribute.any_worker(run.strategy), scratch)
    return monitor


def _fit(model, run: _Run, state: RunState, monitor: RunMonitor, callbacks: list, train_ds, val_ds) -> None:
    """Fit to the run's last epoch: a pretrained encoder first stays frozen for its epochs, then everything is
    fine-tuned at a gentler learning rate."""
    config, plan = run.config, run.plan

    def fit(epochs: int, more: list | None = None) -> None:
        if plan.cluster is not None:
            distribute.build_before_fit(model, run.strategy, train_ds)
        model.fit(train_ds, epochs=epochs, initial_epoch=state.epoch, steps_per_epoch=run.steps,
                  validation_data=val_ds, callbacks=callbacks + (more or []), verbose=0, shuffle=False,
                  validation_steps=run.val_steps)

    def recompile(trainable: bool, learning_rate: float) -> None:
        with plan.scope(run.strategy):
            models.set_encoder_trainable(model, trainable)
            _compile(model, config, run.num_classes, learning_rate, run.xla)

    freeze = config.freeze_encoder_epochs if run.spec.pretrained and config.pretrained else 0
    if freeze:
        monitor.lr_scale = FINE_TUNE_LR_SCALE    # a resumed run past its frozen epochs goes on fine-tuning
    if freeze and state.epoch < min(freeze, config.epochs):
        monitor.lr_scale = 1.0
        recompile(False, float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        thaw = _Thaw(monitor)   # a cluster's workers must thaw together: they keep to the epochs
        fit(min(freeze, config.epochs), [thaw] if plan.cluster is None else [])
        if (not model.stop_training or thaw.early) and state.stopped_by is None and state.epoch < config.epochs:
            # Fine-tune everything with a gentler learning rate (the schedule's too).
            monitor.lr_scale = FINE_TUNE_LR_SCALE
            recompile(True, config.learning_rate * FINE_TUNE_LR_SCALE)
            model.stop_training = False
    elif freeze and not all(layer.trainable for layer in model.layers):
        # Resumed after the frozen epochs from a checkpoint saved during them: the layers came back frozen.
        recompile(True, config.learning_rate * FINE_TUNE_LR_SCALE)
    if not model.stop_training and state.epoch < config.epochs:
        fit(config.epochs)


def _train(project: Project, run_id: str, config: TrainConfig, resume: bool, state: RunState | None,
           extra_callbacks: list | None, plan: Plan | None) -> RunStatus:
    run = _prepare(project, run_id, config, resume, plan if plan is not None else Plan())
    chief = run.plan.chief
    scratch = None if chief else tempfile.TemporaryDirectory(prefix="maskloop-worker-")
    scratch_dir = None if scratch is None else Path(scratch.name)
    try:
        train_ds, val_ds = _datasets(project, run, scratch_dir)
        if chief:
            project.layout.run(run_id).previews_dir.mkdir(parents=True, exist_ok=True)
        state = state if state is not None else RunState()
        state.started = time.time()
        model = _model(project, run_id, run, state, resume)
        if chief:
            _record_config(project, run_id, run)
        monitor = _monitor(project, run_id, run, state, scratch_dir)
        callbacks = [monitor, *schedule(run.config, monitor), *(extra_callbacks or [])]
        if run.config.warm_start and not resume:
            # What the starting model already does on this run's validation images: the run is used only if it
            # beats it. Every worker of a cluster evaluates, as its steps are collective.
            scores = model.evaluate(val_ds, steps=run.val_steps, return_dict=True, verbose=0)
            if chief:
                project.runs.update(run_id, start_score=float(scores[MONITOR.removeprefix("val_")]))
        _fit(model, run, state, monitor, callbacks, train_ds, val_ds)
    finally:
        if scratch is not None:
            scratch.cleanup()
    return RunStatus.STOPPED if state.stopped_by == "user" else RunStatus.COMPLETED
