"""The demo scene generator: deterministic, exact masks, photo-like variety."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.services.demo_scenes import MULTICLASS_NAMES, render_scene

SEEDS = range(20)
W, H = 160, 120


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, np.ndarray]]:
    """Multiclass renders of SEEDS at a small size (the binary ones are derived and checked below)."""
    return [render_scene(seed, W, H, multiclass=True) for seed in SEEDS]


def test_class_names():
    assert MULTICLASS_NAMES == ("background", "blob", "block")


def test_same_seed_same_bytes_and_different_seed_different():
    img, mask = render_scene(7)
    again_img, again_mask = render_scene(7)
    assert img.tobytes() == again_img.tobytes() and mask.tobytes() == again_mask.tobytes()
    other_img, other_mask = render_scene(8)
    assert not np.array_equal(img, other_img) and not np.array_equal(mask, other_mask)


@pytest.mark.parametrize("size", [(320, 240), (200, 120), (96, 160), (9, 7)])
@pytest.mark.parametrize("multiclass", [False, True])
def test_shapes_dtypes_and_mask_values(size, multiclass):
    w, h = size
    img, mask = render_scene(3, w, h, multiclass=multiclass)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    assert mask.shape == (h, w) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= ({0, 1, 2} if multiclass else {0, 1})


def test_binary_is_the_multiclass_scene_with_classes_merged(scenes):
    for seed, (img, mask) in zip(SEEDS, scenes):
        bin_img, bin_mask = render_scene(seed, W, H)
        assert np.array_equal(bin_img, img)
        assert np.array_equal(bin_mask, (mask > 0).astype(np.uint8))
        assert set(np.unique(bin_mask).tolist()) <= {0, 1}


def test_objects_cover_a_sensible_share(scenes):
    fractions = np.array([(mask > 0).mean() for _, mask in scenes])
    assert 0.15 <= fractions.mean() <= 0.35
    assert (fractions > 0).all(), "every scene shows at least one object"
    assert (fractions < 0.75).all(), "some background is always left"


def test_both_classes_appear_in_most_scenes(scenes):
    both = sum({1, 2} <= set(np.unique(mask).tolist()) for _, mask in scenes)
    assert both >= 0.75 * len(scenes)


def test_backgrounds_are_textured_and_vary(scenes):
    means = []
    for img, mask in scenes:
        background = img[mask == 0].astype(np.float64)
        assert background.std(axis=0).mean() > 6, "textured, shaded background, not a flat fill"
        means.append(background.mean(axis=0))
    assert np.ptp(np.array(means), axis=0).max() > 60, "surfaces differ in colour from scene to scene"


def test_objects_differ_from_background_in_most_scenes(scenes):
    distinct = 0
    for img, mask in scenes:
        objects, background = img[mask > 0].astype(np.float64), img[mask == 0].astype(np.float64)
        distinct += np.abs(objects.mean(axis=0) - background.mean(axis=0)).max() > 10
    assert distinct >= 0.75 * len(scenes)
