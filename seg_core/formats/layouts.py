"""Dataset layouts on disk or in a zip: which files are images, which are masks and how they pair up; other tools'
layouts (COCO, Pascal VOC / CVAT, class-id masks with a class-names file) read through their class lists."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from seg_core.classes import ClassSpec, validate_classes
from seg_core.errors import DatasetFormatError, InvalidMaskError, ProjectError
from seg_core.formats import class_files, coco, images, masks, voc

MASK_DIR_NAMES = ("masks", "mask", "annotations", "annotation", "labels", "label", "gt", "groundtruth",
                  "ground_truth", "segmentations", "segmentation", "trimaps", "targets")
IMAGE_DIR_NAMES = ("images", "image", "imgs", "img", "photos", "inputs", "x")
# Mask files are often named after their image plus a suffix (Carvana: 0cdf5b5d0ce1_01_mask.gif).
MASK_SUFFIXES = ("_mask", "-mask", ".mask", "_masks", "_label", "_labels", "-label", "_gt", "_seg",
                 "_segmentation", "_annotation", "_trimap")
KERAS_SEG_PAIRS = (("images_prepped_train", "annotations_prepped_train", "train"),
                   ("images_prepped_test", "annotations_prepped_test", "test"))
EXPORT_FORMAT = "maskloop"
# Exports written before the product was called Maskloop name this format: they import as before.
FORMER_EXPORT_FORMAT = "seg-studio"
SKIP_DIRS = {"__MACOSX", ".git", ".ipynb_checkpoints"}
# JSON files with these in their name (or in an annotations/ folder) are COCO candidates read first; one that is
# not valid JSON is refused rather than passed over. At most MAX_JSON_PROBES JSON files are opened to look.
COCO_HINTS = ("instances", "coco", "annotation", "result", "labels")
MAX_JSON_PROBES = 20


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
    format: str = ""               # the format read, in words, for the report ("COCO instances JSON", ...)
    # Masks hold ids of `classes` as another tool's file declares them (COCO, VOC labelmap, a class-names file):
    # import reads and checks every one of them before it writes anything, and maps the classes by name.
    declared: bool = False
    classes_source: str = "classes.json"
    notes: list[str] = field(default_factory=list)


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
    """Recognise: keras_segmentation, COCO, Pascal VOC / CVAT, a Maskloop export, images/+masks/ (with a class-names
    file or without), or a flat folder of images."""
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
            layout = Layout("keras_segmentation (images_prepped_*/annotations_prepped_*)", groups)
            _read_class_file(tree, [base], layout)
            return layout

    found = _coco_files(tree)
    if found:
        return _coco_layout(tree, found)
    if "segmentationclass" in by_name:
        return _voc_layout(tree, dirs, by_name["segmentationclass"][0])

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
            if not _read_export_manifest(tree, parent, layout) and mask_dir is not None:
                _read_class_file(tree, [parent, mask_dir], layout)
            return layout

    flat = sorted(((p, s) for p, s in tree.items() if images.is_image_name(p.name)), key=lambda x: str(x[0]))
    if not flat:
        raise ProjectError("No images found: expected image files, an images/ folder (with masks/ beside it), "
                           "a COCO JSON file, Pascal VOC's JPEGImages/ and SegmentationClass/, or the "
                           "keras_segmentation folders images_prepped_train/ and annotations_prepped_train/.")
    top = min(len(p.parts) for p, _ in flat)
    return Layout("a folder of images (no masks)", [Group([s for p, s in flat if len(p.parts) == top], [])])


def _read_export_manifest(tree: dict[PurePosixPath, Source], base: PurePosixPath, layout: Layout) -> bool:
    """A Maskloop export's classes.json and manifest.json (names, splits, order); False when it is not one."""
    src = tree.get(base / "classes.json")
    if src is None:
        return False
    try:
        meta = json.loads(src.read().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") not in (EXPORT_FORMAT, FORMER_EXPORT_FORMAT):
            return False  # another tool's classes.json: read as a class-names file
        classes = [ClassSpec.from_dict(d) for d in meta["classes"]]
        validate_classes(classes)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"classes.json cannot be read: {exc}") from None
    layout.classes = classes
    layout.kind = layout.format = "Maskloop export"
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
    return True


def _file_in(tree: dict[PurePosixPath, Source], folder: PurePosixPath | None, name: str
             ) -> tuple[PurePosixPath, Source] | None:
    """The file `name` (any letter case) directly in `folder`."""
    return next(((p, s) for p, s in tree.items() if p.parent == folder and p.name.lower() == name.lower()), None)


def _declare(layout: Layout, table: class_files.ClassTable, kind: str, fmt: str) -> None:
    """From now on the layout's masks are read through `table`: import sees palette PNGs of its class ids."""
    layout.classes, layout.declared, layout.classes_source = table.classes, True, table.source
    layout.kind, layout.format = kind, fmt
    layout.notes += list(table.notes)
    for group in layout.groups:
        group.masks = [_through(m, table) for m in group.masks]


def _through(src: Source, table: class_files.ClassTable) -> Source:
    def read() -> bytes:
        return masks.encode_png(table.ids(masks.read_pixels(src.read(), src.name)), table.classes)
    return Source(src.name, read, src.path)


def _read_class_file(tree: dict[PurePosixPath, Source], folders: list[PurePosixPath], layout: Layout) -> None:
    """A class-names file next to class-id masks (or in their folder) names the classes, instead of 'class 3'."""
    for name in class_files.CLASS_FILE_NAMES:
        for folder in folders:
            hit = _file_in(tree, folder, name)
            if hit is not None:
                table = class_files.read_class_file(hit[0].name, hit[1].read(), str(hit[0]))
                _declare(layout, table, f"{layout.kind} with {hit[0].name}", f"class-id masks with {hit[0].name}")
                return


def read_class_file_in_folders(layout: Layout, folders: list[Path]) -> None:
    """A class-names file for masks given as a folder of their own (--images X --masks Y): in the masks folder, else
    in the folder that holds both, read as detect_layout reads it beside an images/ + masks/ tree."""
    tree = {PurePosixPath(f.as_posix()) / p.name: Source.from_path(p) for f in folders for p in sorted(f.iterdir())
            if p.is_file() and p.name.lower() in class_files.CLASS_FILE_NAMES}
    _read_class_file(tree, [PurePosixPath(f.as_posix()) for f in folders], layout)


def _voc_layout(tree: dict[PurePosixPath, Source], dirs: set[PurePosixPath], mask_dir: PurePosixPath) -> Layout:
    """Pascal VOC / CVAT "Segmentation mask 1.1": JPEGImages/ (may be absent: the masks then go to the project's
    images of the same names), SegmentationClass/, ImageSets/Segmentation/ splits, labelmap.txt."""
    base = mask_dir.parent
    img_dir = next((d for d in sorted(dirs) if d.parent == base and d.name.lower() == voc.IMAGES_DIR.lower()), None)
    imgs = [s for s in _children(tree, img_dir) if images.is_image_name(s.name)] if img_dir else []
    msks = [s for s in _children(tree, mask_dir) if images.is_image_name(s.name)]
    layout = Layout(f"Pascal VOC ({img_dir.name + '/ + ' if img_dir else ''}{mask_dir.name}/)", [Group(imgs, msks)],
                    format="Pascal VOC palette PNGs (no labelmap.txt: classes read from the masks)")
    sets = next((d for d in sorted(dirs) if d.parent.parent == base
                 and f"{d.parent.name}/{d.name}".lower() == voc.SETS_DIR.lower()), None)
    split_of: dict[str, str] = {}
    for file, split in voc.SPLIT_FILES.items():
        hit = _file_in(tree, sets, file) if sets else None
        for stem in voc.read_image_set(hit[1].read(), str(hit[0])) if hit else []:
            split_of.setdefault(stem, split)
    layout.splits = {s.name: split_of[PurePosixPath(s.name).stem] for s in imgs if PurePosixPath(s.name).stem in split_of}
    hit = _file_in(tree, base, voc.LABELMAP)
    if hit is not None:
        _declare(layout, voc.read_labelmap(hit[1].read(), str(hit[0])), layout.kind,
                 f"Pascal VOC / CVAT Segmentation mask with {hit[0].name}")
    return layout


def _split_named(path: PurePosixPath) -> str | None:
    """instances_val2017.json, valid/_annotations.coco.json -> val; no split in the name -> None."""
    for part in (path.stem.lower(), path.parent.name.lower()):
        for word, split in (("train", "train"), ("val", "val"), ("test", "test")):
            if word in part:
                return split
    return None


def _coco_files(tree: dict[PurePosixPath, Source]) -> list[tuple[PurePosixPath, coco.CocoSet]]:
    def hinted(p: PurePosixPath) -> bool:
        return any(h in p.name.lower() for h in COCO_HINTS) or any(d.lower() == "annotations" for d in p.parts[:-1])

    candidates = sorted((p for p in tree if p.suffix.lower() == ".json"
                         and p.name.lower() not in ("classes.json", "manifest.json")),
                        key=lambda p: (not hinted(p), len(p.parts), str(p)))
    found = []
    for path in candidates[:MAX_JSON_PROBES]:
        try:
            obj = json.loads(tree[path].read().decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError) as exc:
            if hinted(path):
                raise DatasetFormatError(f"'{path}' cannot be read as JSON ({exc}).") from None
            continue
        if coco.looks_like(obj):
            found.append((path, coco.parse(obj, str(path))))
    return found


def _find_image(index: dict[str, list[PurePosixPath]], json_path: PurePosixPath, file_name: str
                ) -> PurePosixPath | None:
    """The file a COCO file_name means: matched by name, then by its folders, then the one nearest the JSON file."""
    wanted = PurePosixPath(file_name.replace("\\", "/"))
    pool = index.get(wanted.name, [])
    pool = [p for p in pool if p.parts[-len(wanted.parts):] == wanted.parts] or pool
    if len(pool) <= 1:
        return pool[0] if pool else None

    def nearness(p: PurePosixPath) -> int:  # folders shared with the JSON file's folder, from the top
        return next((i for i, (a, b) in enumerate(zip(p.parts, json_path.parent.parts)) if a != b),
                    min(len(p.parts) - 1, len(json_path.parent.parts)))

    pool.sort(key=nearness, reverse=True)
    if nearness(pool[0]) == nearness(pool[1]):
        raise DatasetFormatError(f"{json_path}: '{file_name}' could be {pool[0]} or {pool[1]}; put the images of one "
                                 "COCO file in one folder.")
    return pool[0]


def _coco_layout(tree: dict[PurePosixPath, Source], found: list[tuple[PurePosixPath, coco.CocoSet]]) -> Layout:
    """One group per COCO file (its split from its name), images found by file_name. With no image files at all,
    the annotations become masks for the project's images of the same names."""
    first_path, first = found[0]
    for path, ds in found[1:]:
        if [c.name for c in ds.classes] != [c.name for c in first.classes]:
            raise DatasetFormatError(f"{first_path} and {path} have different categories; import them one at a time.")
    index: dict[str, list[PurePosixPath]] = {}
    for p in sorted(tree):
        if images.is_image_name(p.name):
            index.setdefault(p.name, []).append(p)
    groups: list[Group] = []
    for path, ds in found:
        missing, split = [], _split_named(path)
        mine: list[tuple[set[str], Group]] = []
        for img in ds.images:
            stem = PurePosixPath(img.file_name.replace("\\", "/")).stem
            at = _find_image(index, path, img.file_name)
            if at is None and index:
                missing.append(img.file_name)
                continue
            # Masks pair with images by base name inside a group: a second 'a' (a.png beside a.jpg) opens a group.
            stems, slot = next(((st, g) for st, g in mine if stem not in st), (set(), None))
            if slot is None:
                slot = Group([], [], split)
                mine.append((stems, slot))
            stems.add(stem)
            if at is not None:
                slot.images.append(tree[at])
            if img.labeled:
                slot.masks.append(_coco_mask(ds, img, stem))
        if missing:
            raise DatasetFormatError(f"{path} lists {len(missing)} image(s) that are not in the data set: "
                                     + ", ".join(missing[:5]) + (" and more" if len(missing) > 5 else "")
                                     + ". Put them beside the JSON file (e.g. in images/), or remove them from it.")
        groups += [g for _, g in mine]
    names = ", ".join(str(p) for p, _ in found)
    return Layout(f"COCO ({names})", groups, first.classes, format="COCO instances JSON (polygons and RLE)",
                  declared=True, classes_source=f"the categories of {first_path.name}",
                  notes=[coco.OVERLAP_RULE] + first.notes)


def _coco_mask(ds: coco.CocoSet, img: coco.CocoImage, stem: str) -> Source:
    name = f"{stem}.png" if mask_key(f"{stem}.png") == stem else f"{stem}_mask.png"
    return Source(name, lambda: masks.encode_png(ds.ids(img), ds.classes), f"{ds.source}: annotations of {img.file_name}")


def check_declared(layout: Layout) -> set[int]:
    """Read every mask of a declared layout, and its image's header, before anything is imported: a colour or value
    its class file does not list, or a mask not of its image's size, refuses the whole import. Returns the class
    ids the masks use."""
    used: set[int] = set()
    for group in layout.groups:
        by_stem = {PurePosixPath(s.name).stem: s for s in group.images}
        for m in group.masks:
            px = masks.read_pixels(m.read(), m.name)
            used |= set(np.flatnonzero(np.bincount(px.values.ravel(), minlength=256)).tolist())  # type: ignore[union-attr]
            img = by_stem.get(mask_key(m.name))
            size = images.oriented_size(img.read()) if img is not None else None
            if size is not None and size != px.size:
                raise InvalidMaskError(f"{m.path or m.name}: the mask is {px.width}x{px.height} pixels but its image "
                                       f"'{img.name}' is {size[0]}x{size[1]}; nothing was imported.")  # type: ignore[union-attr]
    return used
