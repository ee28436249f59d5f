"""What a crash can leave in a project folder, put right on open: dead writers' temporary files, a mask saved in the
database whose file was not yet renamed in, files of images or masks whose records are gone."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from pathlib import Path

from seg_core.durable import fsync_dir, leftover_temps
from seg_core.store.db import Database
from seg_core.store.layout import ProjectLayout
from seg_core.store.records import ImageStatus

log = logging.getLogger(__name__)
# A server opens its project at every page rerun: the folders are looked through once per process and project.
_tidied: set[Path] = set()
_lock = threading.Lock()


def tidy_once(database: Database, layout: ProjectLayout) -> None:
    with _lock:
        if layout.root in _tidied:
            return
        _tidied.add(layout.root)
    try:
        tidy(database, layout)
    except (OSError, sqlite3.Error) as exc:   # a read-only workspace can still be opened and read
        log.warning("could not tidy %s after a crash: %s", layout.root, exc)


def tidy(database: Database, layout: ProjectLayout) -> list[str]:
    """Put right what a crash left; returns one sentence per thing done (the log has them too)."""
    done = []
    saved = _saved_masks(database)
    for tmp, name in leftover_temps(layout.masks_dir):
        if name.endswith(".png") and name[:-4].isdigit() and _finish_mask(tmp, layout.masks_dir / name,
                                                                           saved.get(int(name[:-4]))):
            done.append(f"completed the interrupted save of mask {name}")
        else:
            done.append(_remove(tmp))
    folders = [layout.root, layout.images_dir, layout.drafts_dir, layout.predictions_dir, layout.thumbnails_dir,
               layout.review_cache_dir, layout.training_cache_dir]
    folders += [folder for run in layout.runs() for folder in run.folders()]
    for folder in folders:
        done += [_remove(tmp) for tmp, _ in leftover_temps(folder)]
    done += _strays(database, layout)
    for line in done:
        log.warning("%s: %s", layout.root.name, line)
    return done


def _remove(path: Path) -> str:
    path.unlink(missing_ok=True)
    return f"removed {path.name}, left by a writer that was stopped"


def _saved_masks(database: Database) -> dict[int, str]:
    with database.connection() as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT id, mask_sha256 FROM images WHERE status = ?",
                                                 (ImageStatus.LABELED.value,))}


def _finish_mask(tmp: Path, target: Path, recorded: str | None) -> bool:
    """The database recorded this file's content as the mask, but the writer stopped before renaming it in."""
    if recorded is None or _sha(tmp) != recorded or (target.exists() and _sha(target) == recorded):
        return False
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return True


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strays(database: Database, layout: ProjectLayout) -> list[str]:
    """Image files whose insert was rolled back, and mask or draft files of images cleared or deleted. Under the
    write lock: an image being added holds it from its file's rename to the commit."""
    out = []
    with database.transaction() as conn:
        rows = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, stored_name, status FROM images")}
        for folder, keep in ((layout.images_dir, lambda i, n: i in rows and rows[i][0] == n),
                             (layout.masks_dir, lambda i, n: rows.get(i, ("", ""))[1] == ImageStatus.LABELED),
                             (layout.drafts_dir, lambda i, n: i in rows)):
            for entry in os.scandir(folder) if folder.is_dir() else ():
                stem = entry.name.split(".", 1)[0]
                if entry.is_file() and stem.isdigit() and not entry.name.startswith(".") \
                        and not keep(int(stem), entry.name):
                    Path(entry.path).unlink(missing_ok=True)
                    out.append(f"removed {folder.name}/{entry.name}, which no image record uses")
    return out
