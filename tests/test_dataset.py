"""The tf.data pipeline: shapes, dtypes, resize rules, palette masks read as ids, streaming vs cache."""

from __future__ import annotations

import numpy as np

from helpers import photo, png_bytes
from seg_core.ml import dataset
from seg_core.formats import masks
from seg_core.ml.augment import AugmentConfig
from seg_core.classes import default_classes
from seg_core.store.workspace import new_project


def _project(workspace, gray=False, n=5):
    classes = default_classes(["background", "a", "b"])
    p = new_project(workspace / "ds", classes)
    for i in range(n):
        rec = p.add_image(png_bytes(photo(40, 60, seed=i, gray=gray)), f"i{i}.png").image
        m = np.zeros((40, 60), np.uint8)
        m[:, 30:] = 1 + i % 2
        m[0, 0] = 255
        p.masks.save(rec.id, m, 0)
    return p


def test_batches_have_the_right_shapes_and_values(workspace):
    p = _project(workspace)
    items = dataset.examples(p, p.image_ids(status="labeled"))
    ds = dataset.make_dataset(items, (32, 48), 3, batch_size=2)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [2, 2, 1]
    img, mask = batches[0]
    assert img.shape == (2, 32, 48, 3) and img.dtype.name == "float32"
    assert mask.shape == (2, 32, 48, 1) and mask.dtype.name == "uint8"
    arr = np.asarray(img)
    assert 0.0 <= arr.min() and arr.max() <= 1.0
    # Palette indices come through as ids (tf's PNG decoder would have given colours), nearest resize.
    values = set(np.unique(np.asarray(mask)).tolist())
    assert values <= {0, 1, 2, 255} and {0, 1, 2} & values


def test_grayscale_project_gives_one_channel(workspace):
    p = _project(workspace, gray=True)
    assert dataset.project_channels(p) == 1
    img, _ = next(iter(dataset.make_dataset(dataset.examples(p, p.image_ids(status="labeled")), (32, 32), 1, 4)))
    assert img.shape[-1] == 1


def test_training_stream_repeats_shuffles_and_augments_reproducibly(workspace):
    p = _project(workspace)
    items = dataset.examples(p, p.image_ids(status="labeled"))
    kw = dict(augment=AugmentConfig(flip_h=True, shift_scale_rotate=True), shuffle=True, repeat=True, seed=3)
    a = [np.asarray(x[0]) for x in dataset.make_dataset(items, (32, 32), 3, 2, **kw).take(6)]
    b = [np.asarray(x[0]) for x in dataset.make_dataset(items, (32, 32), 3, 2, **kw).take(6)]
    assert len(a) == 6, "repeat() keeps the stream going past one pass"
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_cache_only_when_it_fits():
    assert dataset.fits_in_memory(100, (256, 256), 3)
    assert not dataset.fits_in_memory(100_000, (512, 512), 3)


def test_validation_pipeline_is_stable(workspace):
    p = _project(workspace)
    items = dataset.examples(p, p.image_ids(status="labeled"))
    first = [np.asarray(m) for _, m in dataset.make_dataset(items, (32, 32), 3, 2)]
    second = [np.asarray(m) for _, m in dataset.make_dataset(items, (32, 32), 3, 2, cache=True)]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    stored = masks.load_png(items[0].mask)
    assert stored.shape == (40, 60)


def test_random_crops_keep_image_and_mask_aligned(workspace):
    p = _project(workspace)
    items = dataset.examples(p, p.image_ids(status="labeled"))
    full = dataset.make_dataset(items, (32, 48), 3, 1)
    crops = dataset.make_dataset(items, (32, 48), 3, 1, crop=16, repeat=False, seed=1)
    for (img, mask), (cimg, cmask) in zip(full, crops):
        img, mask, cimg, cmask = (np.asarray(x)[0] for x in (img, mask, cimg, cmask))
        assert cimg.shape == (16, 16, 3) and cmask.shape == (16, 16, 1)
        # Find the window in the full image: the mask must come from the same place.
        found = [(y, x) for y in range(17) for x in range(33) if np.array_equal(img[y:y + 16, x:x + 16], cimg)]
        assert found and np.array_equal(mask[found[0][0]:found[0][0] + 16, found[0][1]:found[0][1] + 16], cmask)


def test_disk_cache_makes_each_example_once_follows_mask_changes_and_stays_bounded(workspace, tmp_path):
    p = _project(workspace)
    items = dataset.examples(p, p.image_ids(status="labeled"))
    folder = tmp_path / "cache"
    streamed = [np.asarray(x) for b in dataset.make_dataset(items, (32, 32), 3, 2, cache=False) for x in b]
    first = [np.asarray(x) for b in dataset.make_dataset(items, (32, 32), 3, 2, cache=False, disk_cache=folder)
             for x in b]
    files = sorted(folder.glob("*.npy"))
    assert len(files) == len(items)
    stamps = [f.stat().st_mtime_ns for f in files]
    again = [np.asarray(x) for b in dataset.make_dataset(items, (32, 32), 3, 2, cache=False, disk_cache=folder)
             for x in b]
    for x, y, z in zip(streamed, first, again):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(y, z)
    assert sorted(folder.glob("*.npy")) == files                             # read back, not made again
    assert [f.stat().st_mtime_ns for f in files] >= stamps
    files[0].write_bytes(b"torn")                                           # a torn file is made again
    dataset.make_dataset(items[:1], (32, 32), 3, 1, cache=False, disk_cache=folder).get_single_element()

    rec = p.image(p.image_ids(status="labeled")[0])
    p.masks.save(rec.id, np.ones((40, 60), np.uint8), rec.mask_version)     # a new mask: a new key
    changed = dataset.examples(p, [rec.id])[0]
    assert changed.key != items[0].key
    _, mask = dataset.make_dataset([changed], (32, 32), 3, 1, cache=False, disk_cache=folder).get_single_element()
    assert np.asarray(mask).min() == 1
    assert len(list(folder.glob("*.npy"))) == len(items) + 1

    one = 32 * 32 * 4 + 128                                                 # a file: pixels + .npy header
    cache = dataset.DiskCache(folder, (32, 32), 3, budget=2 * one)
    cache.prune(keep=[changed])
    left = list(folder.glob("*.npy"))
    assert len(left) == 2 and cache.path(changed) in left                   # the run's own examples kept last


def test_training_and_prediction_resize_alike():
    from seg_core.ml.inference import Predictor

    image = photo(40, 60, seed=4)
    resized = dataset.resize_image(image, (32, 32), 3)
    assert resized.shape == (32, 32, 3) and resized.dtype == np.uint8
    grey = dataset.resize_image(image, (32, 32), 1)
    assert grey.shape == (32, 32, 1)
    fake = Predictor.__new__(Predictor)
    fake.size, fake.channels = 32, 3
    np.testing.assert_allclose(fake._prepare(image), resized / 255.0)


def test_examples_without_a_key_get_a_cache_file_each(workspace, tmp_path):
    p = _project(workspace)
    items = [dataset.Example(e.image, e.mask) for e in dataset.examples(p, p.image_ids(status="labeled"))]
    cache = dataset.DiskCache(tmp_path / "c", (32, 32), 3)
    assert len({cache.path(e) for e in items}) == len(items)
    streamed = [np.asarray(b[0]) for b in dataset.make_dataset(items, (32, 32), 3, 1, cache=False)]
    cached = [np.asarray(b[0]) for b in dataset.make_dataset(items, (32, 32), 3, 1, cache=False,
                                                              disk_cache=tmp_path / "c")]
    for x, y in zip(streamed, cached):
        np.testing.assert_array_equal(x, y)
