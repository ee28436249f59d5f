"""A PyTorch state dict read without PyTorch: the legacy file torch.save wrote before its zip format.

Such a file is five pickles and the raw tensors: a magic number, the protocol, the system's sizes, the state dict
(each tensor a call of torch._utils._rebuild_tensor_v2 on a storage named by a persistent id), the storage keys in
writing order, then each storage as an 8-byte little-endian element count followed by its little-endian values.
A weights file is untrusted input and unpickling can run code: only the few names such a file needs are found,
and none of them is PyTorch's; anything else is refused.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass

import numpy as np

from seg_core.errors import SegError

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
            "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
            "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class TorchFileError(SegError):
    """A file that is not a legacy PyTorch state dict this reader can trust."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: type
    size: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    if not isinstance(storage, _Storage):
        raise TorchFileError("a tensor without a storage")
    return _Tensor(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGES:
            return _StorageType(STORAGES[name])
        raise TorchFileError(f"it names {module}.{name}, which a state dict of tensors does not need")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[4], int) and pid[4] >= 0):
            raise TorchFileError("a storage reference of an unknown form")
        return _Storage(str(pid[2]), pid[1].dtype, pid[4])


def _pickle(stream: io.BytesIO):
    return _Unpickler(stream).load()


def read_state_dict(data: bytes, what: str = "The weights file") -> dict[str, np.ndarray]:
    """Every tensor of a legacy torch.save'd state dict as a numpy array, by name.

    Raises TorchFileError, one sentence, for anything else: the zip format, another pickle, a truncated file."""
    if data[:2] == b"PK":
        raise TorchFileError(f"{what} is a PyTorch zip archive; Maskloop reads the legacy format its weights "
                             "package ships.")
    stream = io.BytesIO(data)
    try:
        if _pickle(stream) != MAGIC or _pickle(stream) != PROTOCOL:
            raise TorchFileError("it does not start with PyTorch's magic number and protocol")
        info = _pickle(stream)
        if not isinstance(info, dict) or info.get("little_endian") is not True:
            raise TorchFileError("it was not written on a little-endian machine")
        tree = _pickle(stream)
        keys = _pickle(stream)
        if not isinstance(tree, dict) or not isinstance(keys, list):
            raise TorchFileError("it holds no state dict")
        storages = _read_storages(stream, keys, _storages_of(tree))
        return {str(name): _array(t, storages) for name, t in tree.items()}
    except TorchFileError as exc:
        raise TorchFileError(f"{what} is not a PyTorch state dict Maskloop can read: {exc}.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, MemoryError) as exc:
        raise TorchFileError(f"{what} is damaged or not a PyTorch weights file ({type(exc).__name__}).") from None


def _storages_of(tree: dict) -> dict[str, _Storage]:
    found = {}
    for name, value in tree.items():
        if not isinstance(value, _Tensor):
            raise TorchFileError(f"'{name}' is not a tensor")
        found[value.storage.key] = value.storage
    return found


def _read_storages(stream: io.BytesIO, keys: list, wanted: dict[str, _Storage]) -> dict[str, np.ndarray]:
    if set(map(str, keys)) != set(wanted):
        raise TorchFileError("its list of storages does not match its tensors")
    arrays = {}
    for key in map(str, keys):
        storage = wanted[key]
        head = stream.read(8)
        if len(head) < 8:
            raise TorchFileError("it ends before its last tensor (truncated)")
        count = struct.unpack("<q", head)[0]
        if count != storage.size:
            raise TorchFileError(f"storage {key} holds {count} values where its tensors say {storage.size}")
        nbytes = count * np.dtype(storage.dtype).itemsize
        raw = stream.read(nbytes)
        if len(raw) < nbytes:
            raise TorchFileError("it ends before its last tensor (truncated)")
        arrays[key] = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
    return arrays


def _array(tensor: _Tensor, storages: dict[str, np.ndarray]) -> np.ndarray:
    flat = storages[tensor.storage.key]
    if len(tensor.shape) != len(tensor.stride) or any(s < 0 for s in tensor.shape + tensor.stride):
        raise TorchFileError("a tensor of an impossible shape")
    if 0 in tensor.shape:
        return np.zeros(tensor.shape, flat.dtype)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride))
    if tensor.offset < 0 or last >= flat.size:
        raise TorchFileError("a tensor reaches past its storage")
    view = np.lib.stride_tricks.as_strided(flat[tensor.offset:], shape=tensor.shape,
                                           strides=tuple(s * flat.itemsize for s in tensor.stride), writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="))
