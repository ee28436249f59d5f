"""Durable file writes: temporary file, flush, fsync, os.replace; a crash leaves old or new, never half."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from seg_core import faults
from seg_core.errors import storage_error

# A temporary file's name carries its writer's pid, so that a project's open can tell a dead writer's
# leftover (removed) from a live writer's file in progress (left alone): ".<name>.<pid>.<random>.tmp".
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp(?:\.keras)?$")


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` survive a power cut (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        faults.point("fsync", path)
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh name beside `path` for its temporary file (for writers that must create the file themselves)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}{suffix}")


def write_temp(path: Path, data: bytes) -> Path:
    """Write `data` to a synced temporary file beside `path`; the caller os.replace()s it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            faults.point("write", tmp)
            f.write(data)
            f.flush()
            faults.point("fsync", tmp)
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def sync_file(path: Path) -> None:
    """fsync a file another library wrote (a zip, a Keras model) before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        faults.point("fsync", path)
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_temp(tmp: Path, path: Path) -> None:
    faults.point("rename", path)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write(path: str | Path, data: bytes) -> None:
    path = Path(path)
    commit_temp(write_temp(path, data), path)


def commit_dir(staged: Path, target: Path) -> None:
    """Put a folder built beside `target` in its place in one rename. A folder already there is moved aside
    first and removed after, so a crash leaves the old folder or the new one (or both), never a mix."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.urandom(3).hex()}"
        faults.point("rename", old)
        os.replace(target, old)
    faults.point("rename", target)
    os.replace(staged, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def storage_guard(undone: str) -> Iterator[None]:
    """A full or read-only disk inside becomes a StorageError whose sentence ends with `undone` (what did not
    happen); any other error passes unchanged. The innermost guard's sentence is the one that reaches a person."""
    try:
        yield
    except Exception as exc:
        err = storage_error(exc, undone)
        if err is None or err is exc:
            raise
        raise err from exc


def leftover_temps(folder: Path) -> Iterator[tuple[Path, str]]:
    """Temporary files in `folder` whose writer process is gone, with the name each was meant to get."""
    if not folder.is_dir():
        return
    for entry in os.scandir(folder):
        m = _TEMP.match(entry.name)
        if m and int(m["pid"]) != os.getpid() and not process_alive(int(m["pid"])):
            yield Path(entry.path), m["name"]


def process_alive(pid: int) -> bool:
    """Is `pid` a running process? A zombie (ended, not yet reaped) is not. Without /proc, any that exists is."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return not Path("/proc/self").exists()   # with /proc: it ended just now
