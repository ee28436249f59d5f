"""The training engine with real tiny models: train, save, load, predict, stop, resume, a dead worker."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from seg_core.services import demo, jobs
from seg_core.ml.augment import AugmentConfig
from seg_core.errors import RunBusyError, TrainingError
from seg_core.ml.inference import Predictor
from seg_core.ml.evaluation import Labeled, evaluate
from seg_core.ml.config import PRESETS, PRETRAINED_FREEZE_EPOCHS, TrainConfig, preset, xla_is_faster_here
from seg_core.ml.training import train

# Without XLA: compiling a step takes longer than a tiny run's epochs. The XLA step (the default) has its own tests
# (same seed, learns as the plain one) and the page, CLI and browser runs train with it.
TINY = dict(image_size=32, base_filters=4, depth=2, epochs=2, batch_size=4, learning_rate=3e-3,
            augment=AugmentConfig(flip_h=True, shift_scale_rotate=True), early_stopping_patience=0, xla=False)


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


def wait_for(predicate, what: str, limit_s: float = 300):
    """Liveness guard only: a hung worker fails the test instead of hanging CI."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
def binary(workspace):
    return demo.create_demo_project(workspace / "bin", count=8, unlabeled=1)


def run_inline(project, config, resume=False, run_id=None, callbacks=None):
    run = project.runs.get(run_id) if run_id else project.runs.create(config.to_dict())
    status = train(project, run.id, config, resume=resume, extra_callbacks=callbacks)
    project.runs.update(run.id, status=status)
    return project.runs.get(run.id)


def test_binary_train_save_load_predict(binary):
    run = run_inline(binary, tiny())
    assert run.status == "completed" and run.best_score is not None
    epochs = binary.runs.epoch_metrics(run.id)
    assert [m["epoch"] for m in epochs] == [0, 1]
    for key in ("loss", "dice", "iou", "val_loss", "val_dice", "val_iou", "lr", "images_per_s", "elapsed_s"):
        assert key in epochs[-1] and np.isfinite(epochs[-1][key])
    folder = binary.layout.runs_dir / run.id
    assert (folder / "best.keras").exists() and (folder / "last.keras").exists()
    assert sorted(p.name for p in (folder / "previews").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    config = json.loads((folder / "config.json").read_text())
    assert config["channels"] == 3 and config["num_classes"] == 2 and config["summary"]["params"] > 0

    predictor = Predictor.from_run(binary)  # the best run by default
    assert predictor.run_id == run.id
    rec = binary.list_images()[0]
    image = binary.load_image(rec)
    pred = predictor.predict_one(image)
    assert pred.ids.shape == image.shape[:2] and pred.probabilities.shape == (*image.shape[:2], 2)
    np.testing.assert_allclose(pred.probabilities.sum(-1), 1.0, atol=1e-4)
    assert 0.0 <= pred.uncertainty <= 1.0
    assert set(np.unique(pred.ids)) <= {0, 1}
    many = predictor.predict([binary.load_image(r) for r in binary.list_images()[:3]])
    assert [p.ids.shape for p in many] == [(r.height, r.width) for r in binary.list_images()[:3]]


def test_a_run_traces_its_train_step_once(binary, monkeypatch):
    # The optimizer's slots exist before the first step: created inside it, TensorFlow would trace the step twice,
    # and tracing is most of the wait before a deep network's first epoch.
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traced, step = [], TensorFlowTrainer.train_step
    monkeypatch.setattr(TensorFlowTrainer, "train_step", lambda self, data: traced.append(1) or step(self, data))
    assert run_inline(binary, tiny()).status == "completed"
    assert len(traced) == 1


def test_multiclass_train_and_evaluate(workspace):
    project = demo.create_demo_project(workspace / "multi", multiclass=True, count=8, unlabeled=0)
    run = run_inline(project, tiny(loss="ce_dice"))
    predictor = Predictor.from_run(project, run.id)
    pairs = [Labeled(r.filename, project.load_image(r), project.masks.load(r)) for r in project.list_images()[:3]]
    result = evaluate(predictor, pairs, project.classes)
    assert [c["name"] for c in result.per_class] == ["background", "blob", "block"]
    assert result.images == len(result.per_image) == 3 and 0 <= result.mean_iou <= 1
    assert np.asarray(result.confusion).sum() == sum(p.truth.size for p in pairs)
    assert predictor.predict_one(pairs[0].image).probabilities.shape[-1] == 3


def test_a_project_without_validation_images_keeps_its_split(workspace):
    project = demo.create_demo_project(workspace / "nosplit", count=6, unlabeled=0)
    project.splits.set(project.image_ids(), "train")
    run = run_inline(project, tiny(epochs=1, val_fraction=0.34))
    assert project.count_images(split="val") == 0 and project.count_images(split="train") == 6
    assert run.split.source == "run" and (len(run.split.train_ids), len(run.split.val_ids)) == (4, 2)
    assert "it set aside itself" in run.split.note
    saved = json.loads(project.layout.run(run.id).config.read_text())
    assert (saved["train_images"], saved["val_images"]) == (4, 2)


def test_stop_flag_stops_cleanly(binary):
    run = binary.runs.create(tiny(epochs=50).to_dict())
    binary.runs.request_stop(run.id)
    status = train(binary, run.id, tiny(epochs=50))
    assert status == "stopped"
    assert len(binary.runs.epoch_metrics(run.id)) <= 1


def test_time_budget_ends_the_run(binary):
    run = run_inline(binary, tiny(epochs=500, time_budget_minutes=0.001))
    assert run.status == "completed" and len(binary.runs.epoch_metrics(run.id)) <= 2


def test_resume_continues_from_last_checkpoint(binary):
    first = tiny(epochs=1)
    run = run_inline(binary, first)
    before = binary.runs.epoch_metrics(run.id)
    learned = run.split.masks
    repainted = binary.image(run.split.train_ids[0])   # saved between the two: the resumed run keeps its versions
    binary.masks.save(repainted.id, 1 - binary.masks.load(repainted), repainted.mask_version)
    longer = tiny(epochs=3)
    binary.runs.update(run.id, config=longer.to_dict())
    run = run_inline(binary, longer, resume=True, run_id=run.id)
    assert run.split.masks == learned
    after = binary.runs.epoch_metrics(run.id)
    assert [m["epoch"] for m in after] == [0, 1, 2]
    assert after[0] == before[0], "the first epoch is kept, not redone"
    assert json.loads((binary.layout.runs_dir / run.id / "state.json").read_text())["epoch"] == 3
    assert after[2]["elapsed_s"] > before[0]["elapsed_s"]


def test_training_needs_two_labeled_images(workspace):
    project = demo.create_demo_project(workspace / "one", count=2, unlabeled=1)
    run = project.runs.create(tiny().to_dict())
    with pytest.raises(TrainingError, match="at least 2 labeled"):
        train(project, run.id, tiny())


def test_bad_settings_are_sentences():
    with pytest.raises(TrainingError, match="divisible by 16"):
        tiny(image_size=40, depth=4).validate(2)
    with pytest.raises(TrainingError, match="two classes"):
        tiny(loss="bce").validate(3)
    with pytest.raises(TrainingError, match="Unknown training settings"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(TrainingError, match="Unknown preset"):
        preset("turbo")
    with pytest.raises(TrainingError, match="resize must be one of letterbox, squash"):
        tiny(resize="stretch").validate(2)
    for name, cfg in PRESETS.items():
        assert cfg.validate(2).preset == name
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    saved_before_letterboxing = {k: v for k, v in TrainConfig().to_dict().items() if k != "resize"}
    assert TrainConfig.from_dict(saved_before_letterboxing).resize == "squash"
    saved_before_xla = {k: v for k, v in TrainConfig().to_dict().items() if k != "xla"}
    assert not TrainConfig.from_dict(saved_before_xla).xla   # such runs trained without it
    assert TrainConfig().xla == xla_is_faster_here()


@pytest.mark.parametrize("flags, xla", [("fpu sse2 avx avx2 fma", True), ("fpu avx2 avx512f avx512bw avx512vl", False),
                                        (None, True)])
def test_xla_is_the_default_where_it_is_the_faster_step(tmp_path, flags, xla):
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:   # else no such file, as on a Mac
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert xla_is_faster_here(str(cpuinfo)) is xla


def test_worker_killed_mid_run_is_marked_failed_and_resumes(binary):
    config = tiny(epochs=4, steps_per_epoch=3)
    run = jobs.start(binary, config)
    with pytest.raises(RunBusyError, match="one run at a time"):
        jobs.start(binary, config)
    wait_for(lambda: binary.runs.epoch_metrics(run.id), "the first epoch")
    os.kill(binary.runs.get(run.id).pid, signal.SIGKILL)
    failed = wait_for(lambda: (r := jobs.refresh_run(binary, run.id)).status == "failed" and r, "failed status")
    assert "ended unexpectedly" in failed.error
    # The project and the best checkpoint are intact after SIGKILL.
    assert binary.stats()["labeled"] == 7
    Predictor.from_run(binary, run.id).predict_one(binary.load_image(1))
    done_before = len(binary.runs.epoch_metrics(run.id))
    jobs.resume(binary, run.id)
    final = wait_for(lambda: (r := jobs.refresh_run(binary, run.id)) and not r.active and r, "the resumed run")
    assert final.status == "completed", jobs.worker_log(binary, run.id)
    epochs = [m["epoch"] for m in binary.runs.epoch_metrics(run.id)]
    assert epochs == [0, 1, 2, 3] and done_before >= 1


def test_a_worker_just_started_is_alive_before_its_command_line_is_readable(monkeypatch):
    """Between fork and exec a new process's command line reads empty for a few milliseconds: a run checked right
    after it started (keep learning's, by the save after it) must not be marked failed for that."""
    import subprocess
    import sys

    me = os.getpid()   # a live process that is not a zombie
    monkeypatch.setattr(jobs, "_command_line", lambda pid: "")
    assert jobs._alive(me, "run-x"), "a starting worker is alive"
    monkeypatch.setattr(jobs, "_command_line", lambda pid: f"python -m {jobs.WORKER_MODULE} --run run-x")
    assert jobs._alive(me, "run-x") and not jobs._alive(me, "run-y"), "the worker of this run, not another's"
    monkeypatch.undo()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", "another-program"],
                             stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: b"another-program" in Path(f"/proc/{other.pid}/cmdline").read_bytes(), "its command line")
        assert not jobs._alive(other.pid, "run-x"), "a pid reused by another program is no worker"
    finally:
        other.kill()
        other.wait()


def test_stop_request_reaches_the_worker(binary, monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    run = jobs.start(binary, tiny(epochs=200, steps_per_epoch=2))
    wait_for(lambda: binary.runs.epoch_metrics(run.id), "the first epoch")
    environ = Path(f"/proc/{binary.runs.get(run.id).pid}/environ")
    if environ.exists():   # Linux: the worker runs with glibc's arenas capped (its peak memory)
        assert b"MALLOC_ARENA_MAX=2" in environ.read_bytes().split(b"\0")
    stopped = jobs.stop(binary, run.id, wait_s=120)
    assert stopped.status == "stopped"
    assert len(binary.runs.epoch_metrics(run.id)) < 200


def test_preset_crop_follows_a_changed_image_size():
    assert preset("fast").crop_size == 128
    assert preset("fast", image_size=512).crop_size == 256
    assert preset("fast", image_size=32, depth=2).crop_size == 16
    assert preset("fast", image_size=16, depth=4).crop_size is None
    assert preset("fast", image_size=512, crop_size=64).crop_size == 64


def test_a_pretrained_start_freezes_the_encoder_first():
    assert preset("fast", model="mobilenetv2-unet", pretrained=True).freeze_encoder_epochs == PRETRAINED_FREEZE_EPOCHS
    assert preset("fast", model="mobilenetv2-unet", pretrained=True, freeze_encoder_epochs=0).freeze_encoder_epochs == 0
    assert preset("fast", model="mobilenetv2-unet").freeze_encoder_epochs == 0
    # ...but not Lite0: it trains whole from the first step, as the photo presets start it.
    assert preset("fast", model="lite0-unet", pretrained=True).freeze_encoder_epochs == 0


def test_the_same_seed_gives_the_same_run_and_xla_learns_as_the_plain_step(binary):
    """XLA (the default) compiles the same step: the same seed gives exactly the same run with either, and XLA's
    losses and metrics are nearly the plain step's."""
    seen = []

    class Compiled(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.model.jit_compile)

    runs = {xla: [run_inline(binary, tiny(seed=3, xla=xla), callbacks=[Compiled()]) for _ in range(2)]
            for xla in (True, False)}
    assert seen == [True, True, False, False]
    metrics = {xla: [binary.runs.epoch_metrics(r.id) for r in pair] for xla, pair in runs.items()}
    for xla in (True, False):
        assert [m["loss"] for m in metrics[xla][0]] == [m["loss"] for m in metrics[xla][1]], f"xla={xla}"
    a, b = metrics[True][0], metrics[False][0]
    # Sums in another order: the losses agree closely; dice counts thresholded pixels, so one flipped pixel of a
    # 32 px validation mask moves it more (0.023 seen).
    for key, tolerance in (("loss", 0.02), ("val_loss", 0.02), ("dice", 0.05), ("val_dice", 0.05)):
        assert [m[key] for m in a] == pytest.approx([m[key] for m in b], abs=tolerance), key
