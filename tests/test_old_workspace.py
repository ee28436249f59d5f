"""A workspace made before the product was called Maskloop opens and works as before.

tests/data/workspace-before-maskloop.zip was written by the code as it stood before the rename (commit 530829b):
`workspace/` holds the project "garden" (6 images, 5 masks, a draft, one completed tiny training run) and its team's
passwords in `.segstudio/passwords.json` (alice); `exports/` holds that version's own zip and COCO export of it.
"""

from __future__ import annotations

import logging
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from helpers import ROOT, page_texts
from seg_core import environment
from seg_core.cli import main
from seg_core.services import importing, integrity
from seg_core.services.signin import PasswordStore, passwords_file
from seg_core.store.layout import workspace_dir
from seg_core.store.project import Project
from seg_core.store.workspace import list_projects, new_project

FIXTURE = ROOT / "tests" / "data" / "workspace-before-maskloop.zip"


@pytest.fixture
def old(tmp_path, monkeypatch):
    with zipfile.ZipFile(FIXTURE) as z:
        z.extractall(tmp_path / "before")
    monkeypatch.setenv(environment.name(environment.WORKSPACE), str(tmp_path / "before" / "workspace"))
    return tmp_path / "before"


def test_the_project_its_masks_draft_and_run_open(old):
    [summary] = list_projects()
    assert (summary.name, summary.images, summary.labeled) == ("garden", 6, 5)
    project = Project(old / "workspace" / "garden")
    assert [c.name for c in project.classes] == ["background", "leaf", "spot"]
    mask = project.masks.load(1)
    assert mask.shape == (40, 48) and set(np.unique(mask)) == {0, 1, 2} and (mask[5:19, 8:24] == 1).all()
    assert project.drafts.get(6).ids[2:10, 2:10].min() == 1
    [run] = project.runs.list()
    assert run.status == "completed" and run.best_score is not None
    assert integrity.check_project(project.layout.root) == []


def test_its_model_still_predicts_and_the_check_command_passes(old, capsys):
    from seg_core.ml.inference import Predictor

    project = Project(old / "workspace" / "garden")
    predictor = Predictor.from_run(project)
    image = project.load_image(1)
    assert predictor.num_classes == 3 and predictor.size == 32
    assert predictor.predict_one(image).ids.shape == image.shape[:2]
    assert main(["check", "--project", "garden"]) == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_its_team_signs_in_with_the_passwords_it_had(old):
    former = old / "workspace" / ".segstudio" / "passwords.json"
    assert passwords_file() == former
    store = PasswordStore()
    assert store.verify("alice", "long enough password") and not store.verify("alice", "wrong password!")
    store.set("bob", "another long one")
    assert PasswordStore().verify("alice", "long enough password") and PasswordStore().verify("bob", "another long one")
    assert not (old / "workspace" / ".maskloop").exists()


def test_a_new_workspace_keeps_its_passwords_under_the_new_name(workspace):
    PasswordStore().set("carol", "long enough password")
    assert passwords_file() == workspace / ".maskloop" / "passwords.json" and passwords_file().exists()


@pytest.mark.parametrize("export", ["garden.zip", "garden-coco.zip"])
def test_its_exports_import_with_their_classes_and_masks(old, workspace, export):
    project = new_project(workspace / f"again-{export.split('.')[0]}")
    report = importing.import_zip(project, old / "exports" / export, infer_classes=True)
    assert len(report.added) == 6 and report.labeled == 5
    assert [c.name for c in project.classes] == ["background", "leaf", "spot"]


def test_the_former_variable_names_still_work_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(environment.name(environment.WORKSPACE))
    monkeypatch.setenv("SEG_WORKSPACE", str(tmp_path / "elsewhere"))
    with caplog.at_level(logging.WARNING, logger="seg_core.environment"):
        assert workspace_dir() == tmp_path / "elsewhere"
    assert any("SEG_WORKSPACE" in r.getMessage() and "MASKLOOP_WORKSPACE" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("MASKLOOP_WORKSPACE", str(tmp_path / "here"))
    assert workspace_dir() == tmp_path / "here"   # the new name wins when both are set


def test_the_home_page_lists_the_old_project(old, monkeypatch):
    monkeypatch.chdir(ROOT)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception
    assert "**garden**" in page_texts(app)
