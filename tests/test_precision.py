"""bfloat16 where the CPU has it: what "auto" picks from the CPU's flags, a bfloat16 run learning as a float32 run
does, its model predicting in float32 on a CPU without bf16 units (Predictor and an export agreeing), --precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seg_core.cli import main
from seg_core.ml import losses, model_export, models, precision
from seg_core.ml.distribute import Plan
from seg_core.ml.inference import Predictor
from seg_core.ml.training import train
from seg_core.services import demo
from test_model_export import agreement, runtime_forward, with_forward
from test_training import tiny

# What a bfloat16 run may differ from the same float32 run by, per epoch: train loss and train dice. Measured here
# (bfloat16 emulated, seeds 0-6, 3-4 epochs of this tiny U-Net): at most 0.013 in either; the tolerance is three
# times that. Validation has two images, where a few flipped pixels move dice by 0.15 for the same weights' drift.
LEARNS_ALIKE = 0.04
# A bfloat16 model's probabilities against its float32 copy's (same weights): bfloat16 keeps 8 bits of mantissa, so
# each layer rounds at about 0.4%. This tiny U-Net on the 8 demo images (seeds 3, 4): at most 0.031 at a pixel,
# 0.0019 on average; the tolerances are two and three times that.
BF16_OUTPUT_MAX, BF16_OUTPUT_MEAN = 0.06, 0.006


def _cpuinfo(tmp_path, flags: str | None) -> str:
    path = tmp_path / "cpuinfo"
    if flags is not None:   # else no such file, as on a Mac
        path.write_text(f"processor\t: 0\nmodel name\t: some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return str(path)


@pytest.mark.parametrize("flags, picked", [
    ("fpu sse2 avx avx2 fma", "float32"),
    ("fpu avx2 avx512f avx512bw avx512vl", "float32"),                    # AVX-512 alone computes no bfloat16
    ("fpu avx2 avx512f avx512_bf16 avx512_vnni", "mixed_bfloat16"),
    ("fpu avx2 avx512f amx_bf16 amx_tile amx_int8", "mixed_bfloat16"),
    (None, "float32")])
def test_auto_picks_bfloat16_only_where_the_cpu_has_bf16_units(tmp_path, monkeypatch, flags, picked):
    cpuinfo = _cpuinfo(tmp_path, flags)
    assert precision.cpu_precision(cpuinfo) == picked
    words = "bf16 units found on this CPU: bfloat16" if picked != "float32" else "this CPU has no bf16 units: float32"
    assert precision.auto_note(cpuinfo) == f"Automatic: {words} (on a GPU, mixed float16)."
    # A run's devices follow the same rule on a CPU; a GPU keeps mixed float16, and a precision asked for is kept.
    monkeypatch.setattr("seg_core.ml.distribute.cpu_precision", lambda: precision.cpu_precision(cpuinfo))
    assert Plan().precision("auto") == picked and Plan(gpus=("g",)).precision("auto") == "mixed_float16"
    assert Plan().precision("float32") == "float32" and Plan().describe(precision=picked).startswith("CPU, ")


def test_the_loss_and_metrics_compute_in_float32_under_bfloat16():
    truth = np.array([[[0, 1], [1, 255]]], np.uint8)
    probs = keras.ops.cast(np.array([[[[0.2], [0.7]], [[0.9], [0.5]]]], np.float32), "bfloat16")
    for name, loss in losses.LOSSES.items():
        assert loss(truth, probs).dtype == "float32", name
    metric = losses.SegMetrics(2)
    metric.update_state(truth, probs)
    assert {k: v.dtype for k, v in metric.result().items()} == dict.fromkeys(("dice", "iou", "accuracy"), "float32")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny project, trained twice with the same seed: float32 and mixed bfloat16."""
    project = demo.create_demo_project(tmp_path_factory.mktemp("precision") / "p", count=8, unlabeled=0)
    made = {}
    for asked in ("float32", "mixed_bfloat16"):
        config = tiny(epochs=3, seed=3, precision=asked)
        run = project.runs.create(config.to_dict())
        project.runs.update(run.id, status=train(project, run.id, config))
        made[asked] = project.runs.get(run.id)
    yield project, made
    project.close()


def test_a_bfloat16_run_learns_as_a_float32_run_does(runs):
    project, made = runs
    assert keras.mixed_precision.global_policy().name == "float32"   # the run's policy stayed within the run
    assert [made[p].devices for p in made] == ["CPU, float32", "CPU, bfloat16"]   # what it computed in, recorded
    a, b = (project.runs.epoch_metrics(made[p].id) for p in ("float32", "mixed_bfloat16"))
    assert len(a) == len(b) == 3 and a[-1]["loss"] < a[0]["loss"] - 0.2   # it learned
    for key in ("loss", "dice"):
        assert [m[key] for m in b] == pytest.approx([m[key] for m in a], abs=LEARNS_ALIKE), key
    saved = models.load_saved(project.layout.run(made["mixed_bfloat16"].id).checkpoint("best"))
    assert precision.computes_in_bfloat16(saved) and saved.layers[-1].dtype_policy.name == "float32"   # the head


def test_a_bfloat16_model_predicts_in_float32_where_the_cpu_lacks_bf16(runs, tmp_path, monkeypatch):
    project, made = runs
    run = made["mixed_bfloat16"]
    own = models.load_saved(project.layout.run(run.id).checkpoint("best"))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda cpuinfo=None: False)
    predictor = Predictor.from_run(project, run.id)
    assert not precision.computes_in_bfloat16(predictor.model)   # a float32 copy: full float32 speed on this CPU
    images = [project.load_image(r) for r in project.list_images()[:3]]
    x = np.stack([predictor._prepare(im) for im in images])
    theirs, ours = np.asarray(own(x, training=False), np.float32), predictor._forward(x).numpy()
    assert np.abs(ours - theirs).max() < BF16_OUTPUT_MAX and np.abs(ours - theirs).mean() < BF16_OUTPUT_MEAN
    # An export is float32 too (models.plain_keras): it agrees with Predictor as a float32 run's does.
    exported = model_export.export_model(project, "keras", tmp_path / "export", run_id=run.id)
    answers, exported_answers = (p.predict(images) for p in (predictor, with_forward(predictor, runtime_forward(exported))))
    assert agreement([p.ids for p in answers], [p.ids for p in exported_answers]) >= 0.999
    # Where the CPU has bf16 units the model predicts as it trained.
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda cpuinfo=None: True)
    assert Predictor(own, predictor.config).model is own


def test_cli_precision_is_parsed_and_a_bad_value_refused(capsys, workspace):
    from seg_core.cli import build_parser
    from seg_core.cli.model import _train_config

    project = demo.create_demo_project(workspace / "flags", count=2, unlabeled=0)
    for given, stored in (("bfloat16", "mixed_bfloat16"), ("float32", "float32"), ("auto", "auto"),
                          ("mixed_float16", "mixed_float16"), (None, "auto")):
        args = build_parser().parse_args(["train", "--project", "flags", *(["--precision", given] if given else [])])
        assert _train_config(args, project).precision == stored
    assert main(["train", "--project", "flags", "--precision", "fp8"]) == 2
    assert ("error: --precision 'fp8' is not a precision: use float32, bfloat16 or auto (auto: bfloat16 where the "
            "CPU has bf16 units") in capsys.readouterr().err
    assert project.runs.list() == []   # nothing started
