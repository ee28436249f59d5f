"""tf.data pipelines from a project's records: decode, resize, augment, batch, prefetch; streamed, not preloaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from seg_core.ml.augment import AugmentConfig, augment_pair
from seg_core.store.project import Project

# Decoded, resized examples are kept in memory only while they fit in this budget.
DEFAULT_CACHE_BYTES = 1 * 1024**3


@dataclass(frozen=True)
class Example:
    image: str      # path of the stored image (PNG or JPEG, grayscale or RGB)
    mask: str       # path of its palette-PNG mask


def examples(project: Project, image_ids: Sequence[int]) -> list[Example]:
    """These images with their saved masks, in id order; images without a mask (any more) are left out."""
    wanted = set(image_ids)
    return [Example(str(project.image_path(r)), str(project.masks.path(r.id)))
            for r in project.list_images(status="labeled") if r.id in wanted]


def _load_mask(path: bytes) -> np.ndarray:
    # tf.io.decode_png expands a palette to RGB; the palette indices are the class ids we need.
    with Image.open(path.decode()) as im:
        return np.asarray(im, dtype=np.uint8)[..., None]


def decode_example(image_path: tf.Tensor, mask_path: tf.Tensor, size: tuple[int, int], channels: int):
    """-> (float32 HxWxC in [0,1] resized bilinear, uint8 HxWx1 resized nearest)."""
    raw = tf.io.read_file(image_path)
    image = tf.io.decode_image(raw, channels=channels, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, size, method="bilinear", antialias=True)
    mask = tf.numpy_function(_load_mask, [mask_path], tf.uint8, stateful=False)
    mask = tf.ensure_shape(mask, [None, None, 1])
    mask = tf.image.resize(mask, size, method="nearest")
    return tf.ensure_shape(image, [size[0], size[1], channels]), tf.cast(tf.ensure_shape(mask, [size[0], size[1], 1]), tf.uint8)


def fits_in_memory(count: int, size: tuple[int, int], channels: int, budget: int = DEFAULT_CACHE_BYTES) -> bool:
    # float32 image + uint8 mask per example, after resize.
    return count * size[0] * size[1] * (4 * channels + 1) <= budget


def make_dataset(items: Sequence[Example], size: tuple[int, int], channels: int, batch_size: int, *,
                 augment: AugmentConfig | None = None, shuffle: bool = False, repeat: bool = False,
                 seed: int = 0, cache: bool | None = None, cache_budget: int = DEFAULT_CACHE_BYTES,
                 crop: int | None = None) -> tf.data.Dataset:
    """Batches of (image float32 BxHxWxC, mask uint8 BxHxWx1).

    Training: shuffle + augment + repeat (fit with steps_per_epoch, so augmentation differs each epoch).
    Validation: neither; the same images in the same order every time.
    crop: train on random crop x crop windows of the resized images (a fully convolutional model then
    predicts whole images): the same resolution for a fraction of the compute per step.
    """
    if not items:
        raise ValueError("no examples")
    size = (int(size[0]), int(size[1]))
    paths = tf.data.Dataset.from_tensor_slices(([e.image for e in items], [e.mask for e in items]))
    ds = paths.map(lambda i, m: decode_example(i, m, size, channels), num_parallel_calls=tf.data.AUTOTUNE,
                   deterministic=True)
    if cache is None:
        cache = fits_in_memory(len(items), size, channels, cache_budget)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(min(len(items), 1024), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if augment is not None and augment.enabled:
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, s: augment_pair(pair[0], pair[1], augment, s),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if crop and (crop < size[0] or crop < size[1]):
        crop_seeds = tf.data.Dataset.random(seed=seed + 1).batch(2)
        ds = tf.data.Dataset.zip((ds, crop_seeds)).map(
            lambda pair, s: _random_crop(pair[0], pair[1], crop, channels, s),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    options = tf.data.Options()
    options.deterministic = True
    options.threading.private_threadpool_size = max(1, (os.cpu_count() or 2))
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _random_crop(image, mask, crop: int, channels: int, seed):
    stacked = tf.concat([image, tf.cast(mask, tf.float32)], axis=-1)
    window = tf.image.stateless_random_crop(stacked, [crop, crop, channels + 1], tf.cast(seed, tf.int32))
    return window[..., :channels], tf.cast(window[..., channels:], tf.uint8)


def project_channels(project: Project) -> int:
    """1 if every image is grayscale, else 3 (grayscale images are then read as RGB)."""
    return project.stats()["channels"] or 3
