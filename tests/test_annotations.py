"""store/annotations.py: masks saved with a version check, kept whole through a failed write, cleared; drafts that
outlive a project object."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import add_photo as add, box_mask, leaf_project
from seg_core.errors import InvalidMaskError, MaskConflictError, NotFoundError
from seg_core.store.project import Project


@pytest.fixture
def project(tmp_path):
    return Project.create(tmp_path / "p")


@pytest.fixture
def three_class_project(tmp_path) -> Project:
    return leaf_project(tmp_path / "p")


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


def test_drafts_survive_a_new_project_object_and_keep_their_base_version(three_class_project):
    ids = box_mask(24, 32, 2)
    three_class_project.drafts.save(1, ids, base_version=0, source="prediction")
    again = Project(three_class_project.path).drafts.get(1)
    assert again is not None and np.array_equal(again.ids, ids)
    assert (again.base_version, again.source) == (0, "prediction")
    assert three_class_project.drafts.image_ids() == {1}
    assert three_class_project.image(1).status == "unlabeled"  # a draft is not a label
    with pytest.raises(InvalidMaskError, match="32x24"):
        three_class_project.drafts.save(1, np.zeros((10, 10), np.uint8), 0)
    three_class_project.drafts.discard(1)
    assert three_class_project.drafts.get(1) is None


def test_damaged_draft_is_ignored_not_fatal(three_class_project):
    three_class_project.layout.drafts_dir.mkdir(exist_ok=True)
    three_class_project.drafts.path(2).write_bytes(b"not a png")
    assert three_class_project.drafts.get(2) is None
