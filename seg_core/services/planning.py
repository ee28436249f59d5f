"""Before and around a training run: is the project ready, how long will it take, progress, history and curves."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from seg_core.files import atomic_write
from seg_core.ml.config import PRESETS, PREVIEW_COUNT, TrainConfig, preset
from seg_core.store import splits
from seg_core.store.layout import machine_speed_file
from seg_core.store.project import Project
from seg_core.store.runs import RunRecord, RunStatus

# The page's presets: `fast` is "a first model in about five minutes" (README), so the page gives it a time
# budget; the epoch count still ends it sooner on a small project. The CLI keeps PRESETS as they are and
# asks for a budget with --minutes.
APP_TIME_BUDGET = {"fast": 5.0}
FEW_IMAGES = 10
# An epoch's work in "training GFLOPs", measured with the XLA step (U-Net 16 and 32 filters, 128-256 px, 2026-12-01):
# a training image costs its forward pass 3 times (backward about twice forward) plus a fixed 1.6 GFLOPs (input
# pipeline, dispatch: 27% of a 128 px image's time, 9% at 256 px); a validation image 0.56 of its forward pass
# plus 1.5. Sizes then agree within 5% (16 filters); 32 filters run 13-20% slower than their GFLOPs say.
TRAIN_PASSES = 3.0
TRAIN_IMAGE_GF = 1.6
VAL_PASSES = 0.56
VAL_IMAGE_GF = 1.5
# The first guess, by the step a run takes (config.xla): the share of measure_machine's peak it reaches and the
# first epoch's extra time (tracing; XLA also compiles). XLA: 57.8 of 140 GFLOP/s, 18 s. oneDNN on an AVX-512
# machine: 0.67-0.77 of 270 GFLOP/s, 8-9 s (bench/estimate_accuracy.py, 2026-12-02, the three presets).
FIRST_GUESS_STEP = {True: (0.41, 18.0), False: (0.70, 8.5)}
EPOCH_OVERHEAD_S = 0.5       # two checkpoints, a preview and the DB rows per epoch
LAUNCH_S = 15.0              # before the training clock starts: the worker imports TensorFlow, builds the model
MACHINE_MAX_AGE_S = 7 * 24 * 3600
FIRST_GUESS = "a first guess from this machine's speed: the first run on it measures the rest"
MACHINE_RECHECK_S = 3600


# ----- readiness ---------------------------------------------------------------------------------
@dataclass
class Readiness:
    ready: bool
    lines: list[str] = field(default_factory=list)      # what is there, in plain words
    problems: list[str] = field(default_factory=list)   # why Start is off
    hints: list[str] = field(default_factory=list)      # would train, but worth knowing
    labeled: int = 0
    train: int = 0
    val: int = 0
    split_exists: bool = False                          # the project's split is used, not the val fraction


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def readiness(project: Project, config: TrainConfig | None = None) -> Readiness:
    config = config or TrainConfig()
    stats = project.stats()
    labeled, unlabeled = stats["labeled"], stats["unlabeled"]
    r = Readiness(ready=False, labeled=labeled)
    if labeled < 2:
        need = "any labeled images" if labeled == 0 else "only 1 labeled image"
        r.problems.append(f"The project has {need}. Training needs at least 2 (one to learn from, one to check "
                          "on): paint masks on the Annotate page.")
    else:
        r.train, r.val, r.split_exists = splits.planned(project, config.val_fraction)
        how = ("the project's split; change it on the Data page" if r.split_exists
               else f"{config.val_fraction:.0%} set aside for validation by the run; your split stays as it is")
        r.lines.append(f"{_plural(labeled, 'labeled image')}: {r.train} to learn from, {r.val} to check the model "
                       f"on ({how}).")
        held = project.count_images(status="labeled", split="test")
        if held:
            r.lines.append(f"{held} labeled in the test split stay out of training.")
        if not r.train or not r.val:
            r.problems.append("Training needs labeled images in both the train and the validation split; "
                              "change the split on the Data page.")
    classes = stats["classes"]
    present = [c for c in classes if c["images"]]
    missing = [c for c in classes[1:] if not c["images"]]
    if labeled:
        r.lines.append("Classes in your masks: " + ", ".join(f"{c['name']} ({_plural(c['images'], 'image')})"
                                                             for c in present) + ".")
        if len(missing) == len(classes) - 1:
            r.problems.append("Every labeled mask is all background: paint the objects you want found.")
        else:
            for c in missing:
                r.hints.append(f"No labeled mask contains '{c['name']}' yet, so the model cannot learn it: "
                               "paint it on a few images.")
    if unlabeled:
        r.lines.append(f"{_plural(unlabeled, 'image')} still unlabeled: not used for training; once a model "
                       "exists, Predict & review shows its masks for them.")
    drafts = len(project.drafts.image_ids())
    if drafts:
        r.hints.append(f"{_plural(drafts, 'image')} with unsaved strokes on the Annotate page: save them to "
                       "train on them.")
    if 2 <= labeled < FEW_IMAGES:
        r.hints.append(f"With {labeled} labeled images expect a rough first model; 20 or more give a useful one.")
    if r.val == 1:
        r.hints.append("Validation is one image, so its score will jump around.")
    r.ready = not r.problems
    return r


# ----- cost and time --------------------------------------------------------------------------------
def forward_gflops(config: TrainConfig, size: int, channels: int, num_classes: int) -> float:
    """One forward pass in GFLOPs, counted by the model registry from the built network (kept per network)."""
    from seg_core.ml import models

    return models.forward_gflops(config, size, channels, num_classes)


def _train_size(config: TrainConfig) -> int:
    pretrained = config.model not in ("unet", "fcn")
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
    epoch_s: float
    epochs: float                 # epochs that fit in that time
    limited_by: str               # "epochs" or "time budget"
    source: str                   # where the speed comes from, in words
    early_stopping: bool = False
    launch_s: float = 0.0         # of `seconds`: before the training clock starts...
    trace_s: float = 0.0          # ...and the first epoch's tracing and compiling

    @property
    def text(self) -> str:
        minutes = self.seconds / 60
        if minutes < 1:
            about = "under a minute"
        elif minutes < 90:
            about = f"about {_plural(round(minutes), 'minute')}"
        else:
            about = f"about {_plural(round(minutes / 60), 'hour')}"
        return about + (" (less if it stops improving earlier)" if self.early_stopping else "")


def _finished_runs(project: Project):
    return [r for r in project.runs.list() if r.status in (RunStatus.COMPLETED, RunStatus.STOPPED)]


def _run_speed(project: Project, run, channels: int, num_classes: int):
    """(training GFLOP/s, launch s, first-epoch extra s, epoch overhead s) of a finished run; None if it ran under
    2 epochs. A tiny network's epoch can take less than EPOCH_OVERHEAD_S: its overhead is then half its epoch."""
    rows = project.runs.epoch_metrics(run.id)
    meta = _run_meta(project, run.id)
    if len(rows) < 2 or "train_images" not in meta:
        return None
    # Epochs after the first, with everything between them (validation, checkpoints, previews).
    epoch_s = (rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]) / (len(rows) - 1)
    work = sum(epoch_work(run.config, meta["train_images"], meta["val_images"], channels, num_classes))
    launch = LAUNCH_S
    if run.ended_at and run.created_at:
        launch = max(1.0, run.ended_at - run.created_at - rows[-1]["elapsed_s"])
    overhead = min(EPOCH_OVERHEAD_S, 0.5 * epoch_s)
    return work / max(epoch_s - overhead, 1e-6), launch, max(0.0, rows[0]["elapsed_s"] - epoch_s), overhead


def measured_speed(project: Project, config: TrainConfig, channels: int, num_classes: int):
    """(training GFLOP/s, launch s, first-epoch extra s, epoch overhead s, run id) measured by the newest finished
    run of the same network, at the same sizes if there is one; None without such a run."""
    runs = [r for r in _finished_runs(project) if _same_model(r.config, config)]
    for run in sorted(runs, key=lambda r: not _same_sizes(r.config, config)):  # stable: newest first within
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


def estimate(project: Project, config: TrainConfig, ready: Readiness | None = None,
             gflops: float | None = None) -> Estimate:
    """How long the run will take here: its GFLOPs per epoch over this machine's measured speed."""
    ready = ready or readiness(project, config)
    channels, num_classes = project.stats()["channels"] or 3, len(project.classes)
    train_work, val_work = epoch_work(config, max(ready.train, 1), ready.val, channels, num_classes)
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
            efficiency, trace = FIRST_GUESS_STEP[bool(config.xla)]
            rate, launch, source = peak * efficiency, LAUNCH_S, FIRST_GUESS
            overhead = EPOCH_OVERHEAD_S
    epoch_s = (train_work + val_work) / rate + overhead
    # The training clock (and the time budget) starts after the launch and includes the first epoch's trace.
    clock, limited_by, epochs = trace + config.epochs * epoch_s, "epochs", float(config.epochs)
    if config.time_budget_minutes:
        budget = config.time_budget_minutes * 60
        if budget < clock:
            # The budget is checked between batches; the epoch in flight still validates and saves.
            clock = budget + val_work / rate + overhead
            limited_by, epochs = "time budget", max(0.0, budget - trace) / epoch_s
    return Estimate(launch + clock, epoch_s, epochs, limited_by, source, bool(config.early_stopping_patience),
                    launch, trace)


# ----- the settings form ---------------------------------------------------------------------------
def app_preset(name: str, photos: bool = False) -> TrainConfig:
    """A preset as the page offers it: fast gets its time budget; photos (RGB images) get the photo variant
    (config.PHOTO_AUGMENT: no upside-down flips or quarter turns, which microscopy and aerial images take well but
    a pet on a sofa never shows; colour turned anywhere)."""
    return preset(name, photos, time_budget_minutes=APP_TIME_BUDGET.get(name, PRESETS[name].time_budget_minutes))


def crop_for(name: str, image_size: int, depth: int, photos: bool = False) -> int | None:
    """The preset's crop at another image size or depth (keeps its crop-to-image ratio)."""
    return preset(name, photos, image_size=image_size, depth=depth).crop_size


def build_config(name: str, values: dict, photos: bool = False) -> TrainConfig:
    """A TrainConfig from a preset and the advanced form's values; raises TrainingError with the reasons."""
    from seg_core.ml.augment import AugmentConfig

    base = app_preset(name, photos)
    values = {"time_budget_minutes": base.time_budget_minutes, **values}
    values["augment"] = AugmentConfig.from_dict({**base.augment.to_dict(), **values.get("augment", {})})
    for key in ("crop_size", "time_budget_minutes"):  # the form's 0 or empty field means "none"
        if key in values and not values[key]:
            values[key] = None
    return preset(name, photos, **values).validate()


# ----- watching a run ------------------------------------------------------------------------------
def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class LiveStatus:
    fraction: float
    label: str
    eta_s: float | None
    epochs_done: int


def _epoch_seconds(rows: list[dict], elapsed: float, in_epoch: float, trace_s: float) -> float | None:
    """How long an epoch takes, leaving out the first one's tracing, which no later epoch pays again."""
    if len(rows) >= 2:
        return (rows[-1]["elapsed_s"] - rows[0]["elapsed_s"]) / (len(rows) - 1)
    if len(rows) == 1 and in_epoch >= 0.1:
        return (elapsed - rows[0]["elapsed_s"]) / in_epoch      # the second epoch so far
    if len(rows) == 1:
        first = rows[0].get("epoch_s", rows[0]["elapsed_s"])
        return max(first - trace_s, 0.25 * first)
    return None


def live_status(project: Project, run: RunRecord, now: float | None = None) -> LiveStatus:
    """Progress of a run from its DB rows: epoch/batch, elapsed, an ETA from its own epoch times and budget."""
    now = now or time.time()
    cfg, rows, prog = run.config, project.runs.epoch_metrics(run.id), project.runs.latest_progress(run.id)
    epochs, budget = max(1, cfg.epochs), (cfg.time_budget_minutes or 0) * 60
    done = len(rows)
    if run.status == "queued" or (run.status == "running" and not rows and not prog):
        return LiveStatus(0.0, "Starting: loading TensorFlow, your images and the model...", None, 0)
    batch = steps = 0
    elapsed = rows[-1]["elapsed_s"] if rows else 0.0
    if prog and prog["epoch"] >= done:
        batch, steps = int(prog.get("step", prog["batch"])), int(prog.get("steps") or 0)
        elapsed = max(elapsed, prog.get("elapsed_s", 0.0))
        if run.active:
            elapsed += max(0.0, now - prog["at"])
    in_epoch = batch / steps if steps else 0.0
    fraction = (done + in_epoch) / epochs
    if budget:
        fraction = max(fraction, elapsed / budget)
    eta = None
    per_epoch = _epoch_seconds(rows, elapsed, in_epoch, FIRST_GUESS_STEP[bool(run.config.xla)][1])
    if per_epoch is not None:
        eta = max(0.0, (epochs - done - in_epoch) * per_epoch)
    if budget:
        eta = min(eta if eta is not None else math.inf, max(0.0, budget - elapsed))
    if not run.active:
        ended = " when its time budget ran out" if budget and elapsed >= budget else ""
        return LiveStatus(1.0, f"{done} of {epochs} epochs in {fmt_duration(elapsed)}{ended}", 0.0, done)
    parts = [f"Epoch {min(done + 1, epochs)} of {epochs}"]
    if steps:
        parts.append(f"batch {batch} of {steps}")
    parts.append(f"{fmt_duration(elapsed)} elapsed" + (f" of at most {fmt_duration(budget)}" if budget else ""))
    if eta is not None:
        parts.append(f"about {fmt_duration(eta)} left")
    if run.stop_requested:
        parts.append("stopping after the current batch")
    return LiveStatus(min(1.0, fraction), " · ".join(parts), eta, done)


def curve_rows(rows: list[dict], series: dict[str, str]) -> list[dict]:
    """Long-format chart rows (epoch counted from 1, value, series) for the metrics named in `series`."""
    return [{"epoch": r["epoch"] + 1, "value": r[key], "series": label}
            for r in rows for key, label in series.items() if r.get(key) is not None and math.isfinite(r[key])]


def run_label(run: RunRecord) -> str:
    started = time.strftime("%b %d %H:%M", time.localtime(run.created_at))
    # The id's random tail keeps two runs started in the same minute apart in a chart legend.
    return f"{started} {run.preset_name}, {run.status} ({run.id[-4:]})"


def overlay_rows(project: Project, runs: list[RunRecord], key: str) -> list[dict]:
    """One line per run for one metric: rows of (epoch, value, run label)."""
    out = []
    for run in runs:
        out += [{**r, "run": r.pop("series")} for r in curve_rows(project.runs.epoch_metrics(run.id), {key: run_label(run)})]
    return out


def describe(config: TrainConfig) -> str:
    crop = f", {config.crop_size} px crops" if config.crop_size else ""
    return f"{config.model} {config.base_filters} filters, depth {config.depth}, {config.image_size} px{crop}"


def history_rows(project: Project, runs: list[RunRecord]) -> list[dict]:
    """The run history table: when, how long, what, how it went."""
    out = []
    for run in runs:
        rows = project.runs.epoch_metrics(run.id)
        prog = project.runs.latest_progress(run.id) if run.active else None
        elapsed = rows[-1]["elapsed_s"] if rows else None
        if prog:
            elapsed = max(elapsed or 0.0, prog.get("elapsed_s", 0.0))
        cfg = run.config
        budget = cfg.time_budget_minutes
        out.append({
            "run": run.id,
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started_at or run.created_at)),
            "training time": fmt_duration(elapsed),
            "preset": run.preset_name,
            "model": describe(cfg),
            "status": run.status.value,
            "best val dice": None if run.best_score is None else round(run.best_score, 4),
            "epochs": f"{len(rows)} / {cfg.epochs}" + (f" (≤ {budget:g} min)" if budget else ""),
            "error": run.error or "",
        })
    return out
