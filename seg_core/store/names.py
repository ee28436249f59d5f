"""What a project may be called: its name is also its folder's in the workspace, on any system."""

from __future__ import annotations

import re

from seg_core.errors import ProjectError
from seg_core.store.layout import WEIGHTS_DIR
from seg_core.markdown import shorten

PROJECT_NAME_CHARS = 64   # a project's name, also its folder's
_NAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9 _.\-]{{0,{PROJECT_NAME_CHARS - 1}}}")
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


def check_project_name(name: str) -> str:
    """The name, stripped, if it can be a folder of the workspace on any system; else a ProjectError."""
    name = str(name).strip()
    shown = f"'{shorten(name)}'" if name.isprintable() else repr(shorten(name))
    if not _NAME_RE.fullmatch(name):
        raise ProjectError(
            f"{shown} cannot be a project name: use up to {PROJECT_NAME_CHARS} letters, digits, spaces, '-', '_' "
            "or '.', starting with a letter or digit."
        )
    if name.endswith("."):   # Windows drops a trailing dot: the folder would not be found again there
        raise ProjectError(f"'{name}' cannot be a project name: it may not end with '.'.")
    if name.split(".")[0].strip().lower() in _WINDOWS_DEVICES:
        raise ProjectError(f"'{name}' cannot be a project name: Windows keeps it for a device (CON, PRN, AUX, NUL, "
                           "COM1-9, LPT1-9), so the project could not be copied there; choose another name.")
    if name.lower() == WEIGHTS_DIR:
        raise ProjectError(f"'{name}' cannot be a project name: the workspace keeps pretrained weights in its "
                           f"'{WEIGHTS_DIR}' folder; choose another name.")
    return name
