"""Home page logic through Streamlit's AppTest: listing, creating a project, opening the demo."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from helpers import ROOT, page_texts
from seg_core.classes import default_classes
from seg_core.store.project import Project
from seg_core.store.workspace import new_project


@pytest.fixture
def app(monkeypatch):
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    return at


texts = page_texts


def test_empty_workspace_invites_to_demo_or_create(app, workspace):
    app.run()
    assert not app.exception
    assert "No projects in" in texts(app)
    assert any(b.label == "Open the demo (binary)" for b in app.button)


def test_projects_are_listed_with_counts(app, workspace):
    p = new_project(workspace / "leaves", default_classes(["background", "leaf", "spot"]))
    from helpers import photo, png_bytes
    p.add_image(png_bytes(photo()), "a.png")
    app.run()
    assert "**leaves**" in texts(app)
    assert "1 images · 0 labeled · 1 unlabeled · multi-class" in texts(app)


def test_create_project_from_the_form(app, workspace):
    app.run()
    app.text_input(key="new_name").input("cells")
    app.radio(key="new_kind").set_value("Several classes (multi-class)").run()
    app.number_input(key="new_count").set_value(3).run()
    app.text_input(key="new_class_name_1").input("nucleus")
    app.text_input(key="new_class_name_2").input("membrane")
    app.color_picker(key="new_class_color_2").pick("#00ff00")
    next(b for b in app.button if b.label == "Create project").click().run()
    assert not app.exception and not app.error
    proj = Project(workspace / "cells")
    assert [(c.name, c.hex) for c in proj.classes][1:] == [("nucleus", "#e6194b"), ("membrane", "#00ff00")]
    assert app.session_state["project_path"] == str(proj.path)
    assert "Created 'cells'" in app.success[0].value
    assert app.text_input(key="new_name").value == ""
    assert "**cells**" in texts(app)


def test_after_creating_a_project_the_form_is_empty_and_says_so_at_its_top(app, workspace):
    app.run()
    app.text_input(key="new_name").input("pets")
    app.radio(key="new_kind").set_value("Several classes (multi-class)").run()
    app.text_input(key="new_class_name_1").input("cat")
    app.text_input(key="new_class_name_2").input("dog")
    app.color_picker(key="new_class_color_2").pick("#00ff00")
    next(b for b in app.button if b.label == "Create project").click().run()
    assert not app.exception and not app.warning
    assert [c.name for c in Project(workspace / "pets").classes] == ["background", "cat", "dog"]
    # The confirmation comes before the form's first field, where the person is looking.
    shown = [e for e in app.main if type(e).__name__ in ("Success", "TextInput")]
    assert type(shown[0]).__name__ == "Success" and "Created 'pets'" in shown[0].value
    assert shown[1].key == "new_name" and shown[1].value == ""
    assert app.radio(key="new_kind").value == "One kind of thing (binary)"
    assert app.text_input(key="new_class_name_1").value == "object"
    assert app.color_picker(key="new_class_color_1").value == "#e6194b"
    # A refused name keeps what was typed, with the reason on top.
    app.text_input(key="new_name").input("pets").run()
    app.text_input(key="new_class_name_1").input("pet").run()
    next(b for b in app.button if b.label == "Create project").click().run()
    assert "A project already exists" in app.error[0].value
    assert app.text_input(key="new_name").value == "pets" and app.text_input(key="new_class_name_1").value == "pet"


def test_create_project_shows_clear_error_for_bad_input(app, workspace):
    app.run()
    app.text_input(key="new_name").input("../escape").run()
    next(b for b in app.button if b.label == "Create project").click().run()
    assert app.error and "cannot be a project name" in app.error[0].value
    assert list(workspace.iterdir()) == []


def test_open_demo_creates_and_opens_it(app, workspace):
    app.run()
    next(b for b in app.button if b.label == "Open the demo (binary)").click().run()
    assert not app.exception
    assert (workspace / "demo" / "project.db").is_file()
    assert app.session_state["project_path"] == str(workspace / "demo")
    assert "60 images · 50 labeled · 10 unlabeled" in texts(app)


def test_delete_asks_first_then_removes_the_project(app, workspace):
    new_project(workspace / "keep")
    new_project(workspace / "gone")
    app.run()
    app.button(key="home_delete_gone").click().run()
    assert "Delete **gone** with its 0 images" in texts(app) and (workspace / "gone").exists()
    app.button(key="home_cancel_gone").click().run()
    assert "Delete **gone**" not in texts(app) and (workspace / "gone").exists()
    app.button(key="home_delete_gone").click().run()
    app.button(key="home_confirm_gone").click().run()
    assert not app.exception and "Deleted 'gone'." in texts(app)
    assert not (workspace / "gone").exists() and (workspace / "keep").exists()
    assert "**gone**" not in texts(app)


def test_a_bare_link_opens_the_project_this_person_used_last(workspace, monkeypatch):
    from helpers import open_app_page

    monkeypatch.chdir(ROOT)
    pets, _ = new_project(workspace / "pets"), new_project(workspace / "cells")

    def session(person: str | None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        if person:
            at.session_state["signin_user"] = person   # who current_user() says is working
        return at

    first = session("ann")
    open_app_page(first, "data", pets)               # ann works in pets
    assert "**pets**" in texts(first)
    again = open_app_page(session("ann"), "data")   # a new tab, no ?project=: pets again
    assert "**pets**" in texts(again) and again.query_params["project"] == "pets"
    other = open_app_page(session("bob"), "data")   # someone else is not sent to ann's project
    assert "No project is open" in other.info[0].value
