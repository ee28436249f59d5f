"""Small UI pieces shared by the pages: the current project and person, the project picker, error display."""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from seg_core import Project, SegError, is_project, last_project, project_entries, remember_project, workspace_dir
from seg_core.markdown import md_escape

PROJECT_KEY = "project_path"
SIGNED_IN_KEY = "signin_user"   # the name a person signed in with (app_pages/signin.py)
UNSIGNED_AUTHOR = "user"        # who saved a mask where nobody signs in
log = logging.getLogger(__name__)


def current_user() -> str:
    """Who is working in this tab, for the masks they save: the name they signed in with (OIDC: their e-mail)."""
    name = st.session_state.get(SIGNED_IN_KEY)
    if name:
        return name
    if st.user.get("is_logged_in"):
        return st.user.get("email") or st.user.get("name") or UNSIGNED_AUTHOR
    return UNSIGNED_AUTHOR


def set_current_project(path: str | Path | None) -> None:
    """Remember the open project for this browser session, and in the URL so a reload keeps it."""
    if path is None:
        st.session_state.pop(PROJECT_KEY, None)
        st.query_params.pop("project", None)
        return
    st.session_state[PROJECT_KEY] = str(path)
    st.query_params["project"] = Path(path).name


def current_project() -> Project | None:
    """The open project: the URL's ?project= (what a reload or a shared link asks for), else this session's, else
    the one this person used last, else the only project there is. The URL is then made to name it, so every page
    of it survives a reload."""
    name, path = st.query_params.get("project"), st.session_state.get(PROJECT_KEY)
    if name and "/" not in name and "\\" not in name and (not path or Path(path).name != name):
        candidate = workspace_dir() / name
        if is_project(candidate):
            path = st.session_state[PROJECT_KEY] = str(candidate)
    if not path:
        # A bare link (/train) in a new tab: the project this person was working in, else a single project (e.g. the
        # demo that `make run` made), which is opened rather than picked.
        last = last_project(current_user())
        if last is None:
            projects = [p for p in project_entries() if not p.error]
            if len(projects) != 1:
                return None
            last = projects[0].path
        path = str(last)
    if not is_project(path):
        set_current_project(None)
        return None
    try:
        project = Project(path)
    except SegError as exc:
        st.error(str(exc))
        return None
    if st.query_params.get("project") != project.path.name:
        set_current_project(project.path)   # page links drop the query string: put it back
    remember_project(project.path, current_user())
    return project


def _on_pick() -> None:
    set_current_project(st.session_state.get("sidebar_project"))


def project_picker() -> None:
    """Sidebar select box over the workspace's projects, kept in step with the open project."""
    projects = [p for p in project_entries() if not p.error]
    with st.sidebar:
        if not projects:
            st.caption("No projects yet: create one or open the demo on the Home page.")
            return
        names = {str(p.path): p.name for p in projects}
        cur = current_project()
        current = str(cur.path) if cur else None
        # Set before the widget exists in this run, so "Open" elsewhere moves the picker too.
        st.session_state["sidebar_project"] = current if current in names else None
        st.selectbox("Project", list(names), placeholder="Choose a project", format_func=names.get,
                     key="sidebar_project", on_change=_on_pick)


def show_error(exc: Exception) -> None:
    """A SegError is the user's to fix: show its sentence. Anything else is our bug: say so plainly, and log it
    with its traceback for whoever runs the app."""
    if isinstance(exc, SegError):
        st.error(md_escape(exc), icon="⚠️")   # it may quote a name someone typed: shown as typed, never as Markdown
    else:
        log.error("Unexpected error shown on a page", exc_info=(type(exc), exc, exc.__traceback__))
        st.error(f"Something went wrong inside Maskloop ({type(exc).__name__}: {md_escape(exc)}). "
                 "Your saved work is safe; please report this.", icon="🐞")


def file_size(n: int) -> str:
    """A download's size in words: a small zip reads '38 kB', not '0.0 MB' (which looks empty)."""
    if n < 1000:
        return f"{n} bytes"
    if n < 999_500:   # what would round to '1000 kB' reads '1.0 MB'
        return f"{n / 1e3:.0f} kB"
    return f"{n / 1e6:.1f} MB"


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_image(path: str, sha256: str):
    """A decoded image, shared by reruns (each stroke reruns the page); the sha256 keys out replaced files."""
    from seg_core.formats.images import load_image

    return load_image(path)


@st.cache_resource(max_entries=2, show_spinner="Loading the model...")
def load_predictor(project_path: str, run_id: str):
    from seg_core.ml.inference import Predictor

    return Predictor.from_run(Project(project_path), run_id)


@st.cache_resource(max_entries=4, show_spinner="Asking the model...")
def cached_prior(project_path: str, run_id: str, image_sha: str, class_names: tuple, _image):
    """The run's probabilities on an image and its trust per class, kept while the image is annotated (each
    stroke reruns the page)."""
    from seg_core.services.priors import model_prior

    return model_prior(Project(project_path), load_predictor(project_path, run_id), _image)


def annotate_changed(image_id: int, message: str | None = None) -> None:
    """After the mask or draft of `image_id` changed outside the canvas: a fresh canvas and, optionally, a note
    (shown above the canvas, in a slot of fixed height, until painting resumes)."""
    ss = st.session_state
    ss["annotate_epoch"] = ss.get("annotate_epoch", 0) + 1  # a new canvas key clears the strokes
    if message:
        ss["annotate_flash"] = (message, int(image_id))


def open_in_annotate(image_id: int, message: str | None = None) -> None:
    """Go to the Annotate page on this image (from the gallery or the review lists)."""
    st.session_state["annotate_image_id"] = int(image_id)
    if message:
        annotate_changed(image_id, message)
    st.switch_page("app_pages/annotate.py")


def require_project() -> Project:
    """The open project; without one, say where to get one and stop the page here."""
    project = current_project()
    if project is None:
        st.info("No project is open. Open or create one on the Home page (the demo is there too), "
                "then come back here.")
        st.page_link("app_pages/home.py", label="Go to Home", icon=":material/home:")
        st.stop()
    return project
