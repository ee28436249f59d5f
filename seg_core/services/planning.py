"""Before and around a training run: is the project ready, the settings form, progress, what happened, history and
curves (how long a run takes: estimating.py)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from seg_core.ml.config import MIN_LABELED_IMAGES, PRESETS, TOO_FEW_LABELED, TrainConfig, preset, run_config
from seg_core.services.estimating import plural, cut_short, first_guess, fmt_duration, typical_epoch_s
from seg_core.store.project import Project
from seg_core.store.records import ImageStatus
from seg_core.store.runs import RunRecord, RunStatus

# The page's presets: `fast` is "a first model in about five minutes" (docs), so the page gives it a time
# budget; the epoch count still ends it sooner on a small project. The CLI keeps PRESETS as they are and
# asks for a budget with --minutes.
APP_TIME_BUDGET = {"fast": 5.0}
FEW_IMAGES = 10


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


def readiness(project: Project, config: TrainConfig | None = None) -> Readiness:
    config = config or TrainConfig()
    stats = project.stats()
    labeled, unlabeled = stats["labeled"], stats["unlabeled"]
    r = Readiness(ready=False, labeled=labeled)
    if labeled < MIN_LABELED_IMAGES:
        need = "any labeled images" if labeled == 0 else f"only {plural(labeled, 'labeled image')}"
        r.problems.append(f"The project has {need}. {TOO_FEW_LABELED}")
    else:
        r.train, r.val, r.split_exists = project.splits.planned(config.val_fraction)
        how = ("the project's split; change it on the Data page" if r.split_exists
               else f"{config.val_fraction:.0%} set aside for validation by the run; your split stays as it is")
        r.lines.append(f"{plural(labeled, 'labeled image')}: {r.train} to learn from, {r.val} to check the model "
                       f"on ({how}).")
        held = project.count_images(status=ImageStatus.LABELED, split="test")
        if held:
            r.lines.append(f"{held} labeled in the test split stay out of training.")
        if not r.train or not r.val:
            r.problems.append("Training needs labeled images in both the train and the validation split; "
                              "change the split on the Data page.")
    classes = stats["classes"]
    present = [c for c in classes if c["images"]]
    missing = [c for c in classes[1:] if not c["images"]]
    if labeled:
        r.lines.append("Classes in your masks: " + ", ".join(f"{c['name']} ({plural(c['images'], 'image')})"
                                                             for c in present) + ".")
        if len(missing) == len(classes) - 1:
            r.problems.append("Every labeled mask is all background: paint the objects you want found.")
        else:
            for c in missing:
                r.hints.append(f"No labeled mask contains '{c['name']}' yet, so the model cannot learn it: "
                               "paint it on a few images.")
    if unlabeled:
        r.lines.append(f"{plural(unlabeled, 'image')} still unlabeled: not used for training; once a model "
                       "exists, Predict & review shows its masks for them.")
    drafts = len(project.drafts.image_ids())
    if drafts:
        r.hints.append(f"{plural(drafts, 'image')} with unsaved strokes on the Annotate page: save them to "
                       "train on them.")
    if 2 <= labeled < FEW_IMAGES:
        r.hints.append(f"With {labeled} labeled images expect a rough first model; 20 or more give a useful one.")
    if r.val == 1:
        r.hints.append("Validation is one image, so its score will jump around.")
    r.ready = not r.problems
    return r


# ----- the settings form ---------------------------------------------------------------------------
def app_preset(name: str, photos: bool = False, num_classes: int = 2) -> TrainConfig:
    """A preset as the page offers it: fast gets its time budget; photos (RGB images) get the photo variant
    (config.PHOTO_AUGMENT: no upside-down flips or quarter turns, which microscopy and aerial images take well but
    a pet on a sofa never shows; colour turned anywhere), for a project of `num_classes` classes."""
    return preset(name, photos, num_classes,
                  time_budget_minutes=APP_TIME_BUDGET.get(name, PRESETS[name].time_budget_minutes))


def crop_for(name: str, image_size: int, depth: int, photos: bool = False, num_classes: int = 2) -> int | None:
    """The preset's crop at another image size or depth (keeps its crop-to-image ratio)."""
    return preset(name, photos, num_classes, image_size=image_size, depth=depth).crop_size


def build_config(name: str, values: dict, photos: bool = False, num_classes: int = 2) -> TrainConfig:
    """A TrainConfig from a preset and the advanced form's values; raises TrainingError with the reasons."""
    from seg_core.ml.augment import AugmentConfig

    base = app_preset(name, photos, num_classes)
    values = {"time_budget_minutes": base.time_budget_minutes, **values}
    values["augment"] = AugmentConfig.from_dict({**base.augment.to_dict(), **values.get("augment", {})})
    for key in ("crop_size", "time_budget_minutes"):  # the form's 0 or empty field means "none"
        if key in values and not values[key]:
            values[key] = None
    return preset(name, photos, num_classes, **values).validate()


# ----- watching a run ------------------------------------------------------------------------------
@dataclass
class LiveStatus:
    fraction: float
    label: str
    eta_s: float | None
    epochs_done: int


def _epoch_seconds(run: RunRecord, rows: list[dict], elapsed: float, in_epoch: float) -> float | None:
    """How long an epoch takes, leaving out the first one's tracing, which no later epoch pays again."""
    typical = typical_epoch_s(run, rows)
    if typical is not None:
        return typical
    if len(rows) == 1 and in_epoch >= 0.1:
        return (elapsed - rows[0]["elapsed_s"]) / in_epoch      # the second epoch so far
    if len(rows) == 1:
        first = rows[0].get("epoch_s", rows[0]["elapsed_s"])
        return max(first - first_guess(run_config(run))[1], 0.25 * first)
    return None


def outcome(run: RunRecord, rows: list[dict], elapsed: float | None = None) -> str:
    """What a run did, in the estimate's terms (estimating.Estimate.text): "23 of 60 epochs in 5 min 02 s, stopped
    by the time budget; ~13 s an epoch"."""
    cfg, done = run_config(run), len(rows)
    elapsed = rows[-1]["elapsed_s"] if elapsed is None and rows else elapsed or 0.0
    text = f"{done} of {cfg.epochs} epochs in {fmt_duration(elapsed)}"
    if run.active:
        text += " so far"
    elif run.status == RunStatus.FAILED:
        text += ", then it failed"
    elif run.status == RunStatus.STOPPED:
        text += ", stopped by you"
    elif done >= cfg.epochs:
        text += ", all done"
    elif cut_short(run, rows):
        text += ", stopped by the time budget (the last epoch cut short)"
    elif cfg.early_stopping_patience:
        text += (f", stopped early: validation dice had not improved for "
                 f"{plural(cfg.early_stopping_patience, 'epoch')}")
    typical = typical_epoch_s(run, rows)
    return text + (f"; ~{fmt_duration(typical)} an epoch" if typical is not None else "")


def live_status(project: Project, run: RunRecord, now: float | None = None) -> LiveStatus:
    """Progress of a run from its DB rows: epoch/batch, elapsed, an ETA from its own epoch times and budget."""
    now = now or time.time()
    cfg, rows, prog = run_config(run), project.runs.epoch_metrics(run.id), project.runs.latest_progress(run.id)
    epochs, budget = max(1, cfg.epochs), (cfg.time_budget_minutes or 0) * 60
    done = len(rows)
    if run.status == RunStatus.QUEUED or (run.status == RunStatus.RUNNING and not rows and not prog):
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
    per_epoch = _epoch_seconds(run, rows, elapsed, in_epoch)
    if per_epoch is not None:
        eta = max(0.0, (epochs - done - in_epoch) * per_epoch)
    if budget:
        eta = min(eta if eta is not None else math.inf, max(0.0, budget - elapsed))
    if not run.active:
        return LiveStatus(1.0, outcome(run, rows, elapsed), 0.0, done)
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


def warm_outcome(run: RunRecord) -> str | None:
    """What a run started from another's model did to the model in use, for its line in the history."""
    if run.config.get("warm_start") is None or run.improved is None:
        return None
    if run.improved:
        return (f"better than the model it started from on the same images ({run.start_score:.3f} -> "
                f"{run.best_score:.3f}): used from now on")
    return (f"not better than the model it started from ({run.start_score:.3f} -> {run.best_score:.3f}): kept in "
            "the history, not used")


def history_rows(project: Project, runs: list[RunRecord]) -> list[dict]:
    """The run history table: when, what, how it went, what happened (outcome)."""
    out = []
    for run in runs:
        rows = project.runs.epoch_metrics(run.id)
        prog = project.runs.latest_progress(run.id) if run.active else None
        elapsed = rows[-1]["elapsed_s"] if rows else None
        if prog:
            elapsed = max(elapsed or 0.0, prog.get("elapsed_s", 0.0))
        config = run_config(run)
        budget = config.time_budget_minutes
        out.append({
            "run": run.id,
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started_at or run.created_at)),
            "preset": ("keep learning: " if config.keep_learning else "") + run.preset_name
                      + (f", {budget:g} min budget" if budget else ""),
            "model": describe(config),
            "status": run.status.word,
            "best val dice": None if run.best_score is None else round(run.best_score, 4),
            "what happened": "; ".join(filter(None, (outcome(run, rows, elapsed), warm_outcome(run)))),
            "error": run.error or "",
        })
    return out
