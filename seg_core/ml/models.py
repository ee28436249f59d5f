"""Segmentation networks by name: U-Net, a skip-less FCN baseline, and optional pretrained-encoder U-Nets."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import keras
from keras import layers

from seg_core.errors import SegError
from seg_core.ml import efficientnet_lite as lite0
from seg_core.ml import weights as imagenet
from seg_core.ml.config import TrainConfig

UPSAMPLING = ("transpose", "bilinear")
# Keras' 0.99 leaves the moving statistics near their initial values for the first few hundred steps;
# a small project trains for only a few steps per epoch, so validation would see the wrong statistics.
BN_MOMENTUM = 0.9
# Training memory per value of a layer's output, for one image at float32: what the backward pass keeps and the
# gradients, measured by bench/batch_memory.py on a CPU, doubled for a GPU allocator's fragmentation and cuDNN's
# workspaces (docs/performance.md, "Where the code's constants come from").
TRAIN_BYTES_PER_VALUE = 8
# The Lite0 U-Net's decoder is half as wide as the keras.applications encoders' (level k has base_filters * 2**k
# filters): its convolutions, not the encoder, are most of the work, and on a CPU a run's quality at a time budget
# gains more from steps than from width.
LITE0_WIDEN = 0


# The package name is written into every saved model: it keeps the product's former name so that models trained
# before the rename still load.
@keras.saving.register_keras_serializable(package="segstudio")
class FusedBatchNorm(layers.BatchNormalization):
    """Keras' batch norm computed by TensorFlow's fused kernel (one pass for the moments, the normalisation and
    their gradients): a U-Net with batch norm trains faster on a CPU (bench/train_speed.py, docs/performance.md).
    Same weights, same results (tests/test_models.py); anything the kernel does not cover goes to Keras' own."""

    def call(self, inputs, training=None, mask=None):
        if (mask is not None or self.renorm or self.synchronized or len(inputs.shape) != 4
                or self.axis not in (-1, 3) or keras.backend.backend() != "tensorflow"):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, tf.float32)
        gamma = self.gamma if self.scale else tf.ones_like(self.moving_mean)
        beta = self.beta if self.center else tf.zeros_like(self.moving_mean)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon,
                                                                 is_training=True)
            n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            variance = variance * (n - 1.0) / n      # the kernel's is unbiased; Keras keeps the batch's own
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean=self.moving_mean,
                                                       variance=self.moving_variance, epsilon=self.epsilon,
                                                       is_training=False)
        return tf.cast(y, self.compute_dtype)


def load_saved(path, compile: bool = False) -> keras.Model:
    """A model saved by a run (checkpoints of any version: their layers, losses and metrics are known here)."""
    from seg_core.ml import losses

    return keras.saving.load_model(path, compile=compile, safe_mode=True,
                                   custom_objects={**losses.CUSTOM_OBJECTS, "FusedBatchNorm": FusedBatchNorm})


def plain_keras(model: keras.Model) -> keras.Model:
    """The same network and weights with Keras' own layers only, computing in float32: what an exported model is
    made from, so that plain Keras (no Maskloop), ONNX and TFLite converters read it. FusedBatchNorm becomes
    BatchNormalization (same weights, same results); a mixed-precision run's layers compute in float32."""
    return float32_copy(model, keras_only=True)


def float32_copy(model: keras.Model, keras_only: bool = False) -> keras.Model:
    """The same network and weights, every layer computing in float32; its own layers kept unless `keras_only`
    (FusedBatchNorm's kernel is the faster prediction too)."""
    def clone(layer):
        config = {**layer.get_config(), "dtype": "float32"}
        cls = layers.BatchNormalization if keras_only and isinstance(layer, FusedBatchNorm) else layer.__class__
        return cls.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _head(x, num_classes: int, upsample: int = 1):
    # float32 output keeps losses stable under a mixed-precision policy.
    channels, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    if upsample == 1:
        return layers.Conv2D(channels, 1, activation=activation, dtype="float32", name="probabilities")(x)
    # Scores, not probabilities, are interpolated: class borders fall between the coarse pixels.
    x = layers.Conv2D(channels, 1, dtype="float32", name="final_logits")(x)
    x = layers.UpSampling2D(upsample, interpolation="bilinear", dtype="float32", name="final_upsample")(x)
    return layers.Activation(activation, dtype="float32", name="probabilities")(x)


def _conv_block(x, filters: int, batchnorm: bool, name: str):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batchnorm, kernel_initializer="he_normal",
                          name=f"{name}_conv{i}")(x)
        if batchnorm:
            x = FusedBatchNorm(momentum=BN_MOMENTUM, name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def _up(x, filters: int, upsampling: str, name: str):
    if upsampling == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_up")(x)
    x = layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    return layers.Conv2D(filters, 1, padding="same", name=f"{name}_up_proj")(x)


def build_unet(input_shape=(None, None, 3), num_classes: int = 2, base_filters: int = 16, depth: int = 4,
               dropout: float = 0.0, batchnorm: bool = True, upsampling: str = "transpose") -> keras.Model:
    """Ronneberger's U-Net: two 3x3 convs per level, max-pool down, transposed conv (or bilinear) up, skips."""
    if upsampling not in UPSAMPLING:
        raise ValueError(f"upsampling must be one of {UPSAMPLING}")
    inputs = keras.Input(shape=input_shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, batchnorm, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = _conv_block(x, base_filters * 2**depth, batchnorm, "bottleneck")
    if dropout > 0:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        x = _up(x, base_filters * 2**level, upsampling, f"up{level}")
        x = layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
        x = _conv_block(x, base_filters * 2**level, batchnorm, f"up{level}")
    return keras.Model(inputs, _head(x, num_classes), name="unet")


def build_fcn(input_shape=(None, None, 3), num_classes: int = 2, base_filters: int = 16, depth: int = 4,
              dropout: float = 0.0, batchnorm: bool = True, upsampling: str = "transpose") -> keras.Model:
    """The simple baseline: strided-conv encoder, transposed-conv decoder, no skip connections."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for level in range(depth):
        x = layers.Conv2D(base_filters * 2**level, 3, strides=2, padding="same", use_bias=not batchnorm,
                          name=f"down{level}_conv")(x)
        if batchnorm:
            x = FusedBatchNorm(momentum=BN_MOMENTUM, name=f"down{level}_bn")(x)
        x = layers.Activation("relu", name=f"down{level}_relu")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    for level in reversed(range(depth)):
        x = _up(x, base_filters * 2**level, upsampling, f"up{level}")
        x = layers.Activation("relu", name=f"up{level}_relu")(x)
    return keras.Model(inputs, _head(x, num_classes), name="fcn")


# keras.applications encoders (named in weights.ENCODERS): the layers that feed the decoder, fine to coarse.
_ENCODER_SKIPS = {
    "mobilenetv2": ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu",
                    "out_relu"],
    "densenet121": ["conv1_relu", "pool2_relu", "pool3_relu", "pool4_relu", "relu"],
}


def build_pretrained_unet(input_shape=(224, 224, 3), num_classes: int = 2, encoder: str = "mobilenetv2",
                          weights: str | None = None, base_filters: int = 16, dropout: float = 0.0,
                          batchnorm: bool = True, upsampling: str = "transpose", **_) -> keras.Model:
    """A U-Net decoder on a keras.applications encoder. weights='imagenet' comes from the file a person added to
    the workspace (seg_core/ml/weights.py), else from the local Keras cache; it is never downloaded."""
    if encoder not in _ENCODER_SKIPS:
        raise SegError(f"Unknown encoder '{encoder}'; choose one of {', '.join(_ENCODER_SKIPS)}.")
    cls_name, skip_names = imagenet.ENCODERS[encoder].label, _ENCODER_SKIPS[encoder]
    h, w, c = input_shape
    if c != 3 or h is None or w is None or h % 32 or w % 32:
        raise SegError(f"A pretrained {encoder} encoder needs RGB input with a size divisible by 32; got {input_shape}.")
    if weights == "imagenet":
        found = imagenet.imagenet_weights(encoder)
        if found is None:
            raise SegError(imagenet.missing_message(encoder))
        weights = str(found.path)
    base = getattr(keras.applications, cls_name)(input_shape=input_shape, include_top=False, weights=weights)
    base._name = "encoder"
    skips = [base.get_layer(n).output for n in skip_names]
    return keras.Model(base.input, _decoder(skips, num_classes, base_filters, dropout, batchnorm, upsampling),
                       name=f"{encoder}_unet")


def _decoder(skips, num_classes: int, base_filters: int, dropout: float, batchnorm: bool, upsampling: str,
             widen: int = 1, full_resolution_block: bool = True):
    """A U-Net's way up from an encoder's features at strides 2..32 (fine to coarse) to class probabilities;
    level k (stride 2**(k+1)) has base_filters * 2**(k + widen) filters. Without the full-resolution block the
    class scores are computed at stride 2 and interpolated: an encoder whose finest features are at stride 2
    has nothing to add there, and the block costs a quarter of the decoder's work."""
    x = skips[-1]
    for level, skip in reversed(list(enumerate(skips[:-1]))):
        x = _up(x, base_filters * 2 ** (level + widen), upsampling, f"up{level}")
        x = layers.Concatenate(name=f"up{level}_concat")([x, skip])
        x = _conv_block(x, base_filters * 2 ** (level + widen), batchnorm, f"up{level}")
    if full_resolution_block:
        x = _up(x, base_filters, upsampling, "final")
        x = _conv_block(x, base_filters, batchnorm, "final")
    if dropout > 0:
        x = layers.Dropout(dropout, name="final_dropout")(x)
    return _head(x, num_classes, upsample=1 if full_resolution_block else 2)


def build_lite0_unet(input_shape=(224, 224, 3), num_classes: int = 2, weights: str | None = None,
                     base_filters: int = 16, dropout: float = 0.0, batchnorm: bool = True,
                     upsampling: str = "transpose", **_) -> keras.Model:
    """A U-Net decoder on EfficientNet-Lite0; weights='imagenet' come from the installed weights package."""
    h, w, c = input_shape
    if c != 3 or h is None or w is None or h % 32 or w % 32:
        raise SegError(f"EfficientNet-Lite0 needs RGB input with a size divisible by 32; got {input_shape}.")
    state = lite0.imagenet_state() if weights == "imagenet" else None   # a missing package fails before building
    inputs = keras.Input(shape=input_shape, name="image")
    skips = lite0.features(inputs, FusedBatchNorm, BN_MOMENTUM)
    model = keras.Model(inputs, _decoder(skips, num_classes, base_filters, dropout, batchnorm, upsampling,
                                         widen=LITE0_WIDEN, full_resolution_block=False), name="lite0_unet")
    if state is not None:
        lite0.load_imagenet(model, state)
    return model


def set_encoder_trainable(model: keras.Model, trainable: bool) -> bool:
    """Freeze or unfreeze a pretrained encoder's layers; returns False for models without one."""
    encoder_layers = [l for l in model.layers if not l.name.startswith(("up", "final", "probabilities"))
                      and l.name != "image"]
    if model.name.endswith("_unet") and model.name != "unet":
        for layer in encoder_layers:
            # BatchNorm statistics stay frozen while the encoder is frozen (the usual fine-tuning recipe).
            layer.trainable = trainable
        return True
    return False


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., keras.Model]
    pretrained: bool = False
    fixed_size: bool = False     # needs a fixed input size (pretrained encoders)


REGISTRY: dict[str, ModelSpec] = {
    "unet": ModelSpec("unet", build_unet),
    "fcn": ModelSpec("fcn", build_fcn),
    "lite0-unet": ModelSpec("lite0-unet", build_lite0_unet, pretrained=True, fixed_size=True),
    "mobilenetv2-unet": ModelSpec("mobilenetv2-unet", lambda **kw: build_pretrained_unet(encoder="mobilenetv2", **kw),
                                  pretrained=True, fixed_size=True),
    "densenet121-unet": ModelSpec("densenet121-unet", lambda **kw: build_pretrained_unet(encoder="densenet121", **kw),
                                  pretrained=True, fixed_size=True),
}


def get_model(name: str, input_shape, num_classes: int, **kwargs) -> keras.Model:
    """Build a registered model by name."""
    try:
        spec = REGISTRY[name]
    except KeyError:
        raise SegError(f"Unknown model '{name}'; choose one of {', '.join(REGISTRY)}.") from None
    return spec.build(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


def forward_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of one forward pass, from the layers' shapes (model must have a fixed input size)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2DTranspose,)):
            _, h, w, cin = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * cin * layer.filters
        elif isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * c
        elif isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            cin = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * (cin // layer.groups) * cout
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def build(config: TrainConfig, channels: int, num_classes: int, size: int | None = None,
          weights: bool | None = None) -> keras.Model:
    """The network a TrainConfig describes. Without `size` a U-Net or FCN takes any input size; pretrained
    encoders always have the config's fixed size and RGB input."""
    spec = REGISTRY.get(config.model)
    kwargs = dict(base_filters=config.base_filters, dropout=config.dropout, batchnorm=config.batchnorm,
                  upsampling=config.upsampling)
    if spec is not None and spec.pretrained:
        kwargs["weights"] = "imagenet" if (config.pretrained if weights is None else weights) else None
        shape = (config.image_size, config.image_size, 3)
    else:
        kwargs["depth"] = config.depth
        shape = (size, size, channels)
    return get_model(config.model, shape, num_classes, **kwargs)


@lru_cache(maxsize=64)
def _gflops(config_key: str, size: int, channels: int, num_classes: int) -> tuple[float, int, int]:
    config = TrainConfig.from_dict(json.loads(config_key))
    model = build(config, channels, num_classes, size=size, weights=False)
    return forward_flops(model) / 1e9, int(model.count_params()), feature_values(model)


def feature_values(model: keras.Model) -> int:
    """Values of every layer's output for one image (model must have a fixed input size)."""
    return int(sum(math.prod(layer.output.shape[1:]) for layer in model.layers
                   if not isinstance(layer, layers.InputLayer)))


def train_bytes_per_image(config: TrainConfig, size: int, channels: int, num_classes: int) -> int:
    """Estimated training memory of one image of a batch at float32: its feature maps, kept for the backward pass,
    and their gradients (TRAIN_BYTES_PER_VALUE, measured by bench/batch_memory.py)."""
    return int(_gflops(_network_key(config), int(size), int(channels), int(num_classes))[2] * TRAIN_BYTES_PER_VALUE)


def forward_gflops(config: TrainConfig, size: int, channels: int, num_classes: int) -> float:
    """GFLOPs of one forward pass of the config's network on a size x size image (kept per network and size)."""
    return _gflops(_network_key(config), int(size), int(channels), int(num_classes))[0]


def _network_key(config: TrainConfig) -> str:
    # Only what shapes the network; the image size for pretrained encoders, which have a fixed one.
    keys = ("model", "base_filters", "depth", "upsampling", "batchnorm", "dropout", "image_size")
    return json.dumps({k: getattr(config, k) for k in keys}, sort_keys=True)


def summarize(config: TrainConfig, channels: int, num_classes: int) -> dict:
    """Parameters and forward GFLOPs per image of the config's network at its image size."""
    size = config.image_size
    gflops, params, _ = _gflops(_network_key(config), size, channels, num_classes)
    return {"model": config.model, "input": [size, size, channels], "params": params, "gflops": gflops}
