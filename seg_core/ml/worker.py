"""The training worker process: `python -m seg_core.ml.worker --project P --run R [--resume]`.

It keeps the run's status and heartbeat in the project database around train(), so a page, a second browser
or the CLI can follow it, and a run whose worker died is recognised (services/jobs.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback

from seg_core.errors import SegError, TrainingError, storage_error
from seg_core.ml.config import TrainConfig, run_config
from seg_core.store.project import Project
from seg_core.store.runs import RunStatus

HEARTBEAT_S = 5.0
MODULE = "seg_core.ml.worker"


class Heartbeat(threading.Thread):
    """Keeps the run's heartbeat fresh even while a long epoch runs inside TensorFlow."""

    def __init__(self, project: Project, run_id: str):
        super().__init__(daemon=True, name="heartbeat")
        self.project, self.run_id, self.done = project, run_id, threading.Event()

    def run(self) -> None:
        while not self.done.wait(HEARTBEAT_S):
            try:
                self.project.runs.update(self.run_id, heartbeat_at=time.time())
            except (sqlite3.Error, SegError, OSError):
                pass  # a locked DB for a moment is fine; the next beat will land


def failure_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "OOM" in str(exc) or "out of memory" in str(exc).lower():
        return f"Training ran out of memory. Use a smaller image size, fewer filters or a smaller batch. ({text})"
    return text


def run_worker(project_path: str, run_id: str, resume: bool = False) -> int:
    """The worker process body: run status bookkeeping around train(). A run with a cluster makes this process
    its chief (task 0); the other workers run run_peer()."""
    from seg_core.ml import distribute
    from seg_core.ml.callbacks import RunState
    from seg_core.ml.training import train

    project = Project(project_path)
    run = project.runs.get(run_id)
    state = RunState()
    signal.signal(signal.SIGTERM, lambda *_: setattr(state, "term", True))
    # stop_requested is left as it is: jobs.start/resume cleared it, and a Stop pressed while this process was still
    # starting must not be lost.
    project.runs.update(run_id, status=RunStatus.RUNNING, pid=os.getpid(), started_at=run.started_at or time.time(),
                        heartbeat_at=time.time(), error=None, ended_at=None)
    beat = Heartbeat(project, run_id)
    beat.start()
    cluster = None
    try:
        config = TrainConfig.from_dict(run.config)   # strictly: a setting this version does not know is refused
        cluster = distribute.parse_cluster(config.cluster, 0) if config.cluster else None
        plan = distribute.choose(cluster)
        project.runs.update(run_id, devices=plan.describe(precision=plan.precision(config.precision)))
        if cluster:
            print(f"chief of {cluster.spec}: waiting for the other workers (up to {distribute.JOIN_TIMEOUT_S} s)",
                  flush=True)
        status = train(project, run_id, config, resume=resume, state=state, plan=plan)
        project.runs.update(run_id, status=status, ended_at=time.time())
        return 0
    except SegError as exc:
        project.runs.update(run_id, status=RunStatus.FAILED, ended_at=time.time(), error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the run's status
        storage = storage_error(exc, "the run stopped; the checkpoints saved before are kept")
        lost = cluster is not None and storage is None and distribute.is_collective_failure(exc)
        error = (str(storage) if storage is not None else distribute.lost_peer_text(cluster, exc) if lost
                 else failure_text(exc))
        project.runs.update(run_id, status=RunStatus.FAILED, ended_at=time.time(), error=error)
        if storage is not None or lost:   # a full disk or a lost worker is the person's to fix, as a SegError is
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 2
        traceback.print_exc()
        return 1
    finally:
        beat.done.set()


def find_cluster_run(project: Project, cluster, wait_s: float):
    """The run the chief of `cluster` is training (its split recorded), waited for up to `wait_s`."""
    from seg_core.ml.distribute import JOIN_TIMEOUT_S

    end = time.monotonic() + wait_s
    while True:
        for run in project.runs.list():
            if run_config(run).cluster == cluster.spec and run.status == RunStatus.RUNNING and run.split is not None:
                return run
        if time.monotonic() >= end:
            raise TrainingError(f"No run of {project.path} is training on the cluster {cluster.spec} after "
                                f"{wait_s:.0f} s. Start the chief first (--task 0 on {cluster.workers[0]}, with the "
                                f"same --cluster), then this worker within {JOIN_TIMEOUT_S} s of it.")
        time.sleep(0.5)


def run_peer(project_path: str, cluster, wait_s: float = 600.0) -> int:
    """A cluster's worker other than the chief: it trains its share of the chief's run, reading the project from the
    shared folder and writing nothing there (the chief records everything). Exit 0 when the run ended."""
    from seg_core.ml import distribute
    from seg_core.ml.callbacks import RunState
    from seg_core.ml.training import train

    project = Project(project_path)
    run = find_cluster_run(project, cluster, wait_s)
    resume = project.layout.run(run.id).checkpoint("last").exists()
    print(f"task {cluster.task}: joining run {run.id} (chief {cluster.workers[0]})" + (", resumed" if resume else ""),
          flush=True)
    state = RunState()
    signal.signal(signal.SIGTERM, lambda *_: setattr(state, "term", True))
    try:
        status = train(project, run.id, TrainConfig.from_dict(run.config), resume=resume, state=state,
                       plan=distribute.choose(cluster))
    except BaseException as exc:  # noqa: BLE001
        if not distribute.is_collective_failure(exc):
            raise
        print(f"error: {distribute.lost_peer_text(cluster, exc)}", file=sys.stderr, flush=True)
        return 2
    print(f"task {cluster.task}: run {run.id} {status}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="Maskloop training worker")
    ap.add_argument("--project", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    return run_worker(args.project, args.run, args.resume)


if __name__ == "__main__":
    sys.exit(main())
