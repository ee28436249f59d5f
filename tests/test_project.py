"""Project: creating one, opening it (which reads only), the names and classes it refuses, its summary."""

from __future__ import annotations

import pytest

from helpers import box_mask, labeled_project, photo, png_bytes
from seg_core.classes import ClassSpec, default_classes
from seg_core.errors import ClassSpecError, ProjectError
from seg_core.store import db
from seg_core.store.project import Project


def add(project, seed=0, name=None, h=24, w=32):
    return project.add_image(png_bytes(photo(h, w, seed)), name or f"img{seed}.png").image


def traced_statements(monkeypatch) -> list[str]:
    """Every SQL statement run on connections opened from now on."""
    seen: list[str] = []
    real = db.connect

    def connect(path):
        conn = real(path)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(db, "connect", connect)
    return seen


def is_read(statement: str) -> bool:
    s = statement.strip().upper()
    return s.startswith("SELECT") or (s.startswith("PRAGMA") and "=" not in s)


def test_create_makes_folders_db_wal_and_default_binary_classes(tmp_path):
    p = Project.create(tmp_path / "proj")
    assert (p.path / "project.db").is_file()
    assert all((p.path / d).is_dir() for d in ("images", "masks", "runs"))
    assert p.kind == "binary" and p.name == "proj"
    assert [c.name for c in p.classes] == ["background", "object"]
    with db.opened(p.layout.db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.schema_version(conn) == db.SCHEMA_VERSION
    assert not list(p.path.glob(".*creating*"))


def test_create_refuses_existing_project_and_nonempty_folder(tmp_path):
    Project.create(tmp_path / "a")
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("hi")
    with pytest.raises(ProjectError, match="files in it"):
        Project.create(tmp_path / "b")
    with pytest.raises(ProjectError, match="no project"):
        Project(tmp_path / "nothing")


def test_bad_project_names_and_classes_are_refused(tmp_path):
    with pytest.raises(ProjectError, match="cannot be a project name"):
        Project.create(tmp_path / "x", name="../evil")
    with pytest.raises(ClassSpecError, match="same colour"):
        Project.create(tmp_path / "y", classes=[ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "a", (0, 0, 0))])
    with pytest.raises(ClassSpecError, match="at least two"):
        Project.create(tmp_path / "z", classes=[ClassSpec(0, "background", (0, 0, 0))])
    assert not (tmp_path / "x").exists()


def test_opening_and_reading_a_project_writes_nothing(tmp_path, monkeypatch):
    path = labeled_project(tmp_path / "p").path
    seen = traced_statements(monkeypatch)
    project = Project(path)
    project.stats(), project.classes, project.list_images(), project.runs.list(), project.drafts.image_ids()
    assert seen, "the trace saw no statement at all"
    assert [s for s in seen if not is_read(s)] == []


def test_stats_counts_by_status_split_and_class(tmp_path):
    p = Project.create(tmp_path / "m", classes=default_classes(["background", "cat", "dog"]))
    r1, r2, _ = add(p, 1), add(p, 2), add(p, 3)
    p.masks.save(r1.id, box_mask(value=1), 0)
    p.masks.save(r2.id, box_mask(value=2), 0)
    s = p.stats()
    assert (s["images"], s["labeled"], s["unlabeled"], s["kind"]) == (3, 2, 1, "multiclass")
    assert s["by_split"]["train"] == 3
    assert [c["images"] for c in s["classes"]] == [2, 1, 1]
    assert s["class_ids_present"] == [0, 1, 2]
