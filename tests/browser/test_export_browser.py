"""Taking the work elsewhere, in a real browser: the Data page's COCO export opened with pycocotools and imported
into a fresh project through the Data page's upload; the model downloaded from Predict & review as ONNX and its
predict_example.py run on a photo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from browser_helpers import open_expander, pick, shot, wait_idle
from helpers import photo, png_bytes
from seg_core.classes import binary_classes
from seg_core.store.workspace import new_project

H, W = 40, 56   # small, not square


def cell_mask(i: int) -> np.ndarray:
    """Two regions of class 1 that differ from image to image: a box and a disc."""
    yy, xx = np.mgrid[:H, :W]
    ids = np.zeros((H, W), np.uint8)
    ids[3 + i:15 + i, 4:20 + 2 * i] = 1
    ids[(yy - 26) ** 2 + (xx - 38 + i) ** 2 <= (7 + i) ** 2] = 1
    return ids


def labeled_project(workspace, name="first"):
    """Four photos, three with masks (one of them in the validation split), one unlabeled; background and 'cell'."""
    project = new_project(workspace / name, classes=binary_classes("cell"))
    for i in range(4):
        rec = project.add_image(png_bytes(photo(H, W, seed=i)), f"cell_{i}.png", split="val" if i == 1 else None).image
        if i < 3:
            project.masks.save(rec.id, cell_mask(i), 0, source="painted")
    return project


def masks_by_name(project) -> dict[str, np.ndarray | None]:
    return {rec.filename: project.masks.load(rec.id) for rec in project.list_images()}


def coco_masks(folder) -> tuple[dict[str, np.ndarray | None], list[str]]:
    """Every image's class ids as pycocotools' COCO API reads the export (None: an image with no annotations)."""
    from pycocotools.coco import COCO

    out, names = {}, set()
    for path in sorted((folder / "annotations").glob("instances_*.json")):
        api = COCO(str(path))
        names |= {c["name"] for c in api.loadCats(api.getCatIds())}
        for img in api.loadImgs(api.getImgIds()):
            anns = api.loadAnns(api.getAnnIds(imgIds=img["id"]))
            ids = None
            if anns:
                ids = np.zeros((img["height"], img["width"]), np.uint8)
                for ann in anns:
                    ids[api.annToMask(ann) == 1] = ann["category_id"]
            out[img["file_name"]] = ids
    return out, sorted(names)


def same_masks(a: dict[str, np.ndarray | None], b: dict[str, np.ndarray | None]) -> bool:
    return a.keys() == b.keys() and all(
        (a[k] is None and b[k] is None) or (a[k] is not None and b[k] is not None and np.array_equal(a[k], b[k]))
        for k in a)


def test_coco_export_opens_in_pycocotools_and_imports_back_through_the_page(app_server, page, workspace, tmp_path):
    first = labeled_project(workspace)
    expected = masks_by_name(first)
    page.goto(f"{app_server.url}/data?project=first")
    expect(page.get_by_text("4 images · 3 labeled · 1 unlabeled · 2 classes")).to_be_visible()
    wait_idle(page)
    page.get_by_role("tab", name="Export").click()
    pick(page, "data_export_format", "COCO")
    expect(page.get_by_text("annotations/instances_<split>.json", exact=False)).to_be_visible()
    page.locator(".st-key-data_export button").click()
    download_button = page.locator(".st-key-data_download button")
    expect(download_button).to_contain_text(re.compile(r"Download first-coco\.zip \(\d+ kB, prepared "))
    wait_idle(page)
    shot(page, "export_1_coco_prepared")
    with page.expect_download() as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename == "first-coco.zip"
    zip_path = tmp_path / download.suggested_filename
    download.save_as(zip_path)

    unpacked = tmp_path / "coco"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(unpacked)
    annotations = sorted(p.name for p in (unpacked / "annotations").iterdir())
    assert annotations == ["instances_train.json", "instances_val.json"]
    assert sorted(p.name for p in (unpacked / "images").iterdir()) == sorted(expected)
    read, names = coco_masks(unpacked)
    assert names == ["cell"]
    assert same_masks(read, expected)

    # A fresh project, no classes named: the zip goes in through the Data page's upload, as a person would.
    second = new_project(workspace / "second")
    page.goto(f"{app_server.url}/data?project=second")
    expect(page.get_by_text("0 images · 0 labeled")).to_be_visible()
    wait_idle(page)
    page.locator("[class*='st-key-data_zip_'] input[type='file']").set_input_files(str(zip_path))
    add = page.get_by_role("button", name="Add to project")
    expect(add).to_be_enabled()
    add.click()
    expect(page.get_by_text("first-coco.zip: added 4 image(s), 3 with a mask.")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"^Format: COCO instances JSON"))).to_be_visible()
    expect(page.get_by_text("Masks read as COCO instances JSON (polygons and RLE) (3)", exact=False)).to_be_visible()
    expect(page.get_by_text("Classes: 2 from the categories of instances_train.json (background, cell)")
           ).to_be_visible()
    expect(page.get_by_text("4 images · 3 labeled · 1 unlabeled · 2 classes")).to_be_visible()
    wait_idle(page)
    page.get_by_text(re.compile(r"^Format: COCO")).scroll_into_view_if_needed()   # the report, below the uploaders
    shot(page, "export_2_coco_imported")
    assert [c.name for c in second.classes] == [c.name for c in first.classes]
    assert same_masks(masks_by_name(second), expected)
    splits = {rec.filename: rec.split for rec in second.list_images()}
    assert splits == {rec.filename: rec.split for rec in first.list_images()}


def test_onnx_model_download_runs_its_example_script(app_server, page, trained_project, tmp_path):
    run = trained_project.runs.best()
    page.goto(f"{app_server.url}/review?project=trained")
    expect(page.get_by_role("heading", name="Predict & review")).to_be_visible()
    expect(page.get_by_text("the model's mask").first).to_be_visible(timeout=120_000)
    wait_idle(page)
    open_expander(page, "Download this model")
    pick(page, "review_export_format", "ONNX (.onnx)")
    expect(page.get_by_text("through ONNX Runtime", exact=False)).to_be_visible()
    page.locator(".st-key-review_export_build button").click()
    folder = f"trained-{run.id}-onnx"
    download_button = page.locator(".st-key-review_export_download button")
    expect(download_button).to_have_text(re.compile(rf"Download {folder}\.zip \(\d+ kB\)"), timeout=120_000)
    wait_idle(page)
    shot(page, "export_3_model_prepared")
    with page.expect_download() as info:
        download_button.click()
    download = info.value
    assert download.suggested_filename == f"{folder}.zip"
    zip_path = tmp_path / download.suggested_filename
    download.save_as(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        expected = (f"{folder}/{n}" for n in ("README.md", "model.json", "model.onnx", "predict_example.py"))
        assert sorted(zf.namelist()) == sorted(expected)
        zf.extractall(tmp_path / "unzipped")
    here = tmp_path / "unzipped" / folder
    card = json.loads((here / "model.json").read_text())

    # A photo of a size the model never saw: a non-square crop of a project image.
    rec = trained_project.list_images()[0]
    src = np.asarray(Image.open(trained_project.image_path(rec)).convert("RGB"))
    image = tmp_path / "photo.png"
    Image.fromarray(src[: src.shape[0] * 2 // 3, : src.shape[1] - 7]).save(image)
    out = tmp_path / "photo_mask.png"
    done = subprocess.run([sys.executable, "predict_example.py", str(image), str(out)], cwd=here,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    mask = Image.open(out)
    assert mask.mode == "P" and mask.size == Image.open(image).size
    ids = np.asarray(mask)
    assert set(np.unique(ids).tolist()) <= {c["id"] for c in card["classes"]} - {255}
    palette = mask.getpalette()[: 3 * len(card["classes"])]
    colours = [int(c["color"].lstrip("#")[i:i + 2], 16) for c in card["classes"] for i in (0, 2, 4)]
    assert palette == colours
