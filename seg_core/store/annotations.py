"""A project's annotations: masks (saved with a version check) and drafts (unsaved edits that outlive a tab)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from seg_core.classes import ClassSpec
from seg_core.errors import DraftConflictError, MaskConflictError, NotFoundError
from seg_core.durable import atomic_write, commit_temp, storage_guard, write_temp
from seg_core.formats import masks as codec
from seg_core.store import db
from seg_core.store.class_table import ClassTable
from seg_core.store.db import Database
from seg_core.store.images import Images
from seg_core.store.layout import ProjectLayout
from seg_core.store.records import ImageRecord, ImageStatus

# Written into every draft PNG: it keeps the product's former name so that drafts saved before the rename still open.
DRAFT_TEXT_KEY = "segstudio-draft"
log = logging.getLogger(__name__)
ANY = object()   # Drafts.save(expect_rev=ANY): write whatever draft is there now
# Every browser tab of a server is a thread of one process: one lock makes a draft's check-and-write atomic.
_DRAFT_LOCK = threading.Lock()


class Masks:
    """The saved mask of each labeled image: masks/<id>.png, its version and class pixel counts in the DB."""

    def __init__(self, database: Database, layout: ProjectLayout, images: Images, classes: ClassTable):
        self._db = database
        self._layout = layout
        self._images = images
        self._classes = classes

    def path(self, image_id: int) -> Path:
        return self._layout.mask(image_id)

    def load(self, image: int | ImageRecord) -> np.ndarray | None:
        """The image's class-id mask, or None while it is unlabeled."""
        rec = image if isinstance(image, ImageRecord) else self._images.get(image)
        path = self.path(rec.id)
        if rec.status != ImageStatus.LABELED or not path.exists():   # a cleared mask's file may outlive it a moment
            return None
        return codec.load_png(path)

    def save(self, image_id: int, ids: np.ndarray, expected_version: int, *, author: str = "user",
             source: str = "painted") -> ImageRecord:
        """Write a mask atomically if nobody saved since `expected_version` was read; returns the new record.

        The new file waits beside the old one while the database records its version and checksum; it is renamed
        in after that commit. A crash between the two leaves the record and the waiting file, which the next open
        puts in place (store/recovery.py): the old mask or the new one, never a record that disagrees with its file.
        """
        rec = self._images.get(image_id)
        classes = self._classes.all()
        ids = codec.validate_ids(ids, classes, rec.size)
        png = codec.encode_png(ids, classes)
        target = self.path(rec.id)
        with storage_guard(f"the mask of '{rec.filename}' was not saved; its previous mask is kept"):
            return self._write(rec, ids, png, target, expected_version, author, source)

    def _write(self, rec: ImageRecord, ids: np.ndarray, png: bytes, target: Path, expected_version: int,
               author: str, source: str) -> ImageRecord:
        tmp = write_temp(target, png)
        keep_tmp = False
        try:
            with self._db.transaction() as conn:
                row = conn.execute("SELECT * FROM images WHERE id = ?", (rec.id,)).fetchone()
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
                old_pixels = self.class_pixels(rec.id)
                now = time.time()
                conn.execute(
                    "UPDATE images SET mask_version = mask_version + 1, status = ?, mask_sha256 = ?, "
                    "mask_source = ?, mask_updated_by = ?, mask_updated_at = ?, updated_at = ? WHERE id = ?",
                    (ImageStatus.LABELED.value, hashlib.sha256(png).hexdigest(), source, author, now, now, rec.id),
                )
                db.write_class_pixels(conn, rec.id, codec.class_pixel_counts(ids))
                new = conn.execute("SELECT * FROM images WHERE id = ?", (rec.id,)).fetchone()
            try:
                commit_temp(tmp, target)
            except BaseException:
                keep_tmp = not self._put_back(row, old_pixels, new["mask_version"])
                raise
        finally:
            if not keep_tmp:
                tmp.unlink(missing_ok=True)
        return ImageRecord.from_row(new)

    def _put_back(self, old, old_pixels: dict[int, int], version: int) -> bool:
        """The new mask could not be renamed in: the record goes back to the file still there. False where even
        that fails; the waiting file is then kept, and the next open puts it in place (the record names it)."""
        cols = ("mask_version", "status", "mask_sha256", "mask_source", "mask_updated_by", "mask_updated_at",
                "updated_at")
        try:
            with self._db.transaction() as conn:
                sets = ", ".join(c + " = ?" for c in cols)
                conn.execute(f"UPDATE images SET {sets} WHERE id = ? AND mask_version = ?",
                             (*(old[c] for c in cols), old["id"], version))
                db.write_class_pixels(conn, old["id"], old_pixels)
        except Exception:
            return False
        return True

    def clear(self, image_id: int, expected_version: int, author: str = "user") -> ImageRecord:
        """Mark the image unlabeled again; the mask file is removed."""
        rec = self._images.get(image_id)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT mask_version FROM images WHERE id = ?", (rec.id,)).fetchone()
            if row["mask_version"] != int(expected_version):
                raise MaskConflictError(f"The mask of '{rec.filename}' changed since you opened it; reload first.")
            now = time.time()
            conn.execute("UPDATE images SET mask_version = mask_version + 1, status = ?, mask_sha256 = NULL, "
                         "mask_updated_by = ?, mask_updated_at = ?, updated_at = ? WHERE id = ?",
                         (ImageStatus.UNLABELED.value, author, now, now, rec.id))
            db.write_class_pixels(conn, rec.id, {})
            new = ImageRecord.from_row(conn.execute("SELECT * FROM images WHERE id = ?", (rec.id,)).fetchone())
        # After the commit: a crash before it keeps the mask, one after it leaves a file the next open removes.
        self.path(rec.id).unlink(missing_ok=True)
        return new

    def class_pixels(self, image_id: int) -> dict[int, int]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT class_id, pixels FROM mask_classes WHERE image_id = ?", (int(image_id),))
            return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class Draft:
    image_id: int
    ids: np.ndarray
    base_version: int          # the mask version it was painted over; another means someone saved since
    source: str                # "painted", "prediction", ...
    saved_at: float
    rev: str = ""              # changes with every write: a tab that saw another rev did not see these strokes


class Drafts:
    """Unsaved edits that outlive a closed tab, a page switch or a killed server: drafts/<id>.png, one file each."""

    def __init__(self, layout: ProjectLayout, images: Images, classes: ClassTable):
        self._layout = layout
        self._images = images
        self._classes = classes

    def path(self, image_id: int) -> Path:
        return self._layout.draft(image_id)

    def discarded_path(self, image_id: int) -> Path:
        return self._layout.discarded_draft(image_id)

    def save(self, image_id: int, ids: np.ndarray, base_version: int, source: str = "painted",
             expect_rev=ANY) -> str:
        """Keep an edited mask that is not saved yet, with the mask version it was painted over; returns its rev.

        expect_rev: the rev the writer last saw ("" or None: no draft). If the draft on disk is another one,
        another tab wrote it meanwhile: DraftConflictError, and nothing is written.
        """
        rec = self._images.get(image_id)
        classes = self._classes.all()
        ids = codec.validate_ids(ids, classes, rec.size)
        rev = os.urandom(6).hex()
        png = _draft_png(ids, classes, base_version, source, rev)
        with _DRAFT_LOCK, storage_guard(f"the unsaved strokes of '{rec.filename}' were not kept"):
            if expect_rev is not ANY:
                self._check_rev(rec.id, expect_rev)
            atomic_write(self.path(rec.id), png)
        return rev

    def remapped(self, image_id: int, path: Path, mapping: dict[int, int], classes: list[ClassSpec],
                 versions: dict[int, int]) -> tuple[bytes, str, str] | None:
        """The draft at `path` (the draft or the discarded one) with its class ids renumbered, as a new file's bytes,
        its rev before and its new rev. Painted over the mask version the renumbering replaces (`versions`: image
        id -> new version), it is painted over the renumbered one: nobody saved anything in between."""
        d = self._read(image_id, path)
        if d is None:
            return None
        base = versions[image_id] if versions.get(image_id) == d.base_version + 1 else d.base_version
        rev = os.urandom(6).hex()
        return _draft_png(codec.remap_ids(d.ids, mapping), classes, base, d.source, rev), d.rev, rev

    def _check_rev(self, image_id: int, expect_rev: str | None) -> None:
        current = self.rev(image_id)
        if (current or "") != (expect_rev or ""):
            raise DraftConflictError(
                "Another tab changed the unsaved strokes of this image since this tab last showed them."
                if current is not None else "Another tab saved or discarded the unsaved strokes of this image "
                                            "meanwhile.")

    def rev(self, image_id: int) -> str | None:
        """The draft's revision from its PNG header alone (no pixels decoded: every stroke asks), or None."""
        try:
            with Image.open(self.path(image_id)) as im:   # tEXt comes before the pixels: nothing is decoded
                return str(json.loads(im.info[DRAFT_TEXT_KEY]).get("rev", ""))
        except (OSError, KeyError, ValueError):
            return None

    def get(self, image_id: int) -> Draft | None:
        return self._read(image_id, self.path(image_id))

    def _read(self, image_id: int, path: Path) -> Draft | None:
        if not path.exists():
            return None
        try:
            rec = self._images.get(image_id)
        except NotFoundError:
            return None
        try:
            ids, text = codec.load_png_text(path)
            meta = json.loads(text[DRAFT_TEXT_KEY])
            if ids.shape != (rec.height, rec.width):
                raise ValueError(f"it is {ids.shape[1]}x{ids.shape[0]} pixels, the image {rec.width}x{rec.height}")
            return Draft(int(image_id), ids, int(meta["base_version"]), str(meta.get("source", "painted")),
                         float(meta.get("saved_at", 0.0)), str(meta.get("rev", "")))
        except Exception as exc:   # noqa: BLE001 - whatever is wrong with it, a draft must not break the page
            self._drop(path, rec, exc)
            return None

    def _drop(self, path: Path, rec: ImageRecord, exc: Exception) -> None:
        """An unreadable draft holds no work to restore: it is removed, and the log says why."""
        log.warning("dropped the unreadable draft %s of '%s' (image %d): %s: %s", path.name, rec.filename, rec.id,
                    type(exc).__name__, exc)
        with _DRAFT_LOCK:
            path.unlink(missing_ok=True)

    def discard(self, image_id: int, expect_rev=ANY, keep: bool = False) -> None:
        """Drop the draft; with keep, it is set aside so that `undo_discard` brings it back."""
        with _DRAFT_LOCK, storage_guard("the unsaved strokes were not discarded"):
            if expect_rev is not ANY:
                self._check_rev(image_id, expect_rev)
            path = self.path(image_id)
            if keep and path.exists():
                os.replace(path, self.discarded_path(image_id))
            else:
                path.unlink(missing_ok=True)

    def has_discarded(self, image_id: int) -> bool:
        return self.discarded_path(image_id).exists()

    def undo_discard(self, image_id: int) -> Draft | None:
        """Bring the discarded draft back, unless new strokes were made since (they are kept then)."""
        with _DRAFT_LOCK, storage_guard("the discarded strokes were not brought back"):
            if self.path(image_id).exists() or not self.discarded_path(image_id).exists():
                return None
            os.replace(self.discarded_path(image_id), self.path(image_id))
        return self.get(image_id)

    def forget_discarded(self, image_id: int) -> None:
        self.discarded_path(image_id).unlink(missing_ok=True)

    def image_ids(self) -> set[int]:
        folder = self._layout.drafts_dir
        return {int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit()} if folder.is_dir() else set()


def _draft_png(ids: np.ndarray, classes, base_version: int, source: str, rev: str) -> bytes:
    meta = json.dumps({"base_version": int(base_version), "source": source, "saved_at": time.time(), "rev": rev})
    return codec.encode_png(ids, classes, text={DRAFT_TEXT_KEY: meta})
