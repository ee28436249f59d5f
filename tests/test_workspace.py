"""store/workspace.py: listing the workspace's projects (cheaply, a broken one too), resolving names, the project each
person used last."""

from __future__ import annotations

import json

import pytest

from helpers import labeled_project
from seg_core.classes import default_classes
from seg_core.store.layout import last_project_file
from seg_core.store.project import Project
from seg_core.store.workspace import (delete_project, last_project, list_projects, new_project, project_entries,
                                      remember_project, resolve_project_path)


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


def test_workspace_listing_and_name_resolution(workspace, tmp_path):
    new_project(workspace / "alpha")
    new_project(workspace / "beta", default_classes(["background", "a", "b"]))
    (workspace / "not-a-project").mkdir()
    rows = list_projects(workspace)
    assert [(r.name, r.kind) for r in rows] == [("alpha", "binary"), ("beta", "multiclass")]
    assert resolve_project_path("alpha") == workspace / "alpha"
    assert resolve_project_path(str(tmp_path / "x")) == tmp_path / "x"
