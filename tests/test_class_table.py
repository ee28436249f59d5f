"""store/class_table.py: a project's classes renamed, recoloured and added to."""

from __future__ import annotations

import pytest

from helpers import edit_class
from seg_core.classes import ClassSpec
from seg_core.errors import ClassSpecError
from seg_core.store.project import Project


@pytest.fixture
def project(tmp_path):
    return Project.create(tmp_path / "p")


def test_class_editing(project):
    edit_class(project, 1, name="cell", color="#00ff00")
    assert project.classes[1] == ClassSpec(1, "cell", (0, 255, 0))
    new = project.add_class("nucleus")
    assert new.id == 2 and project.kind == "multiclass"
    with pytest.raises(ClassSpecError, match="same colour"):
        edit_class(project, 2, color="#00ff00")
    with pytest.raises(ClassSpecError, match="own name"):
        project.add_class("Cell")
