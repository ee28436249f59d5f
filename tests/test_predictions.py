"""store/predictions.py: the newest model prediction of each image, stored, read and filtered on."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import box_mask, photo, png_bytes
from seg_core.classes import default_classes
from seg_core.store.project import Project
from seg_core.store.workspace import new_project


CLASSES = default_classes(["background", "leaf", "spot"])  # black, (230,25,75), (60,180,75)


@pytest.fixture
def project(tmp_path) -> Project:
    p = new_project(tmp_path / "p", CLASSES)
    for i in range(3):
        p.add_image(png_bytes(photo(24, 32, seed=i)), f"img{i}.png")
    return p


def test_predictions_are_stored_listed_and_filtered(project):
    project.predictions.save(2, "run-a", box_mask(24, 32, 2), 0.3)
    stored = project.predictions.get(2)
    assert stored.run_id == "run-a" and stored.uncertainty == pytest.approx(0.3)
    assert np.array_equal(stored.ids, box_mask(24, 32, 2))
    assert project.image_ids(predicted=True) == [2] and project.image_ids(predicted=False) == [1, 3]
    assert project.predictions.get(1) is None
