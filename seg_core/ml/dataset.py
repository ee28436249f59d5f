"""tf.data pipelines from a project's records: decode, resize, augment, batch, prefetch.

Resized examples are kept as uint8 (a quarter of float32): in memory while they fit in a budget, else in an
on-disk cache of resized arrays (keyed by the image's and the mask's content, bounded in size), so a large
project decodes and resizes each photo once, not once an epoch.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from seg_core.durable import atomic_write
from seg_core.formats.images import load_image
from seg_core.formats.masks import load_png
from seg_core.ml.augment import AugmentConfig, augment_pair
from seg_core.ml.config import RESIZE_MODES
from seg_core.store.project import Project
from seg_core.store.records import ImageStatus
from seg_core.store.runs import RunSplit

# Resized examples are kept in memory only while they fit in this budget...
DEFAULT_CACHE_BYTES = 1 * 1024**3
# ...and on disk (the project's cache/train folder) up to this much, the least recently used dropped first.
DISK_CACHE_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class Example:
    image: str      # path of the stored image (PNG or JPEG, grayscale or RGB)
    mask: str       # path of its palette-PNG mask
    key: str = ""   # the image's and the mask's content: names its resized arrays in the disk cache


def examples(project: Project, image_ids: Sequence[int]) -> list[Example]:
    """These images with their saved masks, in id order; images without a mask (any more) are left out."""
    wanted = set(image_ids)
    return [Example(str(project.image_path(r)), str(project.masks.path(r.id)),
                    f"{r.sha256[:20]}-{(r.mask_sha256 or f'v{r.mask_version}')[:20]}")
            for r in project.list_images(status=ImageStatus.LABELED) if r.id in wanted]


def run_examples(project: Project, run_id: str, split: RunSplit) -> tuple[list[Example], list[Example]]:
    """A run's (train, validation) examples: its images with the mask versions it linked when it started
    (store/lineage.py), so a mask saved while it trains reaches the next run, not this one halfway."""
    if split.masks is None:
        return examples(project, split.train_ids), examples(project, split.val_ids)
    records = {r.id: r for r in project.list_images()}
    files = project.layout.run(run_id)
    used = {m.image_id: m for m in split.masks if m.image_id in records}

    def of(ids: Sequence[int]) -> list[Example]:
        return [Example(str(project.image_path(records[i])), str(files.mask(i)),
                        f"{records[i].sha256[:20]}-{used[i].sha256[:20]}") for i in sorted(set(ids) & used.keys())]

    return of(split.train_ids), of(split.val_ids)


def image_shape(example: Example) -> tuple[int, int]:
    """(height, width) of an example's image, from its header."""
    with Image.open(example.image) as im:
        return im.height, im.width


def content_box(shape: tuple[int, int], size: tuple[int, int], resize: str) -> tuple[int, int, int, int]:
    """Where an image of `shape` (h, w) lies in the model's `size` input: (top, left, height, width).

    squash: the whole input, whatever the aspect ratio. letterbox: scaled to fit with its aspect ratio kept,
    centred, the rest mirrored image (the model learns nothing from a blank band).
    """
    if resize == "squash":
        return 0, 0, size[0], size[1]
    if resize != "letterbox":
        raise ValueError(f"unknown resize mode {resize!r}; one of {', '.join(RESIZE_MODES)}")
    h, w = shape
    scale = min(size[0] / h, size[1] / w)
    ch, cw = min(size[0], max(1, round(h * scale))), min(size[1], max(1, round(w * scale)))
    return (size[0] - ch) // 2, (size[1] - cw) // 2, ch, cw


def _fit(arr: np.ndarray, size: tuple[int, int], resize: str, method) -> np.ndarray:
    top, left, ch, cw = content_box(arr.shape[:2], size, resize)
    im = Image.fromarray(arr)
    if im.size != (cw, ch):
        im = im.resize((cw, ch), method)
    out = np.asarray(im, np.uint8)
    if (ch, cw) != size:
        pad = ((top, size[0] - ch - top), (left, size[1] - cw - left)) + ((0, 0),) * (out.ndim - 2)
        out = np.pad(out, pad, mode="symmetric")
    return out


def resize_image(arr: np.ndarray, size: tuple[int, int], channels: int, resize: str = "squash") -> np.ndarray:
    """uint8 HxW or HxWx3 -> uint8 (size[0], size[1], channels): antialiased bilinear, grey or RGB as asked,
    squashed to the size or letterboxed (content_box). Training and prediction both go through it, so a model
    sees the same pixels in both."""
    arr = np.asarray(arr)
    if channels == 3 and arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif channels == 1 and arr.ndim == 3:
        arr = arr.mean(axis=2).round().astype(np.uint8)
    out = _fit(arr, size, resize, Image.BILINEAR)
    return out[..., None] if out.ndim == 2 else out


def resize_mask(ids: np.ndarray, size: tuple[int, int], resize: str = "squash") -> np.ndarray:
    """Class ids HxW -> (size[0], size[1]) uint8, nearest neighbour, placed as resize_image places the image."""
    return _fit(np.asarray(ids, np.uint8), size, resize, Image.NEAREST)


def load_pair(example: Example, size: tuple[int, int], channels: int, resize: str = "squash") -> np.ndarray:
    """One example resized, as uint8 (H, W, channels + 1): the image's channels, then the mask's ids."""
    image = resize_image(load_image(example.image), size, channels, resize)
    mask = resize_mask(load_png(example.mask), size, resize)
    return np.concatenate([image, mask[..., None]], axis=2)


class DiskCache:
    """Resized examples as .npy files in a folder, named by example key, size and channels; bounded in bytes."""

    def __init__(self, folder: Path, size: tuple[int, int], channels: int, budget: int = DISK_CACHE_BYTES,
                 resize: str = "squash"):
        self.folder, self.size, self.channels, self.budget = Path(folder), size, channels, budget
        self.resize = resize

    def path(self, example: Example) -> Path:
        key = example.key
        if not key:   # an example made outside a project: its files' paths, sizes and times stand for content
            key = ":".join(f"{p}:{s.st_size}:{s.st_mtime_ns}" for p in (example.image, example.mask)
                           for s in [os.stat(p)])
        name = f"{key}-{self.size[0]}x{self.size[1]}x{self.channels}"
        if self.resize != "squash":
            name += f"-{self.resize}"
        return self.folder / f"{hashlib.sha1(name.encode()).hexdigest()[:24]}.npy"

    def load(self, example: Example) -> np.ndarray:
        path = self.path(example)
        try:
            arr = np.load(path)
            if arr.shape == (*self.size, self.channels + 1) and arr.dtype == np.uint8:
                os.utime(path)           # recently used: pruned last
                return arr
        except (OSError, ValueError):
            pass                          # missing or torn: made again
        arr = load_pair(example, self.size, self.channels, self.resize)
        buf = io.BytesIO()
        np.save(buf, arr)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, buf.getvalue())
        except OSError:
            pass                          # a full disk: a cache is only a cache, training goes on without it
        return arr

    def prune(self, keep: Sequence[Example] = ()) -> None:
        """Drop the least recently used files until the folder fits the budget; `keep`'s files go last."""
        if not self.folder.is_dir():
            return
        wanted = {self.path(e).name for e in keep}
        files = []
        for p in self.folder.glob("*.npy"):
            try:
                st = p.stat()
            except OSError:       # pruned meanwhile by another run
                continue
            files.append((p.name in wanted, st.st_mtime, st.st_size, p))
        total = sum(f[2] for f in files)
        for _, _, size, path in sorted(files):
            if total <= self.budget:
                break
            path.unlink(missing_ok=True)
            total -= size


def fits_in_memory(count: int, size: tuple[int, int], channels: int, budget: int = DEFAULT_CACHE_BYTES) -> bool:
    # uint8 image + uint8 mask per example, after resize.
    return count * size[0] * size[1] * (channels + 1) <= budget


def make_dataset(items: Sequence[Example], size: tuple[int, int], channels: int, batch_size: int, *,
                 augment: AugmentConfig | None = None, shuffle: bool = False, repeat: bool = False,
                 seed: int = 0, cache: bool | None = None, cache_budget: int = DEFAULT_CACHE_BYTES,
                 disk_cache: Path | None = None, crop: int | None = None, resize: str = "squash") -> tf.data.Dataset:
    """Batches of (image float32 BxHxWxC, mask uint8 BxHxWx1).

    Training: shuffle + augment + repeat (fit with steps_per_epoch, so augmentation differs each epoch).
    Validation: neither; the same images in the same order every time.
    cache: keep the resized examples in memory (default: when they fit in `cache_budget`); otherwise they are read
    from `disk_cache` (a folder; made there on first use) when given, else decoded and resized each time.
    crop: train on random crop x crop windows of the resized images (a fully convolutional model then
    predicts whole images): the same resolution for a fraction of the compute per step.
    resize: how each image meets the square size, "squash" or "letterbox" (content_box).
    """
    if not items:
        raise ValueError("no examples")
    size = (int(size[0]), int(size[1]))
    if cache is None:
        cache = fits_in_memory(len(items), size, channels, cache_budget)
    disk = DiskCache(disk_cache, size, channels, resize=resize) if disk_cache is not None and not cache else None
    if disk is not None:
        disk.prune(keep=items)
    by_index = list(items)

    def read(i):
        example = by_index[int(i)]
        return disk.load(example) if disk is not None else load_pair(example, size, channels, resize)

    def decode(i):
        pair = tf.numpy_function(read, [i], tf.uint8, stateful=False)
        pair = tf.ensure_shape(pair, [size[0], size[1], channels + 1])
        return pair[..., :channels], pair[..., channels:]

    ds = tf.data.Dataset.range(len(by_index)).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()
    if shuffle:   # of the uint8 examples: a quarter of the memory of float32 ones
        ds = ds.shuffle(min(len(items), 1024), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if crop and (crop < size[0] or crop < size[1]):
        # Cropped first: augmentation then works on the crop, a fraction of the pixels.
        crop_seeds = tf.data.Dataset.random(seed=seed + 1).batch(2)
        ds = tf.data.Dataset.zip((ds, crop_seeds)).map(
            lambda pair, s: _random_crop(pair[0], pair[1], crop, channels, s),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment is not None and augment.enabled:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, s: augment_pair(_as_float(pair[0]), pair[1], augment, s),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda image, mask: (_as_float(image), mask), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = max(1, (os.cpu_count() or 2))
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _as_float(image):
    return tf.cast(image, tf.float32) / 255.0


def _random_crop(image, mask, crop: int, channels: int, seed):
    """The same random window of a uint8 image and its mask."""
    stacked = tf.concat([image, mask], axis=-1)
    window = tf.image.stateless_random_crop(stacked, [crop, crop, channels + 1], tf.cast(seed, tf.int32))
    return window[..., :channels], window[..., channels:]


def project_channels(project: Project) -> int:
    """1 if every image is grayscale, else 3 (grayscale images are then read as RGB)."""
    return project.stats()["channels"] or 3
