"""store/predictions.py: the newest model prediction of each image, stored, read and filtered on."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import box_mask, leaf_project
from seg_core.store.project import Project


@pytest.fixture
def project(tmp_path) -> Project:
    return leaf_project(tmp_path / "p")


def test_predictions_are_stored_listed_and_filtered(project):
    project.predictions.save(2, "run-a", box_mask(24, 32, 2), 0.3)
    stored = project.predictions.get(2)
    assert stored.run_id == "run-a" and stored.uncertainty == pytest.approx(0.3)
    assert np.array_equal(stored.ids, box_mask(24, 32, 2))
    assert project.image_ids(predicted=True) == [2] and project.image_ids(predicted=False) == [1, 3]
    assert project.predictions.get(1) is None
