"""Helpers for browser tests: waiting for Streamlit to settle, waiting for a condition, screenshots as artifacts.

Every assertion on something that appears asynchronously waits for it: Playwright's expect() for the page, and
wait_until() for what the app writes to disk. Nothing is read once right after an action.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image
from playwright.sync_api import Error as PlaywrightError, TimeoutError as PlaywrightTimeoutError, expect

from helpers import ARTIFACTS

T = TypeVar("T")


def wait_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished the current script run (no 'Running...' status widget).

    A rerun that has not started yet looks idle too: use it to let the page settle, never as the proof that an
    action took effect (wait for the effect itself).
    """
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def settle(page, quiet_ms: int = 700) -> None:
    """Let the page finish every rerun under way before a click that must land: a button clicked while its row is
    being redrawn can miss (a rerun's status shows only after a moment, so idle is checked again after a pause)."""
    wait_idle(page)
    page.wait_for_timeout(quiet_ms)
    wait_idle(page)


def wait_until(page, check: Callable[[], T], what: str, timeout_ms: int = 30_000) -> T:
    """Poll `check` (e.g. a file the app writes) until it returns something true; fail saying `what` after the
    timeout. The page keeps running meanwhile."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_ms / 1000:.0f} s waiting for {what}")
        page.wait_for_timeout(150)


def wait_text(page, text: str, timeout_ms: int = 30_000) -> None:
    expect(page.get_by_text(text).first).to_be_visible(timeout=timeout_ms)
    wait_idle(page)


def open_expander(page, label: str) -> None:
    """Open a Streamlit expander and see it open: a rerun that lands just after the click can draw it closed again,
    so click only while it is closed, until it stays open."""
    details = page.locator("[data-testid='stExpander'] details").filter(has_text=label).first
    expect(details).to_be_visible()

    def opened() -> bool:
        if details.get_attribute("open") is None:
            details.locator("summary").click()
        wait_idle(page)
        page.wait_for_timeout(300)
        return details.get_attribute("open") is not None

    wait_until(page, opened, f"the '{label}' section to open")


def pick(page, key: str, option: str) -> None:
    """Choose an option of the selectbox with this key, and see it chosen."""
    box = page.locator(f".st-key-{key} input")
    expect(box).to_be_visible()
    wait_idle(page)
    choice = page.get_by_role("option", name=option, exact=True)

    def opened() -> bool:   # a rerun landing just after the click closes the list again: click until it shows
        try:
            expect(choice).to_be_visible(timeout=3_000)
            return True
        except AssertionError:
            wait_idle(page)
            box.click()
            return False

    def chose() -> bool:   # the list can move under the pointer as the page redraws: click again until it took
        wait_until(page, opened, f"the options of '{key}' to show")
        try:
            choice.click(timeout=5_000)
        except PlaywrightTimeoutError:
            return False
        return box.input_value() == option

    box.click()
    wait_until(page, chose, f"'{option}' chosen in '{key}'")
    expect(box).to_have_value(option)
    wait_idle(page)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def create_project(page, url: str, name: str) -> None:
    """Create a project with the Home page's form, as a person would."""
    page.goto(url)
    name_box = page.get_by_label("Name", exact=True)
    expect(name_box).to_be_visible()
    wait_idle(page)
    name_box.fill(name)
    name_box.press("Enter")
    expect(page.get_by_role("button", name="Create project")).to_be_enabled()
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_text(f"Created '{name}'")).to_be_visible()
    wait_idle(page)


# ----- the Annotate page's canvas -------------------------------------------------------------------------
CANVAS = "canvas.upper-canvas"


def open_page(page, app_server, title: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()
    wait_idle(page)


def settle_canvas(page):
    """The canvas mounts, sends its background fit and reruns once: wait until one canvas stays put."""
    last = None

    def steady():
        nonlocal last
        expect(page.locator(CANVAS).first).to_be_visible()
        wait_idle(page)
        page.wait_for_timeout(500)
        box = page.locator(CANVAS).first.bounding_box()
        steady_box, last = (box if box is not None and box == last else None), box
        return steady_box

    return wait_until(page, steady, "the canvas to stop moving", timeout_ms=60_000)


def canvas_box(page) -> dict:
    """Where the canvas is now. A rerun can replace the element between finding it and measuring it (the box reads
    None then): it is looked up again until one stays long enough to be measured."""
    def measured():
        expect(page.locator(CANVAS).first).to_be_visible()
        return page.locator(CANVAS).first.bounding_box()

    return wait_until(page, measured, "the canvas to be measurable")


def choose(page, group: str, label: str, exact: bool = True) -> None:
    """Pick a radio option; the canvas gets its new tool or colour a moment after the rerun ends."""
    page.locator(f".st-key-{group}").get_by_text(label, exact=exact).click()
    expect(page.locator(f".st-key-{group} input[type='radio']:checked")).to_have_count(1)
    settle(page)


def drag(page, points) -> None:
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p, steps=4)
    page.mouse.up()


def canvas_pixels(page, tries: int = 5) -> np.ndarray:
    """What the person sees in the canvas (background and strokes), as RGB.

    A rerun can replace the canvas element between finding it and taking the picture: then it is looked up again.
    """
    for attempt in range(tries):
        try:
            shot_bytes = page.locator(CANVAS).first.screenshot()
            break
        except PlaywrightError as exc:
            if "not attached" not in str(exc) or attempt == tries - 1:
                raise
            page.wait_for_timeout(200)
    return np.asarray(Image.open(io.BytesIO(shot_bytes)).convert("RGB"))
