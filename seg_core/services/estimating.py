"""How long a training run takes on this machine: an epoch's work, the machine's speed, what finished runs measured,
the estimate the Train page shows, and the typical epoch of a run it is checked against."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from seg_core.durable import atomic_write
from seg_core.ml.config import ANY_SIZE_MODELS, PREVIEW_COUNT, TrainConfig, run_config
from seg_core.ml.cpu import cpu_has_avx512
from seg_core.store.layout import machine_speed_file
from seg_core.store.project import Project
from seg_core.store.runs import RunRecord, RunStatus

# An epoch's work in "training GFLOPs": a training image costs its forward pass TRAIN_PASSES times (the backward
# pass is about twice the forward) plus a fixed cost per image (input pipeline, dispatch), a validation image a
# share of its forward pass plus its own fixed cost. Fitted on measured epochs (docs/performance.md, "Where the code's constants come from").
TRAIN_PASSES = 3.0
TRAIN_IMAGE_GF = 1.6
VAL_PASSES = 0.56
VAL_IMAGE_GF = 1.5
# The first guess, by the step a run takes (config.step_xla) and whether the CPU has AVX-512: the share of
# measure_machine's peak the step reaches and the first epoch's extra time (tracing; XLA also compiles). numpy's
# matmul uses AVX-512 where the CPU has it and XLA's convolutions do not, so one share cannot serve both kinds of
# CPU (the shares measured by bench/estimate_accuracy.py: docs/performance.md, "Where the code's constants come from").
FIRST_GUESS_STEP = {(True, True): (0.41, 18.0), (True, False): (0.78, 18.0),
                    (False, True): (0.70, 8.5), (False, False): (0.60, 8.5)}
EPOCH_OVERHEAD_S = 0.5       # two checkpoints, a preview and the DB rows per epoch
LAUNCH_S = 15.0              # before the training clock starts: the worker imports TensorFlow, builds the model
MACHINE_MAX_AGE_S = 7 * 24 * 3600
FIRST_GUESS = "a first guess from this machine's speed: the first run on it measures the rest"
MACHINE_RECHECK_S = 3600


def first_guess(config: TrainConfig) -> tuple[float, float]:
    """(share of the matmul peak, first epoch's extra seconds) before any run on this machine measured them."""
    return FIRST_GUESS_STEP[config.step_xla, cpu_has_avx512()]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


# ----- an epoch's work and this machine's speed --------------------------------------------------------
def forward_gflops(config: TrainConfig, size: int, channels: int, num_classes: int) -> float:
    """One forward pass in GFLOPs, counted by the model registry from the built network (kept per network)."""
    from seg_core.ml import models

    return models.forward_gflops(config, size, channels, num_classes)


def _train_size(config: TrainConfig) -> int:
    pretrained = config.model not in ANY_SIZE_MODELS
    return config.crop_size if config.crop_size and not pretrained else config.image_size


def epoch_work(config: TrainConfig, train_images: int, val_images: int, channels: int,
               num_classes: int) -> tuple[float, float]:
    """Training GFLOPs of one epoch (see TRAIN_IMAGE_GF): (training steps on the images or their crops, validation
    and previews at full size)."""
    steps = config.steps_for(train_images)
    train = forward_gflops(config, _train_size(config), channels, num_classes)
    full = forward_gflops(config, config.image_size, channels, num_classes)
    return (steps * config.batch_size * (TRAIN_PASSES * train + TRAIN_IMAGE_GF),
            (val_images + PREVIEW_COUNT) * (VAL_PASSES * full + VAL_IMAGE_GF))


def measure_machine(repeats: int = 5, n: int = 1024) -> float:
    """Best float32 matmul speed of this machine in GFLOP/s (a fraction of a second)."""
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b  # warm the BLAS threads
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def machine_gflops() -> float:
    """This machine's matmul speed, kept in the workspace folder and checked again at most once an hour.

    Other programs on the machine only ever lower a measurement, so the best one of the last week is kept:
    it says what the machine can do, which is what the efficiency factor was calibrated against.
    """
    path, now = machine_speed_file(), time.time()
    try:
        saved = json.loads(path.read_text())
        best, best_at, checked_at = float(saved["gflops"]), float(saved["measured_at"]), float(saved["checked_at"])
    except (OSError, ValueError, KeyError, TypeError):
        best, best_at, checked_at = 0.0, 0.0, 0.0
    if best > 0 and now - checked_at < MACHINE_RECHECK_S:
        return best
    gflops = measure_machine()
    if gflops >= best or now - best_at > MACHINE_MAX_AGE_S:
        best, best_at = gflops, now
    if path.parent.is_dir():
        _update_machine_file(path, {"gflops": best, "measured_at": best_at, "checked_at": now})
    return best


def _same_model(a: TrainConfig, b: TrainConfig) -> bool:
    """Same network (and so the same parameters); the image and crop sizes may differ."""
    keys = ("model", "base_filters", "depth", "upsampling", "batchnorm", "xla")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def _same_sizes(a: TrainConfig, b: TrainConfig) -> bool:
    return (a.image_size, a.crop_size) == (b.image_size, b.crop_size)


@dataclass
class Estimate:
    seconds: float
    epoch_s: float                # an epoch after the first, as typical_epoch_s measures it once the run is done
    epochs: int                   # epochs the run will show: with a time budget, the last one cut short by it
    limited_by: str               # "epochs" or "time budget"
    source: str                   # where the speed comes from, in words
    early_stopping: bool = False
    launch_s: float = 0.0         # of `seconds`: before the training clock starts...
    trace_s: float = 0.0          # ...and the first epoch's tracing and compiling
    max_epochs: int = 0
    budget_minutes: float | None = None

    @property
    def duration(self) -> str:
        minutes = self.seconds / 60
        if minutes < 1:
            return "under a minute"
        if minutes < 90:
            return f"about {plural(round(minutes), 'minute')}"
        return f"about {plural(round(minutes / 60), 'hour')}"

    @property
    def text(self) -> str:
        """What will happen, in the terms the finished run is reported in (planning.outcome)."""
        per_epoch = f"~{fmt_duration(self.epoch_s)} an epoch"
        if self.limited_by == "time budget":
            what = (f"{self.budget_minutes:g} minutes, the time budget: about {self.epochs} of {self.max_epochs} "
                    f"epochs at {per_epoch}")
        else:
            what = f"{self.duration}: {self.epochs} epochs at {per_epoch}"
        if self.trace_s >= 1:
            what += f", the first ~{fmt_duration(self.trace_s)} longer (TensorFlow prepares the model)"
        return what + (" (fewer if it stops improving earlier)" if self.early_stopping else "")


def cut_short(run: RunRecord, rows: list[dict]) -> bool:
    """Whether the run's last epoch row is a part of an epoch: a stop (Stop, the time budget) ends the epoch in
    flight after its current batch, which still validates and saves."""
    config = run_config(run)
    budget = (config.time_budget_minutes or 0) * 60
    if not rows or len(rows) >= config.epochs:
        return False
    return run.status == RunStatus.STOPPED or bool(budget and rows[-1]["elapsed_s"] >= budget)


def typical_epoch_s(run: RunRecord, rows: list[dict]) -> float | None:
    """An epoch of the run from its rows: the whole epochs after the first (which also traces the model), with
    everything between them (validation, checkpoints, previews); None before two whole epochs."""
    whole = rows[:-1] if cut_short(run, rows) else rows
    if len(whole) < 2:
        return None
    return (whole[-1]["elapsed_s"] - whole[0]["elapsed_s"]) / (len(whole) - 1)


def _finished_runs(project: Project):
    return [r for r in project.runs.list() if r.status in (RunStatus.COMPLETED, RunStatus.STOPPED)]


def _run_speed(project: Project, run, channels: int, num_classes: int):
    """(training GFLOP/s, launch s, first-epoch extra s, epoch overhead s) of a finished run; None if it ran under
    2 whole epochs. A tiny network's epoch can take less than EPOCH_OVERHEAD_S: its overhead is then half its epoch."""
    rows = project.runs.epoch_metrics(run.id)
    meta = _run_meta(project, run.id)
    epoch_s = typical_epoch_s(run, rows)
    if epoch_s is None or "train_images" not in meta:
        return None
    work = sum(epoch_work(run_config(run), meta["train_images"], meta["val_images"], channels, num_classes))
    launch = LAUNCH_S
    if run.ended_at and run.created_at:
        launch = max(1.0, run.ended_at - run.created_at - rows[-1]["elapsed_s"])
    overhead = min(EPOCH_OVERHEAD_S, 0.5 * epoch_s)
    return work / max(epoch_s - overhead, 1e-6), launch, max(0.0, rows[0]["elapsed_s"] - epoch_s), overhead


def measured_speed(project: Project, config: TrainConfig, channels: int, num_classes: int):
    """(training GFLOP/s, launch s, first-epoch extra s, epoch overhead s, run id) measured by the newest finished
    run of the same network, at the same sizes if there is one; None without such a run."""
    runs = [r for r in _finished_runs(project) if _same_model(run_config(r), config)]
    for run in sorted(runs, key=lambda r: not _same_sizes(run_config(r), config)):  # stable: newest first within
        speed = _run_speed(project, run, channels, num_classes)
        if speed:
            return (*speed, run.id)
    return None


def machine_calibration(project: Project, peak: float, channels: int, num_classes: int) -> dict | None:
    """What runs on this machine showed beyond its matmul speed: the share of it training reaches, the launch
    and the first epoch's tracing. From the project's newest finished run (kept for the workspace's other
    projects), else from a run of another project; None before any run."""
    path = machine_speed_file()
    for run in _finished_runs(project):
        speed = _run_speed(project, run, channels, num_classes)
        if speed:
            found = {"efficiency": speed[0] / peak, "launch_s": speed[1], "trace_s": speed[2],
                     "overhead_s": speed[3], "run": f"run {run.id} of {project.path.name}"}
            if path.parent.is_dir():
                _update_machine_file(path, {"calibration": found})
            return found
    try:
        found = json.loads(path.read_text())["calibration"]
        return {**{k: found[k] for k in ("efficiency", "launch_s", "trace_s", "run")},
                "overhead_s": found.get("overhead_s", EPOCH_OVERHEAD_S)}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _update_machine_file(path, values: dict) -> None:
    try:
        saved = json.loads(path.read_text())
        saved = saved if isinstance(saved, dict) else {}
    except (OSError, ValueError):
        saved = {}
    merged = {**saved, **values}
    if merged != saved:   # the Train page estimates on every rerun: write (and fsync) only what is new
        atomic_write(path, json.dumps(merged).encode())


def _run_meta(project: Project, run_id: str) -> dict:
    try:
        return json.loads(project.layout.run(run_id).config.read_text())
    except (OSError, ValueError):
        return {}


def estimate(project: Project, config: TrainConfig, ready=None, gflops: float | None = None) -> Estimate:
    """How long the run will take here: its GFLOPs per epoch over this machine's measured speed. `ready`: the
    page's planning.Readiness (its train and val counts), else the split is planned here."""
    train, val = (ready.train, ready.val) if ready is not None else project.splits.planned(config.val_fraction)[:2]
    channels, num_classes = project.stats()["channels"] or 3, len(project.classes)
    train_work, val_work = epoch_work(config, max(train, 1), val, channels, num_classes)
    measured = measured_speed(project, config, channels, num_classes)
    if measured:
        rate, launch, trace, overhead, run_id = measured
        source = f"speed measured on this machine by run {run_id}"
        machine_calibration(project, gflops if gflops is not None else machine_gflops(), channels, num_classes)
    else:
        peak = gflops if gflops is not None else machine_gflops()
        calibration = machine_calibration(project, peak, channels, num_classes)
        if calibration:   # another network, or another project: this machine's share of its peak, its launch
            rate, launch, trace = peak * calibration["efficiency"], calibration["launch_s"], calibration["trace_s"]
            overhead = calibration["overhead_s"]
            source = f"speed measured on this machine by {calibration['run']}"
        else:
            efficiency, trace = first_guess(config)
            rate, launch, source = peak * efficiency, LAUNCH_S, FIRST_GUESS
            overhead = EPOCH_OVERHEAD_S
    epoch_s = (train_work + val_work) / rate + overhead
    # The training clock (and the time budget) starts after the launch and includes the first epoch's trace.
    clock, limited_by, epochs = trace + config.epochs * epoch_s, "epochs", config.epochs
    if config.time_budget_minutes:
        budget = config.time_budget_minutes * 60
        if budget < clock:
            # The budget is checked between batches; the epoch in flight still validates and saves, and is shown.
            clock = budget + val_work / rate + overhead
            limited_by = "time budget"
            epochs = min(config.epochs, math.floor(max(0.0, budget - trace) / epoch_s) + 1)
    return Estimate(launch + clock, epoch_s, epochs, limited_by, source, bool(config.early_stopping_patience),
                    launch, trace, config.epochs, config.time_budget_minutes)
