"""Class numbering over time: removing a class renumbers the masks, drafts and predictions on disk in one step, and
is recorded here, so that a tab that opened an image before it renumbers what it shows the same way
(drafting.follow_classes) instead of writing ids of the old numbering back."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from seg_core.classes import IGNORE_ID, ClassSpec
from seg_core.errors import ClassSpecError
from seg_core.durable import commit_temp, storage_guard, write_temp
from seg_core.formats import masks as codec
from seg_core.store import db
from seg_core.store.annotations import Drafts, Masks
from seg_core.store.class_table import ClassTable
from seg_core.store.db import Database
from seg_core.store.images import Images
from seg_core.store.predictions import Predictions

PENDING_RENAMES = "pending_mask_renames"
SCHEME_KEY = "class_scheme"
RENUMBERINGS_KEY = "class_renumberings"
KEEP = 50   # a tab that missed more removals than this opens the image afresh from disk


@dataclass(frozen=True)
class Renumbering:
    scheme: int                         # the numbering it leads to (the first removal leads to 1)
    mapping: dict[int, int]             # old class id -> new class id
    removed: str                        # the removed class's name
    into: str                           # the class its pixels went to
    by: str
    versions: dict[int, int] = field(default_factory=dict)           # image id -> mask version it gave
    revs: dict[int, tuple[str, str]] = field(default_factory=dict)   # image id -> draft rev (before, after)

    @property
    def removed_id(self) -> int:
        return min(self.mapping)   # the removed class and every class after it are renumbered

    def to_dict(self) -> dict:
        return {"scheme": self.scheme, "mapping": self.mapping, "removed": self.removed, "into": self.into,
                "by": self.by, "versions": self.versions, "revs": self.revs}

    @classmethod
    def from_dict(cls, d: dict) -> "Renumbering":
        return cls(int(d["scheme"]), {int(k): int(v) for k, v in d["mapping"].items()}, str(d["removed"]),
                   str(d["into"]), str(d.get("by", "")), {int(k): int(v) for k, v in d.get("versions", {}).items()},
                   {int(k): (str(v[0]), str(v[1])) for k, v in d.get("revs", {}).items()})


def scheme_in(conn: sqlite3.Connection) -> int:
    return int(db.read_setting(conn, SCHEME_KEY, 0))


def record(conn: sqlite3.Connection, renumbering: Renumbering) -> None:
    """Inside the removal's own transaction: the new numbering and how to get there."""
    kept = (db.read_setting(conn, RENUMBERINGS_KEY, []) + [renumbering.to_dict()])[-KEEP:]
    db.write_setting(conn, SCHEME_KEY, renumbering.scheme)
    db.write_setting(conn, RENUMBERINGS_KEY, kept)


class ClassScheme:
    """The numbering the classes are in, how it came to be, and the removal of a class that moves it on."""

    def __init__(self, database: Database, images: Images, classes: ClassTable, masks: Masks, drafts: Drafts,
                 predictions: Predictions):
        self._db = database
        self._images = images
        self._classes = classes
        self._masks = masks
        self._drafts = drafts
        self._predictions = predictions

    def current(self) -> int:
        """The numbering the classes are in now: 0 until the first removal."""
        with self._db.connection() as conn:
            return scheme_in(conn)

    def since(self, scheme: int) -> list[Renumbering] | None:
        """The renumberings after numbering `scheme`, oldest first ([] when none); None when they are no longer all
        kept (the tab has to start again from what is on disk)."""
        with self._db.connection() as conn:
            now, kept = scheme_in(conn), db.read_setting(conn, RENUMBERINGS_KEY, [])
        steps = [Renumbering.from_dict(d) for d in kept if int(d["scheme"]) > scheme]
        return steps if [s.scheme for s in steps] == list(range(scheme + 1, now + 1)) else None

    def remove(self, class_id: int, pixels_to: int = 0, author: str = "user") -> int:
        """Delete a class; its pixels become `pixels_to` and higher ids move down one. Returns masks rewritten.

        New masks are written beside the old ones first; one transaction then records the new classes,
        versions and the pending renames, which are finished here or, after a crash, on the next open.
        """
        classes = self._classes.all()
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
        with self._db.connection() as conn:
            affected = [r[0] for r in conn.execute(
                "SELECT DISTINCT image_id FROM mask_classes WHERE class_id >= ? AND class_id != ? ORDER BY image_id",
                (class_id, IGNORE_ID))]
        pending, counts, shas = [], {}, {}
        undone = f"the class '{classes[class_id].name}' was not removed; every mask is as it was"
        what = (classes[class_id].name, "ignore" if pixels_to == IGNORE_ID else classes[pixels_to].name)
        try:
            with storage_guard(undone):
                self._stage_removal(affected, mapping, new_classes, author, pending, counts, shas, what)
        except BaseException:
            for tmp, _ in pending:
                Path(tmp).unlink(missing_ok=True)
            raise
        with storage_guard(f"the class '{classes[class_id].name}' was removed, but some masks could not be rewritten "
                           "yet; they will be when the project is next opened"):
            self.finish_pending_renames()
        return len(counts)

    def _stage_removal(self, affected: list[int], mapping: dict[int, int], new_classes: list[ClassSpec], author: str,
                       pending: list, counts: dict, shas: dict, what: tuple[str, str]) -> None:
        """New masks and drafts beside the old ones, then one transaction: new classes, versions, checksums, the
        renames still to do, and the renumbering (for tabs that show an image in the old numbering)."""
        versions = {r.id: r.mask_version + 1 for r in map(self._images.get, affected)}
        revs = {}
        for image_id in affected:
            path = self._masks.path(image_id)
            ids = codec.remap_ids(codec.load_png(path), mapping)
            counts[image_id] = codec.class_pixel_counts(ids)
            png = codec.encode_png(ids, new_classes)
            shas[image_id] = hashlib.sha256(png).hexdigest()
            pending.append((str(write_temp(path, png)), str(path)))
        for image_id in sorted(self._drafts.image_ids()):  # unsaved edits keep up with the new numbering, in the
            for path in (self._drafts.path(image_id), self._drafts.discarded_path(image_id)):   # same step
                remapped = self._drafts.remapped(image_id, path, mapping, new_classes, versions)
                if remapped is not None:
                    pending.append((str(write_temp(path, remapped[0])), str(path)))
                    if path == self._drafts.path(image_id):
                        revs[image_id] = remapped[1:]
        renamed, dropped = self._predictions.renumber(mapping, new_classes, pending)
        now = time.time()
        with self._db.transaction() as conn:
            db.write_classes(conn, new_classes)
            for image_id, cnt in counts.items():
                conn.execute("UPDATE images SET mask_version = mask_version + 1, mask_sha256 = ?, mask_updated_by = ?, "
                             "mask_updated_at = ?, updated_at = ? WHERE id = ?",
                             (shas[image_id], author, now, now, image_id))
                db.write_class_pixels(conn, image_id, cnt)
            conn.executemany("DELETE FROM predictions WHERE image_id = ?", [(i,) for i in dropped])
            # a new created_at: their thumbnails are drawn again
            conn.executemany("UPDATE predictions SET created_at = ? WHERE image_id = ?", [(now, i) for i in renamed])
            db.write_setting(conn, PENDING_RENAMES, pending)
            record(conn, Renumbering(scheme_in(conn) + 1, mapping, *what, author, versions, revs))

    def finish_pending_renames(self) -> None:
        """Complete a class removal that a crash interrupted after its transaction (nothing to do otherwise)."""
        pending = self._db.setting(PENDING_RENAMES)
        if not pending:
            return
        for tmp, target in pending:
            if Path(tmp).exists():
                commit_temp(Path(tmp), Path(target))
        with self._db.connection() as conn:
            db.delete_setting(conn, PENDING_RENAMES)
