"""Project: a folder with project.db, and the facade over its parts. Each part is handed the database and the
folder layout it needs, and the other parts it works with; `Project` builds them and hands them out as
`project.images`, `.masks`, `.drafts`, `.predictions`, `.runs`, `.outcomes`, `.splits`, `.lineage` and
`.class_scheme`, and keeps the short names pages and services use (`project.image(...)`, `project.classes`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from seg_core.classes import IGNORE_ID, ClassSpec, binary_classes, validate_classes
from seg_core.errors import ProjectError
from seg_core.durable import commit_temp
from seg_core.formats.images import PreparedImage
from seg_core.store import db, recovery
from seg_core.store.annotations import Drafts, Masks
from seg_core.store.class_scheme import ClassScheme
from seg_core.store.class_table import ClassTable
from seg_core.store.db import Database
from seg_core.store.images import Images
from seg_core.store.layout import DB_NAME, ProjectLayout
from seg_core.store.lineage import Lineage
from seg_core.store.names import check_project_name
from seg_core.store.outcomes import Outcomes
from seg_core.store.predictions import Predictions
from seg_core.store.records import AddResult, ImageRecord, ImageStatus
from seg_core.store.runs import Runs
from seg_core.store.splits import Splits


def is_project(path: str | Path) -> bool:
    try:
        return (Path(path) / DB_NAME).is_file()
    except (OSError, ValueError):  # a name too long for the file system (a hand-made ?project=...), a NUL
        return False


class Project:
    """One project folder. Cheap to open (reads only); one SQLite connection per thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.layout = layout = ProjectLayout(self.path)
        if not is_project(self.path):
            raise ProjectError(f"There is no project at {self.path}.")
        self.db = database = Database(layout.db)
        self.images = Images(database, layout)
        self.class_table = ClassTable(database, self.images)
        self.masks = Masks(database, layout, self.images, self.class_table)
        self.drafts = Drafts(layout, self.images, self.class_table)
        self.predictions = Predictions(database, layout, self.images, self.class_table)
        self.class_scheme = ClassScheme(database, self.images, self.class_table, self.masks, self.drafts,
                                        self.predictions)
        self.runs = Runs(database, layout)
        self.outcomes = Outcomes(database)
        self.splits = Splits(database, self.images)
        self.lineage = Lineage(layout, self.images, self.masks)
        database.upgrade()
        self.class_scheme.finish_pending_renames()
        recovery.tidy_once(database, layout)

    @classmethod
    def create(cls, path: str | Path, name: str | None = None, classes: Sequence[ClassSpec] | None = None,
               kind: str | None = None) -> "Project":
        # The name first: a NUL or a 300-character folder name would fail in the file system, not with a sentence.
        name = check_project_name(name or Path(os.path.abspath(path)).name)
        path = Path(path).resolve()
        if is_project(path):
            raise ProjectError(f"A project already exists at {path}.")
        layout = ProjectLayout(path)
        if path.exists() and not all(_left_by_create(p, layout) for p in path.iterdir()):
            raise ProjectError(f"{path} is a folder with files in it; choose an empty or new folder.")
        classes = list(classes) if classes else binary_classes()
        validate_classes(classes)
        kind = kind or ("binary" if len(classes) == 2 else "multiclass")
        if kind not in ("binary", "multiclass"):
            raise ProjectError(f"A project is 'binary' or 'multiclass', not '{kind}'.")
        if kind == "binary" and len(classes) != 2:
            raise ProjectError(f"A binary project has exactly two classes; got {len(classes)}.")
        for folder in layout.created_dirs():
            folder.mkdir(parents=True, exist_ok=True)
        # Build the database beside its final name so a crash never leaves a half-made project.
        tmp = layout.creating_db
        for suffix in ("", "-wal", "-shm"):   # a create stopped before: its journal must not meet a new file
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        with db.opened(tmp) as conn:
            db.migrate(conn)
            with db.transaction(conn):
                conn.execute("INSERT INTO project (id, name, kind, created_at) VALUES (1, ?, ?, ?)",
                             (name, kind, time.time()))
                db.write_classes(conn, classes)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode = DELETE")
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        commit_temp(tmp, layout.db)
        with db.opened(layout.db) as conn:
            db.enable_wal(conn)
        return cls(path)

    def close(self) -> None:
        self.db.close()

    def _meta(self):
        with self.db.connection() as conn:
            return conn.execute("SELECT name, kind, created_at FROM project WHERE id = 1").fetchone()

    @property
    def name(self) -> str:
        return self._meta()["name"]

    @property
    def kind(self) -> str:
        return self._meta()["kind"]

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r})"

    # ----- classes (store/class_table.py, store/class_scheme.py) --------------------------------
    @property
    def classes(self) -> list[ClassSpec]:
        return self.class_table.all()

    def set_classes(self, classes: Sequence[ClassSpec]) -> None:
        """Replace names/colours; changing the number of classes needs an empty project."""
        self.class_table.set(classes)

    def add_class(self, name: str, color: str | Sequence[int] | None = None) -> ClassSpec:
        return self.class_table.add(name, color)

    def remove_class(self, class_id: int, pixels_to: int = 0, author: str = "user") -> int:
        """Delete a class, rewriting every mask that uses it (see ClassScheme.remove); returns masks rewritten."""
        return self.class_scheme.remove(class_id, pixels_to, author)

    # ----- images (store/images.py) ---------------------------------------------------------------
    def add_image(self, data: bytes, filename: str, *, split: str | None = None,
                  prepared: PreparedImage | None = None) -> AddResult:
        """Validate and store an upload; an identical file (same sha256) is reported as a duplicate."""
        return self.images.add(data, filename, split=split, prepared=prepared)

    def find_by_stem(self, stem: str) -> list[ImageRecord]:
        """Images whose original file name has this base name (masks are matched to images by it)."""
        return self.images.find_by_stem(stem)

    def image(self, image_id: int) -> ImageRecord:
        return self.images.get(image_id)

    def list_images(self, status: str | None = None, split: str | None = None, offset: int = 0,
                    limit: int | None = None, *, search: str | None = None,
                    predicted: bool | None = None) -> list[ImageRecord]:
        return self.images.list(status, split, offset, limit, search=search, predicted=predicted)

    def image_ids(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
                  predicted: bool | None = None) -> list[int]:
        return self.images.ids(status, split, search=search, predicted=predicted)

    def count_images(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
                     predicted: bool | None = None) -> int:
        return self.images.count(status, split, search=search, predicted=predicted)

    def image_path(self, image: int | ImageRecord) -> Path:
        return self.images.path(image)

    def load_image(self, image: int | ImageRecord) -> np.ndarray:
        """uint8 HxW (grayscale) or HxWx3 (RGB), upright."""
        return self.images.load(image)

    def delete_image(self, image_id: int) -> None:
        self.images.delete(image_id)

    # ----- settings and summary ----------------------------------------------------------------
    def setting(self, key: str, default=None):
        return self.db.setting(key, default)

    def set_setting(self, key: str, value) -> None:
        self.db.set_setting(key, value)

    def stats(self) -> dict:
        """Counts by status, split and class, for the CLI's `info` and the Home page."""
        meta, classes, counts = self._meta(), self.classes, self.images.counts()
        by_status, per_class = counts["by_status"], counts["per_class"]
        total_px = sum(p for _, p in per_class.values()) or 1
        return {
            "name": meta["name"], "path": str(self.path), "kind": meta["kind"],
            "images": sum(by_status.values()), "labeled": by_status[ImageStatus.LABELED],
            "unlabeled": by_status[ImageStatus.UNLABELED],
            "by_status": by_status, "by_split": counts["by_split"],
            "channels": counts["channels"],
            "num_classes": len(classes),
            "classes": [
                {**c.to_dict(), "images": per_class.get(c.id, (0, 0))[0],
                 "pixels": int(per_class.get(c.id, (0, 0))[1]),
                 "pixel_fraction": round(per_class.get(c.id, (0, 0))[1] / total_px, 6)}
                for c in classes
            ],
            "class_ids_present": sorted(c for c in per_class if c < len(classes)),
            "ignore_pixels": int(per_class.get(IGNORE_ID, (0, 0))[1]),
        }


def _left_by_create(entry: Path, layout: ProjectLayout) -> bool:
    """What a create stopped half-way leaves, which a new create may take over: its empty folders, its database
    being built."""
    if entry.name.startswith(layout.creating_db.name):   # with its -wal and -shm files
        return True
    return entry in layout.created_dirs() and entry.is_dir() and not any(entry.iterdir())
