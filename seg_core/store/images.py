"""A project's images: their records in the images table and their files in images/, added, found and deleted."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from seg_core.errors import NotFoundError
from seg_core.durable import commit_temp, storage_guard, write_temp
from seg_core.formats import images as image_files
from seg_core.store.db import Database
from seg_core.store.layout import ProjectLayout
from seg_core.store.records import SPLITS, STATUSES, AddResult, ImageRecord, ImageStatus, check_split, check_status


class Images:
    """The images of a project. Listing methods filter by status, split, a part of the file name, and whether a
    model prediction is stored."""

    def __init__(self, database: Database, layout: ProjectLayout):
        self._db = database
        self._layout = layout

    def add(self, data: bytes, filename: str, *, split: str | None = None,
            prepared: image_files.PreparedImage | None = None) -> AddResult:
        """Validate and store an upload; an identical file (same sha256) is reported as a duplicate."""
        if split is not None:
            check_split(split)
        prep = prepared or image_files.prepare_upload(data, filename)
        placed: list[Path] = []
        with storage_guard(f"'{filename}' was not added"):
            try:
                return self._insert(prep, filename, split, placed)
            except BaseException:
                for path in placed:   # a COMMIT that failed (a full disk) leaves no file without its record
                    path.unlink(missing_ok=True)
                raise

    def _insert(self, prep: image_files.PreparedImage, filename: str, split: str | None,
                placed: list[Path]) -> AddResult:
        with self._db.transaction() as conn:
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
            target = self._layout.image(stored)
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
        with self._db.connection() as conn:
            rows = conn.execute("SELECT * FROM images WHERE filename = ? OR filename LIKE ? ESCAPE '\\' ORDER BY id",
                                (stem, _like_escape(stem) + ".%")).fetchall()
        return [ImageRecord.from_row(r) for r in rows if Path(r["filename"]).stem == stem]

    def get(self, image_id: int) -> ImageRecord:
        with self._db.connection() as conn:
            row = conn.execute("SELECT * FROM images WHERE id = ?", (int(image_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"Image {image_id} is not in this project (it may have been deleted).")
        return ImageRecord.from_row(row)

    def list(self, status: str | None = None, split: str | None = None, offset: int = 0,
             limit: int | None = None, *, search: str | None = None,
             predicted: bool | None = None) -> list[ImageRecord]:
        where, args = _filters(status, split, search, predicted)
        with self._db.connection() as conn:
            rows = conn.execute(f"SELECT * FROM images{where} ORDER BY id LIMIT ? OFFSET ?",
                                (*args, -1 if limit is None else int(limit), int(offset))).fetchall()
        return [ImageRecord.from_row(r) for r in rows]

    def ids(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
            predicted: bool | None = None) -> list[int]:
        where, args = _filters(status, split, search, predicted)
        with self._db.connection() as conn:
            return [r[0] for r in conn.execute(f"SELECT id FROM images{where} ORDER BY id", args)]

    def count(self, status: str | None = None, split: str | None = None, *, search: str | None = None,
              predicted: bool | None = None) -> int:
        where, args = _filters(status, split, search, predicted)
        with self._db.connection() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM images{where}", args).fetchone()[0])

    def path(self, image: int | ImageRecord) -> Path:
        rec = image if isinstance(image, ImageRecord) else self.get(image)
        return self._layout.image(rec.stored_name)

    def load(self, image: int | ImageRecord) -> np.ndarray:
        """uint8 HxW (grayscale) or HxWx3 (RGB), upright."""
        return image_files.load_image(self.path(image))

    def delete(self, image_id: int) -> None:
        rec = self.get(image_id)
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM images WHERE id = ?", (rec.id,))
        # Files go after the commit: a crash in between leaves unreferenced files, never a dangling row.
        layout = self._layout
        for path in (layout.image(rec.stored_name), layout.mask(rec.id), layout.draft(rec.id),
                     layout.discarded_draft(rec.id), layout.prediction(rec.id)):
            path.unlink(missing_ok=True)

    def counts(self) -> dict:
        """Images by status and split, labeled images and pixels by class id, and the most channels an image has."""
        with self._db.connection() as conn:
            by_status = {s: 0 for s in STATUSES}
            by_status.update({r[0]: r[1] for r in conn.execute("SELECT status, COUNT(*) FROM images GROUP BY status")})
            by_split = {s: 0 for s in SPLITS}
            by_split.update({r[0]: r[1] for r in conn.execute("SELECT split, COUNT(*) FROM images GROUP BY split")})
            per_class = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT mc.class_id, COUNT(*), SUM(mc.pixels) FROM mask_classes mc "
                "JOIN images i ON i.id = mc.image_id WHERE i.status = ? GROUP BY mc.class_id",
                (ImageStatus.LABELED.value,))}
            channels = [r[0] for r in conn.execute("SELECT DISTINCT channels FROM images")]
        return {"by_status": by_status, "by_split": by_split, "per_class": per_class,
                "channels": max(channels) if channels else None}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(status: str | None, split: str | None, search: str | None = None,
             predicted: bool | None = None) -> tuple[str, tuple]:
    clauses, args = [], []
    if search:
        clauses.append("filename LIKE ? ESCAPE '\\'")
        args.append("%" + _like_escape(search.strip()) + "%")
    if predicted is not None:
        clauses.append(("" if predicted else "NOT ")
                       + "EXISTS (SELECT 1 FROM predictions p WHERE p.image_id = images.id)")
    if status is not None:
        clauses.append("status = ?")
        args.append(check_status(status).value)
    if split is not None:
        clauses.append("split = ?")
        args.append(check_split(split))
    return ((" WHERE " + " AND ".join(clauses)) if clauses else "", tuple(args))
