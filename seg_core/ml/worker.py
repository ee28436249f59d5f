"""The training worker process: `python -m seg_core.ml.worker --project P --run R [--resume]`.

It keeps the run's status and heartbeat in the project database around train(), so a page, a second browser
or the CLI can follow it, and a run whose worker died is recognised (services/jobs.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback

from seg_core.errors import SegError, storage_error
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
            except Exception:
                pass  # a locked DB for a moment is fine; the next beat will land


def failure_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "OOM" in str(exc) or "out of memory" in str(exc).lower():
        return f"Training ran out of memory. Use a smaller image size, fewer filters or a smaller batch. ({text})"
    return text


def run_worker(project_path: str, run_id: str, resume: bool = False) -> int:
    """The worker process body: run status bookkeeping around train()."""
    from seg_core.ml.callbacks import RunState
    from seg_core.ml.training import train

    project = Project(project_path)
    run = project.runs.get(run_id)
    state = RunState()
    signal.signal(signal.SIGTERM, lambda *_: setattr(state, "term", True))
    project.runs.update(run_id, status=RunStatus.RUNNING, pid=os.getpid(), started_at=run.started_at or time.time(),
                        heartbeat_at=time.time(), error=None, ended_at=None, stop_requested=0)
    beat = Heartbeat(project, run_id)
    beat.start()
    try:
        status = train(project, run_id, run.config, resume=resume, state=state)
        project.runs.update(run_id, status=status, ended_at=time.time())
        return 0
    except SegError as exc:
        project.runs.update(run_id, status=RunStatus.FAILED, ended_at=time.time(), error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the run's status
        storage = storage_error(exc, "the run stopped; the checkpoints saved before are kept")
        project.runs.update(run_id, status=RunStatus.FAILED, ended_at=time.time(),
                            error=str(storage) if storage is not None else failure_text(exc))
        if storage is not None:   # a full or read-only disk is the person's to fix, as a SegError is
            print(f"error: {storage}", file=sys.stderr)
            return 2
        traceback.print_exc()
        return 1
    finally:
        beat.done.set()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="Seg Studio training worker")
    ap.add_argument("--project", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    return run_worker(args.project, args.run, args.resume)


if __name__ == "__main__":
    sys.exit(main())
