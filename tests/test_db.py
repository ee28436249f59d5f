"""store/db.py: the schema's migrations, a newer schema refused, a writer that waits for another."""

from __future__ import annotations

import json
import sqlite3

import pytest

from helpers import box_mask, photo, png_bytes
from seg_core.errors import ProjectError
from seg_core.ml.config import TrainConfig
from seg_core.store import db
from seg_core.store.project import Project
from seg_core.store.runs import RunStatus


@pytest.fixture
def project(tmp_path):
    return Project.create(tmp_path / "p")


def add(project, seed=0, name=None, h=24, w=32):
    return project.add_image(png_bytes(photo(h, w, seed)), name or f"img{seed}.png").image


def test_a_version_2_project_is_upgraded_on_open(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    with db.opened(path / "project.db") as conn:
        for version in range(2):
            for statement in db._statements(db.MIGRATIONS[version]):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO project (id, name, kind, created_at) VALUES (1, 'old', 'binary', 0)")
        conn.execute("INSERT INTO classes VALUES (0, 'background', '#000000'), (1, 'object', '#e6194b')")
        conn.execute("INSERT INTO runs (id, status, config, created_at, resumed_from) "
                     "VALUES ('r1', 'completed', ?, 0, NULL)", (json.dumps(TrainConfig().to_dict()),))
        conn.execute("INSERT INTO events (at, kind) VALUES (0, 'image-added')")
    project = Project(path)
    assert project.runs.get("r1").status is RunStatus.COMPLETED
    with db.opened(project.layout.db) as conn:
        assert db.schema_version(conn) == db.SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    assert "events" not in tables and "split" in columns and "resumed_from" not in columns


def test_newer_schema_is_refused_and_old_one_migrated(tmp_path):
    p = Project.create(tmp_path / "p")
    with db.opened(p.layout.db) as conn:
        conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    with pytest.raises(ProjectError, match="newer Maskloop"):
        Project(p.path)
    fresh = tmp_path / "empty.db"
    with db.opened(fresh) as conn:
        assert db.migrate(conn) == 0
        assert db.schema_version(conn) == db.SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"project", "classes", "images", "runs", "metrics", "mask_classes", "predictions"} <= tables
    assert "events" not in tables


def test_concurrent_writer_waits_instead_of_failing(project):
    rec = add(project)
    other = sqlite3.connect(project.layout.db, timeout=5, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE images SET updated_at = 0")

    import threading
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    saved = project.masks.save(rec.id, box_mask(), 0)
    assert saved.mask_version == 1
    other.close()
