"""Which project class each output of a trained model stands for after classes were added or removed (no model:
a run's config.json as it records its classes and their numbering)."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.classes import IGNORE_ID, default_classes
from seg_core.errors import TrainingError
from seg_core.ml.class_map import class_map
from seg_core.store.workspace import new_project


@pytest.fixture
def three(workspace):
    return new_project(workspace / "three", default_classes(["background", "cat", "dog"]))


def config_of(project) -> dict:
    """What training records about the classes."""
    return {"num_classes": len(project.classes), "classes": [c.to_dict() for c in project.classes],
            "class_scheme": project.class_scheme.current()}


def test_an_added_class_keeps_the_model_and_is_never_predicted(three):
    config = config_of(three)
    assert class_map(three, "r1", config).identity
    three.add_class("bird")
    mapping = class_map(three, "r1", config)
    assert mapping.to_project == (0, 1, 2) and mapping.unlearned == ["bird"] and mapping.predicted == 3
    assert not mapping.learned(3) and mapping.learned(2)
    assert "not learned the class 'bird' yet" in mapping.note and "Train again" in mapping.note
    probs = np.array([[0.1, 0.3, 0.6]], np.float32)
    assert mapping.apply(probs)[0].tolist() == pytest.approx([0.1, 0.3, 0.6, 0.0])


def test_a_removal_renumbers_the_outputs_the_way_it_renumbered_the_masks(three):
    config = config_of(three)
    three.add_class("bird")
    three.remove_class(1, pixels_to=0)          # cat's pixels became background; dog and bird move down one
    mapping = class_map(three, "r1", config)
    assert mapping.to_project == (0, 0, 1) and mapping.unlearned == ["bird"]
    assert mapping.apply(np.array([[0.2, 0.3, 0.5]], np.float32))[0].tolist() == pytest.approx([0.5, 0.5, 0.0])
    three.remove_class(1, pixels_to=0)          # dog too: the model knows nothing the project still has
    with pytest.raises(TrainingError, match="Every class run r1 learned apart from the background was removed"):
        class_map(three, "r1", config)


def test_a_class_whose_pixels_became_ignore_refuses_the_model_by_name(three):
    config = config_of(three)
    three.remove_class(2, pixels_to=IGNORE_ID)
    with pytest.raises(TrainingError, match="learned the class 'dog', which was removed since"):
        class_map(three, "r1", config)


def test_a_run_from_before_runs_recorded_their_numbering(three):
    config = config_of(three)
    del config["class_scheme"]
    three.add_class("bird")
    assert class_map(three, "old", config).to_project == (0, 1, 2)     # no removal ever: the ids still hold
    three.remove_class(3, pixels_to=0)          # the class after the model's: its first classes are the same names
    assert class_map(three, "old", config).to_project == (0, 1, 2)
    three.remove_class(1, pixels_to=0)
    with pytest.raises(TrainingError, match="trained before a class was removed.*train a new model"):
        class_map(three, "old", config)
