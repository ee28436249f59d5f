"""Start, stop, resume and watch training workers; runs whose worker died are marked failed on the next look."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from seg_core import environment
from seg_core.errors import TrainingError
from seg_core.durable import process_alive
from seg_core.ml.config import TrainConfig, require_labeled, run_config
from seg_core.ml.worker import MODULE as WORKER_MODULE
from seg_core.store.layout import workspace_dir
from seg_core.store.project import Project
from seg_core.store.records import ImageStatus
from seg_core.store.runs import RunRecord, RunStatus

# A worker that has not written its heartbeat for this long is taken for dead (it beats every 5 s).
STALE_HEARTBEAT_S = 60.0
# A queued run gets this long to import TensorFlow and say it is running.
START_GRACE_S = 180.0
DEAD_MESSAGE = ("The training process ended unexpectedly (it was killed, or ran out of memory). "
                "The last finished epoch is kept: press Resume to continue from it.")


def _spawn(project: Project, run_id: str, resume: bool) -> int:
    log = project.layout.run(run_id).worker_log
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", WORKER_MODULE, "--project", str(project.path), "--run", run_id]
    if resume:
        cmd.append("--resume")
    # The worker runs in the repository folder: it must see this process's workspace (weights, machine speed),
    # not a ./workspace of its own working folder.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", environment.name(environment.WORKSPACE): str(workspace_dir())}
    # glibc gives each thread that allocates an arena of its own, up to 8 a core, and TensorFlow's thread pools
    # and tf.data's keep freed memory in theirs: two arenas lower the worker's peak at no cost in speed
    # (bench/train_memory.py). A value the person set is kept.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    with open(log, "ab") as out:
        # Its own session: closing the browser tab or restarting the page's script never touches it.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=str(Path(__file__).resolve().parents[2]))
    return proc.pid


def start(project: Project, config: TrainConfig | dict, run_id: str | None = None) -> RunRecord:
    """Record a run and launch its worker; refused while another run of this project is active."""
    refresh(project)
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    cfg.validate(len(project.classes))
    require_labeled(project.count_images(status=ImageStatus.LABELED))
    run = project.runs.create(cfg.to_dict(), run_id)
    pid = _spawn(project, run.id, resume=False)
    project.runs.update(run.id, pid=pid, heartbeat_at=time.time())
    return project.runs.get(run.id)


def resume(project: Project, run_id: str) -> RunRecord:
    """Continue a stopped or failed run from its last.keras."""
    refresh(project)
    run = project.runs.get(run_id)
    if run.active:
        raise TrainingError(f"Run {run_id} is still {run.status}.")
    if not project.layout.run(run_id).checkpoint("last").exists():
        raise TrainingError(f"Run {run_id} never finished an epoch, so there is nothing to resume; start a new run.")
    busy = [r for r in project.runs.list() if r.active]
    if busy:
        raise TrainingError(f"Run {busy[0].id} is {busy[0].status}; one run at a time per project.")
    project.runs.update(run_id, status=RunStatus.QUEUED, stop_requested=0, error=None, ended_at=None,
                        heartbeat_at=time.time())
    pid = _spawn(project, run_id, resume=True)
    project.runs.update(run_id, pid=pid)
    return project.runs.get(run_id)


def resumable(project: Project, run: RunRecord) -> bool:
    """A stopped or failed run that finished at least one epoch can go on from its last.keras."""
    return (run.status in (RunStatus.STOPPED, RunStatus.FAILED)
            and project.layout.run(run.id).checkpoint("last").exists())


def stop(project: Project, run_id: str, wait_s: float = 0.0) -> RunRecord:
    """Ask the worker to stop after the current batch; past the grace period, terminate it."""
    run = project.runs.get(run_id)
    if not run.active:
        return run
    project.runs.request_stop(run_id)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        run = project.runs.get(run_id)
        if not run.active:
            return run
        time.sleep(0.2)
    if wait_s and run.pid and _alive(run.pid, run_id):
        _terminate(run.pid)
    return refresh_run(project, run_id)


def _terminate(pid: int) -> None:
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(50):
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int, run_id: str | None = None) -> bool:
    """Is `pid` a live (not zombie) training worker, for this run if given?"""
    try:
        # Reap it if it is our child and has exited; otherwise a zombie would look alive.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        return False
    if not process_alive(pid):
        return False
    cmdline = _command_line(pid)
    if cmdline is None:
        return False
    # A reused pid belongs to another program: that is a dead worker too. An empty command line is a worker still
    # between fork and exec, for a few milliseconds after it was started (were it anything else, the start's grace
    # period and the heartbeat still end it).
    if cmdline.strip() and (WORKER_MODULE not in cmdline or (run_id and run_id not in cmdline)):
        return False
    return True


def _command_line(pid: int) -> str | None:
    """The process's command line; "" where the system does not show it (no /proc), None where it cannot be read."""
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return ""
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def refresh_run(project: Project, run_id: str) -> RunRecord:
    """Mark the run failed if it claims to be active but its worker is gone."""
    run = project.runs.get(run_id)
    if not run.active:
        return run
    now = time.time()
    dead = False
    if run.pid and not _alive(run.pid, run.id):
        dead = True
    elif run.status == RunStatus.RUNNING and run.heartbeat_at and now - run.heartbeat_at > STALE_HEARTBEAT_S:
        dead = True
    elif run.status == RunStatus.QUEUED and now - (run.heartbeat_at or run.created_at) > START_GRACE_S:
        dead = True
    if dead:
        cluster = run_config(run).cluster
        error = DEAD_MESSAGE if not cluster else (
            f"The chief of the cluster {cluster} ended unexpectedly (killed, out of memory, or TensorFlow "
            "ended it when another worker stopped answering). The last finished epoch is kept: start every worker "
            "again and resume.")
        project.runs.update(run_id, status=RunStatus.FAILED, ended_at=now, error=error)
    return project.runs.get(run_id)


def refresh(project: Project) -> list[RunRecord]:
    """All runs, newest first, with dead workers' runs marked failed."""
    return [refresh_run(project, r.id) if r.active else r for r in project.runs.list()]


def worker_log(project: Project, run_id: str, tail: int = 4000) -> str:
    path = project.layout.run(run_id).worker_log
    if not path.exists():
        return ""
    data = path.read_bytes()[-tail:]
    return data.decode(errors="replace")
