"""Names people type: class names and colours, project names. Each is accepted, then stored and shown
as typed (escaped wherever Streamlit reads Markdown, shortened where a long one would break the layout), or
refused with a sentence; a project name never makes anything be written outside the workspace."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given, strategies as st
from streamlit.testing.v1 import AppTest

from fuzzing import fuzz
from helpers import ROOT, box_mask, edit_class, photo, png_bytes
from seg_core.classes import MAX_NAME_CHARS, default_classes, parse_color
from seg_core.cli import main as cli
from seg_core.errors import ClassSpecError, ProjectError, SegError
from seg_core.store.names import check_project_name
from seg_core.store.project import Project
from seg_core.store.workspace import new_project, resolve_project_path
from seg_core.markdown import md_escape, md_name, shorten

HOSTILE = ["<img src=x onerror=alert(1)>", "**bold**", "[link](javascript:alert(1))", ":red[red] :material/home:",
           "$x^2$", "$\\frac$", "`code`", "# heading", "- item", "1. first", "a|b|c", "_under_", "back\\slash"]
ODD_BUT_FINE = ["😀 emoji", "שלום עולם", "مرحبا", "名前", "e\u0301", "zero\u200dwidth joiner", "x" * MAX_NAME_CHARS]
REFUSED = ["", "   ", "x" * 10_000, "nul\x00here", "bell\x07", "two\nlines", "tab\there", "\u202eevil", "\ud800",
           "line\u2028sep"]
# What would be Markdown or HTML if a page put the raw name into st.markdown, a label, an option or a tooltip.
RAW_TOKENS = ["<img", "**bold**", "[link](", ":red[", "$x^2$", "`code`", "_under_"]


def _sentence(exc: Exception) -> None:
    text = str(exc)
    assert len(text) > 15 and text.rstrip()[-1] in ".)", text


def _unescaped(text: str, i: int) -> bool:
    """Whether text[i] is preceded by an even number of backslashes (so Markdown reads it as syntax)."""
    n = 0
    while i - n - 1 >= 0 and text[i - n - 1] == "\\":
        n += 1
    return n % 2 == 0


@fuzz(30)
@given(st.text(max_size=40))
def test_md_escape_leaves_no_markdown_syntax_and_keeps_every_character(text):
    out = md_escape(text)
    assert re.sub(r"\\(.)", r"\1", out) == text   # dropping the escapes gives the text back
    for i, ch in enumerate(out):
        if ch in "*`[]<>~$:|#{}!" and _unescaped(out, i):
            pytest.fail(f"{ch!r} at {i} of {out!r} is not escaped")
    assert len(md_name(text * 5)) <= 2 * 40


@pytest.mark.parametrize("name", HOSTILE + ODD_BUT_FINE)
def test_an_odd_class_name_is_stored_exactly_as_typed(workspace, name):
    project = new_project(workspace / "p")
    spec = project.add_class(name)
    assert Project(project.path).classes[spec.id].name == name
    renamed = name[:MAX_NAME_CHARS - 1] + "2"
    edit_class(project, spec.id, name=renamed)
    assert project.classes[spec.id].name == renamed


@pytest.mark.parametrize("name", REFUSED)
def test_an_empty_huge_or_invisible_class_name_is_refused_with_a_sentence(workspace, name):
    project = new_project(workspace / "p")
    before = project.classes
    with pytest.raises(ClassSpecError) as err:
        project.add_class(name)
    _sentence(err.value)
    with pytest.raises(ClassSpecError):
        edit_class(project, 1, name=name)
    assert project.classes == before


@fuzz(50)
@given(st.text(st.characters(codec=None), max_size=120))
def test_any_class_name_is_stored_as_typed_or_refused_with_a_sentence(tmp_path_factory, name):
    project = new_project(tmp_path_factory.mktemp("names") / "p")
    try:
        spec = project.add_class(name)
    except ClassSpecError as exc:
        _sentence(exc)
        assert len(project.classes) == 2
    else:
        assert project.classes[spec.id].name == name.strip() == spec.name
    project.close()


colour_values = st.one_of(
    st.text(max_size=12), st.from_regex(r"#?[0-9a-fA-F]{5,7}", fullmatch=True), st.integers(),
    st.lists(st.one_of(st.integers(-5, 300), st.floats(allow_nan=True), st.text(max_size=3), st.booleans()),
             max_size=4), st.none().map(lambda _: b"\xff\x00\x00"))


@fuzz(50)
@given(colour_values)
def test_a_colour_is_three_bytes_or_refused_with_a_sentence(value):
    try:
        rgb = parse_color(value)
    except ClassSpecError as exc:
        _sentence(exc)
        return
    assert len(rgb) == 3 and all(type(v) is int and 0 <= v <= 255 for v in rgb)


def test_a_colour_that_is_not_whole_numbers_is_refused():
    for value in ([1.5, 2, 3], 123, ["a", "b", "c"], [True, 0, 0], "ff00ff00", "#ff00f", "rgb(1,2,3)"):
        with pytest.raises(ClassSpecError, match="is not a colour"):
            parse_color(value)


def _outside(root: Path, workspace: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if workspace not in p.parents and p != workspace)


PROJECT_NAMES = ["../x", "../../x", "/etc", "/tmp/evil", "con", "NUL.txt", "lpt9", "a/b", "a\\b", "nul\x00byte", ".",
                 "..", "...", "x" * 300, "😀", "weights", "trailing.", "  padded  ", "ok-name_1.2", "a..b", "~", "~root",
                 "$HOME", "-rf"]


@pytest.mark.parametrize("name", PROJECT_NAMES)
def test_a_project_name_from_the_home_form_makes_a_folder_in_the_workspace_or_is_refused(tmp_path, workspace, name):
    (tmp_path / "sentinel").mkdir()
    before = _outside(tmp_path, workspace)
    try:
        project = new_project(workspace / name.strip(), name=name.strip())   # what the Home page's form does
    except SegError as exc:
        assert isinstance(exc, ProjectError), exc
        _sentence(exc)
        assert list(workspace.iterdir()) == []
    else:
        assert project.path.parent == workspace.resolve() and project.name == name.strip()
    assert _outside(tmp_path, workspace) == before


@fuzz(40)
@given(st.text(st.characters(codec=None), max_size=80))
def test_any_project_name_is_a_folder_in_the_workspace_or_refused_with_a_sentence(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("pn")
    workspace = root / "ws"
    workspace.mkdir()
    try:
        checked = check_project_name(name)
    except ProjectError as exc:
        _sentence(exc)
        return
    project = new_project(workspace / checked, name=checked)
    assert project.path.parent == workspace.resolve()
    assert _outside(root, workspace) == []
    project.close()


@pytest.mark.parametrize("name", ["con", "weights", "x" * 300, "trailing.", "😀"])
def test_the_cli_refuses_a_bad_bare_project_name_with_a_sentence(tmp_path, workspace, capsys, name):
    assert resolve_project_path(name).parent == workspace
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(photo(8, 8)))
    for argv in (["init", "--project", name], ["import", "--project", name, "--images", str(folder)]):
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "cannot be a project name" in err and "Traceback" not in err
        assert list(workspace.iterdir()) == []


def test_the_cli_makes_a_good_bare_name_in_the_workspace(workspace, capsys):
    assert cli(["init", "--project", "a..b"]) == 0 and (workspace / "a..b" / "project.db").is_file()


# ----- pages --------------------------------------------------------------------------------------------------
def _markdown_texts(at: AppTest) -> list[tuple[str, str]]:
    """(where, text) for every string a page gave Streamlit that it renders as Markdown: bodies, labels, radio
    options, tooltips."""
    out = []
    for node in _walk(at._tree):
        kind = type(node).__name__
        for attr in ("value", "label", "help", "body"):
            v = getattr(node, attr, None) if attr != "value" or kind in _MD_ELEMENTS else None
            if isinstance(v, str):
                out.append((f"{kind}.{attr}", v))
        if kind == "Radio":
            out += [(f"{kind}.option", str(o)) for o in node.options]
    return out


_MD_ELEMENTS = {"Markdown", "Caption", "Error", "Info", "Success", "Warning", "Title", "Header", "Subheader",
                "Latex", "Toast", "Exception"}


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _check_page(at: AppTest) -> None:
    assert not at.exception, at.exception
    # The legend's own tags (editing.legend_html) hold the name in a title attribute, which Markdown never reads.
    texts = [(w, re.sub(r'<span title="[^"]*" style="[^"]*">', "", t)) for w, t in _markdown_texts(at)]
    for token in RAW_TOKENS:
        bad = [(w, t) for w, t in texts if any(_unescaped(t, m.start()) for m in re.finditer(re.escape(token), t))]
        assert not bad, f"the raw {token!r} reaches Markdown: {bad[:2]}"
    # Labels, radio options and captions are short lines; a sentence (an alert) wraps, and a tooltip has it whole.
    long = [(w, t) for w, t in texts if "x" * 60 in t and (w.endswith((".label", ".option")) or w.startswith("Caption"))]
    assert not long, f"a 100-character name is shown whole where space is tight: {long[:2]}"


def _app(monkeypatch, project: Project, page: str | None = None) -> AppTest:
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["project_path"] = str(project.path)
    if page:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    return at


PAGE_NAMES = [n for n in HOSTILE if n not in ("$\\frac$",)][:8] + ["x" * MAX_NAME_CHARS]


@pytest.fixture
def hostile_project(workspace) -> Project:
    project = new_project(workspace / "odd", default_classes(["background", *PAGE_NAMES]))
    project.add_image(png_bytes(photo(40, 50, seed=1)), "**img**_1.png")
    project.add_image(png_bytes(photo(40, 50, seed=2)), "[b](javascript:x).png")
    project.masks.save(1, box_mask(40, 50, len(PAGE_NAMES), (0, 0, 10, 10)), 0)
    return project


@pytest.mark.parametrize("page", [None, "data", "annotate", "train"])
def test_pages_show_hostile_class_and_file_names_literally(hostile_project, monkeypatch, page):
    at = _app(monkeypatch, hostile_project, page)
    _check_page(at)
    if page == "data":   # the remove-class confirmation names the class in a button
        at.selectbox(key="data_remove_class").set_value(len(PAGE_NAMES)).run()
        at.button(key="data_remove").click().run()
        _check_page(at)
        assert any(b.key == "data_remove_confirm" for b in at.button)


def test_review_shows_hostile_class_names_literally_and_draws_the_confusion_matrix(trained_multiclass_project,
                                                                                   monkeypatch):
    project = trained_multiclass_project
    edit_class(project, 1, name="**bold** <img src=x onerror=alert(1)> " + "x" * 60)
    edit_class(project, 2, name="$\\frac$ [link](javascript:alert(1))")   # '$\frac$' broke Matplotlib's axis
    at = _app(monkeypatch, project, "review")
    _check_page(at)
    at.radio(key="review_section").set_value("How good is the model").run()
    _check_page(at)
    assert any("Confusion matrix" in (im.captions[0] if im.captions else "") for im in at.get("image"))


def test_shorten_keeps_short_names_and_marks_a_cut():
    assert shorten("leaf") == "leaf" and shorten("x" * 100).endswith("…") and len(shorten("x" * 100)) == 40
    assert md_name("**b**" * 20).endswith("…") and "\\*" in md_name("**b**")
    assert set(md_escape(string.ascii_letters + string.digits + " ")) <= set(string.printable)


@pytest.mark.parametrize("name", ["../escape", "/etc", "con", "weights", "x" * 300, "nul\x00byte", "😀", "..",
                                  "[x](javascript:alert(1))"])
def test_the_home_form_refuses_a_bad_project_name_with_a_sentence_and_writes_nothing(tmp_path, workspace,
                                                                                     monkeypatch, name):
    before = _outside(tmp_path, workspace)
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.text_input(key="new_name").input(name).run()
    next(b for b in at.button if b.label == "Create project").click().run()
    assert not at.exception, at.exception
    assert at.error and "cannot be a project name" in at.error[0].value
    assert list(workspace.iterdir()) == [] and _outside(tmp_path, workspace) == before


@pytest.mark.parametrize("value", ["x" * 5000, "a\x00b", "../../etc", "/etc/passwd", "..", "con"])
def test_a_hand_made_project_in_the_url_opens_nothing_and_breaks_no_page(workspace, monkeypatch, value):
    """?project=<5,000 characters> raised OSError (file name too long) on every page."""
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["project"] = value
    at.run()
    assert not at.exception, at.exception
    assert list(workspace.iterdir()) == []
