"""Test helpers shared by all test folders: paths, CI-aware skipping, tiny image files (bench/synthetic.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from seg_core import environment
from seg_core.classes import default_classes

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(environment.get(environment.SHARED_DATA) or ROOT.parent / "shared" / "data")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = ROOT / "test-artifacts"

# The synthetic images, masks and archives are bench's: the benchmarks build their inputs from them too.
sys.path.insert(0, str(ROOT / "bench"))
from synthetic import (box_mask, jpeg_claiming, photo, png_bytes, png_claiming, write_pair_folders,  # noqa: E402
                       zip_bytes)

__all__ = ["ARTIFACTS", "IN_CI", "ROOT", "SHARED_DATA", "box_mask", "edit_class", "jpeg_claiming", "open_app_page",
           "page_texts", "photo", "png_bytes", "png_claiming", "require", "write_pair_folders", "zip_bytes"]


def require(condition: bool, reason: str) -> None:
    """Skip on a user's machine that lacks something; in CI (CI=true) the same gap is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


def edit_class(project, class_id: int, name: str | None = None, color: str | None = None) -> None:
    """Rename or recolour one class as the Data page does: the whole list, changed, through Project.set_classes."""
    from seg_core.classes import ClassSpec, parse_color

    classes = project.classes
    old = classes[class_id]
    classes[class_id] = ClassSpec(class_id, old.name if name is None else name.strip(),
                                  old.color if color is None else parse_color(color))
    project.set_classes(classes)


def labeled_project(path, n: int = 6):
    """A new project of `n` photos, each with the same box mask saved."""
    from seg_core.store.workspace import new_project

    p = new_project(path)
    for i in range(n):
        rec = p.add_image(png_bytes(photo(seed=i)), f"img{i}.png").image
        p.masks.save(rec.id, box_mask(), 0)
    return p


def page_texts(at) -> str:
    """Everything an AppTest run wrote as text: markdown, captions and the alert boxes."""
    parts = [m.value for m in at.markdown] + [i.value for i in at.info] + [e.value for e in at.error]
    parts += [s.value for s in at.success] + [w.value for w in at.warning] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def open_app_page(at, page: str, project=None):
    """Run the app once (AppTest learns the pages st.navigation registers), then switch to app_pages/<page>.py."""
    if project is not None:
        at.session_state["project_path"] = str(project.path)
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


LEAF_CLASSES = default_classes(["background", "leaf", "spot"])  # black, (230,25,75), (60,180,75)


def add_photo(project, seed: int = 0, name: str | None = None, h: int = 24, w: int = 32):
    """A small generated photo added to `project`; its image record."""
    return project.add_image(png_bytes(photo(h, w, seed)), name or f"img{seed}.png").image


def leaf_project(path):
    """A project with the classes background, leaf and spot and three small unlabeled photos."""
    from seg_core.store.workspace import new_project

    project = new_project(path, LEAF_CLASSES)
    for i in range(3):
        add_photo(project, seed=i)
    return project
