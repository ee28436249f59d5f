"""Durable file writes: temporary file, flush, fsync, os.replace; a crash leaves old or new, never half."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` survive a power cut (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes) -> Path:
    """Write `data` to a synced temporary file beside `path`; the caller os.replace()s it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def commit_temp(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write(path: str | Path, data: bytes) -> None:
    path = Path(path)
    commit_temp(write_temp(path, data), path)


def commit_dir(staged: Path, target: Path) -> None:
    """Put a folder built beside `target` in its place in one rename. A folder already there is moved aside
    first and removed after, so a crash leaves the old folder or the new one (or both), never a mix."""
    import shutil

    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.urandom(3).hex()}"
        os.replace(target, old)
    os.replace(staged, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
