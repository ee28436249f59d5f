"""The app in a real browser: the Home page lists projects, opens them, shows the demo, creates a project."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from browser_helpers import shot, wait_idle
from seg_core.services import demo
from seg_core.store.workspace import new_project


def test_single_demo_project_is_listed_and_opened_with_previews(app_server, page, workspace):
    demo.create_demo_project(workspace / "demo", count=12)
    page.goto(app_server.url)
    expect(page.get_by_text("12 images · 10 labeled · 2 unlabeled · binary")).to_be_visible()
    expect(page.get_by_text("A look at")).to_be_visible()
    expect(page.locator("[data-testid='stImage'] img")).to_have_count(6)
    expect(page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox'] input")).to_have_value("demo")
    expect(page).to_have_url(re.compile(r"[?&]project=demo"))
    wait_idle(page)
    shot(page, "home_demo_open")


def test_open_switches_project_survives_reload_and_a_bare_link_opens_it(app_server, page, workspace):
    demo.create_demo_project(workspace / "demo", count=6)
    new_project(workspace / "other")
    page.goto(app_server.url)
    expect(page.locator(".st-key-open_demo button")).to_be_enabled()
    wait_idle(page)
    page.locator(".st-key-open_demo button").click()
    expect(page.get_by_text("A look at")).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]project=demo"))
    wait_idle(page)
    page.reload()
    expect(page.get_by_text("A look at")).to_be_visible()
    expect(page.locator(".st-key-open_demo button")).to_be_disabled()
    expect(page.locator(".st-key-open_other button")).to_be_enabled()
    shot(page, "home_two_projects")
    # A bare link, as typed or bookmarked, in a new session: the project used last, not "No project is open".
    page.goto(f"{app_server.url}/train")
    expect(page.get_by_role("heading", name="Train")).to_be_visible()
    expect(page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox'] input")).to_have_value("demo")
    expect(page).to_have_url(re.compile(r"/train\?(.*&)?project=demo"))
    wait_idle(page)
    expect(page.get_by_text("No project is open")).to_have_count(0)
    shot(page, "bare_train_link_opens_last_project")


def test_home_creates_a_project_in_the_browser(app_server, page, workspace):
    demo.create_demo_project(workspace / "demo", count=6)   # open, with its previews: the form is further down
    new_project(workspace / "other")
    page.goto(f"{app_server.url}/?project=demo")
    name_box = page.get_by_label("Name", exact=True)
    expect(page.get_by_text("A look at")).to_be_visible()
    wait_idle(page)
    name_box.fill("pets")
    name_box.press("Enter")
    pet = page.get_by_label("Class 1 name")
    pet.fill("pet")
    pet.press("Enter")
    create = page.get_by_role("button", name="Create project")
    expect(create).to_be_enabled()
    create.scroll_into_view_if_needed()
    wait_idle(page)
    create.click()
    done = page.get_by_text("Created 'pets'")
    expect(done).to_be_in_viewport()   # said where the person is looking, above the form's first field
    assert (workspace / "pets" / "project.db").is_file()   # written before the page said "Created"
    assert done.bounding_box()["y"] < name_box.bounding_box()["y"]
    expect(name_box).to_have_value("")
    expect(pet).to_have_value("object")   # the whole form is empty again
    wait_idle(page)
    shot(page, "home_created")
