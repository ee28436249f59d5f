"""The Data page in a real browser: a mask stays visible on a photo of its own colour, and the Classes tab keeps
the person on it while they add and remove classes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from browser_helpers import shot, wait_idle
from helpers import png_bytes
from seg_core.classes import binary_classes
from seg_core.store.workspace import new_project


def red_pet_project(workspace):
    """One photo of a red sofa with a 'pet' painted in the default pet colour (a crimson)."""
    project = new_project(workspace / "pets", classes=binary_classes("pet"))
    yy, xx = np.mgrid[:120, :160]
    red = np.zeros((120, 160, 3), np.uint8)
    red[..., 0] = 200 + (xx % 7) * 3
    red[..., 1] = 20 + (yy % 5) * 4
    red[..., 2] = 40
    rec = project.add_image(png_bytes(red), "sofa.png").image
    ids = np.zeros((120, 160), np.uint8)
    ids[30:90, 40:120] = 1
    project.masks.save(rec.id, ids, rec.mask_version, source="painted")
    return project


def main_block(page):
    return page.locator("[data-testid='stMain'] [data-testid='stVerticalBlock']").first


def classes_tab_is_open(page):
    expect(page.get_by_role("tab", name="Classes")).to_have_attribute("aria-selected", "true")


def test_gallery_outlines_masks_and_classes_tab_stays_open(app_server, page, workspace):
    project = red_pet_project(workspace)
    page.goto(f"{app_server.url}/data?project=pets")
    tile = page.locator("[data-testid='stImage'] img").first
    expect(tile).to_be_visible()
    wait_idle(page)
    # The thumbnail the browser shows has black and white dashes along the pet's edge: the crimson alone would
    # hardly show on the red sofa.
    shown = np.asarray(Image.open(io.BytesIO(tile.screenshot())).convert("L"))[6:-6, 6:-6]   # inside its corners
    assert (shown < 40).sum() > 20 and (shown > 215).sum() > 20, "no outline around the mask in the gallery"
    shot(page, "data_gallery_outlined")

    page.get_by_role("tab", name="Classes").click()
    classes_tab_is_open(page)
    name_box = page.get_by_label("New class name")
    name_box.fill("toy")
    name_box.press("Enter")
    wait_idle(page)
    page.locator(".st-key-data_add_class button").click()
    expect(page.get_by_text("Added class 2, 'toy'")).to_be_visible()
    classes_tab_is_open(page)
    expect(name_box).to_have_value("")   # ready for the next class
    # Nothing was written above the page's title by accident (a callback's stray expression).
    expect(main_block(page).locator("h1").first).to_have_text("Data")
    expect(main_block(page).get_by_text("None", exact=True)).to_have_count(0)
    assert [c.name for c in project.classes] == ["background", "pet", "toy"]
    shot(page, "data_class_added")

    name_box.fill("pet")   # taken: refused, and what was typed stays to be corrected
    name_box.press("Enter")
    wait_idle(page)
    page.locator(".st-key-data_add_class button").click()
    expect(page.get_by_text("Two classes are called 'pet'")).to_be_visible()
    classes_tab_is_open(page)
    expect(name_box).to_have_value("pet")
    shot(page, "data_class_refused")

    page.locator(".st-key-data_remove button").click()
    confirm = page.get_by_role("button", name="Confirm: remove 'pet'")
    expect(confirm).to_be_visible()
    wait_idle(page)
    confirm.click()
    expect(page.get_by_text("Removed 'pet'")).to_be_visible()
    classes_tab_is_open(page)
    expect(main_block(page).locator("h1").first).to_have_text("Data")
    expect(main_block(page).get_by_text("2", exact=True)).to_have_count(0)
    assert [c.name for c in project.classes] == ["background", "toy"]
    shot(page, "data_class_removed")
