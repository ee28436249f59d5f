"""Fault injection at the write points (temp writes, fsyncs, renames, database commits), off unless MASKLOOP_FAULT says.

MASKLOOP_FAULT="<action>:<op>:<n>[:<glob>]" acts at the n-th `op` of this process (op: write, fsync, rename,
commit, or any; glob: only ops on file names that match, or on paths where the glob has a "/"). Actions: kill (SIGKILL this process there), enospc,
erofs, eacces (raise that OSError there and at every later matching op, as a full or read-only disk would).
MASKLOOP_FAULT="count:<file>" appends one "op<TAB>path" line per op to <file>, for a harness to learn how many
points a write path has. The variable is read at every call, so a test can set it with monkeypatch.setenv.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
from pathlib import Path

from seg_core import environment

ENV = environment.name(environment.FAULT)
OPS = ("write", "fsync", "rename", "commit")
ERRORS = {"enospc": errno.ENOSPC, "erofs": errno.EROFS, "eacces": errno.EACCES}
ACTIONS = ("kill", *ERRORS)

_state: dict = {"spec": None, "seen": 0}


def point(op: str, path: str | Path = "") -> None:
    """A write point: nothing at all unless MASKLOOP_FAULT is set."""
    spec = environment.get(environment.FAULT)
    if spec:
        _act(spec, op, str(path))


def _act(spec: str, op: str, path: str) -> None:
    if spec.startswith("count:"):
        with open(spec[len("count:"):], "a", encoding="utf-8") as log:  # plain open: not a point itself
            log.write(f"{op}\t{path}\n")
        return
    action, want, n, glob = parse(spec)
    if want not in ("any", op) or (glob and not _matches(path, glob)):
        return
    if _state["spec"] != spec:
        _state.update(spec=spec, seen=0)
    _state["seen"] += 1
    if _state["seen"] < n:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = ERRORS[action]
    raise OSError(code, os.strerror(code), path or None)


def _matches(path: str, glob: str) -> bool:
    return fnmatch.fnmatch(path if "/" in glob else os.path.basename(path), glob)


def parse(spec: str) -> tuple[str, str, int, str]:
    """(action, op, n, glob) of a MASKLOOP_FAULT value; a malformed one is a ValueError that names it."""
    parts = spec.split(":", 3)
    if len(parts) < 3 or parts[0] not in ACTIONS or parts[1] not in (*OPS, "any") or not parts[2].isdigit():
        raise ValueError(f"{ENV}={spec!r}: expected <{'|'.join(ACTIONS)}>:<{'|'.join(OPS)}|any>:<n>[:<glob>] "
                         "or count:<file>")
    return parts[0], parts[1], int(parts[2]), parts[3] if len(parts) == 4 else ""


def counted(log: str | Path, glob: str = "") -> dict[str, int]:
    """How many points of each op a count:<file> log holds (and 'any': all of them), optionally on names matching glob."""
    out = {op: 0 for op in (*OPS, "any")}
    path = Path(log)
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else ():
        op, _, name = line.partition("\t")
        if not glob or _matches(name, glob):
            out[op] = out.get(op, 0) + 1
            out["any"] += 1
    return out


def active() -> bool:
    """Whether fault injection is on in this process."""
    return bool(environment.get(environment.FAULT))
