"""Export a project as a zip, in Maskloop's own layout or as COCO, Pascal VOC or plain class-id PNGs."""

from __future__ import annotations

import json
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from seg_core.classes import IGNORE_ID
from seg_core.errors import ProjectError
from seg_core import faults
from seg_core.durable import commit_temp, leftover_temps, storage_guard, sync_file, write_temp
from seg_core.formats import class_files, coco, masks, voc
from seg_core.formats.layouts import EXPORT_FORMAT
from seg_core.services import provenance
from seg_core.store.project import Project
from seg_core.store.records import ImageRecord

Progress = Callable[[int, int, str], None]
# Format name -> what it is, in one line (the Data page shows these; `maskloop export --format` takes the names).
EXPORT_FORMATS = {
    "seg": "Maskloop zip: images/, masks/ (palette PNGs), classes.json and manifest.json; imports back as the "
           "same project, splits and all.",
    "coco": "COCO: images/ and annotations/instances_<split>.json, one RLE mask per class in each image "
            "(pycocotools, detectron2, CVAT, Roboflow).",
    "voc": "Pascal VOC: JPEGImages/, SegmentationClass/ palette PNGs, train/val lists and CVAT's labelmap.txt.",
    "ids": "Plain class-id PNGs: images/, greyscale masks/ (pixel = class id, 255 = ignore) and classes.csv.",
}


def _named(records: list[ImageRecord]) -> Iterator[tuple[ImageRecord, str]]:
    """Each image with an export base name of its own: masks pair with images by base name in every format."""
    used = Counter(rec.stem or f"image_{rec.id}" for rec in records)
    taken: set[str] = set()
    for rec in records:
        stem = rec.stem or f"image_{rec.id}"
        if used[stem] > 1 or stem in taken:
            stem = f"{stem}_{rec.id}"
        while stem in taken:
            stem += "_"
        taken.add(stem)
        yield rec, stem


class _Seg:
    """images/, masks/ (palette PNGs), classes.json and manifest.json: re-imports as the same project."""

    def __init__(self, project: Project):
        self.project, self.manifest = project, []

    def add(self, zf: zipfile.ZipFile, rec: ImageRecord, stem: str, ids: np.ndarray | None) -> None:
        img_name = f"images/{stem}{Path(rec.stored_name).suffix}"
        zf.write(self.project.image_path(rec), img_name)
        entry = {"image": img_name, "original_name": rec.filename, "split": rec.split, "status": rec.status}
        if ids is not None:
            entry["mask"] = f"masks/{stem}.png"
            zf.writestr(entry["mask"], masks.encode_png(ids, self.project.classes))
        self.manifest.append(entry)

    def finish(self, zf: zipfile.ZipFile) -> None:
        p = self.project
        meta = {"format": EXPORT_FORMAT, "version": 1, "name": p.name, "kind": p.kind,
                "classes": [c.to_dict() for c in p.classes], "ignore_id": IGNORE_ID,
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        zf.writestr("classes.json", json.dumps(meta, indent=2))
        zf.writestr("manifest.json", json.dumps({"images": self.manifest}, indent=2))


class _Coco:
    """images/ and one instances JSON per split that has images; unlabeled images are listed with no annotations."""

    def __init__(self, project: Project):
        self.project = project
        self.by_split: dict[str, tuple[list[dict], list[dict]]] = {}
        self.next_id = 1

    def add(self, zf: zipfile.ZipFile, rec: ImageRecord, stem: str, ids: np.ndarray | None) -> None:
        file_name = f"{stem}{Path(rec.stored_name).suffix}"
        zf.write(self.project.image_path(rec), f"images/{file_name}")
        entry, anns = coco.image_entry(self.next_id, file_name, ids, rec.width, rec.height, self.project.classes)
        self.next_id += 1
        imgs, all_anns = self.by_split.setdefault(rec.split, ([], []))
        imgs.append(entry)
        all_anns += anns

    def finish(self, zf: zipfile.ZipFile) -> None:
        for split, (imgs, anns) in (self.by_split or {"train": ([], [])}).items():  # an empty project: its classes
            doc = coco.document(self.project.classes, imgs, anns, f"{self.project.name} ({split}), from Maskloop")
            zf.writestr(f"annotations/instances_{split}.json", json.dumps(doc))


class _Voc:
    """JPEGImages/ (each image's own bytes and extension: a PNG stays a lossless PNG), SegmentationClass/ palette
    PNGs, ImageSets/Segmentation/ lists of the labeled images by split, and labelmap.txt."""

    def __init__(self, project: Project):
        self.project = project
        self.stems: dict[str, list[str]] = {}
        self.labelmap = voc.labelmap(project.classes)  # refused before the zip is begun

    def add(self, zf: zipfile.ZipFile, rec: ImageRecord, stem: str, ids: np.ndarray | None) -> None:
        zf.write(self.project.image_path(rec), f"{voc.IMAGES_DIR}/{stem}{Path(rec.stored_name).suffix}")
        if ids is not None:
            zf.writestr(f"{voc.MASKS_DIR}/{stem}.png", masks.encode_png(ids, self.project.classes))
            self.stems.setdefault(rec.split, []).append(stem)

    def finish(self, zf: zipfile.ZipFile) -> None:
        for name, data in voc.image_sets(self.stems).items():
            zf.writestr(name, data)
        zf.writestr(voc.LABELMAP, self.labelmap)


class _Ids:
    """images/, masks/ as single-channel PNGs of class ids, classes.csv."""

    def __init__(self, project: Project):
        self.project = project

    def add(self, zf: zipfile.ZipFile, rec: ImageRecord, stem: str, ids: np.ndarray | None) -> None:
        zf.write(self.project.image_path(rec), f"images/{stem}{Path(rec.stored_name).suffix}")
        if ids is not None:
            zf.writestr(f"masks/{stem}.png", class_files.grey_png(ids))

    def finish(self, zf: zipfile.ZipFile) -> None:
        zf.writestr("classes.csv", class_files.classes_csv(self.project.classes))


_WRITERS = {"seg": _Seg, "coco": _Coco, "voc": _Voc, "ids": _Ids}


def export_zip(project: Project, out: str | Path, progress: Progress | None = None, fmt: str = "seg",
               run_id: str | None = None) -> Path:
    """Write the project to a zip in format `fmt` (EXPORT_FORMATS); the zip appears whole or not at all.
    run_id: only what that run learned from, its masks as they were then and its train/validation split."""
    if fmt not in _WRITERS:
        raise ProjectError(f"There is no export format '{fmt}'; choose one of {', '.join(EXPORT_FORMATS)}.")
    out = Path(out)
    writer = _WRITERS[fmt](project)
    if run_id is None:
        records, load = project.list_images(), project.masks.load
    else:
        data = provenance.run_data(project, run_id)
        records, load = list(data.records), (lambda rec: data.load(rec.id))
    total = len(records)
    with storage_guard(f"the export {out.name} was not written (nothing in the project changed)"):
        for tmp, name in leftover_temps(out.parent):   # an export of this name that was stopped half-way
            if name == out.name:
                tmp.unlink(missing_ok=True)
        buf_path = write_temp(out, b"")
        try:
            with zipfile.ZipFile(buf_path, "w", compression=zipfile.ZIP_STORED) as zf:
                for i, (rec, stem) in enumerate(_named(records), 1):
                    faults.point("write", buf_path)
                    writer.add(zf, rec, stem, load(rec))
                    if progress:
                        progress(i, total, rec.filename)
                writer.finish(zf)
            sync_file(buf_path)   # the zip's bytes reach the disk before its name does
            commit_temp(buf_path, out)
        except BaseException:
            buf_path.unlink(missing_ok=True)
            raise
    return out
