"""The built-in demo project: photo-like scenes with exact masks, generated offline in seconds."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from PIL import Image

from seg_core.classes import ClassSpec, default_color
from seg_core.services.demo_scenes import MULTICLASS_NAMES, render_scene
from seg_core.errors import ProjectError
from seg_core.store.layout import ProjectLayout
from seg_core.store.project import Project, is_project
from seg_core.store.workspace import new_project

DEMO_NAME = "demo"
DEMO_MULTICLASS = "demo-3class"
DEMO_COUNT = 60
DEMO_UNLABELED = 10
# A few sizes, so "predict at the image's own size" is exercised from the first run.
_SIZES = ((320, 240), (320, 240), (320, 240), (256, 256), (384, 288))


def demo_classes(multiclass: bool) -> list[ClassSpec]:
    if multiclass:
        return [ClassSpec(i, n, default_color(i)) for i, n in enumerate(MULTICLASS_NAMES)]
    return [ClassSpec(0, "background", default_color(0)), ClassSpec(1, "object", default_color(1))]


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def create_demo_project(path: str | Path, multiclass: bool = False, count: int = DEMO_COUNT,
                        unlabeled: int | None = None, seed: int = 0, exist_ok: bool = True) -> Project:
    """Create (or, with exist_ok, open) the demo project: `count` images, the last `unlabeled` without masks."""
    path = Path(path).resolve()
    if unlabeled is None:
        unlabeled = min(DEMO_UNLABELED, count // 6)
    if is_project(path):
        if exist_ok:
            return Project(path)
        raise ProjectError(f"A project already exists at {path}.")
    if count < 1 or not 0 <= unlabeled <= count:
        raise ProjectError("The demo needs at least one image, and no more unlabeled images than images.")
    # Built beside its final place and renamed at the end: an interrupted build leaves no half project.
    staging = ProjectLayout(path).staging
    shutil.rmtree(staging, ignore_errors=True)
    project = new_project(staging, demo_classes(multiclass), name=path.name)
    project.set_setting("demo", {"multiclass": multiclass, "seed": seed})
    for i in range(count):
        w, h = _SIZES[i % len(_SIZES)]
        rgb, mask = render_scene(seed * 100_003 + i, w, h, multiclass=multiclass)
        added = project.add_image(_png(rgb), f"scene_{i:03d}.png")
        if i < count - unlabeled:
            project.masks.save(added.image.id, mask, 0, author="demo", source="demo")
    project.splits.assign(val_fraction=0.2, seed=seed)
    staging.rename(path)
    return Project(path)
