"""The tf.data pipeline: shapes, dtypes, resize rules, palette masks read as ids, streaming vs cache."""

from __future__ import annotations

import numpy as np
import pytest

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
    fake.size, fake.channels, fake.resize = 32, 3, "squash"
    np.testing.assert_allclose(fake._prepare(image), resized / 255.0)
    fake.resize = "letterbox"
    np.testing.assert_allclose(fake._prepare(image), dataset.resize_image(image, (32, 32), 3, "letterbox") / 255.0)


def test_letterbox_keeps_the_aspect_ratio_and_mirrors_the_rest():
    assert dataset.content_box((240, 320), (256, 256), "letterbox") == (32, 0, 192, 256)
    assert dataset.content_box((320, 240), (256, 256), "letterbox") == (0, 32, 256, 192)
    assert dataset.content_box((240, 320), (256, 256), "squash") == (0, 0, 256, 256)
    assert dataset.content_box((5000, 2), (64, 64), "letterbox") == (0, 31, 64, 1)   # never zero pixels wide
    image = photo(30, 60, seed=2)
    ids = np.zeros((30, 60), np.uint8)
    ids[:, :20] = 1                                    # a band on the left third, all the way down
    out = dataset.resize_image(image, (32, 32), 3, "letterbox")
    mask = dataset.resize_mask(ids, (32, 32), "letterbox")
    assert out.shape == (32, 32, 3) and mask.shape == (32, 32)
    top, left, h, w = dataset.content_box((30, 60), (32, 32), "letterbox")
    assert (top, left, h, w) == (8, 0, 16, 32)
    np.testing.assert_array_equal(out[top:top + h], dataset.resize_image(image, (16, 32), 3))
    np.testing.assert_array_equal(mask[top:top + h, :10], 1)     # the band keeps its width: a third
    np.testing.assert_array_equal(mask[top:top + h, 11:], 0)
    np.testing.assert_array_equal(out[:top], out[top:2 * top][::-1])   # the bands mirror the image...
    np.testing.assert_array_equal(mask[:top], mask[top:2 * top][::-1])  # ...and the mask alike
    with pytest.raises(ValueError, match="unknown resize"):
        dataset.content_box((3, 3), (8, 8), "stretch")


def test_letterboxed_prediction_comes_back_to_the_image(workspace):
    """A 'model' that marks bright pixels: letterboxed in and cropped back, its mask matches the image's
    bright part at the image's own size, as the squashed one does."""
    import keras

    from seg_core.ml.inference import Predictor

    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.ops.sigmoid((inputs - 0.5) * 40))
    image = np.zeros((90, 200), np.uint8)
    image[:, 120:] = 255
    image[60:, :] = 255
    for resize in ("letterbox", "squash"):
        pred = Predictor(model, {"image_size": 64, "channels": 1, "num_classes": 2, "resize": resize}).predict_one(image)
        assert pred.ids.shape == image.shape
        assert (pred.ids == (image > 0)).mean() > 0.97, resize
    legacy = Predictor(model, {"image_size": 64, "channels": 1, "num_classes": 2})
    assert legacy.resize == "squash"       # runs saved before letterboxing squashed


def test_letterboxed_and_squashed_examples_are_cached_apart(workspace, tmp_path):
    p = _project(workspace)
    item = dataset.examples(p, p.image_ids(status="labeled"))[0]
    squash = dataset.DiskCache(tmp_path / "c", (32, 32), 3)
    box = dataset.DiskCache(tmp_path / "c", (32, 32), 3, resize="letterbox")
    assert squash.path(item) != box.path(item)
    np.testing.assert_array_equal(box.load(item), dataset.load_pair(item, (32, 32), 3, "letterbox"))


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
