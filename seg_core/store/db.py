"""A project's project.db: its schema and migrations, connections (WAL, busy timeout) and transactions, and the
`Database` that the store's parts share."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from seg_core import faults
from seg_core.classes import ClassSpec, parse_color
from seg_core.errors import ProjectError

BUSY_TIMEOUT_S = 30.0

# Each entry moves the schema one version up; PRAGMA user_version records where a file stands.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE project (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('binary', 'multiclass')),
        created_at REAL NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE classes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        color TEXT NOT NULL
    );
    CREATE TABLE images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        filename TEXT NOT NULL,
        stored_name TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        channels INTEGER NOT NULL,
        source_format TEXT NOT NULL,
        split TEXT NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'val', 'test')),
        status TEXT NOT NULL DEFAULT 'unlabeled' CHECK (status IN ('unlabeled', 'labeled')),
        mask_version INTEGER NOT NULL DEFAULT 0,
        mask_sha256 TEXT,
        mask_source TEXT,
        mask_updated_by TEXT,
        mask_updated_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX images_status ON images (status, id);
    CREATE INDEX images_split ON images (split, id);
    CREATE INDEX images_filename ON images (filename);
    CREATE TABLE mask_classes (
        image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        class_id INTEGER NOT NULL,
        pixels INTEGER NOT NULL,
        PRIMARY KEY (image_id, class_id)
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'stopped', 'failed')),
        config TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        pid INTEGER,
        heartbeat_at REAL,
        stop_requested INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        best_epoch INTEGER,
        best_score REAL,
        resumed_from TEXT
    );
    CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        batch INTEGER,
        data TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX metrics_run ON metrics (run_id, epoch, batch);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        image_id INTEGER,
        detail TEXT
    );
    """,
    # 2: the newest model prediction per image, for the gallery, "start from prediction" and review.
    """
    CREATE TABLE predictions (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        run_id TEXT NOT NULL,
        uncertainty REAL,
        created_at REAL NOT NULL
    );
    """,
    # 3: the split a run used is recorded on the run; the never-read events table and resumed_from go.
    """
    ALTER TABLE runs ADD COLUMN split TEXT;
    ALTER TABLE runs DROP COLUMN resumed_from;
    DROP TABLE events;
    """,
    # 4: the devices a run trained on ("CPU", "2 GPUs (...)", "2 workers (...); chief: CPU"), as its worker saw them.
    """
    ALTER TABLE runs ADD COLUMN devices TEXT;
    """,
    # 5: a run started from another run's model scores that model on its own validation images first, so whether it
    # learned anything is told on the same images.
    """
    ALTER TABLE runs ADD COLUMN start_score REAL;
    """,
    # 6: what a person did with each model proposal in the review queue, for the share accepted as it was.
    """
    CREATE TABLE proposal_outcomes (
        run_id TEXT NOT NULL,
        image_id INTEGER NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'fixed', 'skipped')),
        at REAL NOT NULL
    );
    CREATE INDEX proposal_outcomes_run ON proposal_outcomes (run_id, outcome);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode; use `transaction()` for atomic groups of statements."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def upgrade(conn: sqlite3.Connection) -> None:
    """On opening a project: WAL mode and the current schema, writing only when either is missing."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        enable_wal(conn)
    if schema_version(conn) != SCHEMA_VERSION:
        migrate(conn)  # a newer file is refused there with a sentence


def enable_wal(conn: sqlite3.Connection) -> str:
    """WAL lets the Train page read while a worker writes; the mode is stored in the file, set once."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":  # e.g. a network file system; still correct, only less concurrent
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    return mode


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE takes the write lock up front, so read-check-write sequences cannot race."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
        faults.point("commit", _db_file(conn))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:   # a COMMIT that failed (a full disk) leaves the transaction open
            conn.execute("ROLLBACK")
        raise


def _db_file(conn: sqlite3.Connection) -> str:
    return conn.execute("PRAGMA database_list").fetchone()[2] if faults.active() else ""


@contextlib.contextmanager
def opened(path: str | Path) -> Iterator[sqlite3.Connection]:
    conn = connect(path)
    try:
        yield conn
    finally:
        conn.close()


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION; returns the version the file had before."""
    before = schema_version(conn)
    if before > SCHEMA_VERSION:
        raise ProjectError(
            f"This project was saved by a newer Maskloop (database version {before}, this one knows up "
            f"to {SCHEMA_VERSION}). Update Maskloop to open it."
        )
    for version in range(before, SCHEMA_VERSION):
        with transaction(conn):
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return before


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split instead (no ';' inside our DDL strings).
    return [s.strip() for s in script.split(";") if s.strip()]


class Database:
    """The database the parts of a project share: one connection per thread, and transactions that take the write
    lock up front."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, in autocommit mode. Opening SQLite for every call would cost more than the
        work; a thread of its own gets a connection of its own, as SQLite requires."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        yield conn

    @contextlib.contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        with self.connection() as conn, transaction(conn, immediate):
            yield conn

    def upgrade(self) -> None:
        with self.connection() as conn:
            upgrade(conn)

    def close(self) -> None:
        """Close this thread's connection; the next use opens a new one."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def setting(self, key: str, default=None):
        with self.connection() as conn:
            return read_setting(conn, key, default)

    def set_setting(self, key: str, value) -> None:
        with self.connection() as conn:
            write_setting(conn, key, value)


def read_setting(conn: sqlite3.Connection, key: str, default=None):
    """A value of the settings table (stored as JSON), or `default`."""
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default


def write_setting(conn: sqlite3.Connection, key: str, value) -> None:
    conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def delete_setting(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("DELETE FROM settings WHERE key = ?", (key,))


def read_classes(conn: sqlite3.Connection) -> list[ClassSpec]:
    rows = conn.execute("SELECT id, name, color FROM classes ORDER BY id").fetchall()
    return [ClassSpec(r["id"], r["name"], parse_color(r["color"])) for r in rows]


def write_classes(conn: sqlite3.Connection, classes: Sequence[ClassSpec]) -> None:
    """Replace the class table; two classes make a binary project, more a multi-class one."""
    conn.execute("DELETE FROM classes")
    conn.executemany("INSERT INTO classes (id, name, color) VALUES (?, ?, ?)", [(c.id, c.name, c.hex) for c in classes])
    conn.execute("UPDATE project SET kind = ? WHERE id = 1", ("binary" if len(classes) == 2 else "multiclass",))


def write_class_pixels(conn: sqlite3.Connection, image_id: int, counts: Mapping[int, int]) -> None:
    """Record how many pixels of each class an image's mask has (the Data page and readiness count these)."""
    conn.execute("DELETE FROM mask_classes WHERE image_id = ?", (image_id,))
    conn.executemany("INSERT INTO mask_classes (image_id, class_id, pixels) VALUES (?, ?, ?)",
                     [(image_id, c, n) for c, n in counts.items()])
