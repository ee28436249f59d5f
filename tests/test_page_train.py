"""Train page through AppTest: readiness, presets and settings, a real tiny run started from the page, Stop and
Resume on a real worker, a failed run, the history and its overlaid curves."""

from __future__ import annotations

import json
import re

from streamlit.testing.v1 import AppTest

from helpers import ROOT, box_mask, open_app_page, page_texts, photo, png_bytes
from seg_core.services import jobs, planning
from seg_core.classes import binary_classes
from seg_core.store.project import Project
from seg_core.store.workspace import new_project
from seg_core.ml import precision
from seg_core.ml.config import PRESET_NOTES, TrainConfig
from test_training import wait_for

TINY_FORM = {"image_size": 32, "depth": 2, "base_filters": 4, "epochs": 2, "batch_size": 4}


def open_train(project: Project | None, monkeypatch) -> AppTest:
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    return open_app_page(at, "train", project)


texts = page_texts


def charts(at: AppTest) -> list[dict]:
    """Each chart's Vega-Lite spec, with the rows Streamlit moved out of it (as Arrow) put back under 'rows'."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    out = []
    for c in at.get("vega_lite_chart"):
        spec = json.loads(c.proto.spec)
        tables = [d.data.data for d in c.proto.datasets] + ([c.proto.data.data] if c.proto.data.data else [])
        spec["rows"] = [r for t in tables for r in convert_arrow_bytes_to_pandas_df(t).to_dict("records")]
        spec["rows"] += spec.get("data", {}).get("values", [])
        out.append(spec)
    return out


def chart_titled(at: AppTest, start: str) -> list[dict]:
    found = [c for c in charts(at) if str(c.get("title", "")).startswith(start)]
    assert found, f"no chart titled {start!r}: {[c.get('title') for c in charts(at)]}"
    return found[0]["rows"]


def preview_captions(at: AppTest) -> list[str]:
    return [c for img in at.get("image") for c in img.captions]


def has_button(at: AppTest, key: str) -> bool:
    return any(b.key == key for b in at.button)


def fill_tiny_form(at: AppTest, preset: str = "fast", **extra) -> AppTest:
    for field, value in {**TINY_FORM, **extra}.items():
        at.number_input(key=f"train_{preset}_{field}").set_value(value)
    at.run()
    # Changing the size moved the crop to the preset's ratio (none for the photo fast preset); whole 32 px images
    # are the tiny run's.
    assert at.number_input(key=f"train_{preset}_crop_size").value == (planning.crop_for(preset, 32, 2, True) or 0)
    at.number_input(key=f"train_{preset}_crop_size").set_value(0)
    at.number_input(key=f"train_{preset}_time_budget_minutes").set_value(0)
    at.run()
    assert not at.exception, at.exception
    return at


def test_without_a_project_the_page_points_to_home(workspace, monkeypatch):
    at = open_train(None, monkeypatch)
    assert "No project is open" in at.info[0].value
    assert not has_button(at, "train_start")


def test_not_ready_disables_start_and_says_why(workspace, monkeypatch):
    p = new_project(workspace / "one", binary_classes())
    for i in range(3):
        rec = p.add_image(png_bytes(photo(seed=i)), f"img_{i}.png").image
        if i == 0:
            p.masks.save(rec.id, box_mask(), rec.mask_version)
    at = open_train(p, monkeypatch)
    assert at.button(key="train_start").disabled
    assert "only 1 labeled image" in texts(at) and "at least 2" in texts(at)
    assert "Estimated time" not in texts(at)
    assert not at.get("vega_lite_chart")  # no runs, nothing to draw


def test_presets_explain_themselves_and_estimate_time(trained_project, monkeypatch):
    at = open_train(trained_project, monkeypatch)
    radio = at.radio(key="train_preset")
    assert radio.value == "fast"
    assert list(radio.proto.captions) == [PRESET_NOTES[p] for p in ("fast", "balanced", "quality")]
    assert "6 labeled images" in texts(at)
    # Photos: the photo variant of fast (EfficientNet-Lite0 from ImageNet), its epochs in a 5-minute budget; it says
    # which of the two ends the run, in epochs (which one does depends on this machine's speed).
    text, epochs = texts(at), planning.app_preset("fast", photos=True).epochs
    assert ("Estimated time on this machine: 5 minutes, the time budget: about " in text
            and f" of {epochs} epochs at ~" in text) or re.search(
        rf"Estimated time on this machine: (under a minute|about \d+ minutes?): {epochs} epochs at ~", text)
    assert "whichever" not in text
    assert at.number_input(key="train_fast_time_budget_minutes").value == 5.0
    at.number_input(key="train_fast_time_budget_minutes").set_value(0.1).run()   # six seconds: the budget ends it
    assert "Estimated time on this machine: 0.1 minutes, the time budget: about " in texts(at)
    assert f" of {epochs} epochs at ~" in texts(at)
    at.number_input(key="train_fast_time_budget_minutes").set_value(5.0).run()
    # The precision setting says what "auto" does on this machine, from its CPU's flags.
    choice = at.selectbox(key="train_fast_precision")
    assert choice.value == "auto" and choice.options == ["Automatic", "float32", "bfloat16"]
    assert precision.auto_note() in texts(at)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda cpuinfo=None: True)
    at.run()
    assert "Automatic: bf16 units found on this CPU: bfloat16" in texts(at)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda cpuinfo=None: False)
    at.run()
    assert "Automatic: this CPU has no bf16 units: float32" in texts(at)
    radio.set_value("balanced").run()
    assert at.selectbox(key="train_balanced_model").value == "lite0-unet"
    size, crop = (at.number_input(key=f"train_balanced_{f}").value for f in ("image_size", "crop_size"))
    assert (size, crop) == (256, 0)       # whole photos: the encoder has a fixed input size
    radio.set_value("quality").run()
    assert at.number_input(key="train_quality_base_filters").value == 32
    assert at.number_input(key="train_quality_time_budget_minutes").value == 0
    assert ": 150 epochs at ~" in texts(at) and "fewer if it stops improving earlier" in texts(at)
    # A setting the engine refuses is explained, and Start stays off.
    at.number_input(key="train_quality_image_size").set_value(40).run()
    assert "divisible by 16" in texts(at)
    assert at.button(key="train_start").disabled


def test_history_lists_the_finished_run_and_overlays_chosen_curves(trained_project, monkeypatch):
    run = trained_project.runs.list()[0]
    at = open_train(trained_project, monkeypatch)
    assert "Latest run" in [h.value for h in at.subheader]
    assert f"Run {run.id}" in texts(at) and "finished" in texts(at)
    assert run.split.note == "learned from 5 images, checked on the project's 1 validation image"
    assert f"This run {run.split.note}." in texts(at)
    dice = chart_titled(at, "Dice")
    assert {r["series"] for r in dice} == {"train", "validation"} and {r["epoch"] for r in dice} == {1, 2}
    assert preview_captions(at) == ["After epoch 2, on validation images: photo · your mask · the model's mask"]
    table = history_table(at)
    assert list(table["run"]) == [run.id] and list(table["status"]) == ["finished"]
    [happened] = list(table["what happened"])
    assert happened.startswith("2 of 2 epochs in ") and ", all done; ~" in happened and happened.endswith(" an epoch")
    before = len(charts(at))
    at.multiselect(key="train_compare").select(run.id).run()
    assert len(charts(at)) == before + 2
    overlay = chart_titled(at, "Validation dice")
    assert [r["epoch"] for r in overlay] == [1, 2] and len({r["run"] for r in overlay}) == 1


def history_table(at: AppTest):
    [table] = [d.value for d in at.dataframe if "run" in d.value.columns]
    return table


def test_the_latest_run_says_which_masks_changed_since_and_lists_its_images(trained_project, monkeypatch):
    run = trained_project.runs.list()[0]
    at = open_train(trained_project, monkeypatch)
    assert "No mask has changed since this run." in [c.value for c in at.caption]
    assert not at.info or "changed or added" not in " ".join(i.value for i in at.info)
    [images] = [d.value for d in at.dataframe if "mask now" in d.value.columns]
    assert len(images) == len(run.split.train_ids) + len(run.split.val_ids)
    assert set(images["mask now"]) == {"the same"} and sorted(set(images["used for"])) == ["training", "validation"]
    assert "The 6 images this run learned from and checked on" in [e.label for e in at.expander]

    changed = trained_project.image(run.split.val_ids[0])   # another tab saves a mask: a rerun shows it
    trained_project.masks.save(changed.id, 1 - trained_project.masks.load(changed), changed.mask_version)
    at.run()
    assert ("1 mask changed or added since this run (1 changed). Train again to learn from them."
            in [i.value for i in at.info])
    [images] = [d.value for d in at.dataframe if "mask now" in d.value.columns]
    row = images[images["image"] == changed.filename].iloc[0]
    assert (row["used for"], row["mask now"]) == ("validation", "changed (version 2 now)")


def test_a_failed_run_shows_its_error_and_the_worker_log(trained_project, monkeypatch):
    run = trained_project.runs.create(TrainConfig().to_dict())
    trained_project.runs.update(run.id, status="failed", error="Training ran out of memory. Use a smaller image size.")
    (trained_project.layout.runs_dir / run.id / "worker.log").write_text("Traceback: ResourceExhaustedError OOM\n")
    at = open_train(trained_project, monkeypatch)
    assert "This run failed: Training ran out of memory" in texts(at)
    assert "ResourceExhaustedError OOM" in at.code[0].value
    assert not has_button(at, "train_resume")  # no finished epoch to go on from
    table = history_table(at)
    assert list(table[table["run"] == run.id]["error"]) == ["Training ran out of memory. Use a smaller image size."]


def test_start_a_tiny_run_from_the_page_and_watch_it_finish(trained_project, monkeypatch):
    # The person picks the plain U-Net: the tiny form's depth and filters are its settings (the photo preset's
    # Lite0 start from the page is the browser test's).
    at = open_train(trained_project, monkeypatch)
    at.selectbox(key="train_fast_model").set_value("unet").run()
    at = fill_tiny_form(at)
    assert ": 2 epochs at ~" in texts(at)
    fit = at.selectbox(key="train_fast_resize")
    assert fit.value == planning.app_preset("fast", photos=True).resize
    fit.set_value("squash").run()
    at.selectbox(key="train_fast_precision").set_value("float32").run()   # bfloat16 would be emulated on most CPUs
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    runs = trained_project.runs.list()
    assert len(runs) == 2 and runs[0].active
    new = runs[0]
    names = ("image_size", "crop_size", "depth", "epochs", "time_budget_minutes", "preset", "resize", "precision",
             "model", "base_filters")
    assert tuple(new.config[n] for n in names) == (32, None, 2, 2, None, "fast", "squash", "float32", "unet", 4)
    assert "Training now" in [h.value for h in at.subheader]
    assert at.get("progress") and has_button(at, "train_stop") and not has_button(at, "train_start")

    final = wait_for(lambda: (r := jobs.refresh_run(trained_project, new.id)).status not in ("queued", "running")
                     and r, "the tiny run to end")
    assert final.status == "completed", jobs.worker_log(trained_project, new.id)
    at.run()
    assert "Latest run" in [h.value for h in at.subheader] and f"Run {new.id}" in texts(at)
    assert "finished" in texts(at) and has_button(at, "train_start")
    assert " · on CPU, float32 · " in texts(at)   # what the run computed in
    loss = chart_titled(at, "Loss")
    assert {r["epoch"] for r in loss} == {1, 2} and {r["series"] for r in loss} == {"train", "validation"}
    assert preview_captions(at)[0].startswith("After epoch 2")
    assert list(history_table(at)["status"]) == ["finished", "finished"]


def test_stop_then_resume_a_real_run_seen_from_a_fresh_session(trained_project, monkeypatch):
    config = TrainConfig(image_size=32, base_filters=4, depth=2, epochs=10_000, batch_size=4,
                         early_stopping_patience=0, xla=False)   # the XLA compile is not what this test is about
    run = jobs.start(trained_project, config)
    try:
        wait_for(lambda: trained_project.runs.epoch_metrics(run.id), "the first epoch")
        # A new browser session (a reopened tab) sees the run from the database alone.
        at = open_train(trained_project, monkeypatch)
        assert "Training now" in [h.value for h in at.subheader] and f"Run {run.id}" in texts(at)
        assert "Epoch" in at.get("progress")[0].proto.text
        at.button(key="train_stop").click().run()
        assert trained_project.runs.stop_requested(run.id)
        assert at.button(key="train_stop").disabled
        wait_for(lambda: jobs.refresh_run(trained_project, run.id).status == "stopped", "the run to stop")
        at.run()
        assert "Stopped" in texts(at)
        at.button(key="train_resume").click().run()
        assert not at.exception, at.exception
        assert trained_project.runs.get(run.id).active and "Training now" in [h.value for h in at.subheader]
        # Stop pressed while the resumed worker is still starting is kept, not cleared by the worker as it starts.
        at.button(key="train_stop").click().run()
        wait_for(lambda: jobs.refresh_run(trained_project, run.id).status == "stopped", "the resumed run to stop")
    finally:
        jobs.stop(trained_project, run.id, wait_s=60)
    assert not jobs.refresh_run(trained_project, run.id).active


def test_keep_learning_is_turned_on_and_set_on_the_page(trained_project, monkeypatch):
    from seg_core.services import keep_learning

    at = open_train(trained_project, monkeypatch)
    assert "Keep learning is off." in [c.value for c in at.caption]
    [toggle] = [t for t in at.toggle if t.label.startswith("Train again by itself")]
    toggle.set_value(True).run()
    assert keep_learning.setting(trained_project).on
    assert any(c.value.startswith("Keep learning is on: 0 of 5 changed or new masks") for c in at.caption)
    [every] = [n for n in at.number_input if n.label == "After this many saved masks"]
    every.set_value(3).run()
    assert keep_learning.setting(trained_project) == keep_learning.Setting(True, 3, 2.0)
    assert any(c.value.startswith("Keep learning is on: 0 of 3") for c in at.caption)
    keep_learning.change(trained_project, on=False)   # another tab turns it off: this one shows it on its next run
    at.run()
    assert "Keep learning is off." in [c.value for c in at.caption]
    assert [t.value for t in at.toggle if t.label.startswith("Train again by itself")] == [False]
