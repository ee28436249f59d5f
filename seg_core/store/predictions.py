"""The newest model prediction of each image (predictions/<id>.png and its row), for the gallery, Annotate and
review."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg_core.classes import IGNORE_ID, ClassSpec
from seg_core.durable import atomic_write, write_temp
from seg_core.formats import masks as codec
from seg_core.store.class_table import ClassTable
from seg_core.store.db import Database
from seg_core.store.images import Images
from seg_core.store.layout import ProjectLayout


@dataclass(frozen=True)
class StoredPrediction:
    image_id: int
    run_id: str
    ids: np.ndarray
    uncertainty: float | None
    created_at: float


class Predictions:
    """The newest model mask per image (predictions/<id>.png), for the gallery, Annotate and review."""

    def __init__(self, database: Database, layout: ProjectLayout, images: Images, classes: ClassTable):
        self._db = database
        self._layout = layout
        self._images = images
        self._classes = classes

    def path(self, image_id: int) -> Path:
        return self._layout.prediction(image_id)

    def save(self, image_id: int, run_id: str, ids: np.ndarray, uncertainty: float | None = None) -> None:
        rec = self._images.get(image_id)
        classes = self._classes.all()
        ids = codec.validate_ids(ids, classes, rec.size)
        atomic_write(self.path(rec.id), codec.encode_png(ids, classes))
        with self._db.connection() as conn:
            conn.execute("INSERT OR REPLACE INTO predictions (image_id, run_id, uncertainty, created_at) "
                         "VALUES (?, ?, ?, ?)", (rec.id, run_id, uncertainty, time.time()))

    def get(self, image_id: int) -> StoredPrediction | None:
        with self._db.connection() as conn:
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
        with self._db.connection() as conn:
            return conn.execute(sql + " ORDER BY p.image_id", args).fetchall()

    def image_ids(self) -> set[int]:
        with self._db.connection() as conn:
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
