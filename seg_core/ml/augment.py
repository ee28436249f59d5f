"""Paired image/mask augmentation as tf ops: geometry moves both (masks nearest-neighbour), colour only the image.

Every random draw is stateless and derived from a per-example seed, so the same run seed gives the
same augmented batches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class AugmentConfig:
    flip_h: bool = True
    flip_v: bool = False
    rot90: bool = False
    shift_scale_rotate: bool = False
    shift_limit: float = 0.0625          # fraction of the image side
    scale_limit: float = 0.1             # +-10 %
    rotate_limit: float = 15.0           # degrees
    hsv: bool = False                    # hue/saturation (RGB only) and value
    hue_limit: float = 0.02
    saturation_limit: float = 0.2
    value_limit: float = 0.2
    brightness_contrast: bool = True
    brightness_limit: float = 0.15
    contrast_limit: float = 0.15
    gamma: bool = False
    gamma_limit: float = 0.2             # gamma in [1/(1+l), 1+l]
    crop_resize: bool = False
    crop_min_area: float = 0.5           # of the image
    blur: bool = False                   # Gaussian blur, sigma up to blur_limit pixels, on half the images
    blur_limit: float = 1.2
    noise: bool = False                  # Gaussian sensor noise, standard deviation up to noise_limit (of 1)
    noise_limit: float = 0.03

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(flip_h=False, brightness_contrast=False)

    @property
    def enabled(self) -> bool:
        return any((self.flip_h, self.flip_v, self.rot90, self.shift_scale_rotate, self.hsv,
                    self.brightness_contrast, self.gamma, self.crop_resize, self.blur, self.noise))


def _u(seed, i: int, lo: float = 0.0, hi: float = 1.0, shape=()):
    import tensorflow as tf

    s = tf.random.experimental.stateless_fold_in(seed, i)
    return tf.random.stateless_uniform(shape, s, lo, hi)


def _affine(image, mask, cfg: AugmentConfig, seed):
    import tensorflow as tf

    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    angle = _u(seed, 10, -cfg.rotate_limit, cfg.rotate_limit) * math.pi / 180.0
    scale = _u(seed, 11, 1.0 - cfg.scale_limit, 1.0 + cfg.scale_limit)
    dx = _u(seed, 12, -cfg.shift_limit, cfg.shift_limit) * w
    dy = _u(seed, 13, -cfg.shift_limit, cfg.shift_limit) * h
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    # The transform maps output pixel coordinates to input coordinates (inverse of the motion).
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * (cx + dx) - a1 * (cy + dy)
    b2 = cy - b0 * (cx + dx) - b1 * (cy + dy)
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None]
    size = tf.shape(image)[:2]

    def warp(x, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(images=x[None], transforms=transform, output_shape=size,
                                                     interpolation=interpolation, fill_mode="REFLECT",
                                                     fill_value=0.0)[0]

    image = warp(image, "BILINEAR")
    mask = tf.cast(warp(tf.cast(mask, tf.float32), "NEAREST"), mask.dtype)
    return image, mask


def _crop_resize(image, mask, cfg: AugmentConfig, seed):
    import tensorflow as tf

    area = _u(seed, 20, cfg.crop_min_area, 1.0)
    aspect = tf.exp(_u(seed, 21, math.log(3 / 4), math.log(4 / 3)))
    ch = tf.minimum(tf.sqrt(area / aspect), 1.0)
    cw = tf.minimum(tf.sqrt(area * aspect), 1.0)
    y0 = _u(seed, 22) * (1.0 - ch)
    x0 = _u(seed, 23) * (1.0 - cw)
    box = tf.stack([y0, x0, y0 + ch, x0 + cw])[None]
    size = tf.shape(image)[:2]
    image = tf.image.crop_and_resize(image[None], box, [0], size, method="bilinear")[0]
    mask = tf.image.crop_and_resize(tf.cast(mask, tf.float32)[None], box, [0], size, method="nearest")[0]
    return image, tf.cast(mask, tf.uint8)


BLUR_RADIUS = 3   # a 7-tap kernel: covers sigma up to about 1.5 px


def _blur(image, cfg: AugmentConfig, seed):
    """A separable Gaussian of random sigma (0.1..blur_limit px) on half the images, edges mirrored."""
    import tensorflow as tf

    sigma = _u(seed, 60, 0.1, cfg.blur_limit)
    taps = tf.range(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = tf.shape(image)[-1]
    padded = tf.pad(image[None], [[0, 0], [BLUR_RADIUS, BLUR_RADIUS], [BLUR_RADIUS, BLUR_RADIUS], [0, 0]], "REFLECT")
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    cols = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")[0]
    return tf.where(_u(seed, 61) < 0.5, out, image)


def augment_pair(image, mask, cfg: AugmentConfig, seed):
    """image: float32 HxWxC in [0, 1]; mask: uint8 HxWx1 class ids. seed: int32/int64 shape [2].

    TensorFlow is imported here, not at module level, so configs can be built without loading it.
    """
    import tensorflow as tf

    seed = tf.cast(seed, tf.int32)
    if cfg.flip_h:
        flip = _u(seed, 0) < 0.5
        image = tf.where(flip, tf.reverse(image, [1]), image)
        mask = tf.where(flip, tf.reverse(mask, [1]), mask)
    if cfg.flip_v:
        flip = _u(seed, 1) < 0.5
        image = tf.where(flip, tf.reverse(image, [0]), image)
        mask = tf.where(flip, tf.reverse(mask, [0]), mask)
    if cfg.rot90:
        # Only for square inputs would other multiples keep the size; a half turn always does.
        k = tf.cast(tf.floor(_u(seed, 2, 0.0, 4.0)), tf.int32)
        square = tf.equal(tf.shape(image)[0], tf.shape(image)[1])
        k = tf.where(square, k, 2 * (k // 2))
        image = tf.image.rot90(image, k)
        mask = tf.image.rot90(mask, k)
    if cfg.shift_scale_rotate:
        image, mask = _affine(image, mask, cfg, seed)
    if cfg.crop_resize:
        image, mask = _crop_resize(image, mask, cfg, seed)
    channels = image.shape[-1]
    if cfg.hsv:
        if channels == 3:
            image = tf.image.stateless_random_hue(image, cfg.hue_limit, tf.random.experimental.stateless_fold_in(seed, 30))
            image = tf.image.stateless_random_saturation(image, 1 - cfg.saturation_limit, 1 + cfg.saturation_limit,
                                                         tf.random.experimental.stateless_fold_in(seed, 31))
        image = image * _u(seed, 32, 1 - cfg.value_limit, 1 + cfg.value_limit)
    if cfg.brightness_contrast:
        image = image + _u(seed, 40, -cfg.brightness_limit, cfg.brightness_limit)
        mean = tf.reduce_mean(image)
        image = (image - mean) * _u(seed, 41, 1 - cfg.contrast_limit, 1 + cfg.contrast_limit) + mean
    if cfg.gamma:
        g = tf.exp(_u(seed, 50, -math.log1p(cfg.gamma_limit), math.log1p(cfg.gamma_limit)))
        image = tf.pow(tf.clip_by_value(image, 0.0, 1.0), g)
    if cfg.blur:
        image = _blur(image, cfg, seed)
    if cfg.noise:
        sd = _u(seed, 70, 0.0, cfg.noise_limit)
        image = image + sd * tf.random.stateless_normal(tf.shape(image), tf.random.experimental.stateless_fold_in(seed, 71))
    image = tf.clip_by_value(image, 0.0, 1.0)
    if channels is not None:
        image = tf.ensure_shape(image, [None, None, channels])
    return image, mask
