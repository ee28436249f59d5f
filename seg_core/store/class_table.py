"""A project's classes (the classes table): read, replaced, added to, renamed. Removing one rewrites masks, drafts
and predictions, so that belongs to the class scheme (store/class_scheme.py)."""

from __future__ import annotations

from typing import Sequence

from seg_core.classes import ClassSpec, default_color, parse_color, validate_classes
from seg_core.errors import ClassSpecError
from seg_core.store import db
from seg_core.store.db import Database
from seg_core.store.images import Images
from seg_core.store.records import ImageStatus


class ClassTable:
    def __init__(self, database: Database, images: Images):
        self._db = database
        self._images = images

    def all(self) -> list[ClassSpec]:
        with self._db.connection() as conn:
            return db.read_classes(conn)

    def set(self, classes: Sequence[ClassSpec]) -> None:
        """Replace names/colours; changing the number of classes needs an empty project."""
        classes = list(classes)
        validate_classes(classes)
        if len(classes) != len(self.all()) and self._images.count(status=ImageStatus.LABELED):
            raise ClassSpecError("Masks already use the current classes; add or remove classes one at a time.")
        with self._db.transaction() as conn:
            db.write_classes(conn, classes)

    def add(self, name: str, color: str | Sequence[int] | None = None) -> ClassSpec:
        classes = self.all()
        new = ClassSpec(len(classes), name.strip(),
                        parse_color(color) if color is not None else default_color(len(classes)))
        validate_classes(classes + [new])
        with self._db.transaction() as conn:
            db.write_classes(conn, classes + [new])
        return new
