"""A project's masks (saved with a version check), drafts (unsaved edits), stored predictions, and class removal."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from seg_core.classes import IGNORE_ID, ClassSpec
from seg_core.errors import ClassSpecError, DraftConflictError, MaskConflictError, NotFoundError
from seg_core.files import atomic_write, commit_temp, storage_guard, write_temp
from seg_core.formats import masks as codec
from seg_core.store import class_scheme, db
from seg_core.store.records import ImageRecord

if TYPE_CHECKING:
    from seg_core.store.project import Project

# Written into every draft PNG: it keeps the product's former name so that drafts saved before the rename still open.
DRAFT_TEXT_KEY = "segstudio-draft"
PENDING_RENAMES = "pending_mask_renames"
log = logging.getLogger(__name__)
ANY = object()   # Drafts.save(expect_rev=ANY): write whatever draft is there now
# Every browser tab of a server is a thread of one process: one lock makes a draft's check-and-write atomic.
_DRAFT_LOCK = threading.Lock()


class Masks:
    """The saved mask of each labeled image: masks/<id>.png, its version and class pixel counts in the DB."""

    def __init__(self, project: "Project"):
        self._project = project

    def path(self, image_id: int) -> Path:
        return self._project.layout.mask(image_id)

    def load(self, image: int | ImageRecord) -> np.ndarray | None:
        """The image's class-id mask, or None while it is unlabeled."""
        rec = image if isinstance(image, ImageRecord) else self._project.image(image)
        path = self.path(rec.id)
        if rec.status != "labeled" or not path.exists():   # a cleared mask's file may outlive it a moment
            return None
        return codec.load_png(path)

    def save(self, image_id: int, ids: np.ndarray, expected_version: int, *, author: str = "user",
             source: str = "painted") -> ImageRecord:
        """Write a mask atomically if nobody saved since `expected_version` was read; returns the new record.

        The new file waits beside the old one while the database records its version and checksum; it is renamed
        in after that commit. A crash between the two leaves the record and the waiting file, which the next open
        puts in place (store/recovery.py): the old mask or the new one, never a record that disagrees with its file.
        """
        project = self._project
        rec = project.image(image_id)
        classes = project.classes
        ids = codec.validate_ids(ids, classes, rec.size)
        png = codec.encode_png(ids, classes)
        target = self.path(rec.id)
        with storage_guard(f"the mask of '{rec.filename}' was not saved; its previous mask is kept"):
            return self._write(rec, ids, png, target, expected_version, author, source)

    def _write(self, rec: ImageRecord, ids: np.ndarray, png: bytes, target: Path, expected_version: int,
               author: str, source: str) -> ImageRecord:
        project = self._project
        tmp = write_temp(target, png)
        keep_tmp = False
        try:
            with project._db() as conn, db.transaction(conn):
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
                    "UPDATE images SET mask_version = mask_version + 1, status = 'labeled', mask_sha256 = ?, "
                    "mask_source = ?, mask_updated_by = ?, mask_updated_at = ?, updated_at = ? WHERE id = ?",
                    (hashlib.sha256(png).hexdigest(), source, author, now, now, rec.id),
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
            with self._project._db() as conn, db.transaction(conn):
                conn.execute(f"UPDATE images SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ? AND mask_version = ?",
                             (*(old[c] for c in cols), old["id"], version))
                db.write_class_pixels(conn, old["id"], old_pixels)
        except Exception:
            return False
        return True

    def clear(self, image_id: int, expected_version: int, author: str = "user") -> ImageRecord:
        """Mark the image unlabeled again; the mask file is removed."""
        project = self._project
        rec = project.image(image_id)
        with project._db() as conn, db.transaction(conn):
            row = conn.execute("SELECT mask_version FROM images WHERE id = ?", (rec.id,)).fetchone()
            if row["mask_version"] != int(expected_version):
                raise MaskConflictError(f"The mask of '{rec.filename}' changed since you opened it; reload first.")
            now = time.time()
            conn.execute("UPDATE images SET mask_version = mask_version + 1, status = 'unlabeled', mask_sha256 = NULL, "
                         "mask_updated_by = ?, mask_updated_at = ?, updated_at = ? WHERE id = ?",
                         (author, now, now, rec.id))
            db.write_class_pixels(conn, rec.id, {})
            new = ImageRecord.from_row(conn.execute("SELECT * FROM images WHERE id = ?", (rec.id,)).fetchone())
        # After the commit: a crash before it keeps the mask, one after it leaves a file the next open removes.
        self.path(rec.id).unlink(missing_ok=True)
        return new

    def class_pixels(self, image_id: int) -> dict[int, int]:
        with self._project._db() as conn:
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

    def __init__(self, project: "Project"):
        self._project = project

    def path(self, image_id: int) -> Path:
        return self._project.layout.draft(image_id)

    def discarded_path(self, image_id: int) -> Path:
        return self._project.layout.discarded_draft(image_id)

    def save(self, image_id: int, ids: np.ndarray, base_version: int, source: str = "painted",
             expect_rev=ANY) -> str:
        """Keep an edited mask that is not saved yet, with the mask version it was painted over; returns its rev.

        expect_rev: the rev the writer last saw ("" or None: no draft). If the draft on disk is another one,
        another tab wrote it meanwhile: DraftConflictError, and nothing is written.
        """
        rec = self._project.image(image_id)
        classes = self._project.classes
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
            rec = self._project.image(image_id)
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

    def discarded(self, image_id: int) -> Draft | None:
        """The draft Discard set aside, while no new one replaced it."""
        return self._read(image_id, self.discarded_path(image_id))

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
        folder = self._project.layout.drafts_dir
        return {int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit()} if folder.is_dir() else set()


def _draft_png(ids: np.ndarray, classes, base_version: int, source: str, rev: str) -> bytes:
    meta = json.dumps({"base_version": int(base_version), "source": source, "saved_at": time.time(), "rev": rev})
    return codec.encode_png(ids, classes, text={DRAFT_TEXT_KEY: meta})


@dataclass(frozen=True)
class StoredPrediction:
    image_id: int
    run_id: str
    ids: np.ndarray
    uncertainty: float | None
    created_at: float


class Predictions:
    """The newest model mask per image (predictions/<id>.png), for the gallery, Annotate and review."""

    def __init__(self, project: "Project"):
        self._project = project

    def path(self, image_id: int) -> Path:
        return self._project.layout.prediction(image_id)

    def save(self, image_id: int, run_id: str, ids: np.ndarray, uncertainty: float | None = None) -> None:
        rec = self._project.image(image_id)
        classes = self._project.classes
        ids = codec.validate_ids(ids, classes, rec.size)
        atomic_write(self.path(rec.id), codec.encode_png(ids, classes))
        with self._project._db() as conn:
            conn.execute("INSERT OR REPLACE INTO predictions (image_id, run_id, uncertainty, created_at) "
                         "VALUES (?, ?, ?, ?)", (rec.id, run_id, uncertainty, time.time()))

    def get(self, image_id: int) -> StoredPrediction | None:
        with self._project._db() as conn:
            row = conn.execute("SELECT * FROM predictions WHERE image_id = ?", (int(image_id),)).fetchone()
        path = self.path(image_id)
        if row is None or not path.exists():
            return None
        return StoredPrediction(int(image_id), row["run_id"], codec.load_png(path), row["uncertainty"],
                                row["created_at"])

    def rows(self, run_id: str, status: str | None = None) -> list:
        """Stored predictions of one run (image_id, uncertainty, created_at, filename, split), without their pixels."""
        sql = ("SELECT p.image_id, p.uncertainty, p.created_at, i.filename, i.split FROM predictions p "
               "JOIN images i ON i.id = p.image_id WHERE p.run_id = ?")
        args: tuple = (run_id,)
        if status is not None:
            sql, args = sql + " AND i.status = ?", (run_id, status)
        with self._project._db() as conn:
            return conn.execute(sql + " ORDER BY p.image_id", args).fetchall()

    def image_ids(self) -> set[int]:
        with self._project._db() as conn:
            return {r[0] for r in conn.execute("SELECT image_id FROM predictions")}

    def renumber(self, mapping: dict[int, int], classes: list[ClassSpec], pending: list) -> tuple[list[int], list[int]]:
        """For a class removal: the predictions that use a renumbered class are written anew beside the old ones
        (added to `pending` as temporary file, target); returns their ids and those to drop, as a model never
        predicts 'ignore', where the class's pixels went. The others stay as they are."""
        renamed, dropped = [], []
        for image_id in sorted(self.image_ids()):
            path = self.path(image_id)
            ids = codec.load_png(path) if path.exists() else None
            if ids is None or int(ids.max()) < min(mapping):
                continue
            ids = codec.remap_ids(ids, mapping)
            if (ids == IGNORE_ID).any():
                dropped.append(image_id)
                continue
            pending.append((str(write_temp(path, codec.encode_png(ids, classes))), str(path)))
            renamed.append(image_id)
        return renamed, dropped


# ----- removing a class: every mask that uses it is rewritten, all or nothing -----------------------
def remove_class(project: "Project", class_id: int, pixels_to: int = 0, author: str = "user") -> int:
    """Delete a class; its pixels become `pixels_to` and higher ids move down one. Returns masks rewritten.

    New masks are written beside the old ones first; one transaction then records the new classes,
    versions and the pending renames, which are finished here or, after a crash, on the next open.
    """
    classes = project.classes
    class_id, pixels_to = int(class_id), int(pixels_to)
    if not 0 < class_id < len(classes):
        raise ClassSpecError("The background (class 0) cannot be removed." if class_id == 0
                             else f"There is no class {class_id}.")
    if len(classes) <= 2:
        raise ClassSpecError("A project needs at least two classes: background and one thing to segment.")
    if pixels_to == class_id or not (0 <= pixels_to < len(classes) or pixels_to == IGNORE_ID):
        raise ClassSpecError(f"The pixels of '{classes[class_id].name}' must go to another class.")
    target = pixels_to if pixels_to == IGNORE_ID or pixels_to < class_id else pixels_to - 1
    mapping = {class_id: target, **{i: i - 1 for i in range(class_id + 1, len(classes))}}
    new_classes = [ClassSpec(i, c.name, c.color) for i, c in enumerate(c for c in classes if c.id != class_id)]
    with project._db() as conn:
        affected = [r[0] for r in conn.execute(
            "SELECT DISTINCT image_id FROM mask_classes WHERE class_id >= ? AND class_id != ? ORDER BY image_id",
            (class_id, IGNORE_ID))]
    pending, counts, shas = [], {}, {}
    undone = f"the class '{classes[class_id].name}' was not removed; every mask is as it was"
    what = (classes[class_id].name, "ignore" if pixels_to == IGNORE_ID else classes[pixels_to].name)
    try:
        with storage_guard(undone):
            _stage_removal(project, affected, mapping, new_classes, author, pending, counts, shas, what)
    except BaseException:
        for tmp, _ in pending:
            Path(tmp).unlink(missing_ok=True)
        raise
    with storage_guard(f"the class '{classes[class_id].name}' was removed, but some masks could not be rewritten "
                       "yet; they will be when the project is next opened"):
        finish_pending_renames(project)
    return len(counts)


def _stage_removal(project: "Project", affected: list[int], mapping: dict[int, int], new_classes: list[ClassSpec],
                   author: str, pending: list, counts: dict, shas: dict, what: tuple[str, str]) -> None:
    """New masks and drafts beside the old ones, then one transaction: new classes, versions, checksums, the
    renames still to do, and the renumbering (for tabs that show an image in the old numbering)."""
    versions = {r.id: r.mask_version + 1 for r in map(project.image, affected)}
    revs = {}
    for image_id in affected:
        path = project.masks.path(image_id)
        ids = codec.remap_ids(codec.load_png(path), mapping)
        counts[image_id] = codec.class_pixel_counts(ids)
        png = codec.encode_png(ids, new_classes)
        shas[image_id] = hashlib.sha256(png).hexdigest()
        pending.append((str(write_temp(path, png)), str(path)))
    for image_id in sorted(project.drafts.image_ids()):  # unsaved edits keep up with the new numbering, in the
        for path in (project.drafts.path(image_id), project.drafts.discarded_path(image_id)):   # same step
            remapped = project.drafts.remapped(image_id, path, mapping, new_classes, versions)
            if remapped is not None:
                pending.append((str(write_temp(path, remapped[0])), str(path)))
                if path == project.drafts.path(image_id):
                    revs[image_id] = remapped[1:]
    renamed, dropped = project.predictions.renumber(mapping, new_classes, pending)
    now = time.time()
    with project._db() as conn, db.transaction(conn):
        db.write_classes(conn, new_classes)
        for image_id, cnt in counts.items():
            conn.execute("UPDATE images SET mask_version = mask_version + 1, mask_sha256 = ?, mask_updated_by = ?, "
                         "mask_updated_at = ?, updated_at = ? WHERE id = ?",
                         (shas[image_id], author, now, now, image_id))
            db.write_class_pixels(conn, image_id, cnt)
        conn.executemany("DELETE FROM predictions WHERE image_id = ?", [(i,) for i in dropped])
        conn.executemany("UPDATE predictions SET created_at = ? WHERE image_id = ?",   # their thumbnails are redrawn
                         [(now, i) for i in renamed])
        conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                     (PENDING_RENAMES, json.dumps(pending)))
        class_scheme.record(conn, class_scheme.Renumbering(class_scheme.scheme_in(conn) + 1, mapping, *what, author,
                                                           versions, revs))


def finish_pending_renames(project: "Project") -> None:
    """Complete a class removal that a crash interrupted after its transaction (nothing to do otherwise)."""
    pending = project.setting(PENDING_RENAMES)
    if not pending:
        return
    for tmp, target in pending:
        if Path(tmp).exists():
            commit_temp(Path(tmp), Path(target))
    with project._db() as conn:
        conn.execute("DELETE FROM settings WHERE key = ?", (PENDING_RENAMES,))
