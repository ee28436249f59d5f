"""store/class_scheme.py: removing a class rewrites masks, drafts and predictions all or nothing, and a removal a crash
interrupted is finished on the next open."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import box_mask, LEAF_CLASSES as CLASSES, leaf_project
from seg_core.errors import ClassSpecError
from seg_core.formats import masks
from seg_core.store.project import Project


@pytest.fixture
def project(tmp_path) -> Project:
    return leaf_project(tmp_path / "p")


def _label_all(project):
    project.masks.save(1, box_mask(24, 32, 1), 0)
    two = box_mask(24, 32, 2)
    two[0, 0] = 1
    project.masks.save(2, two, 0)
    project.masks.save(3, np.zeros((24, 32), np.uint8), 0)


def test_remove_class_moves_its_pixels_and_renumbers_the_rest(project):
    _label_all(project)
    project.drafts.save(3, box_mask(24, 32, 2), 1)
    rewritten = project.remove_class(1, pixels_to=0)
    assert rewritten == 2  # image 3 uses neither class 1 nor 2
    assert [c.name for c in project.classes] == ["background", "spot"]
    assert project.classes[1].color == CLASSES[2].color
    m1, m2 = project.masks.load(1), project.masks.load(2)
    assert set(np.unique(m1)) == {0}
    assert m2[0, 0] == 0 and (m2 == 1).sum() == (box_mask(24, 32, 2) == 2).sum()
    assert project.image(1).mask_version == 2 and project.image(3).mask_version == 1
    assert project.masks.class_pixels(2) == masks.class_pixel_counts(m2)
    assert set(np.unique(project.drafts.get(3).ids)) == {0, 1}  # the draft follows the renumbering
    assert project.kind == "binary"
    assert not list(project.layout.masks_dir.glob("*.tmp"))


def test_remove_class_into_another_class_and_refusals(project):
    _label_all(project)
    project.remove_class(2, pixels_to=1)
    assert set(np.unique(project.masks.load(2))) == {0, 1}
    with pytest.raises(ClassSpecError, match="at least two"):
        project.remove_class(1)
    with pytest.raises(ClassSpecError, match="background"):
        project.remove_class(0)


def test_remove_class_keeps_stored_predictions_and_renumbers_the_ones_that_need_it(project):
    _label_all(project)
    leaf, spot = box_mask(24, 32, 1), box_mask(24, 32, 2)
    project.predictions.save(1, "run-a", leaf, 0.2)
    project.predictions.save(2, "run-a", spot, 0.3)
    project.add_class("bird")                             # painted nowhere, predicted nowhere
    bytes_before = {i: project.predictions.path(i).read_bytes() for i in (1, 2)}
    project.remove_class(3)
    assert {i: project.predictions.path(i).read_bytes() for i in (1, 2)} == bytes_before   # nothing deleted or touched
    project.remove_class(1, pixels_to=0)                  # spot becomes class 1
    assert project.predictions.get(1).ids.max() == 0 and np.array_equal(project.predictions.get(2).ids, spot // 2)
    assert project.predictions.get(2).uncertainty == 0.3 and project.predictions.get(2).run_id == "run-a"
    project.add_class("bird", "#4363d8")
    project.predictions.save(3, "run-b", box_mask(24, 32, 2), 0.1)
    project.remove_class(2, pixels_to=255)                # a model never predicts 'ignore': that prediction goes
    assert project.predictions.image_ids() == {1, 2} and project.predictions.get(3) is None
    assert not list(project.layout.predictions_dir.glob("*.tmp"))


def test_remove_class_crash_before_the_renames_is_finished_on_next_open(project, monkeypatch):
    _label_all(project)
    from seg_core.store import class_scheme

    # "killed" right after the commit
    monkeypatch.setattr(class_scheme.ClassScheme, "finish_pending_renames", lambda self: None)
    project.remove_class(1, pixels_to=2)
    # The transaction committed but no mask file was replaced yet: image 2's file still holds the old id 2.
    assert 2 in np.unique(masks.load_png(project.masks.path(2)))
    monkeypatch.undo()
    reopened = Project(project.path)
    assert set(np.unique(reopened.masks.load(2))) == {0, 1}   # spot and old leaf are both class 1 now
    assert set(np.unique(reopened.masks.load(1))) == {0, 1}
    assert reopened.setting(class_scheme.PENDING_RENAMES) is None


def test_remove_class_failure_before_commit_changes_nothing(project, monkeypatch):
    _label_all(project)
    before = [project.masks.load(i).copy() for i in (1, 2)]
    from seg_core.store import class_scheme

    calls = {"n": 0}
    real = class_scheme.write_temp

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(path, data)

    monkeypatch.setattr(class_scheme, "write_temp", failing)
    with pytest.raises(OSError):
        project.remove_class(1)
    assert len(project.classes) == 3
    assert all(np.array_equal(project.masks.load(i), b) for i, b in zip((1, 2), before))
    assert not list(project.layout.masks_dir.glob("*.tmp"))
