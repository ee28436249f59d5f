"""The store's contracts: opening reads only, cheap project listing, typed runs, schema upgrades, one split rule."""

from __future__ import annotations

import json
import time

import pytest

from helpers import box_mask, photo, png_bytes
from seg_core.errors import TrainingError
from seg_core.ml.config import TrainConfig, run_config
from seg_core.services import planning, review
from seg_core.store import db, splits
from seg_core.store.project import Project
from seg_core.store.runs import RunSplit, RunStatus
from seg_core.store.layout import last_project_file
from seg_core.store.workspace import (delete_project, last_project, list_projects, new_project, project_entries,
                                      remember_project)


def labeled_project(path, n=6):
    p = new_project(path)
    for i in range(n):
        rec = p.add_image(png_bytes(photo(seed=i)), f"img{i}.png").image
        p.masks.save(rec.id, box_mask(), 0)
    return p


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


def test_opening_and_reading_a_project_writes_nothing(tmp_path, monkeypatch):
    path = labeled_project(tmp_path / "p").path
    seen = traced_statements(monkeypatch)
    project = Project(path)
    project.stats(), project.classes, project.list_images(), project.runs.list(), project.drafts.image_ids()
    assert seen, "the trace saw no statement at all"
    assert [s for s in seen if not is_read(s)] == []


def test_the_sidebar_listing_reads_names_without_opening_projects(workspace, monkeypatch):
    new_project(workspace / "b-folder", name="Bees")
    new_project(workspace / "a-folder")
    (workspace / "broken").mkdir()
    (workspace / "broken" / "project.db").write_bytes(b"not a database")
    (workspace / "not-a-project").mkdir()
    monkeypatch.setattr(Project, "__init__", lambda *a: pytest.fail("project_entries opened a Project"))
    entries = project_entries(workspace)
    assert [(e.name, e.path.name) for e in entries if not e.error] == [("a-folder", "a-folder"), ("Bees", "b-folder")]
    assert [e.path.name for e in entries if e.error] == ["broken"]


def test_each_person_gets_back_the_project_they_used_last(workspace, tmp_path):
    pets, cells = new_project(workspace / "pets"), new_project(workspace / "cells")
    assert last_project("ann") is None
    remember_project(pets.path, "ann")
    remember_project(cells.path, "bob")
    assert (last_project("ann"), last_project("bob"), last_project("carl")) == (pets.path, cells.path, None)
    # Unchanged: the file is not written again (every page run asks).
    before = last_project_file().stat().st_mtime_ns
    remember_project(pets.path, "ann")
    assert last_project_file().stat().st_mtime_ns == before
    assert sorted(p.name for p in workspace.iterdir()) == [".last-project.json", "cells", "pets"]  # no temp file left
    # A folder outside the workspace is not one a bare name finds again; a deleted project is not reopened.
    remember_project(new_project(tmp_path / "elsewhere").path, "ann")
    assert last_project("ann") == pets.path
    delete_project(pets.path)
    assert last_project("ann") is None and last_project("bob") == cells.path
    # A damaged file or a name that leaves the workspace opens nothing, and the next choice is kept again.
    last_project_file().write_text(json.dumps({"ann": "../cells", "bob": 3}))
    assert last_project("ann") is None and last_project("bob") is None
    last_project_file().write_text("{not json")
    assert last_project("bob") is None
    remember_project(cells.path, "bob")
    assert last_project("bob") == cells.path


def test_home_listing_counts_images_and_shows_a_broken_project(workspace):
    labeled_project(workspace / "cells", n=3)
    (workspace / "broken").mkdir()
    (workspace / "broken" / "project.db").write_bytes(b"not a database")
    rows = {r.path.name: r for r in list_projects(workspace)}
    assert (rows["cells"].images, rows["cells"].labeled, rows["cells"].error) == (3, 3, "")
    assert rows["broken"].error


def test_runs_are_typed_records(tmp_path):
    p = labeled_project(tmp_path / "p")
    config = TrainConfig(preset="fast", epochs=3)
    run = p.runs.create(config.to_dict())
    assert run.status is RunStatus.QUEUED and run.active and run.config == config.to_dict() and run.split is None
    split = RunSplit("run", (1, 2, 3, 4), (5, 6))
    p.runs.update(run.id, status=RunStatus.RUNNING, split=split)
    again = p.runs.get(run.id)
    assert again.status == "running" and again.split == split and again.preset_name == "fast"
    assert f"{again.status}" == "running" and again.to_dict()["status"] == "running"
    p.runs.update(run.id, status=RunStatus.COMPLETED)
    assert p.runs.get(run.id).status.finished


def test_a_run_a_newer_version_wrote_is_listed_as_it_is_stored(tmp_path):
    p = labeled_project(tmp_path / "p")
    ours = p.runs.create(TrainConfig(preset="fast").to_dict())
    p.runs.update(ours.id, status=RunStatus.COMPLETED)
    newer = {**TrainConfig(preset="fast").to_dict(), "mixup": 0.2}
    with p.db.connection() as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")   # as a newer schema that allows the status would
        conn.execute("INSERT INTO runs (id, status, config, created_at) VALUES ('newer', 'paused', ?, ?)",
                     (json.dumps(newer), time.time() + 60))
        conn.execute("PRAGMA ignore_check_constraints = OFF")
    run, mine = p.runs.list()
    assert (run.id, mine.id) == ("newer", ours.id)
    assert run.status == "paused" and f"{run.status}" == "paused" and run.status.word == "paused"
    assert not run.active and not run.status.finished and run.to_dict()["status"] == "paused"
    assert run.config == newer and run.preset_name == "fast"
    # ml reads what this version knows of the settings; the worker that would train it refuses the rest.
    assert run_config(run) == TrainConfig(preset="fast")
    with pytest.raises(TrainingError, match="mixup"):
        TrainConfig.from_dict(run.config)
    # The Train page's history and the review page's run names show it as it is stored.
    assert planning.history_rows(p, [run])[0]["status"] == "paused"
    assert review.run_label(run).endswith("· paused (newer)")
    # Neither active nor finished: it blocks no new run.
    assert p.runs.create(TrainConfig().to_dict()).active


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
        conn.execute("INSERT INTO runs (id, status, config, created_at, resumed_from) VALUES ('r1', 'completed', ?, 0, NULL)",
                     (json.dumps(TrainConfig().to_dict()),))
        conn.execute("INSERT INTO events (at, kind) VALUES (0, 'image-added')")
    project = Project(path)
    assert project.runs.get("r1").status is RunStatus.COMPLETED
    with db.opened(project.layout.db) as conn:
        assert db.schema_version(conn) == db.SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    assert "events" not in tables and "split" in columns and "resumed_from" not in columns


@pytest.mark.parametrize("n, fraction, expected", [(0, 0.2, 0), (1, 0.2, 0), (2, 0.2, 1), (2, 0.9, 1), (10, 0.2, 2),
                                                   (10, 0.05, 1), (7, 0.5, 4), (5, 0.0, 0)])
def test_one_rule_for_the_validation_count(n, fraction, expected):
    assert splits.validation_count(n, fraction) == expected


def test_a_run_split_leaves_the_project_alone_and_is_reproducible(tmp_path):
    p = labeled_project(tmp_path / "p", n=10)
    assert p.count_images(split="val") == 0
    before = [(r.id, r.split) for r in p.list_images()]
    a, b = p.splits.for_run(0.3, seed=1), p.splits.for_run(0.3, seed=1)
    assert a == b and a.source == "run" and len(a.val_ids) == 3 and len(a.train_ids) == 7
    assert not set(a.val_ids) & set(a.train_ids)
    assert [(r.id, r.split) for r in p.list_images()] == before
    # The same rule, written to the project, picks the same images.
    p.splits.assign(val_fraction=0.3, seed=1)
    assert set(p.image_ids(split="val")) == set(a.val_ids)
    assert p.splits.for_run(0.5, seed=7) == RunSplit("project", a.train_ids, a.val_ids)
