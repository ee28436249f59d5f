"""How pages show what went wrong: a person's mistake as its sentence; a bug logged with its traceback, never
swallowed by a page as if it were a person's mistake."""

from __future__ import annotations

import logging

import pytest
from streamlit.testing.v1 import AppTest

from helpers import ROOT, open_app_page
from seg_core.classes import binary_classes
from seg_core.store.project import Project
from seg_core.store.workspace import new_project


def _page_showing(root: str, error: str) -> None:
    import sys

    sys.path.insert(0, root)
    from app_pages.widgets import show_error
    from seg_core.errors import SegError

    try:
        if error == "bug":
            {}["a key nobody wrote"]
        raise SegError("That name is taken: choose another.")
    except Exception as exc:
        show_error(exc)


@pytest.mark.parametrize("error", ["bug", "mistake"])
def test_a_bug_is_logged_with_its_traceback_and_a_mistake_is_only_shown(error, caplog):
    at = AppTest.from_function(_page_showing, args=(str(ROOT), error), default_timeout=30)
    with caplog.at_level(logging.ERROR, logger="app_pages"):
        at.run()
    [shown] = at.error
    logged = [r for r in caplog.records if r.name.startswith("app_pages")]
    if error == "bug":
        assert "Something went wrong inside Maskloop (KeyError" in shown.value and "please report" in shown.value
        assert len(logged) == 1 and logged[0].exc_info[0] is KeyError
        assert "a key nobody wrote" in caplog.text and "Traceback" in caplog.text
    else:
        assert shown.value.startswith("That name is taken") and "went wrong" not in shown.value and logged == []


def test_a_bug_in_a_button_is_not_taken_for_a_persons_mistake(workspace, monkeypatch):
    project = new_project(workspace / "p", binary_classes())
    monkeypatch.chdir(ROOT)

    def broken(self, name, color=None):
        raise RuntimeError("a bug in adding a class")

    monkeypatch.setattr(Project, "add_class", broken)
    at = open_app_page(AppTest.from_file(str(ROOT / "app.py"), default_timeout=60), "data", project)
    at.text_input(key="data_new_class_name").input("spot")
    at.button(key="data_add_class").click().run()
    assert len(at.exception) == 1 and not at.error   # Streamlit's own error box (it logs the traceback), not ours
    assert [c.name for c in project.classes] == ["background", "object"]
