"""Train-page logic without a browser: readiness wording, time estimates, progress, history and chart rows."""

from __future__ import annotations

import dataclasses
import json
import re
import time

import pytest

from helpers import box_mask, photo, png_bytes
from seg_core.services import demo, estimating, jobs, planning
from seg_core.classes import binary_classes, default_classes
from seg_core.errors import TrainingError
from seg_core.store.layout import machine_speed_file
from seg_core.store.workspace import new_project
from seg_core.ml.config import (BOUNDS, MIN_EPOCH_STEPS, MODEL_NAMES, PHOTO_PRETRAINED, PHOTO_SIZES, PRESETS,
                               TrainConfig, preset)

# The settings of conftest's trained template (without XLA: a run with it does not calibrate one without, and back).
TINY = dict(image_size=32, base_filters=4, depth=2, epochs=2, batch_size=4, learning_rate=3e-3,
            early_stopping_patience=0, xla=False)


def project_with(workspace, n: int, labeled: int, classes=None, value: int = 1, name: str = "p"):
    p = new_project(workspace / name, classes or binary_classes())
    for i in range(n):
        rec = p.add_image(png_bytes(photo(seed=i)), f"img_{i:02d}.png").image
        if i < labeled:
            p.masks.save(rec.id, box_mask(value=value), rec.mask_version)
    return p


# ----- readiness ------------------------------------------------------------------------------------
def test_no_labeled_images_is_not_ready_and_says_why(workspace):
    r = planning.readiness(project_with(workspace, 3, 0))
    assert not r.ready and r.labeled == 0
    assert "any labeled images" in r.problems[0] and "at least 2" in r.problems[0]
    assert any("3 images still unlabeled" in line for line in r.lines)


def test_one_labeled_image_is_not_ready(workspace):
    r = planning.readiness(project_with(workspace, 3, 1))
    assert not r.ready
    assert "only 1 labeled image" in r.problems[0]


def test_two_labeled_images_without_a_split_use_one_each_with_hints(workspace):
    r = planning.readiness(project_with(workspace, 4, 2))
    assert r.ready, r.problems
    assert (r.train, r.val, r.split_exists) == (1, 1, False)
    assert "2 labeled images: 1 to learn from, 1 to check the model on (20% set aside" in r.lines[0]
    assert any("2 images still unlabeled" in line for line in r.lines)
    assert any("rough first model" in h for h in r.hints)
    assert any("Validation is one image" in h for h in r.hints)


@pytest.mark.parametrize("labeled, fraction", [(2, 0.2), (5, 0.2), (10, 0.3), (7, 0.05), (9, 0.5)])
def test_planned_split_is_the_split_training_makes(workspace, labeled, fraction):
    p = project_with(workspace, labeled + 1, labeled)
    train, val, exists = p.splits.planned(fraction)
    assert not exists
    run_split = p.splits.for_run(fraction, seed=0)
    assert run_split.source == "run" and (train, val) == (len(run_split.train_ids), len(run_split.val_ids))
    # The run sets its images aside without touching the project's split.
    assert p.splits.planned(fraction) == (train, val, False)
    assert p.count_images(split="val") == 0
    # Once the project has a validation split, that is what counts, whatever the fraction.
    p.splits.assign(val_fraction=fraction)
    assert p.splits.planned(0.5)[2] and p.splits.for_run(0.5).source == "project"


def test_existing_split_is_reported_as_the_projects(workspace):
    p = demo.create_demo_project(workspace / "d", count=12, unlabeled=2)
    r = planning.readiness(p)
    assert r.ready and r.split_exists and r.train + r.val == 10
    assert (f"{r.train} to learn from, {r.val} to check the model on (the project's split; change it on the Data "
            "page)") in r.lines[0]


def test_labeled_images_only_in_test_split_are_not_enough(workspace):
    p = project_with(workspace, 3, 3)
    p.splits.set([1, 2, 3], "test")
    r = planning.readiness(p)
    assert not r.ready
    assert any("both the train and the validation split" in x for x in r.problems)
    assert any("3 labeled in the test split" in line for line in r.lines)


def test_a_class_never_painted_is_named_and_all_background_blocks(workspace):
    classes = default_classes(["background", "leaf", "spot"])
    p = project_with(workspace, 3, 3, classes, value=1)
    r = planning.readiness(p)
    assert r.ready
    assert any("leaf (3 images)" in line for line in r.lines)
    assert any("'spot'" in h and "cannot learn it" in h for h in r.hints)
    assert not any("'leaf'" in h for h in r.hints)

    empty = project_with(workspace, 3, 3, value=0, name="empty")
    r = planning.readiness(empty)
    assert not r.ready and any("all background" in x for x in r.problems)


def test_unsaved_strokes_are_mentioned(workspace):
    p = project_with(workspace, 3, 2)
    p.drafts.save(3, box_mask(value=1), 0)
    assert any("1 image with unsaved strokes" in h for h in planning.readiness(p).hints)


# ----- cost and time ---------------------------------------------------------------------------------
def test_model_names_match_the_registry():
    from seg_core.ml import models

    assert MODEL_NAMES == tuple(models.REGISTRY)


@pytest.mark.parametrize("model, channels, classes, kw", [
    ("unet", 3, 2, dict(base_filters=16, depth=4)),
    ("unet", 1, 3, dict(base_filters=8, depth=3, upsampling="bilinear")),
    ("fcn", 1, 4, dict(base_filters=8, depth=2, upsampling="bilinear")),
])
def test_gflops_come_from_the_built_network_and_grow_with_the_area(model, channels, classes, kw):
    from seg_core.ml import models

    config = TrainConfig(model=model, image_size=64, **kw)
    small = estimating.forward_gflops(config, 32, channels, classes)
    assert small == pytest.approx(models.forward_flops(models.build(config, channels, classes, size=32)) / 1e9)
    # Every layer of a fully convolutional network costs in proportion to the pixels.
    assert estimating.forward_gflops(config, 64, channels, classes) == pytest.approx(4 * small, rel=1e-9)


def test_estimate_scales_with_images_and_epochs(workspace, monkeypatch):
    small = demo.create_demo_project(workspace / "small", count=30, unlabeled=0)
    big = demo.create_demo_project(workspace / "big", count=120, unlabeled=0)
    cfg = preset("fast", epochs=10, batch_size=1)          # 24 and 96 batches an epoch: above the minimum
    e_small = estimating.estimate(small, cfg, gflops=50.0)
    e_big = estimating.estimate(big, cfg, gflops=50.0)
    assert e_big.epoch_s > 3.5 * e_small.epoch_s - 4 * estimating.EPOCH_OVERHEAD_S
    # below the minimum an epoch is MIN_EPOCH_STEPS batches, however few the images
    assert cfg.steps_for(3) == MIN_EPOCH_STEPS and cfg.steps_for(96) == 96
    assert preset("fast", steps_per_epoch=5).steps_for(96) == 5
    assert e_small.source == estimating.FIRST_GUESS and e_small.limited_by == "epochs"
    e_twice = estimating.estimate(small, preset("fast", epochs=20, batch_size=1), gflops=50.0)
    fixed = estimating.LAUNCH_S + estimating.first_guess(cfg)[1]
    assert e_twice.seconds - fixed == pytest.approx(2 * (e_small.seconds - fixed))
    # The first guess knows the two training steps: on an AVX-512 CPU oneDNN's runs faster than XLA's.
    monkeypatch.setattr(estimating, "cpu_has_avx512", lambda: True)
    xla, onednn = (estimating.estimate(small, dataclasses.replace(cfg, xla=x), gflops=50.0) for x in (True, False))
    assert onednn.epoch_s < xla.epoch_s and (xla.trace_s, onednn.trace_s) == (18.0, 8.5)
    e_fast_machine = estimating.estimate(small, cfg, gflops=100.0)
    assert e_fast_machine.seconds < e_small.seconds
    # The work itself: 10 train images (the minimum of 20 batches of 8 crops) and 2 val + 2 previews.
    fwd128 = estimating.forward_gflops(cfg, 128, 3, 2)
    fwd256 = estimating.forward_gflops(cfg, 256, 3, 2)
    assert estimating.epoch_work(preset("fast"), 10, 2, 3, 2) == pytest.approx(
        (MIN_EPOCH_STEPS * 8 * (3 * fwd128 + estimating.TRAIN_IMAGE_GF),
         4 * (estimating.VAL_PASSES * fwd256 + estimating.VAL_IMAGE_GF)))


def test_time_budget_caps_the_estimate(workspace):
    p = demo.create_demo_project(workspace / "d", count=48, unlabeled=0)
    e = estimating.estimate(p, preset("quality", epochs=10_000, time_budget_minutes=2), gflops=50.0)
    assert e.limited_by == "time budget"
    # Launch, then two minutes on the training clock, then the validation of the epoch in flight.
    assert estimating.LAUNCH_S + 120 < e.seconds < estimating.LAUNCH_S + 120 + e.epoch_s
    # The epochs the run will show: those that fit after the first one's tracing, and the one the budget cuts short.
    trace = estimating.first_guess(TrainConfig())[1]
    assert e.epochs == int((120 - trace) // e.epoch_s) + 1
    per_epoch = estimating.fmt_duration(e.epoch_s)
    assert e.text == (f"2 minutes, the time budget: about {e.epochs} of 10000 epochs at ~{per_epoch} an epoch, "
                      f"the first ~{trace:.0f} s longer (TensorFlow prepares the model) "
                      "(fewer if it stops improving earlier)")
    assert [estimating.Estimate(s, 1, 1, "epochs", "x").duration for s in (30, 70, 170, 5000, 54_000)] == [
        "under a minute", "about 1 minute", "about 3 minutes", "about 83 minutes", "about 15 hours"]
    unbudgeted = estimating.estimate(p, preset("fast", epochs=3), gflops=50.0)
    assert unbudgeted.limited_by == "epochs" and unbudgeted.epochs == 3
    assert unbudgeted.text.startswith(f"{unbudgeted.duration}: 3 epochs at ~")


def test_first_guess_on_a_cpu_without_avx512_is_the_speed_xla_reaches_there(workspace, monkeypatch):
    # 14 photos, the photo `fast` preset, on a 2-core AVX2 machine whose matmul peak is 82 GFLOP/s: its epochs took
    # 13 s (XLA, the step such a CPU gets). The guess used XLA's share of the peak on an AVX-512 CPU, whose matmul
    # has units XLA does not use, and said 30-42 s.
    monkeypatch.setattr(estimating, "cpu_has_avx512", lambda: False)
    p = project_with(workspace, 14, 14)
    config = preset("fast", photos=True, pretrained=False, time_budget_minutes=5.0)
    e = estimating.estimate(p, dataclasses.replace(config, xla=True), gflops=82.0)
    assert e.source == estimating.FIRST_GUESS and 10 < e.epoch_s < 17
    assert e.limited_by == "time budget" and 15 <= e.epochs <= 28


def test_a_budget_run_is_reported_in_the_terms_of_its_estimate(workspace):
    """The estimate says "about N of 60 epochs at ~X an epoch"; the finished run says "N of 60 epochs ...; ~X an
    epoch", the same X: its whole epochs after the first, not the last one the time budget cut short."""
    p = project_with(workspace, 14, 14)
    config = preset("fast", photos=True, pretrained=False, time_budget_minutes=5.0)
    run = p.runs.create(config.to_dict())
    # The first epoch traces (17 s more), then 13 s each; the budget ends the 22nd two seconds in.
    elapsed = [30.0 + 13 * k for k in range(21)] + [302.0]
    for k, t in enumerate(elapsed):
        p.runs.add_metrics(run.id, k, {"elapsed_s": t, "epoch_s": 13.0})
    p.layout.run(run.id).config.write_text(json.dumps({"train_images": 11, "val_images": 3}))
    p.runs.update(run.id, status="completed", started_at=time.time() - 320, ended_at=time.time())
    record = p.runs.get(run.id)
    rows = p.runs.epoch_metrics(run.id)
    assert estimating.cut_short(record, rows) and estimating.typical_epoch_s(record, rows) == pytest.approx(13.0)
    said = "22 of 60 epochs in 5 min 02 s, stopped by the time budget (the last epoch cut short); ~13 s an epoch"
    assert planning.outcome(record, rows) == said
    assert planning.live_status(p, record).label == said
    assert planning.history_rows(p, [record])[0]["what happened"] == said
    e = estimating.estimate(p, config)
    assert run.id in e.source and e.epoch_s == pytest.approx(13.0) and e.trace_s == pytest.approx(17.0)
    assert e.epochs == 22 and "about 22 of 60 epochs at ~13 s an epoch" in e.text
    # Stopped by a person, ended by early stopping, all epochs done, still running.
    p.runs.update(run.id, status="stopped")
    assert planning.outcome(p.runs.get(run.id), rows).endswith("stopped by you; ~13 s an epoch")
    early = p.runs.create(planning.app_preset("balanced", photos=True).to_dict())
    for k in range(30):
        p.runs.add_metrics(early.id, k, {"elapsed_s": 20.0 + 10 * k})
    p.runs.update(early.id, status="completed")
    assert planning.outcome(p.runs.get(early.id), p.runs.epoch_metrics(early.id)) == (
        "30 of 80 epochs in 5 min 10 s, stopped early: validation dice had not improved for 20 epochs; "
        "~10 s an epoch")
    p.runs.update(early.id, status="running")
    assert planning.outcome(p.runs.get(early.id), p.runs.epoch_metrics(early.id)).startswith(
        "30 of 80 epochs in 5 min 10 s so far;")


def test_estimate_prefers_the_measured_speed_of_a_finished_run(trained_project):
    run = trained_project.runs.list()[0]
    cfg = TrainConfig(**TINY)
    rows = trained_project.runs.epoch_metrics(run.id)
    e = estimating.estimate(trained_project, cfg)
    assert run.id in e.source
    # Same project, same settings: one epoch takes what that run's epochs after the first took.
    assert e.epoch_s == pytest.approx(rows[1]["elapsed_s"] - rows[0]["elapsed_s"])
    # The same network at twice the image size: the measured GFLOP/s, four times the pixels.
    rate, overhead = estimating.measured_speed(trained_project, cfg, 3, 2)[::3][:2]
    bigger = TrainConfig(**{**TINY, "image_size": 64})
    e64 = estimating.estimate(trained_project, bigger)
    assert run.id in e64.source
    ready = planning.readiness(trained_project, bigger)
    work = sum(estimating.epoch_work(bigger, ready.train, ready.val, 3, 2))
    assert e64.epoch_s == pytest.approx(work / rate + overhead)
    # Four times the pixels is four times the GFLOPs, not four times the time: each image also costs a fixed
    # TRAIN_IMAGE_GF (its pipeline, its share of the step's dispatch), most of a tiny network's time.
    assert e.epoch_s < e64.epoch_s < 4 * e.epoch_s
    # Another network (other filters) cannot borrow that speed, only the share of the machine's peak it reached,
    # its launch and its tracing.
    eight = TrainConfig(**{**TINY, "base_filters": 8})
    other = estimating.estimate(trained_project, eight, gflops=50.0)
    assert other.source == f"speed measured on this machine by run {run.id} of {trained_project.path.name}"
    share = rate / 50.0
    ready = planning.readiness(trained_project, eight)
    assert other.epoch_s == pytest.approx(sum(estimating.epoch_work(eight, ready.train, ready.val, 3, 2)) / (50 * share)
                                          + overhead)


def test_a_run_in_one_project_calibrates_the_first_estimate_of_another(trained_project, workspace):
    fresh = demo.create_demo_project(workspace / "fresh", count=12, unlabeled=0)
    cfg = preset("fast", epochs=10)
    assert estimating.estimate(fresh, cfg, gflops=50.0).source == estimating.FIRST_GUESS
    estimating.estimate(trained_project, TrainConfig(**TINY), gflops=50.0)     # the Train page of the trained one
    run = trained_project.runs.list()[0]
    e = estimating.estimate(fresh, cfg, gflops=50.0)
    assert e.source == f"speed measured on this machine by run {run.id} of trained"
    launch, trace = estimating._run_speed(trained_project, run, 3, 2)[1:3]
    assert e.seconds == pytest.approx(launch + trace + 10 * e.epoch_s)


def test_machine_speed_is_measured_rarely_and_keeps_the_best(workspace, monkeypatch):
    first = estimating.machine_gflops()
    saved = json.loads(machine_speed_file().read_text())
    assert first > 0 and saved["gflops"] == first

    def no_measuring():
        raise AssertionError("measured again within the hour")

    monkeypatch.setattr(estimating, "measure_machine", no_measuring)
    assert estimating.machine_gflops() == first
    # An hour on, a busy machine measures less: the better figure of the week stays.
    hour = time.time() + estimating.MACHINE_RECHECK_S + 1
    monkeypatch.setattr(estimating.time, "time", lambda: hour)
    monkeypatch.setattr(estimating, "measure_machine", lambda: first / 3)
    assert estimating.machine_gflops() == first
    # After a week the old figure goes.
    week = hour + estimating.MACHINE_MAX_AGE_S + 1
    monkeypatch.setattr(estimating.time, "time", lambda: week)
    assert estimating.machine_gflops() == pytest.approx(first / 3)


# ----- the settings form -------------------------------------------------------------------------------
def test_photos_get_the_photo_variant_of_each_preset():
    for name in PRESETS:
        photo, other = planning.app_preset(name, photos=True), planning.app_preset(name)
        assert not photo.augment.flip_v and not photo.augment.rot90 and photo.augment.flip_h
        assert photo.augment.hsv and photo.augment.hue_limit == 0.5          # objects come in any colour
        assert other.augment.flip_v and other.augment.rot90      # microscopy and aerial images keep them
        assert photo.resize == other.resize == "letterbox"
        assert (photo.model, photo.pretrained, photo.image_size, photo.crop_size) == \
            ("lite0-unet", True, PHOTO_PRETRAINED[name]["image_size"], None)   # ImageNet's start, whole photos
        assert photo.freeze_encoder_epochs == 0            # Lite0 trains whole from the first step
        assert other.model == "unet" and not other.pretrained
    scratch = preset("fast", photos=True, pretrained=False)
    assert (scratch.model, scratch.pretrained, scratch.image_size, scratch.crop_size) == \
        ("unet", False, PHOTO_SIZES["fast"]["image_size"], PHOTO_SIZES["fast"]["crop_size"])
    photo = planning.build_config("fast", {"epochs": 3}, photos=True)
    assert not photo.augment.flip_v and photo.augment.hsv and photo.model == "lite0-unet" and photo.epochs == 3
    assert planning.crop_for("fast", 256, 4, photos=True) is None and planning.crop_for("fast", 256, 4) == 128


def test_photos_with_several_object_classes_start_from_scratch_unless_asked():
    for name in PRESETS:
        several = planning.app_preset(name, photos=True, num_classes=7)
        assert (several.model, several.pretrained, several.freeze_encoder_epochs) == ("unet", False, 0)
        assert several.augment.hsv and not several.augment.flip_v             # still the photo variant
        asked = planning.build_config(name, {"model": "lite0-unet", "pretrained": True}, photos=True, num_classes=7)
        assert (asked.model, asked.pretrained, asked.freeze_encoder_epochs) == ("lite0-unet", True, 0)
    fast = planning.app_preset("fast", photos=True, num_classes=3)
    assert (fast.image_size, fast.crop_size) == (PHOTO_SIZES["fast"]["image_size"], PHOTO_SIZES["fast"]["crop_size"])
    assert planning.app_preset("fast", photos=True, num_classes=2).model == "lite0-unet"   # one object class
    assert planning.app_preset("fast", num_classes=7).model == "unet"                       # grey images


def test_without_the_weights_package_photos_start_from_scratch(monkeypatch):
    from seg_core.ml import config as config_module

    monkeypatch.setattr(config_module.importlib.util, "find_spec", lambda name: None)
    photo = planning.app_preset("fast", photos=True)
    assert (photo.model, photo.pretrained, photo.image_size) == ("unet", False, PHOTO_SIZES["fast"]["image_size"])
    with pytest.raises(TrainingError, match="divisible by 32 for lite0-unet"):
        planning.build_config("fast", {"model": "lite0-unet", "image_size": 240}, photos=True)


def test_app_presets_give_fast_a_time_budget_without_changing_the_cli_presets():
    assert planning.app_preset("fast").time_budget_minutes == 5.0
    assert PRESETS["fast"].time_budget_minutes is None
    assert planning.app_preset("balanced").time_budget_minutes is None


def test_build_config_from_form_values():
    cfg = planning.build_config("fast", {**TINY, "crop_size": 0, "time_budget_minutes": None,
                                         "augment": {"flip_v": False, "gamma": True}})
    assert (cfg.image_size, cfg.crop_size, cfg.depth, cfg.time_budget_minutes) == (32, None, 2, None)
    assert cfg.preset == "fast" and cfg.augment.gamma and not cfg.augment.flip_v and cfg.augment.rot90
    assert planning.build_config("fast", {}).time_budget_minutes == 5.0
    with pytest.raises(TrainingError, match="divisible by 16"):
        planning.build_config("fast", {"image_size": 40, "crop_size": 0})
    assert planning.crop_for("fast", 64, 2) == 32
    assert planning.crop_for("quality", 64, 2) is None


@pytest.mark.parametrize("name", ["depth", "base_filters", "epochs", "batch_size", "learning_rate", "dropout",
                                  "val_fraction"])
def test_a_setting_is_refused_just_outside_its_bounds_with_the_range_it_must_keep(name):
    config, b = TrainConfig(), BOUNDS[name]
    inside = [v for v in (b.low, b.high) if v in b] or [(b.low + b.high) / 2]
    for value in inside:
        dataclasses.replace(config, **{name: value}).validate()
    step = 1 if isinstance(b.low, int) and not (b.low_open or b.high_open) else 1e-9
    for value in (b.low if b.low_open else b.low - step, b.high if b.high_open else b.high + step):
        with pytest.raises(TrainingError, match=re.escape(f"must be {b.words()}.")):
            dataclasses.replace(config, **{name: value}).validate()


# ----- watching runs -------------------------------------------------------------------------------------
def fake_run(project, status="running", **cfg):
    run = project.runs.create(TrainConfig(**{**TINY, **cfg}).to_dict())
    project.runs.update(run.id, status=status, started_at=time.time())
    return run.id


def test_live_status_progress_and_eta(workspace):
    p = project_with(workspace, 3, 3)
    run_id = fake_run(p, epochs=10)
    assert "Starting" in planning.live_status(p, p.runs.get(run_id)).label
    for epoch in range(2):
        p.runs.add_metrics(run_id, epoch, {"loss": 1.0, "elapsed_s": 10.0 * (epoch + 1), "epoch_s": 10.0})
    p.runs.add_metrics(run_id, 2, {"step": 3, "steps": 6, "elapsed_s": 25.0}, batch=3)
    at = p.runs.latest_progress(run_id)["at"]
    s = planning.live_status(p, p.runs.get(run_id), now=at)
    assert s.fraction == pytest.approx(0.25) and s.eta_s == pytest.approx(75.0)
    assert "Epoch 3 of 10 · batch 3 of 6 · 25 s elapsed · about 1 min 15 s left" == s.label

    # The first epoch paid for tracing (30 s); the second runs at 5 s an epoch: the ETA follows the second.
    pc = project_with(workspace, 3, 3, name="c")
    traced = fake_run(pc, epochs=10)
    pc.runs.add_metrics(traced, 0, {"elapsed_s": 30.0, "epoch_s": 30.0})
    pc.runs.add_metrics(traced, 1, {"step": 3, "steps": 6, "elapsed_s": 32.5}, batch=3)
    s = planning.live_status(pc, pc.runs.get(traced), now=pc.runs.latest_progress(traced)["at"])
    assert s.eta_s == pytest.approx((10 - 1 - 0.5) * 5.0)

    pb = project_with(workspace, 3, 3, name="b")
    budget = fake_run(pb, epochs=10, time_budget_minutes=1)
    for epoch in range(2):
        pb.runs.add_metrics(budget, epoch, {"elapsed_s": 10.0 * (epoch + 1)})
    pb.runs.add_metrics(budget, 2, {"step": 3, "steps": 6, "elapsed_s": 25.0}, batch=3)
    s = planning.live_status(pb, pb.runs.get(budget), now=pb.runs.latest_progress(budget)["at"] + 5)
    assert s.fraction == pytest.approx(30 / 60) and s.eta_s == pytest.approx(30.0)
    assert "30 s elapsed of at most 1 min 00 s" in s.label

    pb.runs.request_stop(budget)
    assert "stopping after the current batch" in planning.live_status(pb, pb.runs.get(budget)).label
    pb.runs.update(budget, status="stopped")
    done = planning.live_status(pb, pb.runs.get(budget))
    # The third epoch was under way; the second was cut short by the Stop.
    assert done.fraction == 1.0 and done.label == "2 of 10 epochs in 25 s, stopped by you"
    pb.runs.update(budget, status="completed")
    pb.runs.add_metrics(budget, 2, {"elapsed_s": 61.0})
    assert planning.live_status(pb, pb.runs.get(budget)).label == (
        "3 of 10 epochs in 1 min 01 s, stopped by the time budget (the last epoch cut short); ~10 s an epoch")


def test_curve_and_overlay_rows(trained_project):
    rows = [{"epoch": 0, "loss": 1.0, "val_loss": float("nan")}, {"epoch": 1, "loss": 0.5, "val_loss": 0.7}]
    assert planning.curve_rows(rows, {"loss": "train", "val_loss": "validation"}) == [
        {"epoch": 1, "value": 1.0, "series": "train"}, {"epoch": 2, "value": 0.5, "series": "train"},
        {"epoch": 2, "value": 0.7, "series": "validation"}]
    first = trained_project.runs.list()[0]
    second = fake_run(trained_project, status="completed")
    trained_project.runs.add_metrics(second, 0, {"val_dice": 0.25})
    runs = [first, trained_project.runs.get(second)]
    out = planning.overlay_rows(trained_project, runs, "val_dice")
    assert {r["run"] for r in out} == {planning.run_label(r) for r in runs}
    assert [r["epoch"] for r in out if r["run"] == planning.run_label(runs[0])] == [1, 2]
    assert [r["value"] for r in out if r["run"] == planning.run_label(runs[1])] == [0.25]


def test_history_rows(trained_project):
    done = trained_project.runs.list()[0]
    failed = fake_run(trained_project, status="failed", epochs=7)
    trained_project.runs.update(failed, error="Training ran out of memory.")
    rows = {r["run"]: r for r in planning.history_rows(trained_project, jobs.refresh(trained_project))}
    assert rows[done.id]["status"] == "finished"
    assert rows[done.id]["what happened"].startswith("2 of 2 epochs in ") and ", all done; ~" in rows[done.id][
        "what happened"]
    assert rows[done.id]["best val dice"] == round(done.best_score, 4)
    assert rows[done.id]["model"] == "unet 4 filters, depth 2, 32 px"
    assert rows[failed]["status"] == "failed" and rows[failed]["error"] == "Training ran out of memory."
    assert rows[failed]["what happened"] == "0 of 7 epochs in 0 s, then it failed"
    assert rows[failed]["best val dice"] is None


def test_fmt_duration():
    assert [estimating.fmt_duration(s) for s in (None, 4.4, 75, 3725)] == ["-", "4 s", "1 min 15 s", "1 h 02 min"]


def test_resumable_and_previews(trained_project):
    run = trained_project.runs.list()[0]
    assert [p.name for p in trained_project.layout.run(run.id).previews()] == ["epoch_0001.png", "epoch_0002.png"]
    assert not jobs.resumable(trained_project, run)  # completed
    trained_project.runs.update(run.id, status="stopped")
    assert jobs.resumable(trained_project, trained_project.runs.get(run.id))
    (trained_project.layout.runs_dir / run.id / "last.keras").unlink()
    assert not jobs.resumable(trained_project, trained_project.runs.get(run.id))
