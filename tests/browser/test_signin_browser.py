"""Sharing with a team: the real app, told to require sign-in, shows nothing of a project until a person signs in,
refuses a wrong password, and records who saved a mask."""

from __future__ import annotations

import re

import numpy as np
from playwright.sync_api import expect

from browser_helpers import CANVAS, drag, settle_canvas, shot, wait_idle, wait_text, wait_until
from helpers import png_bytes
from seg_core.classes import default_classes
from seg_core.services.signin import PasswordStore
from seg_core.store.project import Project
from seg_core.store.workspace import new_project

SECRET, IMAGE = "secret-orchids", "orchid_007.png"


def _project(workspace) -> Project:
    project = new_project(workspace / SECRET, default_classes(["background", "petal"]))
    project.add_image(png_bytes(np.full((120, 160), 120, np.uint8)), IMAGE)
    return project


def _nothing_of_the_project(page) -> None:
    wait_idle(page)
    body = page.locator("body")
    expect(body).not_to_contain_text(SECRET)
    expect(body).not_to_contain_text(IMAGE)
    expect(page.locator("[data-testid='stSidebar']")).to_have_count(0)
    expect(page.locator(CANVAS)).to_have_count(0)


def _sign_in(page, name: str, password: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_nothing_before_sign_in_then_a_save_records_the_name(signin_app_server, page, workspace):
    project = _project(workspace)
    PasswordStore().set("alice", "alice's password")
    url = signin_app_server.url

    page.goto(url)
    expect(page.get_by_role("heading", name="Sign in to Seg Studio")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    _nothing_of_the_project(page)
    shot(page, "signin_1_form")

    # A direct link to a page of the project shows the same form, and no page runs behind it.
    page.goto(f"{url}/annotate?project={SECRET}")
    expect(page.get_by_role("heading", name="Sign in to Seg Studio")).to_be_visible()
    _nothing_of_the_project(page)
    expect(page.get_by_role("heading", name="Annotate")).to_have_count(0)

    _sign_in(page, "alice", "not her password")
    wait_text(page, "Wrong name or password.")
    _nothing_of_the_project(page)
    assert project.drafts.get(1) is None and project.image(1).mask_version == 0
    shot(page, "signin_2_refused")

    _sign_in(page, "alice", "alice's password")
    expect(page.get_by_role("heading", name="Annotate")).to_be_visible()   # the page the link asked for
    expect(page.locator("[data-testid='stSidebar']").get_by_text("Signed in as alice")).to_be_visible()
    box = settle_canvas(page)
    y = box["y"] + box["height"] * 0.5
    drag(page, [(box["x"] + box["width"] * f, y) for f in (0.2, 0.35, 0.5, 0.65, 0.8)])
    wait_text(page, "Unsaved strokes")
    page.locator(".st-key-annotate_save button").click()
    wait_text(page, f"Saved the mask of {IMAGE} (version 1)")
    rec = wait_until(page, lambda: (r := project.image(1)).mask_version == 1 and r, "the saved mask in the DB")
    assert rec.mask_updated_by == "alice"
    assert project.masks.load(1)[60, 40:120].min() == 1
    expect(page.get_by_text("mask version 1 saved by alice")).to_be_visible()
    shot(page, "signin_3_saved_by_alice")

    # Signing out leaves the form, and an address bar that names no project.
    page.locator("[data-testid='stSidebar']").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Seg Studio")).to_be_visible()
    _nothing_of_the_project(page)
    expect(page).not_to_have_url(re.compile(SECRET))

    # Signed-in state lives in the tab's session: a reload asks again.
    _sign_in(page, "alice", "alice's password")
    expect(page.locator("[data-testid='stSidebar']").get_by_text("Signed in as alice")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to Seg Studio")).to_be_visible()
    _nothing_of_the_project(page)


def test_no_password_set_says_which_command_to_run(signin_app_server, page, workspace):
    _project(workspace)
    page.goto(signin_app_server.url)
    wait_text(page, "Nobody can sign in yet.")
    expect(page.get_by_text("segstudio set-password --user NAME")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)
    _nothing_of_the_project(page)
    shot(page, "signin_nothing_set_up")
