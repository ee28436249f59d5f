"""Overlays and colourised masks."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core import viz
from seg_core.classes import IGNORE_ID, default_classes

CLASSES = default_classes(["background", "a", "b"])


def test_overlay_blends_class_colour_and_leaves_background_clear():
    img = np.full((4, 4), 100, np.uint8)
    ids = np.zeros((4, 4), np.uint8)
    ids[0, 0], ids[1, 1], ids[2, 2] = 1, 2, IGNORE_ID
    out = viz.overlay(img, ids, CLASSES, alpha=0.5)
    assert out.shape == (4, 4, 3)
    assert tuple(out[3, 3]) == (100, 100, 100) and tuple(out[2, 2]) == (100, 100, 100)
    expected = np.round((np.array([100, 100, 100]) + np.array(CLASSES[1].color)) / 2)
    assert tuple(out[0, 0]) == tuple(expected.astype(int))
    hidden = viz.overlay(img, ids, CLASSES, alpha=0.5, hidden=(0, 1))
    assert tuple(hidden[0, 0]) == (100, 100, 100) and tuple(hidden[1, 1]) != (100, 100, 100)


def test_overlay_without_mask_and_size_mismatch():
    img = np.zeros((4, 5, 3), np.uint8)
    assert np.array_equal(viz.overlay(img, None, CLASSES), img)
    with pytest.raises(ValueError):
        viz.overlay(img, np.zeros((4, 4), np.uint8), CLASSES)


def test_thumbnail_keeps_aspect():
    assert viz.thumbnail(np.zeros((100, 400, 3), np.uint8), 200).shape == (50, 200, 3)
