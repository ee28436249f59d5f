"""Model builders, registry, FLOP counting, and the offline-only pretrained weights."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core.ml import models
from seg_core.errors import SegError
from seg_core.ml.config import TrainConfig


def test_unet_binary_and_multiclass_heads():
    import keras
    binary = models.build_unet((32, 32, 1), 2, base_filters=4, depth=2)
    assert binary.output_shape == (None, 32, 32, 1)
    assert binary.get_layer("probabilities").activation.__name__ == "sigmoid"
    multi = models.build_unet((None, None, 3), 5, base_filters=4, depth=3, dropout=0.2, upsampling="bilinear")
    out = multi(np.zeros((2, 48, 64, 3), np.float32))
    assert tuple(out.shape) == (2, 48, 64, 5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out).sum(-1), 1.0, rtol=1e-5)


def test_fcn_has_no_skip_connections():
    fcn = models.build_fcn((64, 64, 3), 2, base_filters=4, depth=3)
    assert not any("concat" in layer.name for layer in fcn.layers)
    assert fcn.output_shape == (None, 64, 64, 1)


def test_flops_of_a_single_conv_by_hand():
    import keras
    inp = keras.Input((10, 10, 3))
    out = keras.layers.Conv2D(4, 3, padding="same")(inp)
    assert models.forward_flops(keras.Model(inp, out)) == 2 * 10 * 10 * 3 * 3 * 3 * 4


def test_summary_of_the_tutorial_unet():
    s = models.summarize(TrainConfig(image_size=256, base_filters=16, depth=4, batchnorm=False), 1, 2)
    assert 1.8e6 < s["params"] < 2.0e6
    assert 5.5 < s["gflops"] < 6.5


def test_registry_and_unknown_names():
    assert {"unet", "fcn", "mobilenetv2-unet", "densenet121-unet"} <= set(models.REGISTRY)
    with pytest.raises(SegError, match="Unknown model"):
        models.get_model("resnet-9000", (32, 32, 3), 2)


def test_pretrained_encoder_without_weights_builds_and_freezes(tmp_path, monkeypatch):
    model = models.get_model("mobilenetv2-unet", (64, 64, 3), 3, base_filters=4)
    assert model.output_shape == (None, 64, 64, 3)
    assert models.set_encoder_trainable(model, False)
    frozen = [l for l in model.layers if l.name.startswith("block_")]
    assert frozen and not any(l.trainable for l in frozen)
    assert any(l.trainable for l in model.layers if l.name.startswith("up"))
    assert not models.set_encoder_trainable(models.build_unet((32, 32, 3), 2, 4, 2), False)


def test_imagenet_weights_only_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(SegError, match="cannot be downloaded"):
        models.get_model("mobilenetv2-unet", (64, 64, 3), 2, weights="imagenet")
    with pytest.raises(SegError, match="divisible by 32"):
        models.get_model("mobilenetv2-unet", (50, 50, 3), 2)


def test_fused_batch_norm_gives_keras_results_and_survives_save_and_load(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 6, 6, 5)).astype(np.float32)
    plain = keras.layers.BatchNormalization(momentum=0.9)
    fused = models.FusedBatchNorm(momentum=0.9)
    plain.build(x.shape)
    fused.build(x.shape)
    weights = [rng.uniform(0.5, 2.0, 5).astype(np.float32), rng.normal(0, 1, 5).astype(np.float32),
               rng.normal(0, 1, 5).astype(np.float32), rng.uniform(0.5, 2.0, 5).astype(np.float32)]
    plain.set_weights(weights)
    fused.set_weights(weights)
    for training in (True, False):
        np.testing.assert_allclose(fused(x, training=training), plain(x, training=training), atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, atol=1e-5)      # updated alike
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-5)

    model = models.build_unet((32, 32, 1), 2, base_filters=4, depth=2)
    assert any(isinstance(layer, models.FusedBatchNorm) for layer in model.layers)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    image = rng.random((1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(again.predict(image, verbose=0), model.predict(image, verbose=0), atol=1e-6)


def test_flip_prediction_is_the_mean_of_the_image_and_its_mirror():
    import keras

    from seg_core.ml.inference import Predictor

    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3, padding="same"),
                              keras.layers.Softmax()])
    config = {"image_size": 16, "channels": 3, "num_classes": 3}
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    plain = Predictor(model, config)
    both = Predictor(model, config, flip=True)
    a = plain.probabilities([image])[0]
    b = plain.probabilities([image[:, ::-1]])[0][:, ::-1]
    assert not np.allclose(a, b, atol=1e-3)                  # the model is not mirror-symmetric...
    np.testing.assert_allclose(both.probabilities([image])[0], (a + b) / 2, atol=1e-5)   # ...flip averages both
