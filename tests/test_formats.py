"""Import and export: folder pairs, keras_segmentation, zips (and their dangers), round trips."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from helpers import box_mask, photo, png_bytes, write_pair_folders, zip_bytes
from seg_core.formats.layouts import mask_key
from seg_core.services import exporting, importing
from seg_core.classes import ClassSpec, default_classes
from seg_core.errors import ProjectError, UnsafeArchiveError
from seg_core.store.project import Project
from seg_core.store.workspace import new_project


@pytest.fixture
def project(tmp_path):
    return Project.create(tmp_path / "p")


def test_folder_import_pairs_by_base_name_and_reports_everything(tmp_path, project):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 5, skip_masks=(3,), extra_masks=("orphan.png",))
    (img_dir / "notes.txt").write_text("not an image")
    (img_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    report = importing.import_folder(project, img_dir, msk_dir)
    assert len(report.added) == 5 and report.labeled == 4
    assert report.mask_kinds == {"binary 0/255": 4}
    assert report.masks_without_image == [str(msk_dir / "orphan.png")]
    assert len(report.refused) == 1 and "broken.png" in report.refused[0][0]
    assert "truncated or damaged" in report.refused[0][1] or "not an image" in report.refused[0][1]
    assert not report.ok
    rec = project.find_by_stem("img_003")[0]
    assert rec.status == "unlabeled"
    labeled = project.find_by_stem("img_001")[0]
    np.testing.assert_array_equal(project.masks.load(labeled), (box_mask(24, 32, 1, (1, 2, 11, 20))))
    text = "\n".join(report.lines())
    assert "refused: 1" in text and "masks without an image" in text

    again = importing.import_folder(project, img_dir, msk_dir)
    assert len(again.duplicates) == 5 and not again.added
    assert project.count_images() == 5


def test_bad_mask_refuses_the_pair_and_changes_nothing(tmp_path, project):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 2)
    (msk_dir / "img_001.png").write_bytes(png_bytes(np.zeros((10, 10), np.uint8)))
    report = importing.import_folder(project, img_dir, msk_dir)
    assert len(report.added) == 1
    assert report.refused[0][0].endswith("img_001.png (with mask img_001.png)")
    assert "10x10" in report.refused[0][1] and "32x24" in report.refused[0][1]
    assert project.count_images() == 1
    # Fix the mask and import again: the missing pair arrives, nothing is duplicated.
    (msk_dir / "img_001.png").write_bytes(png_bytes(box_mask(value=255)))
    fixed = importing.import_folder(project, img_dir, msk_dir)
    assert len(fixed.added) == 1 and len(fixed.duplicates) == 1 and fixed.ok


def test_masks_attach_to_images_already_in_the_project(tmp_path, project):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 3)
    importing.import_folder(project, img_dir)
    assert project.count_images(status="labeled") == 0
    report = importing.import_uploads(project, [], [(p.name, p.read_bytes()) for p in sorted(msk_dir.iterdir())])
    assert len(report.masks_added) == 3 and report.ok
    assert project.count_images(status="labeled") == 3


def test_an_import_never_overwrites_a_mask_unasked(tmp_path, project, capsys):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 2)
    importing.import_folder(project, img_dir, msk_dir)
    first, second = project.find_by_stem("img_000")[0], project.find_by_stem("img_001")[0]
    painted = project.masks.save(first.id, np.ones((24, 32), np.uint8), first.mask_version, source="painted")
    uploads = [(p.name, p.read_bytes()) for p in sorted(msk_dir.iterdir())]
    report = importing.import_uploads(project, [], uploads)
    assert report.masks_unchanged == ["img_001.png"] and report.masks_added == []      # identical: a no-op
    assert report.masks_skipped == [("img_000.png", "'img_000.png' has a mask painted in the app (version 2)")]
    assert project.image(first.id).mask_version == painted.mask_version == 2
    assert project.image(second.id).mask_version == 1 and (project.masks.load(first.id) == 1).all()
    assert "masks NOT imported, the image's own mask was kept: 1" in "\n".join(report.lines())
    # The same pair imported again as images + masks (duplicates): the same rule.
    again = importing.import_folder(project, img_dir, msk_dir)
    assert [n for n, _ in again.masks_skipped] == ["img_000.png"] and project.image(first.id).mask_version == 2
    replaced = importing.import_uploads(project, [], uploads, existing_masks="replace")
    assert [n for n, _ in replaced.masks_replaced] == ["img_000.png"]
    assert project.image(first.id).mask_version == 3 and project.image(first.id).mask_source == "imported"
    with pytest.raises(ProjectError, match="existing_masks"):
        importing.import_uploads(project, [], uploads, existing_masks="merge")


def test_masks_refused_for_their_values_are_listed_and_import_with_a_mapping(tmp_path, workspace):
    from seg_core.classes import IGNORE_ID, binary_classes

    project = new_project(workspace / "pets", binary_classes("pet"))
    trimapish = np.zeros((24, 32), np.uint8)
    trimapish[4:10, 4:10], trimapish[12:20, 12:20], trimapish[0, :] = 1, 2, 255
    imgs = [("cat.png", png_bytes(photo(seed=1))), ("dog.png", png_bytes(photo(seed=2)))]
    msks = [("cat.png", png_bytes(trimapish)), ("dog.png", png_bytes(trimapish))]
    report = importing.import_uploads(project, imgs, msks)
    assert report.unknown_values == {0, 1, 2, 255} and len(report.refused) == 2
    assert report.value_refused == [("cat.png", "cat.png"), ("dog.png", "dog.png")] and project.count_images() == 0
    again = importing.import_uploads(project, imgs, msks, value_map={1: 1, 2: 1, 255: IGNORE_ID})
    assert again.ok and again.labeled == 2 and again.mask_kinds == {"values mapped": 2}
    ids = project.masks.load(1)
    assert (ids[4:10, 4:10] == 1).all() and (ids[12:20, 12:20] == 1).all() and (ids[0] == IGNORE_ID).all()
    assert project.stats()["ignore_pixels"] == 2 * 32


def test_carvana_style_mask_names_and_gif_masks(tmp_path, project):
    from PIL import Image
    (tmp_path / "train").mkdir()
    (tmp_path / "train_masks").mkdir()
    (tmp_path / "train" / "car_01.jpg").write_bytes(png_bytes(photo(24, 32, 5), fmt="JPEG", quality=95))
    gif = Image.fromarray(box_mask(value=1), "P")
    gif.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    buf = io.BytesIO()
    gif.save(buf, format="GIF")
    (tmp_path / "train_masks" / "car_01_mask.gif").write_bytes(buf.getvalue())
    report = importing.import_folder(project, tmp_path / "train", tmp_path / "train_masks")
    assert report.labeled == 1 and report.mask_kinds == {"GIF mask": 1}
    np.testing.assert_array_equal(project.masks.load(1), box_mask(value=1))


def test_keras_segmentation_layout_with_test_pair(tmp_path, workspace):
    root = tmp_path / "dataset1"
    for sub, n, off in (("train", 4, 0), ("test", 2, 10)):
        (root / f"images_prepped_{sub}").mkdir(parents=True)
        (root / f"annotations_prepped_{sub}").mkdir(parents=True)
        for i in range(n):
            name = f"0001TP_{off + i:04d}.png"
            (root / f"images_prepped_{sub}" / name).write_bytes(png_bytes(photo(24, 32, off + i)))
            (root / f"annotations_prepped_{sub}" / name).write_bytes(png_bytes(box_mask(value=1 + i % 4)))
    project = new_project(workspace / "kseg")
    report = importing.import_tree(project, root, infer_classes=True)
    assert report.layout.startswith("keras_segmentation")
    assert "5 classes" in report.classes
    assert project.count_images(split="test") == 2 and project.count_images(split="train") == 4
    assert project.stats()["class_ids_present"] == [0, 1, 2, 3, 4]


def test_oxford_pets_layout_with_trimaps(tmp_path, project):
    root = tmp_path / "pets"
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    (root / "annotations" / "xmls").mkdir(parents=True)
    tri = np.full((24, 32), 2, np.uint8)
    tri[5:15, 5:20] = 3
    tri[7:13, 7:18] = 1
    (root / "images" / "Abyssinian_1.jpg").write_bytes(png_bytes(photo(24, 32, 9), fmt="JPEG"))
    (root / "annotations" / "trimaps" / "Abyssinian_1.png").write_bytes(png_bytes(tri))
    report = importing.import_tree(project, root, trimap_border="object")
    assert report.mask_kinds == {"Oxford-pets trimap": 1}
    mask = project.masks.load(1)
    assert mask[10, 10] == 1 and mask[0, 0] == 0 and mask[5, 5] == 1


@pytest.mark.parametrize("bad", ["../evil.png", "images/../../evil.png", "/etc/evil.png", "C:/evil.png"])
def test_zip_with_escaping_paths_is_refused_before_anything_is_imported(project, bad):
    data = zip_bytes({"images/a.png": png_bytes(photo()), bad: png_bytes(photo(seed=1))})
    with pytest.raises(UnsafeArchiveError, match="outside the archive"):
        importing.import_zip(project, data)
    assert project.count_images() == 0


def test_zip_that_would_expand_past_the_limit_is_refused(project, monkeypatch):
    data = zip_bytes({"images/a.png": png_bytes(photo()), "images/big.bin": b"\0" * 200_000})
    monkeypatch.setattr("seg_core.formats.archive.MAX_ARCHIVE_BYTES", 100_000)
    with pytest.raises(UnsafeArchiveError, match="expand to more than"):
        importing.import_zip(project, data)
    assert project.count_images() == 0


def test_zip_bomb_entry_is_refused(project):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("images/a.png", b"\0" * (40 * 2**20))
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        importing.import_zip(project, buf.getvalue())


def test_not_a_zip_and_zip_without_images(project):
    with pytest.raises(UnsafeArchiveError, match="not a readable zip"):
        importing.import_zip(project, b"hello")
    with pytest.raises(ProjectError, match="No images found"):
        importing.import_zip(project, zip_bytes({"readme.txt": b"hi"}))


def test_zip_wrapped_in_a_folder_with_macos_junk(project):
    data = zip_bytes({
        "mydata/images/a.png": png_bytes(photo(seed=1)),
        "mydata/masks/a.png": png_bytes(box_mask(value=255)),
        "__MACOSX/mydata/images/._a.png": b"junk",
        "mydata/.DS_Store": b"junk",
    })
    report = importing.import_zip(project, data)
    assert report.ok and report.labeled == 1 and report.layout == "images/ + masks/"


def test_export_reimports_to_the_same_project(tmp_path, workspace):
    classes = [ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "leaf", (0, 200, 0)), ClassSpec(2, "spot", (200, 0, 0))]
    src = new_project(workspace / "src", classes)
    for i in range(4):
        rec = src.add_image(png_bytes(photo(24, 32, i, gray=i == 0)), "same.png" if i < 2 else f"img{i}.jpg").image
        if i < 3:
            m = box_mask(value=1 + i % 2)
            m[0, 0] = 255  # an ignore pixel survives the trip too
            src.masks.save(rec.id, m, 0)
    src.splits.set([2], "val")
    out = exporting.export_zip(src, tmp_path / "export.zip")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("classes.json"))
    assert {"classes.json", "manifest.json"} <= names
    assert len([n for n in names if n.startswith("images/")]) == 4
    assert len([n for n in names if n.startswith("masks/")]) == 3
    assert meta["classes"][1] == {"id": 1, "name": "leaf", "color": "#00c800"}

    dst = new_project(workspace / "dst")
    report = importing.import_zip(dst, out, infer_classes=True)
    assert report.ok and len(report.added) == 4
    assert dst.classes == classes
    for a, b in zip(src.list_images(), dst.list_images()):
        assert (a.filename, a.split, a.status, a.size) == (b.filename, b.split, b.status, b.size)
        assert src.image_path(a).read_bytes() == dst.image_path(b).read_bytes()
        ma, mb = src.masks.load(a), dst.masks.load(b)
        assert (ma is None and mb is None) or np.array_equal(ma, mb)


def test_export_is_atomic_on_failure(tmp_path, project, monkeypatch):
    project.add_image(png_bytes(photo()), "a.png")
    out = tmp_path / "e.zip"
    out.write_bytes(b"previous export")
    monkeypatch.setattr(project.masks, "load", lambda rec: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        exporting.export_zip(project, out)
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".e.zip")] == []


def test_classes_inferred_for_a_new_project_but_kept_when_explicit(tmp_path, workspace):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 2, mask_value=3)
    inferred = new_project(workspace / "inferred")
    importing.import_folder(inferred, img_dir, msk_dir, infer_classes=True)
    assert len(inferred.classes) == 4
    explicit = new_project(workspace / "explicit", default_classes(["background", "thing"]))
    report = importing.import_folder(explicit, img_dir, msk_dir)
    assert len(report.refused) == 2 and "3" in report.refused[0][1]
    assert explicit.count_images() == 0


def test_mask_key_strips_common_suffixes():
    assert mask_key("0cdf5b5d0ce1_01_mask.gif") == "0cdf5b5d0ce1_01"
    assert mask_key("img_label.png") == "img"
    assert mask_key("plain.png") == "plain"
    assert mask_key("_mask.png") == "_mask"
