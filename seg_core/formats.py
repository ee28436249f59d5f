"""Import and export: images/+masks/ folders, keras_segmentation layout, zip archives, Seg Studio export zips."""

from __future__ import annotations

import io
import json
import os
import stat
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

from seg_core import images, masks
from seg_core.classes import ClassSpec, validate_classes
from seg_core.errors import InvalidMaskError, ProjectError, SegError, UnsafeArchiveError
from seg_core.files import commit_temp, write_temp
from seg_core.project import Project

MAX_ARCHIVE_BYTES = 4 * 1024**3          # uncompressed total of a zip
MAX_ARCHIVE_ENTRIES = 100_000
MAX_ENTRY_RATIO = 1000                   # uncompressed/compressed: real images stay far below
MASK_DIR_NAMES = ("masks", "mask", "annotations", "annotation", "labels", "label", "gt", "groundtruth",
                  "ground_truth", "segmentations", "segmentation", "trimaps", "targets")
IMAGE_DIR_NAMES = ("images", "image", "imgs", "img", "photos", "inputs", "x")
# Mask files are often named after their image plus a suffix (Carvana: 0cdf5b5d0ce1_01_mask.gif).
MASK_SUFFIXES = ("_mask", "-mask", ".mask", "_masks", "_label", "_labels", "-label", "_gt", "_seg",
                 "_segmentation", "_annotation", "_trimap")
KERAS_SEG_PAIRS = (("images_prepped_train", "annotations_prepped_train", "train"),
                   ("images_prepped_test", "annotations_prepped_test", "test"))
EXPORT_FORMAT = "seg-studio"
_SKIP_DIRS = {"__MACOSX", ".git", ".ipynb_checkpoints"}
Progress = Callable[[int, int, str], None]


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


@dataclass
class ImportReport:
    layout: str = ""
    added: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    masks_added: list[str] = field(default_factory=list)      # masks attached to images already present
    masks_without_image: list[str] = field(default_factory=list)
    mask_kinds: Counter = field(default_factory=Counter)
    labeled: int = 0
    classes: str = ""

    @property
    def ok(self) -> bool:
        return not self.refused

    def lines(self) -> list[str]:
        out = []
        if self.layout:
            out.append(f"layout: {self.layout}")
        if self.classes:
            out.append(f"classes: {self.classes}")
        out.append(f"added: {len(self.added)} image(s), {self.labeled} with a mask")
        for kind, n in self.mask_kinds.most_common():
            out.append(f"  masks detected as {kind}: {n}")
        if self.masks_added:
            out.append(f"masks added to images already in the project: {len(self.masks_added)}")
        out.append(f"skipped as duplicate: {len(self.duplicates)}")
        for name, why in self.duplicates[:20]:
            out.append(f"  {name}: {why}")
        out.append(f"refused: {len(self.refused)}")
        for name, why in self.refused:
            out.append(f"  {name}: {why}")
        if self.masks_without_image:
            out.append(f"masks without an image (not imported): {len(self.masks_without_image)}")
            for name in self.masks_without_image[:50]:
                out.append(f"  {name}")
        return out

    def to_dict(self) -> dict:
        return {"layout": self.layout, "classes": self.classes, "added": self.added,
                "labeled": self.labeled, "duplicates": [list(d) for d in self.duplicates],
                "refused": [list(r) for r in self.refused], "masks_added": self.masks_added,
                "masks_without_image": self.masks_without_image, "mask_kinds": dict(self.mask_kinds)}


def mask_key(name: str) -> str:
    """The image base name a mask file belongs to."""
    stem = PurePosixPath(name).stem
    low = stem.lower()
    for suffix in MASK_SUFFIXES:
        if low.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


# ----- layouts -------------------------------------------------------------------------------
def _folder_tree(root: Path) -> dict[PurePosixPath, Source]:
    if not root.is_dir():
        raise ProjectError(f"{root} is not a folder.")
    tree: dict[PurePosixPath, Source] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
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


# ----- zip safety ----------------------------------------------------------------------------
def zip_tree(archive: zipfile.ZipFile, max_bytes: int | None = None) -> dict[PurePosixPath, Source]:
    """Check every entry before anything is read: no absolute or '..' paths, links, or bombs."""
    max_bytes = MAX_ARCHIVE_BYTES if max_bytes is None else max_bytes
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise UnsafeArchiveError(f"The zip holds {len(infos)} entries; at most {MAX_ARCHIVE_ENTRIES} are accepted.")
    total = 0
    tree: dict[PurePosixPath, Source] = {}
    for info in infos:
        raw = info.filename
        name = raw.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in path.parts:
            raise UnsafeArchiveError(
                f"The zip contains the path '{raw}', which points outside the archive's folder. "
                "Nothing was imported; re-create the zip from the folder itself."
            )
        if any(ord(ch) < 32 for ch in name):
            raise UnsafeArchiveError(f"The zip contains an entry with control characters in its name ({raw!r}).")
        mode = (info.external_attr >> 16) & 0xFFFF
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"The zip contains a symbolic link ('{raw}'); links are not accepted.")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"'{raw}' in the zip is encrypted; remove the password and try again.")
        total += info.file_size
        if total > max_bytes:
            raise UnsafeArchiveError(
                f"The zip would expand to more than {max_bytes / 1024**3:.1f} GB; split it into smaller archives."
            )
        if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_ENTRY_RATIO and info.file_size > 10 * 2**20:
            raise UnsafeArchiveError(f"'{raw}' in the zip expands {info.file_size // max(info.compress_size, 1)}x; "
                                     "that looks like a zip bomb, not an image.")
        if path.name.startswith(".") or any(part in _SKIP_DIRS for part in path.parts):
            continue
        tree[path] = Source(path.name, _zip_reader(archive, info), name)
    return tree


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        # Read at most the declared size plus one byte: a lying header cannot make us inflate more.
        with archive.open(info) as f:
            data = f.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise UnsafeArchiveError(f"'{info.filename}' in the zip is larger than its header says.")
        return data
    return read


# ----- import --------------------------------------------------------------------------------
def _infer_classes_for(project: Project, layout: Layout, kind: str) -> str:
    """On a project with no masks yet, take classes from classes.json or guess them from the masks."""
    if project.count_images(status="labeled"):
        return ""
    if layout.classes:
        if layout.classes != project.classes:
            project.set_classes(layout.classes)
        return f"{len(layout.classes)} from classes.json ({', '.join(c.name for c in layout.classes)})"
    samples = []
    for group in layout.groups:
        for src in group.masks:
            try:
                samples.append(masks.read_pixels(src.read(), src.name))
            except SegError:
                continue  # reported per file during the import itself
    if not samples:
        return ""
    inferred = masks.infer_classes(samples, kind)
    if inferred.classes != project.classes:
        project.set_classes(inferred.classes)
    notes = "; ".join(inferred.notes)
    return f"{len(inferred.classes)} classes inferred from masks ({inferred.kind}: {inferred.detail})" + (
        f"; {notes}" if notes else "")


def import_layout(project: Project, layout: Layout, *, mask_kind: str = "auto", trimap_border: str | int = "ignore",
                  infer_classes: bool = False, split: str | None = None,
                  progress: Progress | None = None) -> ImportReport:
    report = ImportReport(layout=layout.kind)
    if infer_classes:
        report.classes = _infer_classes_for(project, layout, mask_kind)
    classes = project.classes
    total = sum(len(g.images) + len(g.masks) for g in layout.groups)
    done = 0
    for group in layout.groups:
        by_key: dict[str, Source] = {}
        for m in group.masks:
            if not images.is_image_name(m.name):
                continue
            key = mask_key(m.name)
            if key in by_key:
                report.refused.append((m.path or m.name, f"a second mask for '{key}' (first: {by_key[key].name})"))
                continue
            by_key[key] = m
        image_keys = set()
        for src in group.images:
            done += 1
            if progress:
                progress(done, total, src.name)
            if not images.is_image_name(src.name):
                continue
            stem = PurePosixPath(src.name).stem
            image_keys.add(stem)
            msrc = by_key.get(stem)
            _import_one(project, classes, src, msrc, split or layout.splits.get(src.name) or group.split,
                        mask_kind, trimap_border, report, layout.original_names.get(src.name))
        for key, msrc in by_key.items():
            done += 1
            if progress:
                progress(done, total, msrc.name)
            if key not in image_keys:
                _attach_mask(project, classes, msrc, mask_kind, trimap_border, report)
    return report


def _import_one(project: Project, classes: Sequence[ClassSpec], src: Source, msrc: Source | None, split: str | None,
                mask_kind: str, trimap_border: str | int, report: ImportReport, original_name: str | None = None) -> None:
    label = src.path or src.name
    try:
        prep = images.prepare_upload(src.read(), src.name)
        reading = None
        if msrc is not None:
            reading = masks.read_mask(msrc.read(), classes, msrc.name, expected_size=(prep.width, prep.height),
                                      kind=mask_kind, trimap_border=trimap_border)
        result = project.add_image(b"", _plain_name(original_name) or src.name, split=split, prepared=prep)
        if result.status == "duplicate":
            rec = result.image
            if reading is not None and rec.status == "unlabeled":
                project.save_mask(rec.id, reading.ids, rec.mask_version, author="import", source="imported")
                report.masks_added.append(msrc.name)  # type: ignore[union-attr]
                report.mask_kinds[reading.kind] += 1
            report.duplicates.append((label, result.detail))
            return
        report.added.append(label)
        if reading is not None:
            project.save_mask(result.image.id, reading.ids, 0, author="import", source="imported")
            report.labeled += 1
            report.mask_kinds[reading.kind] += 1
    except SegError as exc:
        what = f"{label} (with mask {msrc.name})" if msrc is not None else label
        report.refused.append((what, str(exc)))


def _plain_name(name: str | None) -> str | None:
    try:
        return images.safe_filename(name) if name else None
    except SegError:
        return None


def _attach_mask(project: Project, classes: Sequence[ClassSpec], msrc: Source, mask_kind: str,
                 trimap_border: str | int, report: ImportReport) -> None:
    """A mask with no image in this import: attach it to the project's image of that name, if any."""
    matches = project.find_by_stem(mask_key(msrc.name))
    if not matches:
        report.masks_without_image.append(msrc.path or msrc.name)
        return
    if len(matches) > 1:
        report.refused.append((msrc.name, f"{len(matches)} images in the project are named "
                                          f"'{mask_key(msrc.name)}'; upload this mask from the Annotate page"))
        return
    rec = matches[0]
    try:
        reading = masks.read_mask(msrc.read(), classes, msrc.name, expected_size=rec.size, kind=mask_kind,
                                  trimap_border=trimap_border)
        project.save_mask(rec.id, reading.ids, rec.mask_version, author="import", source="imported")
        report.masks_added.append(msrc.name)
        report.mask_kinds[reading.kind] += 1
    except SegError as exc:
        report.refused.append((msrc.path or msrc.name, str(exc)))


def import_folder(project: Project, images_dir: str | Path, masks_dir: str | Path | None = None,
                  **kwargs) -> ImportReport:
    """Import an images folder and an optional masks folder (files matched by base name)."""
    img_root, msk_root = Path(images_dir), Path(masks_dir) if masks_dir else None
    for d in (img_root, msk_root):
        if d is not None and not d.is_dir():
            raise ProjectError(f"{d} is not a folder.")
    imgs = [Source.from_path(p) for p in sorted(img_root.iterdir()) if p.is_file() and images.is_image_name(p.name)]
    msks = ([Source.from_path(p) for p in sorted(msk_root.iterdir()) if p.is_file() and images.is_image_name(p.name)]
            if msk_root else [])
    if not imgs and not msks:
        raise ProjectError(f"No image files in {img_root}.")
    layout = Layout("images folder + masks folder" if msk_root else "images folder", [Group(imgs, msks)])
    return import_layout(project, layout, **kwargs)


def import_tree(project: Project, root: str | Path, **kwargs) -> ImportReport:
    """Import a folder in any supported layout (keras_segmentation, images/+masks/, flat)."""
    return import_layout(project, detect_layout(_folder_tree(Path(root))), **kwargs)


def import_zip(project: Project, archive: str | Path | bytes, **kwargs) -> ImportReport:
    """Import a zip of any supported layout; unsafe archives are refused before anything is read."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, (bytes, bytearray)) else archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArchiveError(f"This is not a readable zip file ({exc}).") from None
    with zf:
        tree = zip_tree(zf)
        return import_layout(project, detect_layout(tree), **kwargs)


def import_uploads(project: Project, image_files: Iterable[tuple[str, bytes]], mask_files: Iterable[tuple[str, bytes]] = (),
                   **kwargs) -> ImportReport:
    """Import files uploaded in the browser (name, bytes); masks match images by base name."""
    imgs = [Source.from_bytes(n, d) for n, d in image_files]
    msks = [Source.from_bytes(n, d) for n, d in mask_files]
    return import_layout(project, Layout("uploaded files", [Group(imgs, msks)]), **kwargs)


# ----- export --------------------------------------------------------------------------------
def export_zip(project: Project, out: str | Path, progress: Progress | None = None) -> Path:
    """Write images/, masks/ (palette PNG per labeled image), classes.json and manifest.json to a zip."""
    out = Path(out)
    classes = project.classes
    records = project.list_images()
    used = Counter(rec.stem or f"image_{rec.id}" for rec in records)
    taken: set[str] = set()
    buf_path = write_temp(out, b"")
    manifest = []
    try:
        with zipfile.ZipFile(buf_path, "w", compression=zipfile.ZIP_STORED) as zf:
            for i, rec in enumerate(records, 1):
                stem = rec.stem or f"image_{rec.id}"
                # Masks pair with images by base name, so every exported base name must be unique.
                if used[stem] > 1 or stem in taken:
                    stem = f"{stem}_{rec.id}"
                while stem in taken:
                    stem += "_"
                taken.add(stem)
                ext = Path(rec.stored_name).suffix
                img_name = f"images/{stem}{ext}"
                zf.write(project.image_path(rec), img_name)
                entry = {"image": img_name, "original_name": rec.filename, "split": rec.split, "status": rec.status}
                ids = project.load_mask(rec)
                if ids is not None:
                    mask_name = f"masks/{stem}.png"
                    zf.writestr(mask_name, masks.encode_png(ids, classes))
                    entry["mask"] = mask_name
                manifest.append(entry)
                if progress:
                    progress(i, len(records), rec.filename)
            meta = {"format": EXPORT_FORMAT, "version": 1, "name": project.name, "kind": project.kind,
                    "classes": [c.to_dict() for c in classes], "ignore_id": 255,
                    "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            zf.writestr("classes.json", json.dumps(meta, indent=2))
            zf.writestr("manifest.json", json.dumps({"images": manifest}, indent=2))
        commit_temp(buf_path, out)
    except BaseException:
        buf_path.unlink(missing_ok=True)
        raise
    return out


__all__ = ["import_folder", "import_tree", "import_zip", "import_uploads", "import_layout", "export_zip",
           "detect_layout", "ImportReport", "Source", "mask_key", "InvalidMaskError"]
