"""Other tools' labels: COCO (polygons, both RLE forms, overlaps), Pascal VOC / CVAT with labelmap.txt, class-id
masks with a class-names file; and the bad files each is refused for, with nothing imported."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_util

from helpers import photo, png_bytes, zip_bytes
from seg_core.classes import IGNORE_COLOR, ClassSpec, binary_classes
from seg_core.errors import DatasetFormatError, InvalidMaskError, ProjectError, SegError
from seg_core.services import importing
from seg_core.store.workspace import new_project

H, W = 32, 48


def _rle(region: np.ndarray) -> dict:
    enc = mask_util.encode(np.asfortranarray(region.astype(np.uint8)))
    return {"size": [H, W], "counts": enc["counts"].decode()}


def _uncompressed(region: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths down the columns, starting with a run of 0s."""
    return {"size": [H, W], "counts": _runs(region.T.ravel().astype(np.uint8))}


def _runs(flat: np.ndarray) -> list[int]:
    runs, value, n = [], 0, 0
    for v in flat.tolist():
        if v == value:
            n += 1
        else:
            runs.append(n)
            value, n = v, 1
    return runs + [n]


def _coco_doc(anns: list[dict], files=("a.png", "b.png"), cats=None) -> dict:
    return {"images": [{"id": i, "file_name": f, "width": W, "height": H} for i, f in enumerate(files, 1)],
            "categories": cats or [{"id": 3, "name": "table"}, {"id": 7, "name": "cup"}],
            "annotations": [{"id": i, "iscrowd": 0, **a} for i, a in enumerate(anns, 1)]}


def _coco_zip(doc: dict, files=("a.png", "b.png"), json_name="annotations/instances_default.json") -> bytes:
    entries = {f"images/{f}": png_bytes(photo(H, W, seed=i)) for i, f in enumerate(files)}
    entries[json_name] = json.dumps(doc).encode()
    return zip_bytes(entries)


def _box(y0, x0, y1, x1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _mask_of(project, name: str) -> np.ndarray | None:
    return project.masks.load(project.find_by_stem(name.rsplit(".", 1)[0])[0])


def test_coco_polygons_and_both_rle_forms_with_smaller_regions_on_top(workspace):
    cup, saucer = _box(10, 10, 16, 20), _box(0, 30, 8, 48)   # the table is the polygon below
    anns = [
        {"image_id": 1, "category_id": 7, "segmentation": _rle(cup)},              # written first, but smaller
        {"image_id": 1, "category_id": 3, "segmentation": [[0, 5, 40, 5, 40, 30, 0, 30]]},   # a polygon
        {"image_id": 2, "category_id": 7, "segmentation": _uncompressed(saucer)},
    ]
    p = new_project(workspace / "p")
    report = importing.import_zip(p, _coco_zip(_coco_doc(anns)), infer_classes=True)
    assert report.ok and report.labeled == 2 and report.format == "COCO instances JSON (polygons and RLE)"
    assert "note: overlapping COCO annotations are drawn largest first, so smaller regions lie on top" in report.lines()
    assert [c.name for c in p.classes] == ["background", "table", "cup"]
    poly = mask_util.decode(mask_util.merge(mask_util.frPyObjects([[0, 5, 40, 5, 40, 30, 0, 30]], H, W))).astype(bool)
    want = np.zeros((H, W), np.uint8)
    want[poly], want[cup] = 1, 2
    assert np.array_equal(_mask_of(p, "a.png"), want)
    assert np.array_equal(_mask_of(p, "b.png"), saucer.astype(np.uint8) * 2)


def test_roboflow_folders_give_splits_and_background_category_is_class_0(workspace):
    cats = [{"id": 0, "name": "background"}, {"id": 1, "name": "crack"}]
    entries = {}
    for split, folder in (("train", "train"), ("val", "valid")):
        doc = _coco_doc([{"image_id": 1, "category_id": 1, "segmentation": _rle(_box(1, 1, 5, 5))}],
                        files=(f"{folder}.png",), cats=cats)
        entries[f"{folder}/_annotations.coco.json"] = json.dumps(doc).encode()
        entries[f"{folder}/{folder}.png"] = png_bytes(photo(H, W, seed=len(entries)))
    p = new_project(workspace / "p")
    report = importing.import_zip(p, zip_bytes(entries), infer_classes=True)
    assert report.ok and report.labeled == 2
    assert [c.name for c in p.classes] == ["background", "crack"]
    assert {r.filename: r.split for r in p.list_images()} == {"train.png": "train", "valid.png": "val"}


def test_coco_classes_are_matched_by_name_in_a_project_that_has_its_own(workspace):
    p = new_project(workspace / "p", [ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "cup", (1, 2, 3)),
                                      ClassSpec(2, "table", (4, 5, 6))])
    rec = p.add_image(png_bytes(photo(H, W, seed=9)), "mine.png").image
    p.masks.save(rec.id, np.zeros((H, W), np.uint8), 0)
    anns = [{"image_id": 1, "category_id": 7, "segmentation": _rle(_box(0, 0, 4, 4))},
            {"image_id": 2, "category_id": 3, "segmentation": _rle(_box(4, 4, 8, 8))}]
    report = importing.import_zip(p, _coco_zip(_coco_doc(anns)), infer_classes=True)
    assert report.ok and [c.name for c in p.classes] == ["background", "cup", "table"]
    assert np.array_equal(_mask_of(p, "a.png"), _box(0, 0, 4, 4).astype(np.uint8) * 1)
    assert np.array_equal(_mask_of(p, "b.png"), _box(4, 4, 8, 8).astype(np.uint8) * 2)

    other = new_project(workspace / "q", binary_classes("cup"))
    other.add_image(png_bytes(photo(H, W, seed=8)), "x.png")
    with pytest.raises(ProjectError, match="does not have: table"):
        importing.import_zip(other, _coco_zip(_coco_doc(anns)), infer_classes=False)
    assert other.count_images() == 1


def _bad_rle():
    rle = _rle(_box(0, 0, 4, 4))
    return {**rle, "counts": _uncompressed(_box(0, 0, 4, 4))["counts"][:-1]}


BAD_COCO = {
    "missing image": (lambda d: d["images"].append({"id": 9, "file_name": "gone.jpg", "width": W, "height": H}),
                      DatasetFormatError, "1 image\\(s\\) that are not in the data set: gone.jpg"),
    "duplicate category ids": (lambda d: d["categories"].append({"id": 3, "name": "chair"}),
                               DatasetFormatError, "two categories with id 3 \\('table' and 'chair'\\)"),
    "RLE of the wrong size": (lambda d: d["annotations"][0]["segmentation"].update(size=[10, 12]),
                              DatasetFormatError, "RLE mask of 12x10 pixels, but the image is 48x32"),
    "damaged RLE": (lambda d: d["annotations"][0].update(segmentation=_bad_rle()), DatasetFormatError, "damaged"),
    "unknown category": (lambda d: d["annotations"][0].update(category_id=99), DatasetFormatError,
                         "category 99, which the file's 'categories' do not list"),
    "box only": (lambda d: d["annotations"][0].update(segmentation=[]), DatasetFormatError, "no segmentation"),
    "image of another size": (lambda d: (d["images"][1].update(width=64),
                                         d["annotations"][1].update(segmentation=[[0, 0, 9, 0, 9, 9]])), InvalidMaskError,
                              "the mask is 64x32 pixels but its image 'b.png' is 48x32; nothing was imported"),
}


@pytest.mark.parametrize("case", list(BAD_COCO))
def test_bad_coco_is_refused_naming_the_file_and_nothing_is_imported(case, workspace):
    change, error, message = BAD_COCO[case]
    doc = _coco_doc([{"image_id": 1, "category_id": 3, "segmentation": _rle(_box(0, 0, 4, 4))},
                     {"image_id": 2, "category_id": 7, "segmentation": _rle(_box(0, 0, 4, 4))}])
    change(doc)
    p = new_project(workspace / "p")
    before = p.classes
    with pytest.raises(error, match=message) as exc:
        importing.import_zip(p, _coco_zip(doc), infer_classes=True)
    assert "annotations/instances_default.json" in str(exc.value)
    assert p.count_images() == 0 and p.classes == before


def test_a_coco_named_file_that_is_not_json_is_refused(workspace):
    p = new_project(workspace / "p")
    with pytest.raises(DatasetFormatError, match="'annotations/instances_default.json' cannot be read as JSON"):
        importing.import_zip(p, zip_bytes({"images/a.png": png_bytes(photo(H, W)),
                                      "annotations/instances_default.json": b'{"images": ['}))
    assert p.count_images() == 0


def _rgb_mask(colors: dict[tuple, np.ndarray], base=(0, 0, 0)) -> bytes:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:] = base
    for color, region in colors.items():
        rgb[region] = color
    return png_bytes(rgb)


LABELMAP = b"# label:color_rgb:parts:actions\nbackground:0,0,0::\ncat:250,50,83::\ndog:0,0,255::\n"


def _cvat_zip(mask_a: bytes, labelmap: bytes = LABELMAP, with_images: bool = True) -> bytes:
    entries = {"labelmap.txt": labelmap, "ImageSets/Segmentation/default.txt": b"a\nb\n",
               "SegmentationClass/a.png": mask_a,
               "SegmentationClass/b.png": _rgb_mask({(250, 50, 83): _box(0, 0, 2, 2)}),
               "SegmentationObject/a.png": png_bytes(photo(H, W))}  # instance masks: not read
    if with_images:
        entries |= {"JPEGImages/a.png": png_bytes(photo(H, W, seed=1)), "JPEGImages/b.png": png_bytes(photo(H, W, 2))}
    return zip_bytes(entries)


def test_cvat_segmentation_mask_with_labelmap_and_voc_void_border(workspace):
    cat = _box(5, 5, 20, 30)
    border = _box(4, 4, 21, 31) & ~cat
    p = new_project(workspace / "p")
    report = importing.import_zip(p, _cvat_zip(_rgb_mask({(250, 50, 83): cat, (224, 224, 192): border})),
                                  infer_classes=True)
    assert report.ok and report.labeled == 2
    assert report.format == "Pascal VOC / CVAT Segmentation mask with labelmap.txt"
    assert [(c.name, c.color) for c in p.classes] == [("background", (0, 0, 0)), ("cat", (250, 50, 83)),
                                                      ("dog", (0, 0, 255))]
    want = cat.astype(np.uint8)
    want[border] = 255
    assert np.array_equal(_mask_of(p, "a.png"), want)
    assert "note: labelmap.txt lists classes no mask uses: dog" in report.lines()


def test_labelmap_colours_the_masks_do_not_use_are_noted_but_unlisted_mask_colours_refused(workspace):
    p = new_project(workspace / "p")
    bad = _rgb_mask({(250, 50, 83): _box(0, 0, 5, 5), (9, 9, 9): _box(10, 10, 12, 12)})
    with pytest.raises(InvalidMaskError, match="Mask 'a.png' has colours that labelmap.txt does not list: #090909"):
        importing.import_zip(p, _cvat_zip(bad), infer_classes=True)
    with pytest.raises(DatasetFormatError, match="labelmap.txt, line 3: 'cat:250,50' is not 'name:r,g,b::'"):
        importing.import_zip(p, _cvat_zip(bad, b"background:0,0,0::\n\ncat:250,50\n"), infer_classes=True)
    with pytest.raises(DatasetFormatError, match="gives 'cat' and 'dog' the same colour #fa3253"):
        importing.import_zip(p, _cvat_zip(bad, b"cat:250,50,83::\ndog:250,50,83::\n"), infer_classes=True)
    assert p.count_images() == 0 and p.classes == binary_classes()


def test_a_labelmap_class_in_the_ignore_grey_keeps_its_pixels(workspace):
    p = new_project(workspace / "p")
    car = _box(3, 3, 9, 9)
    report = importing.import_zip(p, _cvat_zip(_rgb_mask({IGNORE_COLOR: car}), b"car:128,128,128::\n"
                                                                           b"cat:250,50,83::\n"), infer_classes=True)
    assert [c.name for c in p.classes] == ["background", "car", "cat"] and p.classes[1].color != IGNORE_COLOR
    assert any("'car' is shown in" in n for n in report.notes)
    assert np.array_equal(_mask_of(p, "a.png"), car.astype(np.uint8))


def test_cvat_masks_without_images_go_to_the_projects_images_of_those_names(workspace):
    p = new_project(workspace / "p", [ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "cat", (1, 1, 1)),
                                      ClassSpec(2, "dog", (2, 2, 2))])
    for i, name in enumerate(("a.png", "b.png")):
        p.add_image(png_bytes(photo(H, W, seed=i + 1)), name)
    report = importing.import_zip(p, _cvat_zip(_rgb_mask({(250, 50, 83): _box(1, 1, 3, 3)}), with_images=False))
    assert report.ok and len(report.masks_added) == 2 and p.count_images(status="labeled") == 2
    assert np.array_equal(_mask_of(p, "a.png"), _box(1, 1, 3, 3).astype(np.uint8))


CLASS_FILES = {
    "classes.csv": b"id,name,r,g,b\n0,background,0,0,0\n1,road,10,10,10\n2,car,20,20,20\n",
    "classes.json": b'["background", "road", "car"]',
    "classes.txt": b"background\nroad\ncar\n",
}


@pytest.mark.parametrize("name", list(CLASS_FILES) + ["classes.json {id: name}", "keras_segmentation"])
def test_a_class_names_file_names_the_classes_of_class_id_masks(name, workspace):
    ids = np.zeros((H, W), np.uint8)
    ids[2:6, 2:6], ids[10:20, 10:20], ids[0, 0] = 1, 2, 255
    if name == "keras_segmentation":
        entries = {"class_names.txt": CLASS_FILES["classes.txt"],
                   "images_prepped_train/a.png": png_bytes(photo(H, W)), "annotations_prepped_train/a.png": png_bytes(ids)}
    else:
        data = b'{"0": "background", "1": "road", "2": "car"}' if name.endswith("}") else CLASS_FILES[name]
        entries = {name.split()[0]: data, "images/a.png": png_bytes(photo(H, W)), "masks/a.png": png_bytes(ids)}
    p = new_project(workspace / "p")
    report = importing.import_zip(p, zip_bytes(entries), infer_classes=True)
    assert report.ok and [c.name for c in p.classes] == ["background", "road", "car"]
    assert report.format.startswith("class-id masks with ")
    assert np.array_equal(_mask_of(p, "a.png"), ids)
    if name == "classes.csv":
        assert [c.color for c in p.classes] == [(0, 0, 0), (10, 10, 10), (20, 20, 20)]


def test_a_mask_value_the_class_file_does_not_name_refuses_the_import(workspace):
    ids = np.zeros((H, W), np.uint8)
    ids[3:5, 3:5] = 7
    p = new_project(workspace / "p")
    entries = {"classes.txt": CLASS_FILES["classes.txt"], "images/a.png": png_bytes(photo(H, W)),
               "images/b.png": png_bytes(photo(H, W, seed=3)), "masks/a.png": png_bytes(np.zeros((H, W), np.uint8)),
               "masks/b.png": png_bytes(ids)}
    with pytest.raises(SegError, match="Mask 'b.png' has values 7 that classes.txt does not name"):
        importing.import_zip(p, zip_bytes(entries), infer_classes=True)
    assert p.count_images() == 0


def test_pascal_voc_in_its_devkit_folders_takes_splits_from_image_sets(workspace):
    from PIL import Image

    def voc_png(ids: np.ndarray) -> bytes:
        im = Image.fromarray(ids, "P")
        im.putpalette([0, 0, 0, 128, 0, 0] + [0, 0, 0] * 253 + [224, 224, 192])
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()

    ids = np.zeros((H, W), np.uint8)
    ids[4:10, 4:10], ids[3, 3:11] = 1, 255
    root = "VOCdevkit/VOC2012/"
    entries = {"VOCdevkit/other/readme.txt": b"not part of it", f"{root}ImageSets/Segmentation/train.txt": b"a\n",
               f"{root}ImageSets/Segmentation/val.txt": b"b\n", f"{root}ImageSets/Segmentation/trainval.txt": b"a\nb\n"}
    for i, stem in enumerate("abc"):
        entries[f"{root}JPEGImages/{stem}.jpg"] = png_bytes(photo(H, W, seed=i), fmt="JPEG")
        if stem != "c":
            entries[f"{root}SegmentationClass/{stem}.png"] = voc_png(ids)
    p = new_project(workspace / "p")
    report = importing.import_zip(p, zip_bytes(entries), infer_classes=True)
    assert report.ok and len(report.added) == 3 and report.labeled == 2
    assert report.layout == "Pascal VOC (JPEGImages/ + SegmentationClass/)"
    assert {r.filename: r.split for r in p.list_images()} == {"a.jpg": "train", "b.jpg": "val", "c.jpg": "train"}
    assert np.array_equal(_mask_of(p, "b.jpg"), ids) and p.classes[1].color == (128, 0, 0)


def test_a_zip_of_only_a_coco_file_puts_its_masks_on_the_projects_images(workspace):
    p = new_project(workspace / "p", [ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "table", (1, 1, 1)),
                                      ClassSpec(2, "cup", (2, 2, 2))])
    p.add_image(png_bytes(photo(H, W, seed=1)), "a.png")
    doc = _coco_doc([{"image_id": 1, "category_id": 7, "segmentation": _rle(_box(2, 2, 6, 6))},
                     {"image_id": 2, "category_id": 3, "segmentation": _rle(_box(2, 2, 6, 6))}])
    report = importing.import_zip(p, zip_bytes({"instances_default.json": json.dumps(doc).encode()}))
    assert report.masks_added == ["a.png"] and report.masks_without_image == [
        "instances_default.json: annotations of b.png"]
    assert np.array_equal(_mask_of(p, "a.png"), _box(2, 2, 6, 6).astype(np.uint8) * 2)


def test_binary_0_255_masks_with_a_two_name_list_read_255_as_the_object(workspace):
    binary = np.zeros((H, W), np.uint8)
    binary[5:9, 5:9] = 255
    with_ignore = np.zeros((H, W), np.uint8)
    with_ignore[5:9, 5:9], with_ignore[0, 0] = 1, 255
    entries = {"labels.txt": b"background\ncar\n", "images/a.png": png_bytes(photo(H, W)),
               "images/b.png": png_bytes(photo(H, W, seed=2)), "masks/a.png": png_bytes(binary),
               "masks/b.png": png_bytes(with_ignore)}
    p = new_project(workspace / "p")
    assert importing.import_zip(p, zip_bytes(entries), infer_classes=True).ok
    assert [c.name for c in p.classes] == ["background", "car"]
    assert np.array_equal(_mask_of(p, "a.png"), binary // 255)
    assert np.array_equal(_mask_of(p, "b.png"), with_ignore)  # ids 0/1 with 255: that 255 is "ignore"


def test_cli_import_names_the_format_and_a_refused_one_leaves_no_project(workspace, tmp_path, capsys):
    from seg_core.cli import main

    good = tmp_path / "good.zip"
    good.write_bytes(_coco_zip(_coco_doc([{"image_id": 1, "category_id": 3, "segmentation": _rle(_box(0, 0, 4, 4))}])))
    assert main(["import", "--project", "cocos", "--zip", str(good)]) == 0
    out = capsys.readouterr().out
    assert "format: COCO instances JSON (polygons and RLE)" in out and "note: overlapping COCO annotations" in out
    doc = _coco_doc([{"image_id": 1, "category_id": 3, "segmentation": _rle(_box(0, 0, 4, 4))}])
    doc["categories"].append({"id": 3, "name": "chair"})
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_coco_zip(doc))
    assert main(["import", "--project", "refused", "--zip", str(bad)]) == 2
    assert "two categories with id 3" in capsys.readouterr().err
    assert not (workspace / "refused").exists()


def _pairs_with_class_file(tmp_path, class_file_in: str) -> np.ndarray:
    """pics/a.png and labels/a.png (class ids 1 and 2), classes.csv in tmp_path / class_file_in; the ids."""
    ids = np.zeros((H, W), np.uint8)
    ids[2:6, 2:6], ids[10:20, 10:20] = 1, 2
    (tmp_path / "pics").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(png_bytes(photo(H, W)))
    (tmp_path / "labels" / "a.png").write_bytes(png_bytes(ids))
    (tmp_path / class_file_in / "classes.csv").write_bytes(CLASS_FILES["classes.csv"])
    return ids


@pytest.mark.parametrize("where", ["masks", "both"])
def test_import_images_and_masks_folders_reads_a_class_file_as_folder_does(where, workspace, tmp_path, capsys):
    """`maskloop import --images X --masks Y` reads classes.csv in Y (or in the folder holding X and Y), as --folder
    reads it: the classes are named and coloured from it, not inferred as 'class 2'."""
    from seg_core.cli import main
    from seg_core.store.project import Project

    ids = _pairs_with_class_file(tmp_path, "labels" if where == "masks" else ".")
    assert main(["import", "--project", "pairs", "--images", str(tmp_path / "pics"),
                 "--masks", str(tmp_path / "labels")]) == 0
    assert "format: class-id masks with classes.csv" in capsys.readouterr().out
    p = Project(workspace / "pairs")
    assert [(c.name, c.color) for c in p.classes] == [("background", (0, 0, 0)), ("road", (10, 10, 10)),
                                                       ("car", (20, 20, 20))]
    assert np.array_equal(_mask_of(p, "a.png"), ids)


def test_nonzero_asked_for_makes_any_named_class_the_object(workspace, tmp_path, capsys):
    """`--mask-format nonzero` with a classes.csv beside the masks: person vs background from 7 named classes, as
    asked, instead of a refusal naming classes the new project was not given."""
    from seg_core.cli import main
    from seg_core.store.project import Project

    ids = _pairs_with_class_file(tmp_path, "labels")
    assert main(["import", "--project", "person", "--images", str(tmp_path / "pics"), "--masks",
                 str(tmp_path / "labels"), "--mask-format", "nonzero", "--classes", "background", "person"]) == 0
    said = capsys.readouterr().out
    assert "names the masks' classes; as asked, any of them is the object" in said
    p = Project(workspace / "person")
    assert [c.name for c in p.classes] == ["background", "person"]
    assert np.array_equal(_mask_of(p, "a.png"), (ids > 0).astype(np.uint8))
