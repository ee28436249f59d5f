"""The app in a real browser: the Home page lists the demo project made by `segstudio demo`."""

from __future__ import annotations

from seg_core import demo

from browser_helpers import shot, wait_idle


def test_home_lists_the_demo_project_and_opens_it(app_server, page, workspace):
    demo.create_demo_project(workspace / "demo", count=12)
    page.goto(app_server.url)
    page.get_by_text("Seg Studio", exact=True).first.wait_for()
    page.get_by_text("demo", exact=True).first.wait_for()
    wait_idle(page)
    assert page.get_by_text("12 images · 10 labeled · 2 unlabeled · binary").is_visible()
    shot(page, "home_demo_listed")
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Open", exact=True).click()
    page.get_by_text("open", exact=True).wait_for()
    wait_idle(page)
    assert "project=demo" in page.url
    shot(page, "home_demo_open")


def test_home_creates_a_project_in_the_browser(app_server, page, workspace):
    page.goto(app_server.url)
    page.get_by_label("Name", exact=True).wait_for()
    wait_idle(page)
    page.get_by_label("Name", exact=True).fill("my-cells")
    page.get_by_label("Name", exact=True).press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Create project").click()
    page.get_by_text("my-cells", exact=True).first.wait_for()
    wait_idle(page)
    assert (workspace / "my-cells" / "project.db").is_file()
    shot(page, "home_created")
