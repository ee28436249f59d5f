"""Keep learning: after every few saved masks, a short background run fine-tunes the project's model on them.

The run starts from the project's best model (ml/warm.py) with the settings it was trained with, a gentler learning
rate and a short time budget. It scores its starting model on its own validation images first, and is used only if
it ends better than that (store/runs.py: Runs.best); a worse one stays in the history. One run at a time per project
holds as always: nothing starts while any run is going, the person's own included. A keep-learning run that failed
pauses keep learning until a person starts a run, so a fault does not start a failing run at every save.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from seg_core.errors import ProjectError, RunBusyError
from seg_core.ml.config import TrainConfig, run_config
from seg_core.services import jobs, planning
from seg_core.store.project import Project
from seg_core.store.runs import RunRecord, RunStatus

SETTING = "keep_learning"
DEFAULT_EVERY = 5
DEFAULT_MINUTES = 2.0
EVERY_RANGE = (1, 100)
MINUTES_RANGE = (0.2, 60.0)
FINE_TUNE_LR = 0.3        # of the run's own learning rate: a trained model needs smaller steps than a fresh one
FIRST_PRESET = "fast"     # the first run, where the project has no model yet


@dataclass(frozen=True)
class Setting:
    on: bool = False
    every: int = DEFAULT_EVERY         # saved masks (changed or new) between runs
    minutes: float = DEFAULT_MINUTES   # each run's time budget


def setting(project: Project) -> Setting:
    saved = project.setting(SETTING) or {}
    return Setting(bool(saved.get("on", False)), int(saved.get("every", DEFAULT_EVERY)),
                   float(saved.get("minutes", DEFAULT_MINUTES)))


def change(project: Project, on: bool | None = None, every: int | None = None,
           minutes: float | None = None) -> Setting:
    """Turn keep learning on or off, or change how often and how long it trains; bad values change nothing."""
    now = setting(project)
    new = Setting(now.on if on is None else bool(on), now.every if every is None else int(every),
                  now.minutes if minutes is None else float(minutes))
    if not EVERY_RANGE[0] <= new.every <= EVERY_RANGE[1]:
        raise ProjectError(f"Keep learning trains after every {EVERY_RANGE[0]} to {EVERY_RANGE[1]} saved masks; "
                           f"got {new.every}.")
    if not MINUTES_RANGE[0] <= new.minutes <= MINUTES_RANGE[1]:
        raise ProjectError(f"A keep-learning run may take {MINUTES_RANGE[0]:g} to {MINUTES_RANGE[1]:g} minutes; "
                           f"got {new.minutes:g}.")
    project.set_setting(SETTING, dataclasses.asdict(new))
    return new


def _since_last_run(project: Project, runs: list[RunRecord]) -> int:
    """Masks changed or added since the newest run that recorded what it learned from (all of them before any)."""
    last = next((r for r in runs if r.split is not None and r.split.masks is not None), None)
    return project.lineage.changes(() if last is None else last.split.masks).count


def _paused_by(runs: list[RunRecord]) -> RunRecord | None:
    """The keep-learning run that failed last, where no run has been started since."""
    return runs[0] if runs and run_config(runs[0]).keep_learning and runs[0].status == RunStatus.FAILED else None


def _config(project: Project, runs: list[RunRecord], minutes: float) -> TrainConfig:
    best = project.runs.best()
    if best is None:
        stats = project.stats()
        configs = (run_config(r) for r in runs)
        base = next((c for c in configs if not c.keep_learning), None) or planning.app_preset(
            FIRST_PRESET, stats["channels"] == 3, stats["num_classes"])
        return dataclasses.replace(base, keep_learning=True, warm_start=None, time_budget_minutes=minutes)
    # A warm-started model already trained at the gentler rate: scaled once, not again at every run. Keep
    # learning's own first model trained from scratch at the preset's rate, so the run after it is scaled.
    config = run_config(best)
    rate = config.learning_rate * (1.0 if config.warm_start else FINE_TUNE_LR)
    return dataclasses.replace(config, keep_learning=True, warm_start=best.id, time_budget_minutes=minutes,
                               learning_rate=rate, pretrained=False, freeze_encoder_epochs=0, cluster=None)


def after_save(project: Project) -> str | None:
    """Start a keep-learning run if one is due; the sentence to show when one started, else None."""
    wanted = setting(project)
    if not wanted.on:
        return None
    runs = project.runs.list()
    if any(r.active for r in runs) or _paused_by(runs) is not None:
        return None
    new = _since_last_run(project, runs)
    if new < wanted.every:
        return None
    config = _config(project, runs, wanted.minutes)
    if not planning.readiness(project, config).ready:
        return None
    try:
        jobs.start(project, config)
    except RunBusyError:   # another tab's save started one first
        return None
    start = "from the current model" if config.warm_start else "its first model"
    masks = f"{new} changed or new mask" + ("" if new == 1 else "s")
    return f"Keep learning started a {wanted.minutes:g}-minute run ({start}) on {masks}; see it on the Train page."


def describe(project: Project) -> str:
    """Where keep learning stands, for the Train page."""
    wanted = setting(project)
    if not wanted.on:
        return "Keep learning is off."
    runs = project.runs.list()
    failed = _paused_by(runs)
    if failed is not None:
        return (f"Keep learning is paused: its last run failed ({failed.error or 'no reason was recorded'}). "
                "It goes on after you start a run yourself.")
    active = next((r for r in runs if r.active), None)
    if active is not None:
        if run_config(active).keep_learning:
            return "Keep learning is on, and training now."
        return "Keep learning is on; it starts nothing while your run is training."
    new = _since_last_run(project, runs)
    return (f"Keep learning is on: {min(new, wanted.every)} of {wanted.every} changed or new masks saved since the "
            f"last run; then it trains for {wanted.minutes:g} minutes.")

