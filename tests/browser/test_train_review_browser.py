"""The loop in a real browser: train from the Train page, watch the chart, see the overlay, correct in Annotate."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser_helpers import open_expander, shot, wait_idle
from seg_core.ml import precision
from seg_core.services import demo, planning


def set_number(page, key: str, value) -> None:
    open_expander(page, "Advanced settings")
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")
    expect(box).to_have_value(re.compile(rf"^{value}(\.0+)?$"))
    wait_idle(page)


def test_train_watch_review_and_send_to_annotate(app_server, page, workspace):
    project = demo.create_demo_project(workspace / "demo", count=8, unlabeled=2)
    page.goto(f"{app_server.url}/train?project=demo")
    expect(page.get_by_role("heading", name="New run")).to_be_visible()
    # The photo `fast` preset (Lite0 from ImageNet): what its 5-minute budget allows, in epochs and an epoch's time.
    epochs = planning.app_preset("fast", photos=True).epochs
    expect(page.get_by_text(re.compile(rf"5 minutes, the time budget: about \d+ of {epochs} epochs at ~"))).to_be_visible()
    expect(page.locator(".st-key-train_fast_lite0_pretrained input")).to_be_checked()
    wait_idle(page)
    shot(page, "train_0_estimate")
    # A tiny network, so the test trains in seconds; the page itself is what is tested.
    for key, value in (("depth", 2), ("image_size", 32), ("crop_size", 0), ("base_filters", 4), ("epochs", 3),
                       ("time_budget_minutes", 0), ("batch_size", 4)):
        set_number(page, f"train_fast_{key}", value)
    expect(page.get_by_text(re.compile(r"Estimated time on this machine: .*: 3 epochs at ~"))).to_be_visible()
    expect(page.locator(".st-key-train_start button")).to_be_enabled()
    expect(page.get_by_text(precision.auto_note())).to_be_visible()   # what "Automatic" precision does here
    shot(page, "train_1_ready")
    page.locator(".st-key-train_start button").click()

    expect(page.get_by_role("heading", name="Training now")).to_be_visible(timeout=120_000)
    # The live panel redraws by itself: the charts appear once the first epoch is in.
    expect(page.locator("[data-testid='stVegaLiteChart']").first).to_be_visible(timeout=240_000)
    assert project.runs.epoch_metrics(project.runs.list()[0].id)   # drawn from these rows
    shot(page, "train_2_live")
    # What happened, in the estimate's terms.
    expect(page.get_by_text(re.compile(r"Finished: 3 of 3 epochs in .+, all done; ~.+ an epoch"))).to_be_visible(
        timeout=240_000)
    run = project.runs.list()[0]
    assert run.status == "completed" and len(project.runs.epoch_metrics(run.id)) == 3
    expect(page.get_by_text(f"on CPU, {precision.WORDS[precision.cpu_precision()]}", exact=False)).to_be_visible()
    expect(page.locator("[data-testid='stVegaLiteChart']").nth(1)).to_be_visible()
    wait_idle(page)
    shot(page, "train_3_finished")
    history = page.get_by_role("heading", name="Run history")
    history.scroll_into_view_if_needed()
    expect(page.locator("[data-testid='stDataFrame']").last).to_be_visible()   # the history, under the run's images
    shot(page, "train_4_history")

    page.locator("[data-testid='stSidebarNav']").get_by_text("Predict & review", exact=True).click()
    expect(page.get_by_role("heading", name="Predict & review")).to_be_visible()
    expect(page.get_by_text("the model's mask").first).to_be_visible(timeout=120_000)
    expect(page.locator("[data-testid='stImage'] img").nth(1)).to_be_visible()   # the overlay and the heat map
    wait_idle(page)
    shot(page, "review_1_overlay")

    unlabeled = project.image_ids(status="unlabeled")[0]
    page.get_by_label("Status").first.click()
    page.get_by_role("option", name="unlabeled").click()
    expect(page.get_by_role("combobox", name=re.compile(r"^Image"))).to_have_value(
        f"{project.image(unlabeled).filename} · unlabeled · train")
    wait_idle(page)
    page.get_by_role("button", name="Correct in Annotate").first.click()
    expect(page.get_by_role("heading", name="Annotate")).to_be_visible()
    expect(page.get_by_text("Unsaved strokes", exact=True)).to_be_visible()
    wait_idle(page)
    draft = project.drafts.get(unlabeled)
    assert draft is not None and draft.source == "prediction"
    shot(page, "review_2_sent_to_annotate")
    page.locator(".st-key-annotate_save button").click()
    expect(page.get_by_text("Saved the mask")).to_be_visible()
    rec = project.image(unlabeled)
    assert rec.status == "labeled" and rec.mask_source == "corrected"
