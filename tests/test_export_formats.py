"""Dataset exports (Maskloop, COCO, Pascal VOC, class-id PNGs): read by their reference readers (pycocotools,
Pillow's palette), and imported back to the same masks, class names and colours."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from helpers import edit_class, photo, png_bytes
from seg_core.classes import ClassSpec
from seg_core.cli import main
from seg_core.errors import DatasetFormatError, ProjectError
from seg_core.services import exporting, importing
from seg_core.store.workspace import new_project

H, W = 32, 48
CLASSES = [ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "leaf", (0, 200, 0)), ClassSpec(2, "spot", (200, 0, 0))]


def _mask(i: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[4 + i:20, 5:30] = 1          # a leaf, with a spot on it and a second spot apart: one region each class
    m[10:15, 10:20 + i] = 2
    m[25:30, 40:46] = 2
    m[0, :3] = 255                 # ignore pixels survive every trip
    return m


@pytest.fixture
def source(workspace):
    """Five images: three with masks, one labeled all background, one unlabeled; train, val and test splits;
    two uploads called 'same.png' (their export names must differ)."""
    p = new_project(workspace / "src", CLASSES)
    for i in range(5):
        name = "same.png" if i < 2 else f"img{i}.png"
        rec = p.add_image(png_bytes(photo(H, W, seed=i)), name).image
        if i < 3:
            p.masks.save(rec.id, _mask(i), 0)
        elif i == 3:
            p.masks.save(rec.id, np.zeros((H, W), np.uint8), 0)
    p.splits.set([3], "val")
    p.splits.set([4], "test")
    return p


def _export(project, tmp_path, fmt: str):
    out = exporting.export_zip(project, tmp_path / f"{fmt}.zip", fmt=fmt)
    return out, zipfile.ZipFile(out)


def _masks_by_sha(project) -> dict[str, np.ndarray | None]:
    return {r.sha256: project.masks.load(r) for r in project.list_images()}


@pytest.mark.parametrize("fmt", list(exporting.EXPORT_FORMATS))
def test_every_export_imports_back_to_the_same_masks_and_classes(fmt, source, tmp_path, workspace):
    out, _ = _export(source, tmp_path, fmt)
    dst = new_project(workspace / f"dst_{fmt}")
    report = importing.import_zip(dst, out, infer_classes=True)
    assert report.ok and len(report.added) == 5 and report.labeled == 4
    assert dst.classes == CLASSES
    want, got = _masks_by_sha(source), _masks_by_sha(dst)
    assert want.keys() == got.keys()
    for sha, mask in want.items():
        assert (mask is None and got[sha] is None) or np.array_equal(mask, got[sha])
    if fmt != "ids":  # the plain class-id layout has no place for splits
        assert {r.sha256: r.split for r in source.list_images()} == {r.sha256: r.split for r in dst.list_images()}


def test_coco_export_is_read_by_pycocotools(source, tmp_path):
    _, zf = _export(source, tmp_path, "coco")
    names = set(zf.namelist())
    assert {"annotations/instances_train.json", "annotations/instances_val.json",
            "annotations/instances_test.json"} <= names
    assert len([n for n in names if n.startswith("images/")]) == 5
    by_file = {}
    for split in ("train", "val", "test"):
        path = tmp_path / f"{split}.json"
        path.write_bytes(zf.read(f"annotations/instances_{split}.json"))
        api = COCO(str(path))
        assert [(c["id"], c["name"], c["color"]) for c in api.loadCats(api.getCatIds())] == [
            (1, "leaf", "#00c800"), (2, "spot", "#c80000")]
        for img in api.loadImgs(api.getImgIds()):
            assert f"images/{img['file_name']}" in names and (img["width"], img["height"]) == (W, H)
            mask = np.zeros((H, W), np.uint8)
            anns = api.loadAnns(api.getAnnIds(imgIds=[img["id"]]))
            assert sorted(a["category_id"] for a in anns) == sorted(set(a["category_id"] for a in anns))
            for ann in anns:
                assert ann["iscrowd"] == 0 and isinstance(ann["segmentation"]["counts"], str)
                region = api.annToMask(ann).astype(bool)
                assert ann["area"] == region.sum()
                mask[region] = ann["category_id"]
            by_file[img["file_name"]] = mask
    assert len(by_file) == 5
    for rec, stem in exporting._named(source.list_images()):
        ids = source.masks.load(rec)
        ids = np.zeros((H, W), np.uint8) if ids is None else np.where(ids == 255, 0, ids)  # COCO has no 'ignore'
        assert np.array_equal(by_file[f"{stem}.png"], ids)


def test_voc_export_has_palette_masks_split_lists_and_a_cvat_labelmap(source, tmp_path):
    _, zf = _export(source, tmp_path, "voc")
    names = set(zf.namelist())
    assert len([n for n in names if n.startswith("JPEGImages/")]) == 5
    assert zf.read("labelmap.txt").decode() == ("# label:color_rgb:parts:actions\nbackground:0,0,0::\n"
                                                "leaf:0,200,0::\nspot:200,0,0::\n")
    lists = {s: zf.read(f"ImageSets/Segmentation/{s}.txt").decode().split() for s in ("train", "val", "test")}
    named = dict((rec.id, stem) for rec, stem in exporting._named(source.list_images()))
    assert lists == {"train": [named[1], named[2]], "val": [named[3]], "test": [named[4]]}
    for rec in source.list_images():
        stem = named[rec.id]
        assert zf.read(f"JPEGImages/{stem}.png") == source.image_path(rec).read_bytes()  # the image's own bytes
        ids = source.masks.load(rec)
        if ids is None:
            assert f"SegmentationClass/{stem}.png" not in names
            continue
        im = Image.open(io.BytesIO(zf.read(f"SegmentationClass/{stem}.png")))
        assert im.mode == "P" and np.array_equal(np.asarray(im), ids)
        assert im.getpalette()[3:9] == [0, 200, 0, 200, 0, 0]


def test_class_id_export_is_greyscale_ids_with_a_classes_csv(source, tmp_path):
    _, zf = _export(source, tmp_path, "ids")
    assert zf.read("classes.csv").decode() == "id,name,r,g,b\n0,background,0,0,0\n1,leaf,0,200,0\n2,spot,200,0,0\n"
    for rec, stem in exporting._named(source.list_images()):
        ids = source.masks.load(rec)
        if ids is not None:
            im = Image.open(io.BytesIO(zf.read(f"masks/{stem}.png")))
            assert im.mode == "L" and np.array_equal(np.asarray(im), ids)


def test_an_export_refused_before_the_zip_leaves_the_old_file(source, tmp_path):
    out = tmp_path / "e.zip"
    out.write_bytes(b"previous export")
    edit_class(source, 1, name="leaf:big")
    with pytest.raises(DatasetFormatError, match="':'"):
        exporting.export_zip(source, out, fmt="voc")
    with pytest.raises(ProjectError, match="no export format 'yolo'"):
        exporting.export_zip(source, out, fmt="yolo")
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".e.zip")] == []


def test_cli_export_takes_a_format(source, tmp_path, capsys):
    out = tmp_path / "c.zip"
    assert main(["export", "--project", str(source.path), "--out", str(out), "--format", "coco"]) == 0
    assert "as COCO" in capsys.readouterr().out
    doc = json.loads(zipfile.ZipFile(out).read("annotations/instances_val.json"))
    assert [i["file_name"] for i in doc["images"]] == ["img2.png"]
    assert main(["export", "--project", str(source.path), "--out", str(tmp_path / "d.zip")]) == 0
    assert "classes.json" in zipfile.ZipFile(tmp_path / "d.zip").namelist()  # the default stays Maskloop's
    with pytest.raises(SystemExit):
        main(["export", "--project", str(source.path), "--out", str(out), "--format", "yolo"])


def test_an_empty_project_exports_its_classes_in_every_format(tmp_path, workspace):
    p = new_project(workspace / "empty", CLASSES)
    for fmt in exporting.EXPORT_FORMATS:
        _, zf = _export(p, tmp_path, fmt)
        names = set(zf.namelist())
        assert {"seg": "classes.json", "coco": "annotations/instances_train.json", "voc": "labelmap.txt",
                "ids": "classes.csv"}[fmt] in names
    doc = json.loads(zipfile.ZipFile(tmp_path / "coco.zip").read("annotations/instances_train.json"))
    assert doc["images"] == [] and [c["name"] for c in doc["categories"]] == ["leaf", "spot"]
