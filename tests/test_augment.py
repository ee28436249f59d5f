"""Paired augmentation: geometry moves image and mask together, masks stay class ids, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.ml.augment import AugmentConfig, augment_pair

ALL = AugmentConfig(flip_h=True, flip_v=True, rot90=True, shift_scale_rotate=True, hsv=True,
                    brightness_contrast=True, gamma=True, crop_resize=True, blur=True, noise=True)


def _pair(h=32, w=32):
    rng = np.random.default_rng(0)
    mask = np.zeros((h, w, 1), np.uint8)
    mask[4:14, 6:20] = 1
    mask[18:28, 10:30] = 2
    # The image encodes its mask in the red channel, so alignment can be checked after any warp.
    image = np.zeros((h, w, 3), np.float32)
    image[..., 0] = mask[..., 0] / 2.0
    image[..., 1:] = rng.uniform(0, 1, (h, w, 2))
    return image, mask


@pytest.mark.parametrize("cfg", [AugmentConfig(flip_h=True, flip_v=True, rot90=True, brightness_contrast=False),
                                 AugmentConfig(shift_scale_rotate=True, brightness_contrast=False),
                                 AugmentConfig(crop_resize=True, brightness_contrast=False)])
def test_geometry_moves_image_and_mask_together(cfg):
    image, mask = _pair()
    for s in range(8):
        img2, m2 = augment_pair(image, mask, cfg, np.array([s, 7]))
        img2, m2 = np.asarray(img2), np.asarray(m2)[..., 0]
        assert set(np.unique(m2)) <= {0, 1, 2}, "masks stay class ids (nearest neighbour)"
        recovered = np.round(img2[..., 0] * 2).astype(int)
        agree = (recovered == m2).mean()
        assert agree > 0.93, f"image and mask disagree on {1 - agree:.1%} of pixels"


def test_same_seed_same_result_other_seed_differs():
    image, mask = _pair()
    a = augment_pair(image, mask, ALL, np.array([1, 2]))
    b = augment_pair(image, mask, ALL, np.array([1, 2]))
    c = augment_pair(image, mask, ALL, np.array([3, 4]))
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))


def test_colour_changes_touch_only_the_image_and_stay_in_range():
    image, mask = _pair()
    cfg = AugmentConfig(flip_h=False, hsv=True, brightness_contrast=True, gamma=True)
    img2, m2 = augment_pair(image, mask, cfg, np.array([5, 5]))
    np.testing.assert_array_equal(np.asarray(m2), mask)
    arr = np.asarray(img2)
    assert 0 <= arr.min() and arr.max() <= 1 and not np.allclose(arr, image)


def test_grayscale_and_switches():
    image, mask = _pair()
    gray = image[..., :1]
    img2, _ = augment_pair(gray, mask, ALL, np.array([0, 1]))
    assert np.asarray(img2).shape == (32, 32, 1)
    assert not AugmentConfig.none().enabled and ALL.enabled
    assert AugmentConfig.from_dict(ALL.to_dict()) == ALL
    assert AugmentConfig.from_dict({"flip_v": True, "unknown": 1}).flip_v


def test_rot90_keeps_the_size_of_non_square_images():
    image, mask = _pair(24, 40)
    for s in range(6):
        img2, m2 = augment_pair(image, mask, AugmentConfig(rot90=True, flip_h=False, brightness_contrast=False),
                                np.array([s, 0]))
        assert np.asarray(img2).shape == (24, 40, 3) and np.asarray(m2).shape == (24, 40, 1)


def test_blur_and_noise_are_image_only_and_do_what_they_say():
    image, mask = _pair()
    image[..., 0] = 0.5                                          # one flat channel: blur keeps it, noise does not
    cfg = AugmentConfig(flip_h=False, brightness_contrast=False, blur=True, blur_limit=1.5)
    blurred = [tuple(np.asarray(x) for x in augment_pair(image, mask, cfg, np.array([s, 3]))) for s in range(8)]
    changed = [b for b in blurred if not np.allclose(b[0], image)]
    assert 2 <= len(changed) <= 6                                # on about half the images
    for img2, m2 in blurred:
        np.testing.assert_array_equal(m2, mask)
        np.testing.assert_allclose(img2[..., 0], 0.5, atol=1e-5)
    for img2, _ in changed:                                      # smoother: less pixel-to-pixel variation
        assert np.abs(np.diff(img2[..., 1], axis=1)).mean() < 0.8 * np.abs(np.diff(image[..., 1], axis=1)).mean()
    noisy, m2 = augment_pair(image, mask, AugmentConfig(flip_h=False, brightness_contrast=False, noise=True,
                                                        noise_limit=0.05), np.array([1, 1]))
    noisy = np.asarray(noisy)
    np.testing.assert_array_equal(np.asarray(m2), mask)
    assert 0 < np.abs(noisy[..., 0] - 0.5).mean() < 0.05 and 0 <= noisy.min() and noisy.max() <= 1
