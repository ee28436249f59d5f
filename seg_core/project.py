"""Project: a workspace folder with project.db, images/, masks/, runs/; images, masks, classes, splits."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from seg_core import db, images, masks
from seg_core.classes import ClassSpec, binary_classes, parse_color, validate_classes
from seg_core.errors import (ClassSpecError, InvalidImageError, MaskConflictError, NotFoundError,
                             ProjectError, RunBusyError, SegError)
from seg_core.files import atomic_write, commit_temp, write_temp

WORKSPACE_ENV = "SEG_WORKSPACE"
DEFAULT_WORKSPACE = "workspace"
DB_NAME = "project.db"
SPLITS = ("train", "val", "test")
STATUSES = ("unlabeled", "labeled")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")


def workspace_dir() -> Path:
    return Path(os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE).expanduser().resolve()


def resolve_project_path(arg: str | Path, workspace: str | Path | None = None) -> Path:
    """A folder path is used as given; a bare name means <workspace>/<name>."""
    text = str(arg)
    p = Path(text).expanduser()
    if p.is_absolute() or os.sep in text or "/" in text or text.startswith("."):
        return p.resolve()
    return (Path(workspace) if workspace else workspace_dir()) / text


def is_project(path: str | Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


def check_project_name(name: str) -> str:
    name = name.strip()
    if not _NAME_RE.match(name):
        raise ProjectError(
            f"'{name}' cannot be a project name: use up to 64 letters, digits, spaces, '-', '_' or '.', "
            "starting with a letter or digit."
        )
    return name


@dataclass(frozen=True)
class ImageRecord:
    id: int
    filename: str
    stored_name: str
    sha256: str
    width: int
    height: int
    channels: int
    source_format: str
    split: str
    status: str
    mask_version: int
    mask_sha256: str | None
    mask_source: str | None
    mask_updated_by: str | None
    mask_updated_at: float | None
    created_at: float
    updated_at: float

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def stem(self) -> str:
        return Path(self.filename).stem

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "ImageRecord":
        return cls(**{f.name: row[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class AddResult:
    status: str                  # "added" or "duplicate"
    image: ImageRecord
    detail: str = ""


class Project:
    """One project folder. Cheap to construct; every call opens a short-lived SQLite connection."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        if not is_project(self.path):
            raise ProjectError(f"There is no project at {self.path}.")
        self._local = threading.local()
        with self._db() as conn:
            db.enable_wal(conn)
            db.migrate(conn)
        self._finish_pending_renames()

    # ----- creation and identity -------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, name: str | None = None, classes: Sequence[ClassSpec] | None = None,
               kind: str | None = None) -> "Project":
        path = Path(path).resolve()
        if is_project(path):
            raise ProjectError(f"A project already exists at {path}.")
        if path.exists() and any(path.iterdir()):
            raise ProjectError(f"{path} is a folder with files in it; choose an empty or new folder.")
        classes = list(classes) if classes else binary_classes()
        validate_classes(classes)
        kind = kind or ("binary" if len(classes) == 2 else "multiclass")
        if kind not in ("binary", "multiclass"):
            raise ProjectError(f"A project is 'binary' or 'multiclass', not '{kind}'.")
        if kind == "binary" and len(classes) != 2:
            raise ProjectError(f"A binary project has exactly two classes; got {len(classes)}.")
        name = check_project_name(name or path.name)
        for sub in ("images", "masks", "runs"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        # Build the database beside its final name so a crash never leaves a half-made project.
        tmp = path / f".{DB_NAME}.creating"
        tmp.unlink(missing_ok=True)
        with db.opened(tmp) as conn:
            db.migrate(conn)
            with db.transaction(conn):
                conn.execute("INSERT INTO project (id, name, kind, created_at) VALUES (1, ?, ?, ?)",
                             (name, kind, time.time()))
                conn.executemany("INSERT INTO classes (id, name, color) VALUES (?, ?, ?)",
                                 [(c.id, c.name, c.hex) for c in classes])
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode = DELETE")
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        commit_temp(tmp, path / DB_NAME)
        return cls(path)

    @classmethod
    def open(cls, path: str | Path) -> "Project":
        return cls(path)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread and Project: opening SQLite for every call cost more than the work.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = db.connect(self.path / DB_NAME)
        yield conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @property
    def images_dir(self) -> Path:
        return self.path / "images"

    @property
    def masks_dir(self) -> Path:
        return self.path / "masks"

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

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
        current = self.classes
        if len(classes) != len(current) and self.count_images(status="labeled"):
            raise ClassSpecError("Masks already use the current classes; add or remove classes one at a time.")
        with self._db() as conn, db.transaction(conn):
            self._write_classes(conn, classes)
            self._event(conn, "classes", None, json.dumps([c.to_dict() for c in classes]))

    @staticmethod
    def _write_classes(conn: sqlite3.Connection, classes: Sequence[ClassSpec]) -> None:
        conn.execute("DELETE FROM classes")
        conn.executemany("INSERT INTO classes (id, name, color) VALUES (?, ?, ?)",
                         [(c.id, c.name, c.hex) for c in classes])
        conn.execute("UPDATE project SET kind = ? WHERE id = 1", ("binary" if len(classes) == 2 else "multiclass",))

    def update_class(self, class_id: int, name: str | None = None, color: str | Sequence[int] | None = None) -> None:
        classes = self.classes
        if not 0 <= class_id < len(classes):
            raise NotFoundError(f"There is no class {class_id}.")
        old = classes[class_id]
        classes[class_id] = ClassSpec(class_id, name.strip() if name is not None else old.name,
                                      parse_color(color) if color is not None else old.color)
        self.set_classes(classes)

    def add_class(self, name: str, color: str | Sequence[int] | None = None) -> ClassSpec:
        from seg_core.classes import default_color

        classes = self.classes
        new = ClassSpec(len(classes), name.strip(), parse_color(color) if color is not None else default_color(len(classes)))
        validate_classes(classes + [new])
        with self._db() as conn, db.transaction(conn):
            conn.execute("INSERT INTO classes (id, name, color) VALUES (?, ?, ?)", (new.id, new.name, new.hex))
            conn.execute("UPDATE project SET kind = 'multiclass' WHERE id = 1")
            self._event(conn, "class-added", None, json.dumps(new.to_dict()))
        return new

    # ----- images ----------------------------------------------------------------------------
    def add_image(self, data: bytes, filename: str, *, split: str | None = None,
                  prepared: images.PreparedImage | None = None) -> AddResult:
        """Validate and store an upload; an identical file (same sha256) is reported as a duplicate."""
        if split is not None and split not in SPLITS:
            raise ProjectError(f"Split must be one of {', '.join(SPLITS)}; got '{split}'.")
        prep = prepared or images.prepare_upload(data, filename)
        existing = self.find_by_sha256(prep.sha256)
        if existing:
            return AddResult("duplicate", existing, f"same file as '{existing.filename}' (image {existing.id})")
        now = time.time()
        with self._db() as conn, db.transaction(conn):
            again = conn.execute("SELECT * FROM images WHERE sha256 = ?", (prep.sha256,)).fetchone()
            if again:
                rec = ImageRecord.from_row(again)
                return AddResult("duplicate", rec, f"same file as '{rec.filename}' (image {rec.id})")
            cur = conn.execute(
                "INSERT INTO images (filename, stored_name, sha256, width, height, channels, source_format, "
                "split, created_at, updated_at) VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?)",
                (filename, prep.sha256, prep.width, prep.height, prep.channels, prep.source_format,
                 split or "train", now, now),
            )
            image_id = int(cur.lastrowid)
            stored = f"{image_id}{prep.ext}"
            target = self.images_dir / stored
            tmp = write_temp(target, prep.data)
            try:
                commit_temp(tmp, target)
                conn.execute("UPDATE images SET stored_name = ? WHERE id = ?", (stored, image_id))
                self._event(conn, "image-added", image_id, filename)
            except BaseException:
                tmp.unlink(missing_ok=True)
                target.unlink(missing_ok=True)
                raise
            row = conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        detail = f"converted from {prep.source_format} to PNG" if prep.converted else ""
        return AddResult("added", ImageRecord.from_row(row), detail)

    def find_by_sha256(self, sha256: str) -> ImageRecord | None:
        with self._db() as conn:
            row = conn.execute("SELECT * FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        return ImageRecord.from_row(row) if row else None

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
        where, args = self._filters(status, split, search, predicted)
        sql = f"SELECT * FROM images{where} ORDER BY id LIMIT ? OFFSET ?"
        with self._db() as conn:
            rows = conn.execute(sql, (*args, -1 if limit is None else int(limit), int(offset))).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def image_ids(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
                  predicted: bool | None = None) -> list[int]:
        where, args = self._filters(status, split, search, predicted)
        with self._db() as conn:
            return [r[0] for r in conn.execute(f"SELECT id FROM images{where} ORDER BY id", args)]

    def count_images(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
                     predicted: bool | None = None) -> int:
        where, args = self._filters(status, split, search, predicted)
        with self._db() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM images{where}", args).fetchone()[0])

    @staticmethod
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
            if split not in SPLITS:
                raise ProjectError(f"Split must be one of {', '.join(SPLITS)}; got '{split}'.")
            clauses.append("split = ?")
            args.append(split)
        return ((" WHERE " + " AND ".join(clauses)) if clauses else "", tuple(args))

    def image_path(self, image: int | ImageRecord) -> Path:
        rec = image if isinstance(image, ImageRecord) else self.image(image)
        return self.images_dir / rec.stored_name

    def load_image(self, image: int | ImageRecord) -> np.ndarray:
        """uint8 HxW (grayscale) or HxWx3 (RGB), upright."""
        return images.load_image(self.image_path(image))

    def delete_image(self, image_id: int) -> None:
        rec = self.image(image_id)
        with self._db() as conn, db.transaction(conn):
            conn.execute("DELETE FROM images WHERE id = ?", (rec.id,))
            self._event(conn, "image-deleted", rec.id, rec.filename)
        # Files go after the commit: a crash in between leaves unreferenced files, never a dangling row.
        (self.images_dir / rec.stored_name).unlink(missing_ok=True)
        self.mask_path(rec.id).unlink(missing_ok=True)
        self.draft_path(rec.id).unlink(missing_ok=True)
        self.prediction_path(rec.id).unlink(missing_ok=True)

    # ----- masks -----------------------------------------------------------------------------
    def mask_path(self, image_id: int) -> Path:
        return self.masks_dir / f"{int(image_id)}.png"

    def load_mask(self, image: int | ImageRecord) -> np.ndarray | None:
        """The image's class-id mask, or None while it is unlabeled."""
        rec = image if isinstance(image, ImageRecord) else self.image(image)
        if rec.mask_version == 0:
            return None
        path = self.mask_path(rec.id)
        if not path.exists():
            return None
        return masks.load_png(path)

    def save_mask(self, image_id: int, ids: np.ndarray, expected_version: int, *, author: str = "user",
                  source: str = "painted") -> ImageRecord:
        """Write a mask atomically if nobody saved since `expected_version` was read; returns the new record."""
        rec = self.image(image_id)
        classes = self.classes
        ids = masks.validate_ids(ids, classes, rec.size)
        png = masks.encode_png(ids, classes)
        digest = hashlib.sha256(png).hexdigest()
        target = self.mask_path(rec.id)
        tmp = write_temp(target, png)
        try:
            with self._db() as conn, db.transaction(conn):
                row = conn.execute("SELECT mask_version, mask_updated_by, mask_updated_at FROM images WHERE id = ?",
                                   (rec.id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"Image {rec.id} was deleted while its mask was being edited.")
                if row["mask_version"] != int(expected_version):
                    who = row["mask_updated_by"] or "someone"
                    when = time.strftime("%H:%M:%S", time.localtime(row["mask_updated_at"] or 0))
                    raise MaskConflictError(
                        f"The mask of '{rec.filename}' was saved by {who} at {when} (version "
                        f"{row['mask_version']}) after you opened version {expected_version}. Reload to see "
                        "their mask; your strokes were not saved over it."
                    )
                commit_temp(tmp, target)
                now = time.time()
                conn.execute(
                    "UPDATE images SET mask_version = mask_version + 1, status = 'labeled', mask_sha256 = ?, "
                    "mask_source = ?, mask_updated_by = ?, mask_updated_at = ?, updated_at = ? WHERE id = ?",
                    (digest, source, author, now, now, rec.id),
                )
                conn.execute("DELETE FROM mask_classes WHERE image_id = ?", (rec.id,))
                conn.executemany("INSERT INTO mask_classes (image_id, class_id, pixels) VALUES (?, ?, ?)",
                                 [(rec.id, c, n) for c, n in masks.class_pixel_counts(ids).items()])
                self._event(conn, "mask-saved", rec.id, json.dumps({"by": author, "source": source}))
                new = conn.execute("SELECT * FROM images WHERE id = ?", (rec.id,)).fetchone()
        finally:
            tmp.unlink(missing_ok=True)
        return ImageRecord.from_row(new)

    def clear_mask(self, image_id: int, expected_version: int, author: str = "user") -> ImageRecord:
        """Mark the image unlabeled again; the mask file is removed."""
        rec = self.image(image_id)
        with self._db() as conn, db.transaction(conn):
            row = conn.execute("SELECT mask_version FROM images WHERE id = ?", (rec.id,)).fetchone()
            if row["mask_version"] != int(expected_version):
                raise MaskConflictError(f"The mask of '{rec.filename}' changed since you opened it; reload first.")
            now = time.time()
            conn.execute("UPDATE images SET mask_version = mask_version + 1, status = 'unlabeled', mask_sha256 = NULL, "
                         "mask_updated_by = ?, mask_updated_at = ?, updated_at = ? WHERE id = ?",
                         (author, now, now, rec.id))
            conn.execute("DELETE FROM mask_classes WHERE image_id = ?", (rec.id,))
            self._event(conn, "mask-cleared", rec.id, author)
            self.mask_path(rec.id).unlink(missing_ok=True)
            return ImageRecord.from_row(conn.execute("SELECT * FROM images WHERE id = ?", (rec.id,)).fetchone())

    def class_pixels(self, image_id: int) -> dict[int, int]:
        with self._db() as conn:
            rows = conn.execute("SELECT class_id, pixels FROM mask_classes WHERE image_id = ?", (int(image_id),))
            return {r[0]: r[1] for r in rows}

    # ----- drafts: unsaved edits that outlive a closed tab, a page switch or a killed server ---
    @property
    def drafts_dir(self) -> Path:
        return self.path / "drafts"

    def draft_path(self, image_id: int) -> Path:
        return self.drafts_dir / f"{int(image_id)}.png"

    def save_draft(self, image_id: int, ids: np.ndarray, base_version: int, source: str = "painted") -> None:
        """Keep an edited mask that is not saved yet, with the mask version it was painted over (one file)."""
        rec = self.image(image_id)
        classes = self.classes
        ids = masks.validate_ids(ids, classes, rec.size)
        meta = json.dumps({"base_version": int(base_version), "source": source, "saved_at": time.time()})
        atomic_write(self.draft_path(rec.id), masks.encode_png(ids, classes, text={DRAFT_TEXT_KEY: meta}))

    def draft(self, image_id: int) -> "Draft | None":
        path = self.draft_path(image_id)
        if not path.exists():
            return None
        try:
            ids, text = masks.load_png_text(path)
            meta = json.loads(text[DRAFT_TEXT_KEY])
            rec = self.image(image_id)
        except (OSError, KeyError, ValueError, SegError):
            return None  # an unreadable draft is no work to restore
        if ids.shape != (rec.height, rec.width):
            return None
        return Draft(int(image_id), ids, int(meta["base_version"]), str(meta.get("source", "painted")),
                     float(meta.get("saved_at", 0.0)))

    def discard_draft(self, image_id: int) -> None:
        self.draft_path(image_id).unlink(missing_ok=True)

    def draft_image_ids(self) -> set[int]:
        if not self.drafts_dir.is_dir():
            return set()
        return {int(p.stem) for p in self.drafts_dir.glob("*.png") if p.stem.isdigit()}

    # ----- predictions: the newest model output per image ----------------------------------
    @property
    def predictions_dir(self) -> Path:
        return self.path / "predictions"

    def prediction_path(self, image_id: int) -> Path:
        return self.predictions_dir / f"{int(image_id)}.png"

    def save_prediction(self, image_id: int, run_id: str, ids: np.ndarray, uncertainty: float | None = None) -> None:
        rec = self.image(image_id)
        classes = self.classes
        ids = masks.validate_ids(ids, classes, rec.size)
        atomic_write(self.prediction_path(rec.id), masks.encode_png(ids, classes))
        with self._db() as conn:
            conn.execute("INSERT OR REPLACE INTO predictions (image_id, run_id, uncertainty, created_at) "
                         "VALUES (?, ?, ?, ?)", (rec.id, run_id, uncertainty, time.time()))

    def prediction(self, image_id: int) -> "StoredPrediction | None":
        with self._db() as conn:
            row = conn.execute("SELECT * FROM predictions WHERE image_id = ?", (int(image_id),)).fetchone()
        path = self.prediction_path(image_id)
        if row is None or not path.exists():
            return None
        return StoredPrediction(int(image_id), row["run_id"], masks.load_png(path), row["uncertainty"],
                                row["created_at"])

    def prediction_rows(self, run_id: str, status: str | None = None) -> list[sqlite3.Row]:
        """Stored predictions of one run (image_id, uncertainty, created_at, filename, split), without their pixels."""
        sql = ("SELECT p.image_id, p.uncertainty, p.created_at, i.filename, i.split FROM predictions p "
               "JOIN images i ON i.id = p.image_id WHERE p.run_id = ?")
        args: tuple = (run_id,)
        if status is not None:
            sql, args = sql + " AND i.status = ?", (run_id, status)
        with self._db() as conn:
            return conn.execute(sql + " ORDER BY p.image_id", args).fetchall()

    def predicted_image_ids(self) -> set[int]:
        with self._db() as conn:
            return {r[0] for r in conn.execute("SELECT image_id FROM predictions")}

    def forget_predictions(self) -> None:
        """Drop every stored prediction (their class ids no longer mean what they meant)."""
        with self._db() as conn:
            conn.execute("DELETE FROM predictions")
        for p in self.predictions_dir.glob("*.png") if self.predictions_dir.is_dir() else ():
            p.unlink(missing_ok=True)

    # ----- removing a class: every mask that uses it is rewritten, all or nothing -----------
    def remove_class(self, class_id: int, pixels_to: int = 0, author: str = "user") -> int:
        """Delete a class; its pixels become `pixels_to` and higher ids move down one. Returns masks rewritten.

        New masks are written beside the old ones first; one transaction then records the new classes,
        versions and the pending renames, which are finished here or, after a crash, on the next open.
        """
        classes = self.classes
        class_id, pixels_to = int(class_id), int(pixels_to)
        if not 0 < class_id < len(classes):
            raise ClassSpecError("The background (class 0) cannot be removed." if class_id == 0
                                 else f"There is no class {class_id}.")
        if len(classes) <= 2:
            raise ClassSpecError("A project needs at least two classes: background and one thing to segment.")
        if pixels_to == class_id or not (0 <= pixels_to < len(classes) or pixels_to == masks.IGNORE_ID):
            raise ClassSpecError(f"The pixels of '{classes[class_id].name}' must go to another class.")
        target = pixels_to if pixels_to == masks.IGNORE_ID or pixels_to < class_id else pixels_to - 1
        mapping = {class_id: target, **{i: i - 1 for i in range(class_id + 1, len(classes))}}
        new_classes = [ClassSpec(i, c.name, c.color) for i, c in enumerate(c for c in classes if c.id != class_id)]
        with self._db() as conn:
            affected = [r[0] for r in conn.execute(
                "SELECT DISTINCT image_id FROM mask_classes WHERE class_id >= ? AND class_id != 255 ORDER BY image_id",
                (class_id,))]
        pending, counts = [], {}
        try:
            for image_id in affected:
                ids = masks.remap_ids(masks.load_png(self.mask_path(image_id)), mapping)
                counts[image_id] = masks.class_pixel_counts(ids)
                pending.append((str(write_temp(self.mask_path(image_id), masks.encode_png(ids, new_classes))),
                                str(self.mask_path(image_id))))
            now = time.time()
            with self._db() as conn, db.transaction(conn):
                self._write_classes(conn, new_classes)
                for image_id, cnt in counts.items():
                    conn.execute("UPDATE images SET mask_version = mask_version + 1, mask_updated_by = ?, "
                                 "mask_updated_at = ?, updated_at = ? WHERE id = ?", (author, now, now, image_id))
                    conn.execute("DELETE FROM mask_classes WHERE image_id = ?", (image_id,))
                    conn.executemany("INSERT INTO mask_classes (image_id, class_id, pixels) VALUES (?, ?, ?)",
                                     [(image_id, c, n) for c, n in cnt.items()])
                conn.execute("DELETE FROM predictions")
                conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                             (PENDING_RENAMES, json.dumps(pending)))
                self._event(conn, "class-removed", None, json.dumps(
                    {"class": classes[class_id].to_dict(), "pixels_to": pixels_to, "masks": len(counts)}))
        except BaseException:
            for tmp, _ in pending:
                Path(tmp).unlink(missing_ok=True)
            raise
        self._finish_pending_renames()
        for image_id in self.draft_image_ids():  # unsaved edits keep up with the new numbering
            d = self.draft(image_id)
            if d is not None:
                self.save_draft(image_id, masks.remap_ids(d.ids, mapping), d.base_version, d.source)
        self.forget_predictions()
        return len(counts)

    def _finish_pending_renames(self) -> None:
        pending = self.setting(PENDING_RENAMES)
        if not pending:
            return
        for tmp, target in pending:
            if Path(tmp).exists():
                commit_temp(Path(tmp), Path(target))
        with self._db() as conn:
            conn.execute("DELETE FROM settings WHERE key = ?", (PENDING_RENAMES,))

    # ----- splits ----------------------------------------------------------------------------
    def assign_splits(self, val_fraction: float | None = 0.2, val_count: int | None = None, seed: int = 0,
                      labeled_only: bool = True) -> dict[str, int]:
        """Reproducible train/val assignment: the same images, seed and fraction/count give the same split.

        Images are ordered by content hash, so the result does not depend on upload order. Images in
        the 'test' split are left alone. Unlabeled images go to 'train' when labeled_only is set.
        """
        with self._db() as conn:
            rows = conn.execute("SELECT id, sha256, status FROM images WHERE split != 'test' ORDER BY sha256").fetchall()
        pool = [r for r in rows if r["status"] == "labeled" or not labeled_only]
        n = len(pool)
        if val_count is not None:
            if not 0 <= int(val_count) <= n:
                raise ProjectError(f"Cannot hold out {val_count} images for validation: {n} are available.")
            k = int(val_count)
        else:
            frac = 0.2 if val_fraction is None else float(val_fraction)
            if not 0.0 <= frac < 1.0:
                raise ProjectError(f"The validation fraction must be from 0 to below 1; got {frac}.")
            k = int(round(n * frac))
            if frac > 0 and n >= 2:
                k = min(max(k, 1), n - 1)
        order = np.random.default_rng(int(seed)).permutation(n)
        val_ids = {pool[i]["id"] for i in order[:k]}
        assignment = [("val" if r["id"] in val_ids else "train", r["id"]) for r in rows]
        with self._db() as conn, db.transaction(conn):
            conn.executemany("UPDATE images SET split = ? WHERE id = ?", assignment)
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('split', ?)",
                         (json.dumps({"val_fraction": val_fraction if val_count is None else None,
                                      "val_count": val_count, "seed": int(seed), "labeled_only": labeled_only}),))
            self._event(conn, "splits", None, f"{k} of {n} to val, seed {seed}")
        return {"train": n - k, "val": k, "test": self.count_images(split="test")}

    def set_split(self, image_ids: Iterable[int], split: str) -> None:
        if split not in SPLITS:
            raise ProjectError(f"Split must be one of {', '.join(SPLITS)}; got '{split}'.")
        with self._db() as conn, db.transaction(conn):
            conn.executemany("UPDATE images SET split = ? WHERE id = ?", [(split, int(i)) for i in image_ids])

    def setting(self, key: str, default=None):
        with self._db() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value) -> None:
        with self._db() as conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # ----- summary ---------------------------------------------------------------------------
    def stats(self) -> dict:
        """Counts by status, split and class, for the CLI's `info` and the Home page."""
        meta = self._meta()
        classes = self.classes
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
            "name": meta["name"],
            "path": str(self.path),
            "kind": meta["kind"],
            "images": sum(by_status.values()),
            "labeled": by_status["labeled"],
            "unlabeled": by_status["unlabeled"],
            "by_status": by_status,
            "by_split": by_split,
            "channels": max(channels) if channels else None,
            "num_classes": len(classes),
            "classes": [
                {**c.to_dict(), "images": per_class.get(c.id, (0, 0))[0],
                 "pixels": int(per_class.get(c.id, (0, 0))[1]),
                 "pixel_fraction": round(per_class.get(c.id, (0, 0))[1] / total_px, 6)}
                for c in classes
            ],
            "class_ids_present": sorted(c for c in per_class if c < len(classes)),
            "ignore_pixels": int(per_class.get(255, (0, 0))[1]),
        }

    def events(self, limit: int = 50) -> list[dict]:
        with self._db() as conn:
            rows = conn.execute("SELECT * FROM events ORDER BY id DESC LIMIT ?", (int(limit),)).fetchall()
        return [dict(r) for r in rows]

    # ----- training runs ---------------------------------------------------------------------
    def create_run(self, config: dict, run_id: str | None = None) -> "RunRecord":
        """Record a queued run; refused while another run of this project is queued or running."""
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()
        with self._db() as conn, db.transaction(conn):
            busy = conn.execute("SELECT id, status, created_at FROM runs WHERE status IN ('queued', 'running')").fetchone()
            if busy:
                since = time.strftime("%H:%M", time.localtime(busy["created_at"]))
                raise RunBusyError(
                    f"Run {busy['id']} (started {since}) is still {busy['status']}; one run at a time per project. "
                    "Stop it or wait for it to finish."
                )
            conn.execute("INSERT INTO runs (id, status, config, created_at) VALUES (?, 'queued', ?, ?)",
                         (run_id, json.dumps(config), time.time()))
            self._event(conn, "run-created", None, run_id)
        (self.runs_dir / run_id).mkdir(parents=True, exist_ok=True)
        return self.run(run_id)

    def run(self, run_id: str) -> "RunRecord":
        with self._db() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no run '{run_id}' in this project.")
        return RunRecord.from_row(row)

    def list_runs(self) -> list["RunRecord"]:
        with self._db() as conn:
            rows = conn.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def update_run(self, run_id: str, **fields_) -> None:
        allowed = {"status", "started_at", "ended_at", "pid", "heartbeat_at", "stop_requested", "error",
                   "best_epoch", "best_score", "config"}
        bad = set(fields_) - allowed
        if bad:
            raise ValueError(f"not run fields: {bad}")
        if "config" in fields_ and not isinstance(fields_["config"], str):
            fields_["config"] = json.dumps(fields_["config"])
        sets = ", ".join(f"{k} = ?" for k in fields_)
        with self._db() as conn:
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields_.values(), run_id))

    def request_stop(self, run_id: str) -> None:
        self.update_run(run_id, stop_requested=1)

    def stop_requested(self, run_id: str) -> bool:
        with self._db() as conn:
            row = conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def add_metrics(self, run_id: str, epoch: int, values: dict, batch: int | None = None) -> None:
        with self._db() as conn:
            conn.execute("INSERT INTO metrics (run_id, epoch, batch, data, created_at) VALUES (?, ?, ?, ?, ?)",
                         (run_id, int(epoch), batch, json.dumps(values), time.time()))

    def delete_metrics_from(self, run_id: str, epoch: int) -> None:
        """Forget metrics of epochs >= epoch (a resumed run redoes them)."""
        with self._db() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ? AND epoch >= ?", (run_id, int(epoch)))

    def epoch_metrics(self, run_id: str) -> list[dict]:
        """One dict per finished epoch, in order, with 'epoch' included."""
        with self._db() as conn:
            rows = conn.execute("SELECT epoch, data FROM metrics WHERE run_id = ? AND batch IS NULL ORDER BY epoch",
                                (run_id,)).fetchall()
        return [{"epoch": r[0], **json.loads(r[1])} for r in rows]

    def latest_progress(self, run_id: str) -> dict | None:
        """The newest per-batch progress row, or None."""
        with self._db() as conn:
            row = conn.execute("SELECT epoch, batch, data, created_at FROM metrics WHERE run_id = ? AND batch IS NOT NULL "
                               "ORDER BY rowid DESC LIMIT 1", (run_id,)).fetchone()
        return {"epoch": row[0], "batch": row[1], "at": row[3], **json.loads(row[2])} if row else None

    def best_run(self) -> "RunRecord | None":
        """The finished run with the best validation score that still has a checkpoint."""
        candidates = [r for r in self.list_runs() if r.best_score is not None
                      and r.status in ("completed", "stopped", "failed")
                      and (self.runs_dir / r.id / "best.keras").exists()]
        return max(candidates, key=lambda r: (r.best_score, r.created_at)) if candidates else None

    @staticmethod
    def _event(conn: sqlite3.Connection, kind: str, image_id: int | None, detail: str | None) -> None:
        conn.execute("INSERT INTO events (at, kind, image_id, detail) VALUES (?, ?, ?, ?)",
                     (time.time(), kind, image_id, detail))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class RunRecord:
    id: str
    status: str
    config: dict
    created_at: float
    started_at: float | None
    ended_at: float | None
    pid: int | None
    heartbeat_at: float | None
    stop_requested: bool
    error: str | None
    best_epoch: int | None
    best_score: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "RunRecord":
        return cls(row["id"], row["status"], json.loads(row["config"]), row["created_at"], row["started_at"],
                   row["ended_at"], row["pid"], row["heartbeat_at"], bool(row["stop_requested"]), row["error"],
                   row["best_epoch"], row["best_score"])

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def to_dict(self) -> dict:
        return asdict(self)


DRAFT_TEXT_KEY = "segstudio-draft"
PENDING_RENAMES = "pending_mask_renames"


@dataclass(frozen=True)
class Draft:
    image_id: int
    ids: np.ndarray
    base_version: int          # the mask version it was painted over; another means someone saved since
    source: str                # "painted", "prediction", ...
    saved_at: float


@dataclass(frozen=True)
class StoredPrediction:
    image_id: int
    run_id: str
    ids: np.ndarray
    uncertainty: float | None
    created_at: float


@dataclass(frozen=True)
class ProjectSummary:
    name: str
    path: Path
    kind: str
    images: int
    labeled: int
    error: str = ""


def list_projects(workspace: str | Path | None = None) -> list[ProjectSummary]:
    """Projects in the workspace folder, by name; an unreadable one is listed with its error."""
    root = Path(workspace) if workspace else workspace_dir()
    if not root.is_dir():
        return []
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and is_project(p)):
        try:
            proj = Project(sub)
            s = proj.stats()
            out.append(ProjectSummary(s["name"], sub, s["kind"], s["images"], s["labeled"]))
        except Exception as exc:  # one broken project must not hide the others
            out.append(ProjectSummary(sub.name, sub, "?", 0, 0, str(exc)))
    return out


def record_dict(rec: ImageRecord) -> dict:
    return asdict(rec)


__all__ = ["Project", "ImageRecord", "AddResult", "ProjectSummary", "list_projects", "resolve_project_path",
           "workspace_dir", "is_project", "InvalidImageError"]


CLASSES_EXPLICIT = "classes_explicit"


def new_project(path: str | Path, classes: Sequence[ClassSpec] | None = None, name: str | None = None) -> Project:
    """Create a project; classes given here are kept on import, otherwise import infers them from masks."""
    project = Project.create(path, name=name, classes=classes)
    project.set_setting(CLASSES_EXPLICIT, bool(classes))
    return project
