"""The review queue in a real browser, driven by its keys as a person would: s skips, the left arrow goes back, a
accepts (the next proposal shows at once), f opens the proposal on the Annotate page."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser_helpers import shot, wait_idle, wait_until
from seg_core.ml.inference import Predictor
from seg_core.services import review, snapping


def _head(page, name: str):
    return page.get_by_text(f"{name}: the model's proposal", exact=True)


def test_the_queue_is_worked_with_its_keys(app_server, page, trained_project):
    run = trained_project.runs.best().id
    snapping.predict_unlabeled(trained_project, Predictor.from_run(trained_project))
    order = [r.image_id for r in review.annotate_next(trained_project, run)]
    first, second = (trained_project.image(i).filename for i in order)
    page.goto(f"{app_server.url}/review?project={trained_project.path.name}")
    page.get_by_text("What to fix next", exact=True).click()
    expect(_head(page, first)).to_be_visible(timeout=120_000)
    wait_idle(page)
    # As a person would, after picking the section: a click on the page, so the keys go to it, not the radio.
    page.get_by_role("heading", name="Review queue").click()
    shot(page, "review_queue_first")

    page.keyboard.press("s")
    expect(_head(page, second)).to_be_visible()
    # A key works on a button a person can see enabled: the picture can arrive before the buttons are redrawn.
    expect(page.get_by_role("button", name=re.compile("^Previous"))).to_be_enabled()
    wait_idle(page)
    page.keyboard.press("ArrowLeft")
    expect(_head(page, first)).to_be_visible()
    wait_idle(page)
    page.keyboard.press("a")
    expect(page.get_by_text(f"Accepted the proposal as the mask of {first} (version 1).")).to_be_visible()
    expect(_head(page, second)).to_be_visible()
    expect(page.get_by_text("1 in the queue")).to_be_visible()
    rec = wait_until(page, lambda: (r := trained_project.image(order[0])).status == "labeled" and r,
                     "the accepted mask saved")
    assert rec.mask_source == "accepted"
    wait_idle(page)
    shot(page, "review_queue_after_accept")

    page.keyboard.press("f")
    expect(page.get_by_role("heading", name="Annotate")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Loaded the prediction")).to_be_visible()
    draft = wait_until(page, lambda: trained_project.drafts.get(order[1]), "the proposal opened as a draft")
    assert draft.source == "prediction"
    tally = trained_project.outcomes.tally(run)
    assert (tally.accepted, tally.fixed, tally.skipped) == (1, 1, 1)
    shot(page, "review_queue_fix_opens_annotate")
