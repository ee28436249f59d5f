"""Project: a folder with project.db; its identity, classes, images and settings. Masks, drafts, predictions, runs
and review outcomes hang off it as `project.masks`, `.drafts`, `.predictions`, `.runs` and `.outcomes`."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from seg_core.classes import IGNORE_ID, ClassSpec, binary_classes, default_color, parse_color, validate_classes
from seg_core.errors import ClassSpecError, NotFoundError, ProjectError
from seg_core.files import commit_temp, storage_guard, write_temp
from seg_core.formats import images
from seg_core.store import annotations, db, recovery
from seg_core.store.layout import DB_NAME, ProjectLayout
from seg_core.store.records import STATUSES, AddResult, ImageRecord
from seg_core.store.outcomes import Outcomes
from seg_core.store.runs import Runs
from seg_core.store.splits import SPLITS, check_split


def is_project(path: str | Path) -> bool:
    try:
        return (Path(path) / DB_NAME).is_file()
    except (OSError, ValueError):  # a name too long for the file system (a hand-made ?project=...), a NUL
        return False


class Project:
    """One project folder. Cheap to open (reads only); one SQLite connection per thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        self.layout = ProjectLayout(self.path)
        if not is_project(self.path):
            raise ProjectError(f"There is no project at {self.path}.")
        self._local = threading.local()
        with self._db() as conn:
            db.upgrade(conn)
        annotations.finish_pending_renames(self)
        recovery.tidy_once(self)
        self.masks = annotations.Masks(self)
        self.drafts = annotations.Drafts(self)
        self.predictions = annotations.Predictions(self)
        self.runs = Runs(self)
        self.outcomes = Outcomes(self)

    @classmethod
    def create(cls, path: str | Path, name: str | None = None, classes: Sequence[ClassSpec] | None = None,
               kind: str | None = None) -> "Project":
        from seg_core.store.workspace import check_project_name

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
        tmp = path / f".{DB_NAME}.creating"
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

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread and Project: opening SQLite for every call cost more than the work.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = db.connect(self.layout.db)
        yield conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _meta(self) -> sqlite3.Row:
        with self._db() as conn:
            return conn.execute("SELECT name, kind, created_at FROM project WHERE id = 1").fetchone()

    @property
    def name(self) -> str:
        return self._meta()["name"]

    @property
    def kind(self) -> str:
        return self._meta()["kind"]

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r})"

    # ----- classes ---------------------------------------------------------------------------
    @property
    def classes(self) -> list[ClassSpec]:
        with self._db() as conn:
            rows = conn.execute("SELECT id, name, color FROM classes ORDER BY id").fetchall()
        return [ClassSpec(r["id"], r["name"], parse_color(r["color"])) for r in rows]

    def set_classes(self, classes: Sequence[ClassSpec]) -> None:
        """Replace names/colours; changing the number of classes needs an empty project."""
        classes = list(classes)
        validate_classes(classes)
        if len(classes) != len(self.classes) and self.count_images(status="labeled"):
            raise ClassSpecError("Masks already use the current classes; add or remove classes one at a time.")
        with self._db() as conn, db.transaction(conn):
            db.write_classes(conn, classes)

    def update_class(self, class_id: int, name: str | None = None, color: str | Sequence[int] | None = None) -> None:
        classes = self.classes
        if not 0 <= class_id < len(classes):
            raise NotFoundError(f"There is no class {class_id}.")
        old = classes[class_id]
        classes[class_id] = ClassSpec(class_id, name.strip() if name is not None else old.name,
                                      parse_color(color) if color is not None else old.color)
        self.set_classes(classes)

    def add_class(self, name: str, color: str | Sequence[int] | None = None) -> ClassSpec:
        classes = self.classes
        new = ClassSpec(len(classes), name.strip(),
                        parse_color(color) if color is not None else default_color(len(classes)))
        validate_classes(classes + [new])
        with self._db() as conn, db.transaction(conn):
            db.write_classes(conn, classes + [new])
        return new

    def remove_class(self, class_id: int, pixels_to: int = 0, author: str = "user") -> int:
        """Delete a class, rewriting every mask that uses it (see annotations.remove_class); returns masks rewritten."""
        return annotations.remove_class(self, class_id, pixels_to, author)

    # ----- images ----------------------------------------------------------------------------
    def add_image(self, data: bytes, filename: str, *, split: str | None = None,
                  prepared: images.PreparedImage | None = None) -> AddResult:
        """Validate and store an upload; an identical file (same sha256) is reported as a duplicate."""
        if split is not None:
            check_split(split)
        prep = prepared or images.prepare_upload(data, filename)
        placed: list[Path] = []
        with storage_guard(f"'{filename}' was not added"):
            try:
                return self._insert_image(prep, filename, split, placed)
            except BaseException:
                for path in placed:   # a COMMIT that failed (a full disk) leaves no file without its record
                    path.unlink(missing_ok=True)
                raise

    def _insert_image(self, prep: images.PreparedImage, filename: str, split: str | None,
                      placed: list[Path]) -> AddResult:
        with self._db() as conn, db.transaction(conn):
            again = conn.execute("SELECT * FROM images WHERE sha256 = ?", (prep.sha256,)).fetchone()
            if again:
                rec = ImageRecord.from_row(again)
                return AddResult("duplicate", rec, f"same file as '{rec.filename}' (image {rec.id})")
            now = time.time()
            cur = conn.execute(
                "INSERT INTO images (filename, stored_name, sha256, width, height, channels, source_format, "
                "split, created_at, updated_at) VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?)",
                (filename, prep.sha256, prep.width, prep.height, prep.channels, prep.source_format,
                 split or "train", now, now),
            )
            image_id = int(cur.lastrowid)
            stored = f"{image_id}{prep.ext}"
            target = self.layout.image(stored)
            tmp = write_temp(target, prep.data)
            try:
                placed.append(target)
                commit_temp(tmp, target)
                conn.execute("UPDATE images SET stored_name = ? WHERE id = ?", (stored, image_id))
            except BaseException:
                tmp.unlink(missing_ok=True)
                target.unlink(missing_ok=True)
                raise
            row = conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        detail = f"converted from {prep.source_format} to PNG" if prep.converted else ""
        return AddResult("added", ImageRecord.from_row(row), detail)

    def find_by_stem(self, stem: str) -> list[ImageRecord]:
        """Images whose original file name has this base name (masks are matched to images by it)."""
        with self._db() as conn:
            rows = conn.execute("SELECT * FROM images WHERE filename = ? OR filename LIKE ? ESCAPE '\\' ORDER BY id",
                                (stem, _like_escape(stem) + ".%")).fetchall()
        return [ImageRecord.from_row(r) for r in rows if Path(r["filename"]).stem == stem]

    def image(self, image_id: int) -> ImageRecord:
        with self._db() as conn:
            row = conn.execute("SELECT * FROM images WHERE id = ?", (int(image_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"Image {image_id} is not in this project (it may have been deleted).")
        return ImageRecord.from_row(row)

    def list_images(self, status: str | None = None, split: str | None = None, offset: int = 0,
                    limit: int | None = None, *, search: str | None = None,
                    predicted: bool | None = None) -> list[ImageRecord]:
        where, args = _filters(status, split, search, predicted)
        with self._db() as conn:
            rows = conn.execute(f"SELECT * FROM images{where} ORDER BY id LIMIT ? OFFSET ?",
                                (*args, -1 if limit is None else int(limit), int(offset))).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def image_ids(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
                  predicted: bool | None = None) -> list[int]:
        where, args = _filters(status, split, search, predicted)
        with self._db() as conn:
            return [r[0] for r in conn.execute(f"SELECT id FROM images{where} ORDER BY id", args)]

    def count_images(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
                     predicted: bool | None = None) -> int:
        where, args = _filters(status, split, search, predicted)
        with self._db() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM images{where}", args).fetchone()[0])

    def image_path(self, image: int | ImageRecord) -> Path:
        rec = image if isinstance(image, ImageRecord) else self.image(image)
        return self.layout.image(rec.stored_name)

    def load_image(self, image: int | ImageRecord) -> np.ndarray:
        """uint8 HxW (grayscale) or HxWx3 (RGB), upright."""
        return images.load_image(self.image_path(image))

    def delete_image(self, image_id: int) -> None:
        rec = self.image(image_id)
        with self._db() as conn, db.transaction(conn):
            conn.execute("DELETE FROM images WHERE id = ?", (rec.id,))
        # Files go after the commit: a crash in between leaves unreferenced files, never a dangling row.
        for path in (self.layout.image(rec.stored_name), self.layout.mask(rec.id), self.layout.draft(rec.id),
                     self.layout.discarded_draft(rec.id), self.layout.prediction(rec.id)):
            path.unlink(missing_ok=True)

    # ----- settings and summary ----------------------------------------------------------------
    def setting(self, key: str, default=None):
        with self._db() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value) -> None:
        with self._db() as conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def stats(self) -> dict:
        """Counts by status, split and class, for the CLI's `info` and the Home page."""
        meta, classes = self._meta(), self.classes
        with self._db() as conn:
            by_status = {s: 0 for s in STATUSES}
            by_status.update({r[0]: r[1] for r in conn.execute("SELECT status, COUNT(*) FROM images GROUP BY status")})
            by_split = {s: 0 for s in SPLITS}
            by_split.update({r[0]: r[1] for r in conn.execute("SELECT split, COUNT(*) FROM images GROUP BY split")})
            per_class = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT mc.class_id, COUNT(*), SUM(mc.pixels) FROM mask_classes mc "
                "JOIN images i ON i.id = mc.image_id WHERE i.status = 'labeled' GROUP BY mc.class_id")}
            channels = [r[0] for r in conn.execute("SELECT DISTINCT channels FROM images")]
        total_px = sum(p for _, p in per_class.values()) or 1
        return {
            "name": meta["name"], "path": str(self.path), "kind": meta["kind"],
            "images": sum(by_status.values()), "labeled": by_status["labeled"], "unlabeled": by_status["unlabeled"],
            "by_status": by_status, "by_split": by_split,
            "channels": max(channels) if channels else None,
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
    if entry.name.startswith(f".{DB_NAME}.creating"):
        return True
    return entry in layout.created_dirs() and entry.is_dir() and not any(entry.iterdir())


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(status: str | None, split: str | None, search: str | None = None,
             predicted: bool | None = None) -> tuple[str, tuple]:
    clauses, args = [], []
    if search:
        clauses.append("filename LIKE ? ESCAPE '\\'")
        args.append("%" + _like_escape(search.strip()) + "%")
    if predicted is not None:
        clauses.append(("" if predicted else "NOT ") + "EXISTS (SELECT 1 FROM predictions p WHERE p.image_id = images.id)")
    if status is not None:
        if status not in STATUSES:
            raise ProjectError(f"Status must be one of {', '.join(STATUSES)}; got '{status}'.")
        clauses.append("status = ?")
        args.append(status)
    if split is not None:
        clauses.append("split = ?")
        args.append(check_split(split))
    return ((" WHERE " + " AND ".join(clauses)) if clauses else "", tuple(args))
