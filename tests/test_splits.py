"""store/splits.py: one rule for how many images validate and which, for the project's split and a run's own."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import labeled_project, photo, png_bytes
from seg_core.errors import ProjectError
from seg_core.store import splits
from seg_core.store.project import Project
from seg_core.store.runs import RunSplit


@pytest.fixture
def project(tmp_path):
    return Project.create(tmp_path / "p")


def add(project, seed=0, name=None, h=24, w=32):
    return project.add_image(png_bytes(photo(h, w, seed)), name or f"img{seed}.png").image


def _labeled(project, n):
    for i in range(n):
        r = add(project, seed=i, h=8, w=8)
        project.masks.save(r.id, np.zeros((8, 8), np.uint8), 0)


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
