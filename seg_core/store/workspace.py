"""The workspace folder: finding, listing, creating and deleting projects (what one may be called: store/names.py)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from seg_core.classes import ClassSpec
from seg_core.errors import ProjectError
from seg_core.durable import atomic_write
from seg_core.store.layout import DB_NAME, last_project_file, workspace_dir
from seg_core.store.project import Project, is_project

CLASSES_EXPLICIT = "classes_explicit"


def resolve_project_path(arg: str | Path, workspace: str | Path | None = None) -> Path:
    """A folder path is used as given; a bare name means <workspace>/<name>."""
    text = str(arg)
    p = Path(text).expanduser()
    if p.is_absolute() or os.sep in text or "/" in text or text.startswith("."):
        return p.resolve()
    return (Path(workspace) if workspace else workspace_dir()) / text


def new_project(path: str | Path, classes: Sequence[ClassSpec] | None = None, name: str | None = None) -> Project:
    """Create a project; classes given here are kept on import, otherwise import infers them from masks."""
    project = Project.create(path, name=name, classes=classes)
    project.set_setting(CLASSES_EXPLICIT, bool(classes))
    return project


def delete_project(path: str | Path) -> None:
    """Remove a project folder for good; refused while one of its runs is training. The folder is renamed first,
    so a crash halfway leaves no half project in the workspace list."""
    project = Project(path)
    busy = [r for r in project.runs.list() if r.active]
    if busy:
        raise ProjectError(f"Run {busy[0].id} of '{project.name}' is {busy[0].status}; stop it on the Train page "
                           "before deleting the project.")
    project.close()
    doomed = project.layout.deleting()
    os.replace(project.path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _last_projects() -> dict[str, str]:
    try:
        data = json.loads(last_project_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):   # none yet, or damaged: nothing to reopen
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def remember_project(path: str | Path, person: str) -> None:
    """Note `path` as the project `person` used last, for a bare link (/train) to open it in a new tab. Kept per
    person, so that where people sign in one person's link never opens the project another was in."""
    name = Path(path).name
    last = _last_projects()
    if last.get(person) == name or Path(path).resolve().parent != workspace_dir():
        return   # unchanged (most page runs), or a folder outside the workspace that a bare name cannot find
    try:
        atomic_write(last_project_file(), json.dumps({**last, person: name}, indent=1).encode())
    except OSError:
        pass   # a read-only or full workspace: only the convenience is lost


def last_project(person: str) -> Path | None:
    """The project `person` used last, while it is still a project of the workspace."""
    name = _last_projects().get(person)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    path = workspace_dir() / name
    return path if is_project(path) else None


@dataclass(frozen=True)
class ProjectEntry:
    """A project folder of the workspace and its display name, read without opening the project."""

    name: str
    path: Path
    error: str = ""


def _project_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and is_project(p)) if root.is_dir() else []


def project_entries(workspace: str | Path | None = None) -> list[ProjectEntry]:
    """The workspace's projects by folder, each with its name from one read-only query: cheap on every rerun."""
    out = []
    for sub in _project_folders(Path(workspace) if workspace else workspace_dir()):
        try:
            conn = sqlite3.connect(f"file:{sub / DB_NAME}?mode=ro", uri=True, timeout=5)
            try:
                out.append(ProjectEntry(conn.execute("SELECT name FROM project WHERE id = 1").fetchone()[0], sub))
            finally:
                conn.close()
        except (sqlite3.Error, TypeError) as exc:
            out.append(ProjectEntry(sub.name, sub, f"project.db cannot be read ({exc})"))
    return out


@dataclass(frozen=True)
class ProjectSummary:
    name: str
    path: Path
    kind: str
    images: int
    labeled: int
    error: str = ""


def list_projects(workspace: str | Path | None = None) -> list[ProjectSummary]:
    """Projects in the workspace folder with their counts; an unreadable one is listed with its error."""
    out = []
    for sub in _project_folders(Path(workspace) if workspace else workspace_dir()):
        try:
            s = Project(sub).stats()
            out.append(ProjectSummary(s["name"], sub, s["kind"], s["images"], s["labeled"]))
        except Exception as exc:  # one broken project must not hide the others
            out.append(ProjectSummary(sub.name, sub, "?", 0, 0, str(exc)))
    return out
