"""Undo and Redo of one tab's edits: the Edit, the bounded stacks, and their copy beside the draft so that a reload,
or another tab opening the very same draft, can still take edits back.

On disk (drafts/, paths in store/layout.py) an index names the draft revision, mask version and class numbering the
history belongs to, and the edits of each stack by key; each edit is a file of its own, written once. A history is
used only on the draft it was written with: any other revision, version or numbering means its pixels may not fit.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seg_core.durable import atomic_write

if TYPE_CHECKING:
    from seg_core.store.project import Project

# Undo keeps this many edits per tab, and at most this many bytes of them (each edit keeps only the box it changed).
MAX_UNDO = 100
MAX_UNDO_BYTES = 256 << 20
log = logging.getLogger(__name__)
# Tabs are threads of one server: writing the edits, the index and dropping the unused ones happen as one step.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Edit:
    """One change to the mask, whole (a stroke, a shape, a fill): the box it touched, before and after."""

    box: tuple[int, int, int, int]      # y0, y1, x0, x1
    before: np.ndarray
    after: np.ndarray
    what: str
    scribbles: tuple[np.ndarray, np.ndarray] | None = None   # smart-fill strokes before and after

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes + sum(s.nbytes for s in self.scribbles or ())

    @cached_property
    def key(self) -> str:
        """Its file's name: from its content, so that an edit renumbered after a class removal is another file."""
        h = hashlib.sha1(json.dumps([self.box, self.what]).encode())
        for a in (self.before, self.after, *(self.scribbles or ())):
            h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()[:20]


def make_edit(old: np.ndarray, new: np.ndarray, what: str) -> Edit | None:
    """The edit from `old` to `new`, kept to the box of the pixels that changed; None when none did."""
    diff = old != new
    rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
    if not len(rows):
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return Edit((y0, y1, x0, x1), old[y0:y1, x0:x1].copy(), new[y0:y1, x0:x1].copy(), what)


def push(stack: list[Edit], edit: Edit) -> None:
    """Add an edit to the Undo stack, dropping the oldest beyond the bounds (the newest is always kept)."""
    stack.append(edit)
    while len(stack) > MAX_UNDO or (len(stack) > 1 and sum(e.nbytes for e in stack) > MAX_UNDO_BYTES):
        stack.pop(0)


def store(project: "Project", image_id: int, stamp: dict, undo: list[Edit], redo: list[Edit]) -> None:
    """Keep both stacks for the draft `stamp` names ({"rev", "base_version", "scheme"}). A history that cannot be
    written costs only itself: the draft is already safe, and a stale index is never used on another draft."""
    try:
        with _LOCK:
            keys = {"undo": [e.key for e in undo], "redo": [e.key for e in redo]}
            for edit in (*undo, *redo):
                path = project.layout.undo_edit(image_id, edit.key)
                if not path.exists():
                    atomic_write(path, _encode(edit))
            index = project.layout.undo_index(image_id)
            old = _keys(index)
            atomic_write(index, json.dumps({**stamp, **keys}).encode())
            # The old index names what is there: no listing of the folder (every image's drafts) on each stroke.
            for key in old - set(keys["undo"]) - set(keys["redo"]):
                project.layout.undo_edit(image_id, key).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("the undo history of image %d was not kept: %s", image_id, exc)


def _keys(index: Path) -> set[str]:
    try:
        old = json.loads(index.read_text())
        return {str(k) for k in (*old["undo"], *old["redo"])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def load(project: "Project", image_id: int, stamp: dict) -> tuple[list[Edit], list[Edit]]:
    """The Undo and Redo stacks kept with exactly this draft (`stamp` as in store), else two empty ones."""
    try:
        with _LOCK:
            index = json.loads(project.layout.undo_index(image_id).read_text())
            if any(index.get(k) != v for k, v in stamp.items()):
                return [], []
            undo, redo = ([_decode(project.layout.undo_edit(image_id, k)) for k in index[name]]
                          for name in ("undo", "redo"))
            return undo, redo
    except FileNotFoundError:
        return [], []
    except Exception as exc:   # noqa: BLE001 - a broken history only means nothing to undo, never a broken page
        log.warning("the undo history of image %d was not read: %s: %s", image_id, type(exc).__name__, exc)
        return [], []


def forget(project: "Project", image_id: int) -> None:
    """Drop the history (its draft became the mask)."""
    pattern = project.layout.undo_edit(image_id, "*")   # edits an interrupted write left unnamed too
    with _LOCK:
        project.layout.undo_index(image_id).unlink(missing_ok=True)
        for path in pattern.parent.glob(pattern.name):
            path.unlink(missing_ok=True)


def _encode(edit: Edit) -> bytes:
    buf = io.BytesIO()
    arrays = {"before": edit.before, "after": edit.after}
    if edit.scribbles is not None:
        arrays.update(scribbles_before=edit.scribbles[0], scribbles_after=edit.scribbles[1])
    np.savez_compressed(buf, meta=np.array(json.dumps({"box": edit.box, "what": edit.what})), **arrays)
    return buf.getvalue()


def _decode(path: Path) -> Edit:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        scribbles = (z["scribbles_before"], z["scribbles_after"]) if "scribbles_before" in z.files else None
        return Edit(tuple(meta["box"]), z["before"], z["after"], meta["what"], scribbles)
