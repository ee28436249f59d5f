"""Typed rows of the images table."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path

STATUSES = ("unlabeled", "labeled")


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
