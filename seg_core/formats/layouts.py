"""Dataset layouts on disk or in a zip: which files are images, which are masks and how they pair up."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from seg_core.classes import ClassSpec, validate_classes
from seg_core.errors import ProjectError
from seg_core.formats import images

MASK_DIR_NAMES = ("masks", "mask", "annotations", "annotation", "labels", "label", "gt", "groundtruth",
                  "ground_truth", "segmentations", "segmentation", "trimaps", "targets")
IMAGE_DIR_NAMES = ("images", "image", "imgs", "img", "photos", "inputs", "x")
# Mask files are often named after their image plus a suffix (Carvana: 0cdf5b5d0ce1_01_mask.gif).
MASK_SUFFIXES = ("_mask", "-mask", ".mask", "_masks", "_label", "_labels", "-label", "_gt", "_seg",
                 "_segmentation", "_annotation", "_trimap")
KERAS_SEG_PAIRS = (("images_prepped_train", "annotations_prepped_train", "train"),
                   ("images_prepped_test", "annotations_prepped_test", "test"))
EXPORT_FORMAT = "seg-studio"
SKIP_DIRS = {"__MACOSX", ".git", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class Source:
    """A file to import, read lazily so a large import never holds every file in memory."""

    name: str
    read: Callable[[], bytes]
    path: str = ""

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> "Source":
        return cls(name, lambda: data, name)

    @classmethod
    def from_path(cls, path: Path) -> "Source":
        return cls(path.name, path.read_bytes, str(path))


@dataclass
class Group:
    images: list[Source]
    masks: list[Source]
    split: str | None = None


@dataclass
class Layout:
    kind: str
    groups: list[Group]
    classes: list[ClassSpec] | None = None
    splits: dict[str, str] = field(default_factory=dict)     # image file name -> split (from our export)
    original_names: dict[str, str] = field(default_factory=dict)   # exported name -> name at first upload


def mask_key(name: str) -> str:
    """The image base name a mask file belongs to."""
    stem = PurePosixPath(name).stem
    low = stem.lower()
    for suffix in MASK_SUFFIXES:
        if low.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def folder_tree(root: Path) -> dict[PurePosixPath, Source]:
    if not root.is_dir():
        raise ProjectError(f"{root} is not a folder.")
    tree: dict[PurePosixPath, Source] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith("."):
                continue
            full = Path(dirpath) / fn
            if full.is_symlink():
                continue
            tree[PurePosixPath(full.relative_to(root).as_posix())] = Source.from_path(full)
    return tree


def _children(tree: dict[PurePosixPath, Source], folder: PurePosixPath) -> list[Source]:
    return [s for p, s in sorted(tree.items()) if p.parent == folder]


def _dirs(tree: dict[PurePosixPath, Source]) -> set[PurePosixPath]:
    out: set[PurePosixPath] = set()
    for p in tree:
        out.update(p.parents)
    return out


def detect_layout(tree: dict[PurePosixPath, Source]) -> Layout:
    """Recognise: a Seg Studio export, keras_segmentation, images/+masks/, or a flat folder of images."""
    dirs = _dirs(tree)
    by_name: dict[str, list[PurePosixPath]] = {}
    for d in sorted(dirs, key=lambda d: (len(d.parts), str(d))):
        if d.parts:
            by_name.setdefault(d.name.lower(), []).append(d)

    for train_dir, _, _ in KERAS_SEG_PAIRS[:1]:
        if train_dir in by_name:
            base = by_name[train_dir][0].parent
            groups = []
            for img_name, ann_name, split in KERAS_SEG_PAIRS:
                if base / img_name in dirs:
                    groups.append(Group(_children(tree, base / img_name), _children(tree, base / ann_name), split))
            return Layout("keras_segmentation (images_prepped_*/annotations_prepped_*)", groups)

    for name in IMAGE_DIR_NAMES:
        for img_dir in by_name.get(name, []):
            parent = img_dir.parent
            imgs = [s for s in _children(tree, img_dir) if images.is_image_name(s.name)]
            if not imgs:
                continue
            mask_dir = next((parent / d.name for d in sorted(dirs) if d.parent == parent
                             and d.name.lower() in MASK_DIR_NAMES), None)
            msk: list[Source] = []
            if mask_dir is not None:
                msk = _children(tree, mask_dir)
                if not any(images.is_image_name(s.name) for s in msk) and mask_dir / "trimaps" in dirs:
                    msk = _children(tree, mask_dir / "trimaps")  # Oxford-IIIT pets: annotations/trimaps
            layout = Layout("images/ + masks/" if mask_dir else "images/ (no masks)",
                            [Group(imgs, [s for s in msk if images.is_image_name(s.name)])])
            _read_export_manifest(tree, parent, layout)
            return layout

    flat = sorted(((p, s) for p, s in tree.items() if images.is_image_name(p.name)), key=lambda x: str(x[0]))
    if not flat:
        raise ProjectError("No images found: expected image files, an images/ folder (with masks/ beside it) "
                           "or the keras_segmentation folders images_prepped_train/ and annotations_prepped_train/.")
    top = min(len(p.parts) for p, _ in flat)
    return Layout("a folder of images (no masks)", [Group([s for p, s in flat if len(p.parts) == top], [])])


def _read_export_manifest(tree: dict[PurePosixPath, Source], base: PurePosixPath, layout: Layout) -> None:
    src = tree.get(base / "classes.json")
    if src is None:
        return
    try:
        meta = json.loads(src.read().decode("utf-8"))
        classes = [ClassSpec.from_dict(d) for d in meta["classes"]]
        validate_classes(classes)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"classes.json cannot be read: {exc}") from None
    layout.classes = classes
    layout.kind = "Seg Studio export" if meta.get("format") == EXPORT_FORMAT else "images/ + masks/ with classes.json"
    manifest = tree.get(base / "manifest.json")
    if manifest is not None:
        try:
            entries = json.loads(manifest.read().decode("utf-8")).get("images", [])
            layout.splits = {PurePosixPath(e["image"]).name: e["split"] for e in entries if e.get("split")}
            layout.original_names = {PurePosixPath(e["image"]).name: e["original_name"] for e in entries
                                     if e.get("original_name")}
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ProjectError(f"manifest.json cannot be read: {exc}") from None
        # Re-import in the exported order, so image ids keep their order too.
        rank = {PurePosixPath(e["image"]).name: i for i, e in enumerate(entries)}
        for group in layout.groups:
            group.images.sort(key=lambda s: rank.get(s.name, len(rank)))
