"""Helpers for browser tests: waiting for Streamlit to settle, screenshots kept as artifacts."""

from __future__ import annotations

from pathlib import Path

from helpers import ARTIFACTS


def wait_idle(page, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit has finished the current script run (no 'Running...' status widget)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def create_project(page, url: str, name: str) -> None:
    """Create a project with the Home page's form, as a person would."""
    page.goto(url)
    page.get_by_label("Name", exact=True).wait_for()
    wait_idle(page)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Name", exact=True).press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Create project").click()
    page.get_by_text(f"Created '{name}'").wait_for()
    wait_idle(page)
