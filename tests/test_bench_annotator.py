"""The simulated person of the assist benchmarks (bench/annotator.py) and the plain baselines beside the assists
(bench/plain.py): what the benchmarks' numbers rest on."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import ndimage

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import plain  # noqa: E402
from annotator import BOX_JITTER, CLICK_DEPTH, NO_STROKE, Annotator, correction_click  # noqa: E402


def _disks(h=240, w=320) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    truth = np.zeros((h, w), np.uint8)
    for i, (cy, cx, r) in enumerate([(60, 70, 40), (150, 200, 60), (190, 60, 30)]):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1 + i % 2
    return truth


def test_a_correction_click_lands_deep_in_the_largest_wrong_region_and_says_what_is_there():
    truth = _disks() == 2                                   # the disc at (150, 200), radius 60
    result = truth.copy()
    result[140:160, 190:210] = False                        # a 20x20 part left out, inside the object
    result[10:50, 250:310] = True                           # a 40x60 part taken in wrongly: the larger
    x, y, is_object = correction_click(result, truth)
    assert 260 <= x < 300 and 20 <= y < 40 and not is_object
    result[10:50, 250:310] = False
    x, y, is_object = correction_click(result, truth)
    assert 196 <= x <= 203 and 146 <= y <= 153 and is_object
    assert correction_click(truth, truth) is None
    valid = np.ones_like(truth)
    valid[140:160, 190:210] = False                         # a wrong region nobody can score is not clicked
    assert correction_click(result, truth, valid) is None


def test_a_persons_box_is_off_the_tight_box_by_at_most_the_jitter_and_differs_from_it():
    truth = _disks()
    moved = []
    for seed in range(5):
        for o in Annotator(truth, seed).objects(background=0):
            ys, xs = np.nonzero(o.mask)
            tight = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            sizes = (tight[2] - tight[0], tight[3] - tight[1]) * 2      # width, height, width, height
            offsets = [abs(a - b) for a, b in zip(o.box, tight)]
            assert all(off <= BOX_JITTER * size + 1 for off, size in zip(offsets, sizes))
            moved.append(max(offsets))
    assert len(moved) == 15 and max(moved) >= 2        # not the tight box every time


def test_a_persons_click_is_inside_the_object_off_its_centre_but_well_inside():
    truth = _disks()
    clicks = []
    for seed in range(5):
        for o in Annotator(truth, seed).objects(background=0):
            depth = ndimage.distance_transform_edt(o.mask)
            x, y = o.click
            assert o.mask[y, x] and depth[y, x] >= CLICK_DEPTH * depth.max() - 1
            clicks.append(depth[y, x] < depth.max())
    assert any(clicks)


def test_strokes_on_a_thin_line_follow_it_and_stay_inside():
    truth = np.ones((512, 512), np.uint8)          # background 1 around a thin curved line of class 0
    yy, xx = np.mgrid[:512, :512]
    line = np.abs(yy - (256 + 60 * np.sin(xx / 60))) <= 2
    truth[line] = 0
    scribbles = Annotator(truth, 3).scribbles(2)
    stroked = scribbles == 0
    assert stroked.any() and not np.any(stroked & ~line)
    # Two strokes along the line, each about a stroke's length: far more than a blob where the brush fits.
    cols = np.unique(np.nonzero(stroked)[1])
    assert len(cols) >= 30
    assert np.all(scribbles[(scribbles != NO_STROKE)] == truth[(scribbles != NO_STROKE)])


@pytest.fixture
def disk_photo():
    truth = _disks() > 0
    rng = np.random.default_rng(0)
    image = np.where(truth[..., None], [200, 40, 40], [40, 160, 60]).astype(np.float32)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    return image, truth


def test_plain_grabcut_finds_the_object_in_its_box(disk_photo):
    image, truth = disk_photo
    labels, _ = ndimage.label(truth)
    one = labels == labels[150, 200]
    got = plain.grabcut(image, (130, 80, 270, 220))
    assert got.shape == truth.shape and np.count_nonzero(got & one) / np.count_nonzero(got | one) > 0.9
    assert plain.grabcut(image.mean(axis=2).astype(np.uint8), (130, 80, 270, 220)).shape == truth.shape


def test_plain_trees_fill_from_strokes(disk_photo):
    image, truth = disk_photo
    scribbles = np.full(truth.shape, NO_STROKE, np.uint8)
    scribbles[145:155, 180:220] = 1
    scribbles[5:15, 250:300] = 0
    got = plain.trees(image, scribbles, 2)
    assert got.dtype == np.uint8 and got.shape == truth.shape
    assert np.count_nonzero((got == 1) & truth) / np.count_nonzero((got == 1) | truth) > 0.9
