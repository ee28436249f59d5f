"""Class numbering over time: each class removal renumbers the masks and drafts on disk in one step, and is
recorded here, so that a tab that opened an image before it renumbers what it shows the same way
(drafting.follow_classes) instead of writing ids of the old numbering back."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seg_core.store.project import Project

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


def _get(conn: sqlite3.Connection, key: str, default):
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default


def scheme_in(conn: sqlite3.Connection) -> int:
    return int(_get(conn, SCHEME_KEY, 0))


def current(project: "Project") -> int:
    """The numbering the classes are in now: 0 until the first removal."""
    with project._db() as conn:
        return scheme_in(conn)


def record(conn: sqlite3.Connection, renumbering: Renumbering) -> None:
    """Inside the removal's own transaction: the new numbering and how to get there."""
    kept = (_get(conn, RENUMBERINGS_KEY, []) + [renumbering.to_dict()])[-KEEP:]
    conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (SCHEME_KEY, json.dumps(
        renumbering.scheme)))
    conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (RENUMBERINGS_KEY, json.dumps(kept)))


def since(project: "Project", scheme: int) -> list[Renumbering] | None:
    """The renumberings after numbering `scheme`, oldest first ([] when none); None when they are no longer all
    kept (the tab has to start again from what is on disk)."""
    with project._db() as conn:
        now, kept = scheme_in(conn), _get(conn, RENUMBERINGS_KEY, [])
    steps = [Renumbering.from_dict(d) for d in kept if int(d["scheme"]) > scheme]
    return steps if [s.scheme for s in steps] == list(range(scheme + 1, now + 1)) else None
