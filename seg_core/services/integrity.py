"""The checks behind `maskloop check`: a project reopened after anything (a crash, a full disk) holds together."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from seg_core.errors import SegError
from seg_core.durable import leftover_temps
from seg_core.formats import masks as codec
from seg_core.store import db, recovery
from seg_core.store.layout import CHECKPOINTS, DB_NAME
from seg_core.store.project import Project
from seg_core.store.records import ImageStatus


@dataclass(frozen=True)
class Problem:
    where: str       # "images/3.png", "project.db", "runs/<id>/best.keras"
    sentence: str    # what is wrong, for a person

    def __str__(self) -> str:
        return f"{self.where}: {self.sentence}"


def check_project(path: str | Path, models: bool = True) -> list[Problem]:
    """Every problem found, in plain sentences; [] means the project is whole. Opening it first puts right what a
    crash leaves on purpose (store/recovery.py); what is still wrong after that is a problem. models=False skips
    loading the runs' checkpoints (which needs TensorFlow)."""
    path = Path(path)
    problems = _database(path / DB_NAME)
    if problems:
        return problems
    try:
        project = Project(path)
    except (SegError, sqlite3.Error) as exc:
        return [Problem(DB_NAME, f"the project does not open: {exc}")]
    try:
        try:
            # as a fresh process's open would, even where this one opened it before
            recovery.tidy(project.db, project.layout)
        except (OSError, sqlite3.Error):
            pass                     # a full or read-only disk: what is left is reported below
        problems += _images(project) + _masks(project) + _drafts(project) + _leftovers(project)
        problems += _thumbnails(project) + _runs(project, models)
    finally:
        project.close()
    return problems


def _database(file: Path) -> list[Problem]:
    if not file.is_file():
        return [Problem(DB_NAME, "there is no project database here")]
    try:
        with db.opened(file) as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        return [Problem(DB_NAME, f"the database cannot be read: {exc}")]
    return [] if rows == ["ok"] else [Problem(DB_NAME, f"the database is damaged: {r}") for r in rows]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _where(project: Project, path: Path) -> str:
    """A file of the project as a report names it: "runs/<id>/best.keras"."""
    return path.relative_to(project.layout.root).as_posix()


def _images(project: Project) -> list[Problem]:
    out, named = [], set()
    for rec in project.list_images():
        file = project.layout.image(rec.stored_name) if rec.stored_name else None
        named.add(rec.stored_name)
        if file is None or not file.is_file():
            out.append(Problem(_where(project, file or project.layout.image(str(rec.id))),
                               f"the file of image {rec.id} ('{rec.filename}') is missing"))
        elif _sha(file) != rec.sha256:
            out.append(Problem(_where(project, file), f"the file is not the one uploaded as '{rec.filename}'"))
    folder = project.layout.images_dir
    for file in sorted(folder.iterdir()) if folder.is_dir() else ():
        if not file.name.startswith(".") and file.name not in named:
            out.append(Problem(_where(project, file), "no image record uses this file"))
    return out


def _masks(project: Project) -> list[Problem]:
    out, classes = [], project.classes
    labeled = set()
    for rec in project.list_images(status=ImageStatus.LABELED):
        labeled.add(rec.id)
        file = project.masks.path(rec.id)
        where = _where(project, file)
        if not file.is_file():
            out.append(Problem(where, f"'{rec.filename}' is labeled (version {rec.mask_version}) but its mask is missing"))
            continue
        try:
            ids = codec.load_png(file)
            codec.validate_ids(ids, classes, rec.size)
        except (OSError, ValueError, SegError) as exc:
            out.append(Problem(where, f"the mask of '{rec.filename}' does not decode as one of its size: {exc}"))
            continue
        if _sha(file) != rec.mask_sha256:
            out.append(Problem(where, f"the mask of '{rec.filename}' is not the one recorded as version "
                                      f"{rec.mask_version}"))
        elif codec.class_pixel_counts(ids) != project.masks.class_pixels(rec.id):
            out.append(Problem(where, f"the class pixel counts recorded for '{rec.filename}' are not its mask's"))
    folder = project.layout.masks_dir
    for file in sorted(folder.glob("*.png")) if folder.is_dir() else ():
        if not (file.stem.isdigit() and int(file.stem) in labeled):
            out.append(Problem(_where(project, file), "no labeled image uses this mask"))
    return out


def _drafts(project: Project) -> list[Problem]:
    out = []
    for image_id in sorted(project.drafts.image_ids()):
        # Reading drops (and logs) an unreadable draft: what is left must read.
        if project.drafts.path(image_id).exists() and project.drafts.get(image_id) is None:
            out.append(Problem(_where(project, project.drafts.path(image_id)), "an unreadable draft was not dropped"))
    return out


def _leftovers(project: Project) -> list[Problem]:
    root, out = project.layout.root, []
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        for tmp, name in leftover_temps(folder):
            out.append(Problem(_where(project, tmp), f"a half-done write of {name} was left behind"))
    return out


def _thumbnails(project: Project) -> list[Problem]:
    out, folder = [], project.layout.thumbnails_dir
    for file in sorted(folder.glob("*.jpg")) if folder.is_dir() else ():
        try:
            with Image.open(io.BytesIO(file.read_bytes())) as im:
                im.load()
        except OSError as exc:
            out.append(Problem(_where(project, file), f"a cached thumbnail does not decode: {exc}"))
    return out


def _runs(project: Project, models: bool) -> list[Problem]:
    out = []
    for run in project.runs.list():
        files = project.layout.run(run.id)
        if not files.dir.is_dir():
            out.append(Problem(_where(project, files.dir), "the run's folder is missing"))
            continue
        used = (run.split.masks if run.split else None) or ()
        lost = [m.image_id for m in used if not files.mask(m.image_id).exists()]
        if lost:
            out.append(Problem(_where(project, files.masks_dir), f"{len(lost)} of the masks the run learned from are "
                               "missing (it cannot be resumed or exported as it learned)"))
        for which in CHECKPOINTS:
            file = files.checkpoint(which)
            if models and file.exists():
                try:
                    _load_model(file)
                except Exception as exc:  # noqa: BLE001 - any failure to load is the problem reported
                    out.append(Problem(_where(project, file), f"the checkpoint does not load: "
                                                              f"{type(exc).__name__}: {exc}"))
    return out


def _load_model(file: Path) -> None:
    from seg_core.ml import models

    models.load_saved(file)
