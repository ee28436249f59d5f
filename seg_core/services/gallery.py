"""The image gallery: filtered, paged listings and thumbnails cached on disk, quick at 10,000 images."""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from seg_core import viz
from seg_core.durable import atomic_write
from seg_core.store.project import Project
from seg_core.store.records import ImageRecord, ImageStatus

THUMB_SIDE = 192
STATUS_FILTERS = {"all": {}, "unlabeled": {"status": ImageStatus.UNLABELED},
                  "labeled": {"status": ImageStatus.LABELED},
                  "has prediction": {"predicted": True}}


@dataclass(frozen=True)
class GalleryPage:
    records: list[ImageRecord]
    total: int           # images matching the filters
    page: int            # 0-based, clamped to the pages that exist
    pages: int


def page(project: Project, status: str = "all", split: str | None = None, search: str = "",
         page_no: int = 0, per_page: int = 24) -> GalleryPage:
    """One page of the images matching the filters, in upload order; only that page is read."""
    filters = dict(STATUS_FILTERS[status], split=split or None, search=search.strip() or None)
    total = project.count_images(**filters)
    pages = max(1, math.ceil(total / per_page))
    page_no = min(max(0, int(page_no)), pages - 1)
    records = project.list_images(offset=page_no * per_page, limit=per_page, **filters)
    return GalleryPage(records, total, page_no, pages)


# Part of every cached thumbnail's name: a change in how masks are drawn gives new thumbnails.
THUMB_STYLE = "outlined"


def style_key(project: Project) -> str:
    """A short key for how the project's thumbnails look: the drawing style and the class colours (a recoloured
    class gives new thumbnails)."""
    return hashlib.sha1((THUMB_STYLE + "".join(c.hex for c in project.classes)).encode()).hexdigest()[:8]


def thumbnail_path(project: Project, rec: ImageRecord, side: int = THUMB_SIDE) -> Path:
    return project.layout.thumbnail(f"{rec.id}-v{rec.mask_version}-{style_key(project)}-{side}.jpg")


def thumbnail(project: Project, rec: ImageRecord, side: int = THUMB_SIDE) -> bytes:
    """JPEG of the image with its mask blended in, made once per mask version and kept on disk."""
    return cached_overlay(project, thumbnail_path(project, rec, side), f"{rec.id}-v*-{side}.jpg",
                          rec.id, lambda: project.masks.load(rec), side)


def cached_overlay(project: Project, path: Path, stale: str, image_id: int, load_ids, side: int,
                   alpha: float = 0.45) -> bytes:
    """A thumbnail JPEG kept at `path` (its name should hold `style_key(project)`); made on first use, when older ones
    matching `stale` are removed. Masks are outlined, as viz.overlay_thumbnail draws them."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    rgb = viz.overlay_thumbnail(project.load_image(image_id), load_ids(), project.classes, max_side=side, alpha=alpha)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    try:
        for old in path.parent.glob(stale) if path.parent.is_dir() else ():
            old.unlink(missing_ok=True)  # made for an older mask or prediction
        atomic_write(path, buf.getvalue())
    except OSError:
        pass   # a full or read-only disk: the gallery still shows the picture, made again next time
    return buf.getvalue()


def caption(rec: ImageRecord, drafts: set[int], predicted: set[int]) -> str:
    """A thumbnail's caption: name, status, split, and whether unsaved strokes or a prediction exist."""
    parts = [rec.status, rec.split]
    if rec.id in predicted:
        parts.append("has prediction")
    if rec.id in drafts:
        parts.append("unsaved strokes")
    return f"{rec.filename} · " + " · ".join(parts)
