"""ImageNet weights a person supplies: checked by loading them into the encoder, kept in the workspace, used by the
pretrained U-Nets (module, CLI, training, Train page); bad files refused in plain words, nothing stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, page_texts
from seg_core.cli import main
from seg_core.errors import SegError
from seg_core.ml import models, weights
from seg_core.ml.config import TrainConfig

SIZE = (32, 32, 3)   # encoder weights do not depend on the input size: the smallest keras.applications accepts


def _mobilenet(seed: int, include_top: bool = False, alpha: float = 1.0):
    """A MobileNetV2 without ImageNet weights whose first kernel is a known, seeded array."""
    import keras

    model = keras.applications.MobileNetV2(input_shape=SIZE, include_top=include_top, weights=None, alpha=alpha,
                                           classes=3)
    conv1 = model.get_layer("Conv1")
    conv1.kernel.assign(np.random.default_rng(seed).normal(0, 1, conv1.kernel.shape).astype(np.float32))
    return model


def _write_keras2(model, path: Path) -> Path:
    """The layout of the files keras.applications publishes (Keras 2 save_weights): a group per layer, the layer
    names in order in the root's attributes, each layer's weights named in its group's attributes."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            variables = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}/{v.name}:0" for v in variables]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, v in zip(names, variables):
                group.create_dataset(name, data=np.asarray(v.numpy()))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import keras

    d = tmp_path_factory.mktemp("weights-files")
    out = {}
    plain = _mobilenet(seed=1)
    plain.save_weights(out.setdefault("keras3", d / "mnv2.weights.h5"))
    _write_keras2(_mobilenet(seed=2), out.setdefault("keras2", d / "mnv2_published_layout.h5"))
    with_top = _mobilenet(seed=3, include_top=True)
    with_top.save_weights(out.setdefault("top3", d / "mnv2_top.weights.h5"))
    _write_keras2(with_top, out.setdefault("top2", d / "mnv2_top.h5"))
    _mobilenet(seed=4, alpha=0.35).save_weights(out.setdefault("narrow", d / "mnv2_035.weights.h5"))
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(2, name="out")])
    small.save_weights(out.setdefault("sequential", d / "tiny.weights.h5"))
    _write_keras2(small, out.setdefault("sequential2", d / "tiny.h5"))
    keras_data = out["keras3"].read_bytes()
    (out.setdefault("truncated", d / "cut.weights.h5")).write_bytes(keras_data[: len(keras_data) // 3])
    (out.setdefault("random", d / "noise.h5")).write_bytes(np.random.default_rng(0).bytes(4096))
    return out


@pytest.fixture(autouse=True)
def empty_keras_cache(tmp_path, monkeypatch) -> Path:
    """No weights from this machine's own Keras cache leak into a test."""
    home = tmp_path / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home / "models"


def conv1(model) -> np.ndarray:
    return np.asarray(model.get_layer("Conv1").kernel.numpy())


def file_conv1(path: Path) -> np.ndarray:
    import keras

    model = keras.applications.MobileNetV2(input_shape=SIZE, include_top=False, weights=None)
    model.load_weights(str(path))
    return conv1(model)


def pretrained_unet():
    config = TrainConfig(model="mobilenetv2-unet", image_size=32, base_filters=4, pretrained=True)
    return models.build(config, channels=3, num_classes=2)


def stored(workspace: Path) -> list[str]:
    folder = workspace / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_keras3_weights_file_is_identified_stored_and_loaded_by_the_pretrained_unet(files, workspace):
    info = weights.add_weights(files["keras3"])
    assert (info.encoder, info.outcome, info.source) == ("mobilenetv2", "added", "workspace")
    assert info.path == workspace / "weights" / "mobilenetv2.weights.h5"
    assert info.path.read_bytes() == files["keras3"].read_bytes()
    assert stored(workspace) == ["mobilenetv2.weights.h5"]      # no temporary file left beside it
    assert weights.available()["mobilenetv2"].path == info.path
    assert weights.available()["densenet121"] is None
    np.testing.assert_array_equal(conv1(pretrained_unet()), conv1(_mobilenet(seed=1)))


def test_a_file_in_the_published_keras2_layout_works_and_the_workspace_comes_before_the_keras_cache(
        files, workspace, empty_keras_cache):
    # The Keras cache holds one file, the workspace gets another: the workspace's is used until it is removed.
    empty_keras_cache.mkdir(parents=True)
    cached = empty_keras_cache / weights.ENCODERS["mobilenetv2"].keras_file
    cached.write_bytes(files["keras2"].read_bytes())
    assert weights.imagenet_weights("mobilenetv2").source == "Keras cache"
    info = weights.add_weights(files["keras3"].read_bytes(), "upload.weights.h5")
    assert weights.imagenet_weights("mobilenetv2").path == info.path
    np.testing.assert_array_equal(conv1(pretrained_unet()), file_conv1(files["keras3"]))
    removed = weights.remove_weights("mobilenetv2-unet")
    assert removed.path == info.path and stored(workspace) == []
    np.testing.assert_array_equal(conv1(pretrained_unet()), file_conv1(files["keras2"]))
    # The published layout added to the workspace is stored as .h5, the ending that makes Keras read it so.
    info = weights.add_weights(files["keras2"])
    assert info.path.name == "mobilenetv2.h5" and info.format == "Keras 2 .h5"


def test_replacing_needs_replace_and_the_same_file_again_changes_nothing(files, workspace):
    first = weights.add_weights(files["keras3"])
    again = weights.add_weights(files["keras3"])
    assert again.outcome == "unchanged" and again.path == first.path
    with pytest.raises(SegError, match="already has MobileNetV2 weights.*nothing was changed.*--replace"):
        weights.add_weights(files["keras2"])
    assert stored(workspace) == ["mobilenetv2.weights.h5"]
    assert first.path.read_bytes() == files["keras3"].read_bytes()
    replaced = weights.add_weights(files["keras2"], replace=True)
    assert replaced.outcome == "replaced"
    assert stored(workspace) == ["mobilenetv2.h5"]               # the other format's file went with it
    np.testing.assert_array_equal(conv1(pretrained_unet()), conv1(_mobilenet(seed=2)))


@pytest.mark.parametrize("kind, message", [
    ("random", "not an HDF5 file"),
    ("truncated", "damaged or incomplete"),
    ("sequential", "another network: they fit neither MobileNetV2 nor DenseNet121"),
    ("sequential2", "another network"),
    ("top3", "MobileNetV2 weights together with more layers, most likely the classification top"),
    ("top2", "classification top"),
    ("narrow", "looks like MobileNetV2 weights but does not fit MobileNetV2"),
])
def test_bad_files_are_refused_in_plain_words_and_nothing_is_stored(files, workspace, kind, message):
    with pytest.raises(SegError, match=message) as caught:
        weights.add_weights(files[kind])
    text = str(caught.value)
    assert files[kind].name in text
    assert "Traceback" not in text and len(text) < 600
    if kind in ("random", "sequential", "top3", "narrow"):   # each names what was expected
        assert weights.ENCODERS["mobilenetv2"].keras_file in text
    assert stored(workspace) == []


def test_other_bad_inputs():
    with pytest.raises(SegError, match="is empty"):
        weights.add_weights(b"", "nothing.h5")
    with pytest.raises(SegError, match="There is no file"):
        weights.add_weights("/no/such/file.h5")
    with pytest.raises(SegError, match="whole model in a zip"):
        weights.add_weights(b"PK\x03\x04" + bytes(100), "model.keras")
    with pytest.raises(SegError, match="There are no weights called 'resnet50'"):
        weights.remove_weights("resnet50")
    with pytest.raises(SegError, match="No MobileNetV2 weights were added"):
        weights.remove_weights("mobilenetv2")


def test_without_weights_the_error_says_how_to_add_them():
    with pytest.raises(SegError) as caught:
        pretrained_unet()
    text = str(caught.value)
    assert "cannot be downloaded" in text and "Train page" in text and "maskloop weights add FILE" in text
    assert weights.ENCODERS["mobilenetv2"].keras_file in text


def test_a_densenet121_file_is_told_apart(tmp_path, workspace):
    import keras

    model = keras.applications.DenseNet121(input_shape=SIZE, include_top=False, weights=None)
    path = tmp_path / "dn.weights.h5"
    model.save_weights(path)
    info = weights.add_weights(path)
    assert info.encoder == "densenet121" and info.path.name == "densenet121.weights.h5"
    assert weights.imagenet_weights("mobilenetv2") is None


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_add_list_replace_remove(files, workspace, capsys):
    code, out, _ = run(capsys, "weights", "add", files["keras3"])
    assert code == 0 and "added MobileNetV2 ImageNet weights" in out and "--pretrained" in out
    code, _, err = run(capsys, "weights", "add", files["keras2"])
    assert code == 2 and "already has MobileNetV2 weights" in err and "--replace" in err
    code, out, _ = run(capsys, "weights", "add", files["keras2"], "--replace")
    assert code == 0 and out.startswith("replaced")
    code, out, _ = run(capsys, "weights", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and listed["densenet121"] is None
    assert listed["mobilenetv2"]["path"] == str(workspace / "weights" / "mobilenetv2.h5")
    code, out, _ = run(capsys, "weights", "list")
    assert "mobilenetv2.h5" in out and "none: maskloop weights add FILE" in out
    code, out, _ = run(capsys, "weights", "remove", "mobilenetv2")
    assert code == 0 and "removed MobileNetV2 weights" in out and stored(workspace) == []
    code, _, err = run(capsys, "weights", "remove", "mobilenetv2")
    assert code == 2 and "nothing was removed" in err


def test_cli_refuses_bad_files_with_a_message_and_a_nonzero_exit(files, workspace, capsys):
    for kind, message in (("random", "not an HDF5 file"), ("top3", "classification top"),
                          ("sequential", "another network")):
        code, out, err = run(capsys, "weights", "add", files[kind])
        assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert stored(workspace) == []


def test_cli_train_pretrained_is_checked_before_a_worker_starts(workspace, capsys):
    from seg_core.services import demo

    project = demo.create_demo_project(workspace / "demo", count=4, unlabeled=0)
    code, _, err = run(capsys, "train", "--project", project.path, "--model", "unet", "--pretrained")
    assert code == 2 and "--pretrained needs a model with a pretrained encoder" in err
    code, _, err = run(capsys, "train", "--project", project.path, "--model", "mobilenetv2-unet", "--pretrained")
    assert code == 2 and "maskloop weights add FILE" in err
    assert project.runs.list() == []


def test_a_pretrained_run_trains_on_the_added_weights_frozen_then_fine_tunes_everything(files, workspace):
    import keras

    from seg_core.ml.inference import Predictor
    from seg_core.ml.training import train
    from seg_core.services import demo

    weights.add_weights(files["keras3"])
    project = demo.create_demo_project(workspace / "demo", count=6, unlabeled=0)
    # One frozen-encoder epoch of one step, then one fine-tuning epoch of one step.
    config = TrainConfig(model="mobilenetv2-unet", image_size=32, base_filters=4, epochs=2, batch_size=2,
                         steps_per_epoch=1, pretrained=True, freeze_encoder_epochs=1, early_stopping_patience=0,
                         xla=False)
    kernels = []

    class Conv1(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernels.append(conv1(self.model))

    run = project.runs.create(config.to_dict())
    assert train(project, run.id, config, extra_callbacks=[Conv1()]) == "completed"
    added = conv1(_mobilenet(seed=1))
    np.testing.assert_array_equal(kernels[0], added)   # the frozen epoch left the file's encoder exactly as it was
    assert not np.array_equal(kernels[1], added)       # fine-tuning moved it
    lrs = [m["lr"] for m in project.runs.epoch_metrics(run.id)]
    assert lrs[1] == pytest.approx(lrs[0] / 10)        # ... at a tenth of the rate
    np.testing.assert_array_equal(conv1(models.load_saved(project.layout.run(run.id).checkpoint("last"))), kernels[1])
    image = project.load_image(1)
    assert Predictor.from_run(project, run.id).predict_one(image).ids.shape == image.shape[:2]


def test_the_weights_module_loads_without_tensorflow():
    code = "import sys\nfrom seg_core.ml import weights\nweights.available()\nprint('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MASKLOOP_WORKSPACE": str(ROOT / "nonexistent-workspace")})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]


def test_train_page_adds_a_weights_file_and_offers_the_pretrained_start(files, workspace, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from helpers import open_app_page
    from seg_core.store.workspace import new_project

    project = new_project(workspace / "p")
    monkeypatch.chdir(ROOT)
    at = open_app_page(AppTest.from_file(str(ROOT / "app.py"), default_timeout=120), "train", project)
    assert not at.file_uploader        # a plain U-Net needs no weights file
    at.selectbox(key="train_fast_model").set_value("mobilenetv2-unet").run()
    assert at.checkbox(key="train_fast_pretrained").disabled
    assert "No ImageNet weights for MobileNetV2 on this machine yet" in page_texts(at)

    at.file_uploader(key="train_weights_0").set_value(("noise.h5", files["random"].read_bytes(), "")).run()
    at.button(key="train_weights_add").click().run()
    assert not at.exception, at.exception
    assert any("not an HDF5 file" in e.value for e in at.error)
    assert stored(workspace) == []
    assert at.checkbox(key="train_fast_pretrained").disabled

    at.file_uploader(key="train_weights_0").set_value(("mnv2.weights.h5", files["keras3"].read_bytes(), "")).run()
    at.button(key="train_weights_add").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Added: MobileNetV2") for s in at.success)
    assert stored(workspace) == ["mobilenetv2.weights.h5"]
    assert [u.key for u in at.file_uploader] == ["train_weights_1"]     # emptied for the next file
    box = at.checkbox(key="train_fast_pretrained")
    assert not box.disabled
    box.check().run()
    assert at.checkbox(key="train_fast_pretrained").value
    assert "ImageNet weights for MobileNetV2: mobilenetv2.weights.h5" in page_texts(at)
    assert "MobileNetV2 yes; DenseNet121 none" in page_texts(at)
    weights.remove_weights("mobilenetv2")       # e.g. from the command line meanwhile
    at.run()
    box = at.checkbox(key="train_fast_pretrained")
    assert box.disabled and not box.value
