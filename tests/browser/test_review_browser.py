"""Predict & review in a real browser: a model still opens after a class was added, the image named in the address
opens, while another image is being predicted the last one's mask is not on screen as if it were the new one's, and
'How good' leads with the object's IoU."""

from __future__ import annotations

import numpy as np
from playwright.sync_api import expect

from browser_helpers import shot, wait_idle
from helpers import png_bytes

# Every mutation of the page, recorded as it happens: which images' masks are on screen, and the spinner's text.
RECORD = """() => {
  window.__seen = [];
  const look = () => window.__seen.push({
    masks: [...document.querySelectorAll('[data-testid="stImageCaption"]')].map(e => e.innerText)
             .filter(t => t.includes("the model's mask")),
    spinner: [...document.querySelectorAll('[data-testid="stSpinner"]')].map(e => e.innerText).join(" ")});
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true});
}"""


def test_the_addressed_image_opens_and_a_new_image_never_shows_the_last_ones_mask(app_server, page, trained_project):
    trained_project.add_class("collar", "#4363d8")   # after the model was trained: it has not learned it
    first = trained_project.image(trained_project.image_ids()[-1])
    # A large photo, so that predicting it takes a while (its heat map and overlay at full size).
    ramp = np.linspace(0, 255, 3000, dtype=np.uint8)
    big = trained_project.add_image(png_bytes(np.dstack([np.tile(ramp, (2000, 1))] * 3)), "big.png").image
    page.goto(f"{app_server.url}/review?project={trained_project.path.name}&image={first.id}")
    expect(page.get_by_text(f"{first.filename}: the model's mask")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("This model has not learned the class 'collar' yet")).to_be_visible()
    wait_idle(page)
    assert f"image={first.id}" in page.url
    shot(page, "review_addressed_image")

    page.evaluate(RECORD)
    box = page.locator(".st-key-review_image_id input")
    box.click()
    box.fill("big.png")
    box.press("Enter")
    expect(page.get_by_text(f"Predicting {big.filename}...")).to_be_visible(timeout=60_000)
    shot(page, "review_predicting_next_image")
    expect(page.get_by_text(f"{big.filename}: the model's mask")).to_be_visible(timeout=120_000)
    wait_idle(page)
    seen = page.evaluate("() => window.__seen")
    old = f"{first.filename}: the model's mask"
    new = f"{big.filename}: the model's mask"
    arrived = next(i for i, s in enumerate(seen) if new in s["masks"])
    assert any(not s["masks"] for s in seen[:arrived]), "the last image's mask stayed until the new one replaced it"
    predicting = [s for s in seen if f"Predicting {big.filename}" in s["spinner"]]
    assert predicting and not any(old in s["masks"] for s in predicting)
    assert f"image={big.id}" in page.url

    page.get_by_text("How good is the model", exact=True).click()
    expect(page.get_by_text("IoU of 'object'")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("1 image measured (")).to_be_visible()
    wait_idle(page)
    shot(page, "review_how_good")
