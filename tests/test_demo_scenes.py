"""The demo scene generator: deterministic, exact masks, photo-like variety."""

from __future__ import annotations

import numpy as np

from seg_core.demo_scenes import render_scene


def test_same_seed_same_scene_and_different_seed_different():
    a_img, a_mask = render_scene(7)
    b_img, b_mask = render_scene(7)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _ = render_scene(8)
    assert not np.array_equal(a_img, c_img)


def test_shapes_dtypes_and_values():
    img, mask = render_scene(1, width=200, height=120)
    assert img.shape == (120, 200, 3) and img.dtype == np.uint8
    assert mask.shape == (120, 200) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    _, mmask = render_scene(1, 200, 120, multiclass=True)
    assert set(np.unique(mmask)) <= {0, 1, 2}


def test_objects_cover_a_sensible_share_and_both_classes_appear():
    fractions, seen = [], set()
    for seed in range(20):
        _, mask = render_scene(seed, 160, 120)
        fractions.append((mask > 0).mean())
        _, mmask = render_scene(seed, 160, 120, multiclass=True)
        seen |= set(np.unique(mmask).tolist())
    assert 0.1 < np.mean(fractions) < 0.4
    assert seen == {0, 1, 2}


def test_images_look_like_photos_not_flat_drawings():
    distinct = 0
    for seed in range(10):
        img, mask = render_scene(seed, 160, 120)
        bg = img[mask == 0].astype(float)
        assert bg.std() > 4, "textured, shaded background"
        if mask.any():
            diff = np.abs(img[mask > 0].reshape(-1, 3).mean(0) - bg.reshape(-1, 3).mean(0)).max()
            distinct += diff > 10
    assert distinct >= 7, "objects differ in colour from their background in most scenes"
