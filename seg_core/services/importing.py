"""Import into a project: folders, zips and browser uploads in any supported layout, with a report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

import numpy as np

from seg_core.classes import IGNORE_ID, ClassSpec
from seg_core.errors import ProjectError, SegError, StorageError, UnknownMaskValuesError
from seg_core.durable import storage_guard
from seg_core.formats import images, masks
from seg_core.formats.archive import open_zip, zip_tree
from seg_core.formats.layouts import (KERAS_SEG_PAIRS, Group, Layout, Source, check_declared, detect_layout,
                                     folder_tree, mask_key, read_class_file_in_folders)
from seg_core.store.project import Project
from seg_core.store.records import ImageStatus

Progress = Callable[[int, int, str], None]
EXISTING_MASKS = ("skip", "replace")   # what an import does with a mask for an image that already has another one


@dataclass(frozen=True)
class MaskRules:
    """How an import reads masks and what it does with them."""

    kind: str = "auto"                       # masks.MASK_KINDS
    trimap_border: str | int = "ignore"
    value_map: dict[int, int] | None = None  # mask value -> class id (or IGNORE_ID), for values that are not ids
    existing: str = "skip"                   # EXISTING_MASKS
    label: str = ""                          # what the report calls the masks, when the layout's format says it

    def read(self, src: Source, classes: Sequence[ClassSpec], size: tuple[int, int]):
        reading = masks.read_mask(src.read(), classes, src.name, expected_size=size, kind=self.kind,
                                  trimap_border=self.trimap_border, value_map=self.value_map)
        return replace(reading, kind=self.label) if self.label else reading


@dataclass
class ImportReport:
    layout: str = ""
    format: str = ""                                          # the format read: "COCO instances JSON", ...
    notes: list[str] = field(default_factory=list)            # how it was read (overlap order, colours, ...)
    added: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    masks_added: list[str] = field(default_factory=list)      # masks attached to images already present
    masks_skipped: list[tuple[str, str]] = field(default_factory=list)   # the image has another mask: kept
    masks_replaced: list[tuple[str, str]] = field(default_factory=list)  # ...replaced, as asked
    masks_unchanged: list[str] = field(default_factory=list)  # identical to the image's mask: nothing to do
    unknown_values: set[int] = field(default_factory=set)     # values of masks refused for not being class ids
    value_refused: list[tuple[str, str | None]] = field(default_factory=list)  # (mask, its image) refused so
    masks_without_image: list[str] = field(default_factory=list)
    mask_kinds: Counter = field(default_factory=Counter)
    labeled: int = 0
    classes: str = ""

    @property
    def ok(self) -> bool:
        return not self.refused

    def lines(self) -> list[str]:
        out = []
        if self.format and self.format != self.layout:
            out.append(f"format: {self.format}")
        if self.layout:
            out.append(f"layout: {self.layout}")
        out += [f"note: {n}" for n in self.notes]
        if self.classes:
            out.append(f"classes: {self.classes}")
        out.append(f"added: {len(self.added)} image(s), {self.labeled} with a mask")
        for kind, n in self.mask_kinds.most_common():
            out.append(f"  masks detected as {kind}: {n}")
        if self.masks_added:
            out.append(f"masks added to images already in the project: {len(self.masks_added)}")
        if self.masks_unchanged:
            out.append(f"masks identical to the project's (nothing changed): {len(self.masks_unchanged)}")
        if self.masks_skipped:
            out.append(f"masks NOT imported, the image's own mask was kept: {len(self.masks_skipped)} "
                       "(import again with 'replace' to overwrite them)")
            out += [f"  {name}: {why}" for name, why in self.masks_skipped]
        if self.masks_replaced:
            out.append(f"masks that replaced the image's mask: {len(self.masks_replaced)}")
            out += [f"  {name}: {why}" for name, why in self.masks_replaced]
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
        return {"layout": self.layout, "format": self.format, "notes": self.notes, "classes": self.classes, "added": self.added,
                "labeled": self.labeled, "duplicates": [list(d) for d in self.duplicates],
                "refused": [list(r) for r in self.refused], "masks_added": self.masks_added,
                "masks_skipped": [list(m) for m in self.masks_skipped],
                "masks_replaced": [list(m) for m in self.masks_replaced], "masks_unchanged": self.masks_unchanged,
                "unknown_values": sorted(self.unknown_values),
                "masks_without_image": self.masks_without_image, "mask_kinds": dict(self.mask_kinds)}


def _infer_classes_for(project: Project, layout: Layout, kind: str) -> str:
    """On a project with no masks yet, take classes from classes.json or guess them from the masks."""
    if project.count_images(status=ImageStatus.LABELED):
        return ""
    if layout.classes:
        if layout.classes != project.classes:
            project.set_classes(layout.classes)
        return f"{len(layout.classes)} from {layout.classes_source} ({', '.join(c.name for c in layout.classes)})"
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
                  infer_classes: bool = False, split: str | None = None, existing_masks: str = "skip",
                  value_map: dict[int, int] | None = None, progress: Progress | None = None) -> ImportReport:
    """Add the layout's images and masks. A mask for an image that already has a different one is skipped (and
    listed), unless existing_masks="replace": an import never overwrites a person's mask unasked."""
    if existing_masks not in EXISTING_MASKS:
        raise ProjectError(f"existing_masks must be one of {', '.join(EXISTING_MASKS)}, not '{existing_masks}'.")
    report = ImportReport(layout=layout.kind, format=layout.format or layout.kind, notes=list(layout.notes))
    declared = layout.declared and mask_kind != "nonzero"   # asked for: any non-zero value is the object, named or not
    if layout.declared and not declared:
        report.notes.append(f"{layout.classes_source} names the masks' classes; as asked, any of them is the object.")
    used = _check_declared(layout, value_map, report) if declared else None
    rules = MaskRules(mask_kind, trimap_border, value_map or None, existing_masks)
    try:
        if infer_classes and not value_map and (mask_kind != "nonzero" or declared):  # a mapping speaks
            with storage_guard("nothing was imported"):                         # of the project's classes
                report.classes = _infer_classes_for(project, layout, mask_kind)
        classes = project.classes
        if used is not None:
            rules = MaskRules("ids", trimap_border, _by_name(layout, classes, used), existing_masks, layout.format)
        _import_groups(project, layout, classes, split, rules, report, progress)
    except StorageError as exc:
        raise StorageError(f"{exc.reason}: the import stopped at the file it was writing. {_kept(report)} Nothing "
                           "was half-written; free some space or make the workspace writable, then import again "
                           "(files already in the project are skipped as duplicates).", exc.reason) from exc
    return report


def _kept(report: ImportReport) -> str:
    n, m = len(report.added), len(report.masks_added) + len(report.masks_replaced)
    if not n and not m:
        return "No image was added."
    return f"The {n} image(s) and {report.labeled + m} mask(s) imported before it are in the project."


def _import_groups(project: Project, layout: Layout, classes: Sequence[ClassSpec], split: str | None,
                   rules: MaskRules, report: ImportReport, progress: Progress | None) -> None:
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
                        rules, report, layout.original_names.get(src.name))
        for key, msrc in by_key.items():
            done += 1
            if progress:
                progress(done, total, msrc.name)
            if key not in image_keys:
                _attach_mask(project, classes, msrc, rules, report)


def _check_declared(layout: Layout, value_map: dict[int, int] | None, report: ImportReport) -> set[int]:
    """Every mask of a COCO, VOC-with-labelmap or class-names layout read before anything is written."""
    if value_map:
        raise ProjectError(f"This data set names its classes in {layout.classes_source}; a value mapping is only for "
                           "masks whose values are not named.")
    used = check_declared(layout)
    unused = [c.name for c in (layout.classes or [])[1:] if c.id not in used]
    if unused and any(g.masks for g in layout.groups):
        # Common, not an error: CVAT and COCO files list every label of a task, painted or not.
        report.notes.append(f"{layout.classes_source} lists classes no mask uses: {', '.join(unused)}")
    return used


def _by_name(layout: Layout, classes: Sequence[ClassSpec], used: set[int]) -> dict[int, int]:
    """Mask values (the layout's class ids) -> this project's class ids, matched by name; 0 is the background in
    both. A class the project lacks refuses the import before anything is written."""
    by_name = {c.name.lower(): c.id for c in classes}
    mapping, missing = {IGNORE_ID: IGNORE_ID}, []
    for cid in sorted(used - {IGNORE_ID}):
        name = layout.classes[cid].name  # type: ignore[index]
        target = 0 if cid == 0 else by_name.get(name.lower())
        if target is None:
            missing.append(name)
        else:
            mapping[cid] = target
    if missing:
        raise ProjectError(f"The masks in this data set use classes this project does not have: {', '.join(missing)} "
                           f"(the project has {', '.join(c.name for c in classes)}). Add them on the Data page's "
                           "Classes tab, or import into a new project, which takes the data set's classes.")
    return mapping


def _put_mask(project: Project, rec, reading, name: str, existing_masks: str, report: ImportReport) -> None:
    """An imported mask for an image already in the project: added, or left alone, or (asked) replacing its mask."""
    current = project.masks.load(rec)
    if current is not None and np.array_equal(current, reading.ids):
        report.masks_unchanged.append(name)
        return
    if current is not None:
        who = {"painted": "painted in the app", "corrected": "corrected in the app", "assisted": "made with an assist",
               "imported": "imported earlier",
               "demo": "made with the demo"}.get(rec.mask_source or "", "saved earlier")
        why = f"'{rec.filename}' has a mask {who} (version {rec.mask_version})"
        if existing_masks == "skip":
            report.masks_skipped.append((name, why))
            return
    project.masks.save(rec.id, reading.ids, rec.mask_version, author="import", source="imported")
    if current is not None:
        report.masks_replaced.append((name, why))
    else:
        report.masks_added.append(name)
    report.mask_kinds[reading.kind] += 1


def _import_one(project: Project, classes: Sequence[ClassSpec], src: Source, msrc: Source | None, split: str | None,
                rules: MaskRules, report: ImportReport, original_name: str | None = None) -> None:
    label = src.path or src.name
    try:
        prep = images.prepare_upload(src.read(), src.name)
        reading = None
        if msrc is not None:
            reading = rules.read(msrc, classes, (prep.width, prep.height))
        result = project.add_image(b"", _plain_name(original_name) or src.name, split=split, prepared=prep)
        if result.status == "duplicate":
            if reading is not None:
                _put_mask(project, result.image, reading, msrc.name, rules.existing, report)  # type: ignore[union-attr]
            report.duplicates.append((label, result.detail))
            return
        report.added.append(label)
        if reading is not None:
            project.masks.save(result.image.id, reading.ids, 0, author="import", source="imported")
            report.labeled += 1
            report.mask_kinds[reading.kind] += 1
    except StorageError:
        raise   # a full or read-only disk stops the whole import: every later file would fail the same way
    except SegError as exc:
        what = f"{label} (with mask {msrc.name})" if msrc is not None else label
        report.refused.append((what, str(exc)))
        if isinstance(exc, UnknownMaskValuesError):
            report.unknown_values |= set(exc.values)
            report.value_refused.append((msrc.name, src.name))  # type: ignore[union-attr]


def _plain_name(name: str | None) -> str | None:
    try:
        return images.safe_filename(name) if name else None
    except SegError:
        return None


def _attach_mask(project: Project, classes: Sequence[ClassSpec], msrc: Source, rules: MaskRules,
                 report: ImportReport) -> None:
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
        _put_mask(project, rec, rules.read(msrc, classes, rec.size), msrc.name, rules.existing, report)
    except StorageError:
        raise
    except SegError as exc:
        report.refused.append((msrc.path or msrc.name, str(exc)))
        if isinstance(exc, UnknownMaskValuesError):
            report.unknown_values |= set(exc.values)
            report.value_refused.append((msrc.name, None))


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
    if msk_root is not None:
        both = msk_root.resolve().parent
        read_class_file_in_folders(layout, [msk_root] + ([both] if img_root.resolve().parent == both else []))
    return import_layout(project, layout, **kwargs)


def import_tree(project: Project, root: str | Path, expect: str | None = None, **kwargs) -> ImportReport:
    """Import a folder in any supported layout (keras_segmentation, images/+masks/, flat); `expect` refuses any
    other layout than the one named (e.g. "keras_segmentation") before anything is imported."""
    layout = tree_layout(root, expect)
    return import_layout(project, layout, **kwargs)


def tree_layout(root: str | Path, expect: str | None = None) -> Layout:
    """The layout of a folder, checked against `expect` when given; reads file names only."""
    layout = detect_layout(folder_tree(Path(root)))
    if expect is not None and not layout.kind.startswith(expect):
        pairs = " and ".join(f"{i}/ + {a}/" for i, a, _ in KERAS_SEG_PAIRS) if expect == "keras_segmentation" else expect
        raise ProjectError(f"{root} is not in the {expect} layout (expected {pairs}); it looks like "
                           f"{layout.kind}. Import it with --folder, which detects the layout, or with --images "
                           "and --masks.")
    return layout


def import_zip(project: Project, archive: str | Path | bytes, **kwargs) -> ImportReport:
    """Import a zip of any supported layout; unsafe archives are refused before anything is read."""
    with open_zip(archive) as zf:
        tree = zip_tree(zf)
        return import_layout(project, detect_layout(tree), **kwargs)


def import_uploads(project: Project, image_files: Iterable[tuple[str, bytes]], mask_files: Iterable[tuple[str, bytes]] = (),
                   **kwargs) -> ImportReport:
    """Import files uploaded in the browser (name, bytes); masks match images by base name."""
    imgs = [Source.from_bytes(n, d) for n, d in image_files]
    msks = [Source.from_bytes(n, d) for n, d in mask_files]
    return import_layout(project, Layout("uploaded files", [Group(imgs, msks)]), **kwargs)
