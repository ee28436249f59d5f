"""Typed rows of the images table, and the values its status and split columns take."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path

from seg_core.errors import ProjectError


class ImageStatus(str, Enum):
    """Whether an image has a saved mask. A str, so that the stored values, filters and JSON stay plain words."""

    UNLABELED = "unlabeled"
    LABELED = "labeled"

    def __str__(self) -> str:
        return self.value


STATUSES = tuple(s.value for s in ImageStatus)
SPLITS = ("train", "val", "test")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ProjectError(f"Split must be one of {', '.join(SPLITS)}; got '{split}'.")
    return split


def check_status(status: str) -> ImageStatus:
    if status not in STATUSES:
        raise ProjectError(f"Status must be one of {', '.join(STATUSES)}; got '{status}'.")
    return ImageStatus(status)


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
    status: ImageStatus
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
        values = {f.name: row[f.name] for f in fields(cls)}
        return cls(**{**values, "status": ImageStatus(values["status"])})


@dataclass(frozen=True)
class AddResult:
    status: str                  # "added" or "duplicate"
    image: ImageRecord
    detail: str = ""
