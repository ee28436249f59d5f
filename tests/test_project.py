"""Project store: creation, images, duplicate detection, atomic versioned masks, splits, classes, schema."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from helpers import box_mask, edit_class, photo, png_bytes
from seg_core.store import db
from seg_core import durable
from seg_core.classes import ClassSpec, default_classes
from seg_core.errors import ClassSpecError, InvalidImageError, InvalidMaskError, MaskConflictError, NotFoundError, ProjectError
from seg_core.store.project import Project
from seg_core.store.workspace import list_projects, new_project, resolve_project_path


@pytest.fixture
def project(tmp_path):
    return Project.create(tmp_path / "p")


def add(project, seed=0, name=None, h=24, w=32):
    return project.add_image(png_bytes(photo(h, w, seed)), name or f"img{seed}.png").image


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


def test_add_image_stores_file_and_detects_duplicates_by_content(project):
    data = png_bytes(photo(20, 30, 1))
    first = project.add_image(data, "a.png")
    assert first.status == "added"
    rec = first.image
    assert (rec.width, rec.height, rec.channels, rec.status, rec.mask_version) == (30, 20, 3, "unlabeled", 0)
    assert project.image_path(rec).read_bytes() == data
    again = project.add_image(data, "renamed.png")
    assert again.status == "duplicate" and again.image.id == rec.id and "a.png" in again.detail
    assert project.count_images() == 1


def test_refused_image_changes_nothing(project):
    with pytest.raises(InvalidImageError):
        project.add_image(b"not an image at all", "x.png")
    assert project.count_images() == 0
    assert list(project.layout.images_dir.iterdir()) == []


def test_save_mask_versions_and_conflict(project):
    rec = add(project)
    m1 = box_mask(value=1)
    r1 = project.masks.save(rec.id, m1, expected_version=0, author="alice")
    assert (r1.mask_version, r1.status, r1.mask_updated_by) == (1, "labeled", "alice")
    np.testing.assert_array_equal(project.masks.load(rec.id), m1)
    # Bob loaded version 0 too; his save must not silently overwrite Alice's.
    with pytest.raises(MaskConflictError, match="alice"):
        project.masks.save(rec.id, np.zeros_like(m1), expected_version=0, author="bob")
    np.testing.assert_array_equal(project.masks.load(rec.id), m1)
    r2 = project.masks.save(rec.id, np.zeros_like(m1), expected_version=1, author="bob")
    assert r2.mask_version == 2
    assert project.masks.class_pixels(rec.id) == {0: 24 * 32}
    assert not [p for p in project.layout.masks_dir.iterdir() if p.suffix == ".tmp"]


def test_save_mask_refuses_wrong_size_and_unknown_class(project):
    rec = add(project)
    with pytest.raises(InvalidMaskError, match="32x24"):
        project.masks.save(rec.id, np.zeros((10, 10), np.uint8), 0)
    with pytest.raises(InvalidMaskError, match="7"):
        project.masks.save(rec.id, box_mask(value=7), 0)
    assert project.image(rec.id).mask_version == 0
    assert project.masks.load(rec.id) is None


def test_failed_mask_write_keeps_the_old_mask(project, monkeypatch):
    rec = add(project)
    old = box_mask(value=1)
    project.masks.save(rec.id, old, 0)

    def crash(tmp, path):
        raise OSError("disk full")

    monkeypatch.setattr("seg_core.store.annotations.commit_temp", crash)
    with pytest.raises(OSError):
        project.masks.save(rec.id, np.zeros_like(old), 1)
    monkeypatch.undo()
    assert project.image(rec.id).mask_version == 1
    np.testing.assert_array_equal(project.masks.load(rec.id), old)
    assert not [p for p in project.layout.masks_dir.iterdir() if p.name.startswith(".")]


def test_clear_and_delete(project):
    rec = add(project)
    project.masks.save(rec.id, box_mask(), 0)
    cleared = project.masks.clear(rec.id, 1)
    assert cleared.status == "unlabeled" and project.masks.load(rec.id) is None
    project.delete_image(rec.id)
    assert project.count_images() == 0
    assert list(project.layout.images_dir.iterdir()) == []
    with pytest.raises(NotFoundError):
        project.image(rec.id)


def test_listing_filters_and_paging(project):
    recs = [add(project, seed=i) for i in range(7)]
    for r in recs[:3]:
        project.masks.save(r.id, box_mask(), 0)
    assert project.count_images(status="labeled") == 3
    assert [r.id for r in project.list_images(status="unlabeled")] == [r.id for r in recs[3:]]
    page = project.list_images(offset=2, limit=3)
    assert [r.id for r in page] == [r.id for r in recs[2:5]]
    with pytest.raises(ProjectError):
        project.list_images(status="done")


def test_find_by_stem_matches_base_name_exactly(project):
    a = add(project, 1, "cat_1.jpg.png")
    b = add(project, 2, "cat_1.png")
    add(project, 3, "cat_10.png")
    assert [r.id for r in project.find_by_stem("cat_1")] == [b.id]
    assert [r.id for r in project.find_by_stem("cat_1.jpg")] == [a.id]


def _labeled(project, n):
    for i in range(n):
        r = add(project, seed=i, h=8, w=8)
        project.masks.save(r.id, np.zeros((8, 8), np.uint8), 0)


def test_split_by_count_is_exact_and_reproducible(tmp_path):
    a = Project.create(tmp_path / "a")
    _labeled(a, 97)
    counts = a.splits.assign(val_count=20, seed=42)
    assert counts["val"] == 20 and counts["train"] == 77
    val_a = {r.sha256 for r in a.list_images(split="val")}
    # Same images uploaded in another order: the same images go to validation.
    b = Project.create(tmp_path / "b")
    for i in reversed(range(97)):
        r = add(b, seed=i, h=8, w=8)
        b.masks.save(r.id, np.zeros((8, 8), np.uint8), 0)
    b.splits.assign(val_count=20, seed=42)
    assert {r.sha256 for r in b.list_images(split="val")} == val_a
    a.splits.assign(val_count=20, seed=43)
    assert {r.sha256 for r in a.list_images(split="val")} != val_a


def test_split_by_fraction_leaves_test_alone(project):
    _labeled(project, 10)
    project.splits.set([1, 2], "test")
    counts = project.splits.assign(val_fraction=0.25, seed=0)
    assert counts == {"train": 6, "val": 2, "test": 2}
    assert project.count_images(split="test") == 2
    with pytest.raises(ProjectError, match="8 are available"):
        project.splits.assign(val_count=9)
    with pytest.raises(ProjectError):
        project.splits.assign(val_fraction=1.5)


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


def test_class_editing(project):
    edit_class(project, 1, name="cell", color="#00ff00")
    assert project.classes[1] == ClassSpec(1, "cell", (0, 255, 0))
    new = project.add_class("nucleus")
    assert new.id == 2 and project.kind == "multiclass"
    with pytest.raises(ClassSpecError, match="same colour"):
        edit_class(project, 2, color="#00ff00")
    with pytest.raises(ClassSpecError, match="own name"):
        project.add_class("Cell")


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


def test_workspace_listing_and_name_resolution(workspace, tmp_path):
    new_project(workspace / "alpha")
    new_project(workspace / "beta", default_classes(["background", "a", "b"]))
    (workspace / "not-a-project").mkdir()
    rows = list_projects(workspace)
    assert [(r.name, r.kind) for r in rows] == [("alpha", "binary"), ("beta", "multiclass")]
    assert resolve_project_path("alpha") == workspace / "alpha"
    assert resolve_project_path(str(tmp_path / "x")) == tmp_path / "x"


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out" / "f.bin"
    durable.atomic_write(target, b"old")
    durable.atomic_write(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]
