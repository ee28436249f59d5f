"""Shared fixtures: an isolated workspace per test and the real data in ../shared/data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import SHARED_DATA, require  # noqa: E402
from seg_core import environment  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv(environment.name(environment.WORKSPACE), str(ws))
    for key in (environment.WORKSPACE, environment.REQUIRE_SIGNIN):   # the sign-in tests set it themselves
        monkeypatch.delenv(environment.FORMER_NAMES[key], raising=False)
    monkeypatch.delenv(environment.name(environment.REQUIRE_SIGNIN), raising=False)
    return ws


@pytest.fixture
def shared_data() -> Path:
    require((SHARED_DATA / "membrane").is_dir() and (SHARED_DATA / "camvid-mini").is_dir(),
            f"the real data sets are not at {SHARED_DATA} (a clone without ../shared/data)")
    return SHARED_DATA


class _TrainedTemplates:
    """name ("binary" or "multiclass") -> a demo project with one finished tiny run, trained on first use only:
    a test session that needs one kind does not pay for the other."""

    def __init__(self, root: Path):
        self.root, self._made = root, {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._made:
            self._made[name] = self._train(name)
        return self._made[name]

    def _train(self, name: str) -> Path:
        from seg_core.services import demo
        from seg_core.ml.config import TrainConfig
        from seg_core.ml.training import train

        multi = {"binary": False, "multiclass": True}[name]
        path = self.root / name
        project = demo.create_demo_project(path, multiclass=multi, count=8, unlabeled=2)
        config = TrainConfig(image_size=32, base_filters=4, depth=2, epochs=2, batch_size=4, learning_rate=3e-3,
                             early_stopping_patience=0, xla=False)
        run = project.runs.create(config.to_dict())
        project.runs.update(run.id, status=train(project, run.id, config))
        project.close()
        return path


@pytest.fixture(scope="session")
def _trained_template(tmp_path_factory) -> _TrainedTemplates:
    """Demo projects (binary and 3 classes) with one finished tiny training run each, each made once per session
    when a test first asks for it."""
    return _TrainedTemplates(tmp_path_factory.mktemp("trained"))


def _copy_trained(template: Path, workspace: Path, name: str):
    import shutil

    from seg_core.store.project import Project

    target = workspace / name
    shutil.copytree(template, target)
    return Project(target)


@pytest.fixture
def trained_project(_trained_template, workspace):
    """A binary demo project (8 images, 2 unlabeled) in this test's workspace, with a finished tiny run."""
    return _copy_trained(_trained_template["binary"], workspace, "trained")


@pytest.fixture
def trained_multiclass_project(_trained_template, workspace):
    """A 3-class demo project (8 images, 2 unlabeled) in this test's workspace, with a finished tiny run."""
    return _copy_trained(_trained_template["multiclass"], workspace, "trained3")
