"""Data page through Streamlit's AppTest: uploads, the paged gallery, deleting, classes, splits, export."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from helpers import ROOT, box_mask, open_app_page, page_texts, photo, png_bytes
from seg_core.formats import images
from seg_core.classes import binary_classes, default_classes
from seg_core.errors import SegError
from seg_core.formats.masks import load_png
from seg_core.store.project import Project
from seg_core.store.workspace import new_project


@pytest.fixture
def app(monkeypatch):
    monkeypatch.chdir(ROOT)
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def open_data_page(at: AppTest, project: Project | None = None) -> AppTest:
    return open_app_page(at, "data", project)


texts = page_texts


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def labeled_project(workspace, n: int, labeled: int, classes=None) -> Project:
    p = new_project(workspace / "p", classes or binary_classes())
    for i in range(n):
        rec = p.add_image(png_bytes(photo(seed=i)), f"img_{i:02d}.png").image
        if i < labeled:
            p.masks.save(rec.id, box_mask(value=1), rec.mask_version)
    return p


def test_without_a_project_the_page_points_to_home(app, workspace):
    open_data_page(app)
    assert "No project is open" in app.info[0].value
    assert not app.file_uploader  # nothing to upload into


def test_upload_two_images_and_a_matching_mask(app, workspace):
    p = new_project(workspace / "p", binary_classes())
    open_data_page(app, p)
    app.file_uploader(key="data_images_0").set_value([("a.png", png_bytes(photo(seed=1)), "image/png"),
                                                      ("b.png", png_bytes(photo(seed=2)), "image/png")])
    app.file_uploader(key="data_masks_0").set_value(("a.png", png_bytes(box_mask(value=1)), "image/png")).run()
    click(app, "data_add")
    assert p.count_images() == 2 and p.count_images(status="labeled") == 1
    assert p.find_by_stem("a")[0].status == "labeled" and p.find_by_stem("b")[0].status == "unlabeled"
    assert "added 2 image(s), 1 with a mask" in texts(app)
    assert not app.error
    # The uploaders start empty again, and the report stays after that rerun.
    assert [u.key for u in app.file_uploader] == ["data_images_1", "data_masks_1", "data_zip_1"]
    assert "2 images · 1 labeled · 1 unlabeled" in texts(app)


def test_first_masks_decide_the_classes_of_a_project_made_without_them(app, workspace):
    p = new_project(workspace / "p")  # no classes named: like `maskloop import`, the masks decide
    ids = box_mask(value=1)
    ids[16:22, 20:30] = 2
    open_data_page(app, p)
    app.file_uploader(key="data_images_0").set_value(("a.png", png_bytes(photo(seed=1)), "image/png"))
    app.file_uploader(key="data_masks_0").set_value(("a_mask.png", png_bytes(ids), "image/png")).run()
    click(app, "data_add")
    assert len(p.classes) == 3 and p.count_images(status="labeled") == 1
    np.testing.assert_array_equal(p.masks.load(p.list_images()[0]), ids)
    assert any(i.value.startswith("Classes: 3 classes inferred") for i in app.info)


def test_named_classes_are_kept_and_an_unknown_mask_value_is_refused(app, workspace):
    p = new_project(workspace / "p", binary_classes())
    ids = box_mask(value=1)
    ids[16:22, 20:30] = 2
    open_data_page(app, p)
    app.file_uploader(key="data_images_0").set_value(("a.png", png_bytes(photo(seed=1)), "image/png"))
    app.file_uploader(key="data_masks_0").set_value(("a.png", png_bytes(ids), "image/png")).run()
    click(app, "data_add")
    assert len(p.classes) == 2 and p.count_images() == 0
    assert "a.png (with mask a.png)" in app.error[0].value and "values 2 that are not class ids" in app.error[0].value
    # The report offers the mapping in one step: value 2 is the object too, then the same files are imported.
    assert "Some masks hold values that are not this project's class ids (0, 1, 2)" in texts(app)
    app.selectbox(key="data_map_2").set_value(1).run()
    click(app, "data_map_import")
    assert p.count_images(status="labeled") == 1
    assert set(np.unique(p.masks.load(1))) == {0, 1} and (p.masks.load(1)[16:22, 20:30] == 1).all()
    assert "values mapped" in texts(app) and "Some masks hold values" not in texts(app)


def test_any_non_zero_value_is_the_object_and_ignore_is_named(app, workspace):
    p = new_project(workspace / "p", binary_classes("pet"))
    ids = box_mask(value=2)
    ids[0] = 255
    open_data_page(app, p)
    app.file_uploader(key="data_images_0").set_value(("a.png", png_bytes(photo(seed=1)), "image/png"))
    app.file_uploader(key="data_masks_0").set_value(("a.png", png_bytes(ids), "image/png")).run()
    click(app, "data_add")
    app.toggle(key="data_map_nonzero").set_value(True).run()
    click(app, "data_map_import")
    assert (p.masks.load(1)[0] == 1).all() and p.count_images(status="labeled") == 1
    q = labeled_project(workspace / "q", 1, 0)
    q.masks.save(1, np.full((24, 32), 255, np.uint8), 0)
    app2 = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    open_data_page(app2, q)
    assert "**ignore** (value 255, grey), 768 pixels" in texts(app2)


def test_a_broken_file_is_refused_with_its_reason(app, workspace):
    p = new_project(workspace / "p", binary_classes())
    with pytest.raises(SegError) as reason:
        images.prepare_upload(b"this is not a picture", "broken.png")
    open_data_page(app, p)
    app.file_uploader(key="data_images_0").set_value(("broken.png", b"this is not a picture", "image/png")).run()
    click(app, "data_add")
    assert p.count_images() == 0
    assert list(p.layout.images_dir.iterdir()) == []
    refused = app.error[0].value
    assert "Refused 1 file(s)" in refused and "broken.png" in refused and str(reason.value) in refused


def test_a_zip_is_imported(app, workspace):
    p = new_project(workspace / "p", binary_classes())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"images/z{i}.png", png_bytes(photo(seed=10 + i)))
        zf.writestr("masks/z0.png", png_bytes(box_mask(value=1)))
    open_data_page(app, p)
    app.file_uploader(key="data_zip_0").set_value(("set.zip", buf.getvalue(), "application/zip")).run()
    click(app, "data_add")
    assert p.count_images() == 3 and p.count_images(status="labeled") == 1
    assert "set.zip: added 3 image(s), 1 with a mask" in texts(app)


def test_gallery_pages_and_status_filter(app, workspace):
    labeled_project(workspace, 30, labeled=3)
    open_data_page(app)  # the only project in the workspace opens by itself
    assert len(app.image) == 24
    assert "page 1 of 2 · 30 image(s)" in texts(app)
    assert app.button(key="data_prev").disabled
    click(app, "data_next")
    assert len(app.image) == 6
    assert "page 2 of 2" in texts(app) and app.button(key="data_next").disabled
    assert "img_29.png · unlabeled · train" in [i.captions[0] for i in app.image]
    app.selectbox(key="data_status").set_value("labeled").run()
    assert len(app.image) == 3 and "page 1 of 1 · 3 image(s)" in texts(app)
    assert all("· labeled ·" in i.captions[0] for i in app.image)
    app.text_input(key="data_search").input("img_01").run()
    assert [i.captions[0].split(" · ")[0] for i in app.image] == ["img_01.png"]


def test_annotate_button_opens_that_image(app, workspace):
    p = labeled_project(workspace, 2, labeled=0)
    open_data_page(app, p)
    rec = p.list_images()[1]
    app.button(key=f"data_annotate_{rec.id}").click().run()
    assert app.session_state["annotate_image_id"] == rec.id
    assert [t.value for t in app.title] == ["Annotate"]


def test_delete_asks_first_then_removes_file_and_row(app, workspace):
    p = labeled_project(workspace, 2, labeled=1)
    rec = p.list_images()[0]
    image_file, mask_file = p.image_path(rec), p.masks.path(rec.id)
    assert image_file.is_file() and mask_file.is_file()
    open_data_page(app, p)
    click(app, f"data_delete_{rec.id}")
    assert p.count_images() == 2 and image_file.is_file()  # one click only asks
    click(app, f"data_cancel_{rec.id}")
    assert p.count_images() == 2
    click(app, f"data_delete_{rec.id}")
    click(app, f"data_confirm_{rec.id}")
    assert [r.filename for r in p.list_images()] == ["img_01.png"]
    assert not image_file.exists() and not mask_file.exists()
    assert "Deleted 'img_00.png'" in app.success[0].value
    assert len(app.image) == 1


def test_rename_and_recolour_classes(app, workspace):
    p = new_project(workspace / "p", default_classes(["background", "leaf", "spot"]))
    open_data_page(app, p)
    app.text_input(key="data_class_name_1").input("healthy leaf")
    app.color_picker(key="data_class_color_2").pick("#00ff00")
    app.color_picker(key="data_class_color_0").pick("#101010")
    click(app, "data_save_classes")
    assert [(c.name, c.hex) for c in p.classes] == [("background", "#101010"), ("healthy leaf", "#e6194b"),
                                                    ("spot", "#00ff00")]
    assert "Saved: background, healthy leaf, spot." in app.success[0].value
    assert app.text_input(key="data_class_name_1").value == "healthy leaf"


def test_a_refused_class_name_changes_nothing(app, workspace):
    p = new_project(workspace / "p", default_classes(["background", "leaf", "spot"]))
    open_data_page(app, p)
    app.color_picker(key="data_class_color_1").pick("#00ff00")
    app.text_input(key="data_class_name_2").input("leaf")  # a second 'leaf'
    click(app, "data_save_classes")
    assert "Two classes are called 'leaf'" in app.error[0].value
    assert [c.name for c in p.classes] == ["background", "leaf", "spot"] and p.classes[1].hex == "#e6194b"


def test_add_a_class(app, workspace):
    p = labeled_project(workspace, 1, labeled=1)
    open_data_page(app, p)
    app.text_input(key="data_new_class_name").input("spot")
    app.color_picker(key="data_new_class_color").pick("#123456")
    click(app, "data_add_class")
    assert [(c.name, c.hex) for c in p.classes][2] == ("spot", "#123456")
    assert p.kind == "multiclass"
    assert "Added class 2, 'spot'" in app.success[0].value
    assert app.text_input(key="data_new_class_name").value == ""
    assert app.text_input(key="data_class_name_2").value == "spot"


def first_elements(at: AppTest, n: int = 2) -> list[str]:
    return [type(e).__name__ for e in at.main if "Block" not in type(e).__name__][:n]


def test_adding_then_removing_a_class_writes_nothing_above_the_title(app, workspace):
    p = new_project(workspace / "p", binary_classes("pet"))
    open_data_page(app, p)
    app.text_input(key="data_new_class_name").input("toy")
    click(app, "data_add_class")
    assert first_elements(app) == ["Title", "Markdown"] and "Added class 2" in texts(app)
    click(app, "data_remove")
    click(app, "data_remove_confirm")
    assert [c.name for c in p.classes] == ["background", "toy"] and "Removed 'pet'" in texts(app)
    assert first_elements(app) == ["Title", "Markdown"]
    assert app.markdown[0].value.startswith("**p**")


def test_remove_a_class_moves_its_pixels(app, workspace):
    p = new_project(workspace / "p", default_classes(["background", "leaf", "spot"]))
    rec = p.add_image(png_bytes(photo()), "a.png").image
    ids = box_mask(value=1)
    ids[14:20, 20:30] = 2
    p.masks.save(rec.id, ids, rec.mask_version)
    open_data_page(app, p)
    app.selectbox(key="data_remove_class").set_value(2).run()
    assert "'spot' is painted in 1 labeled image(s)" in texts(app)
    app.selectbox(key="data_remove_to_2").set_value(1).run()
    click(app, "data_remove")
    assert len(p.classes) == 3  # the first click only asks
    click(app, "data_remove_confirm")
    assert [c.name for c in p.classes] == ["background", "leaf"]
    on_disk = load_png(p.masks.path(rec.id))
    expected = ids.copy()
    expected[expected == 2] = 1
    np.testing.assert_array_equal(on_disk, expected)
    assert "1 mask(s) rewritten" in app.success[0].value
    # Two classes left: removing is no longer offered, and the page says why.
    with pytest.raises(KeyError):
        app.button(key="data_remove")
    assert "a project needs the background and at least one class" in texts(app)


def test_split_assignment_by_count(app, workspace):
    p = labeled_project(workspace, 12, labeled=10)
    open_data_page(app, p)
    assert "**12** train · **0** validation" in texts(app)
    app.radio(key="data_split_mode").set_value("A number of images").run()
    app.number_input(key="data_val_count").set_value(3).run()
    app.number_input(key="data_split_seed").set_value(7).run()
    click(app, "data_assign_splits")
    assert p.stats()["by_split"] == {"train": 9, "val": 3, "test": 0}
    assert all(r.status == "labeled" for r in p.list_images(split="val"))
    assert "3 labeled image(s) for validation" in app.success[0].value
    assert "**9** train · **3** validation" in texts(app)


def test_split_assignment_too_many_is_explained(app, workspace):
    p = labeled_project(workspace, 4, labeled=4)
    open_data_page(app, p)
    app.radio(key="data_split_mode").set_value("A number of images").run()
    app.number_input(key="data_val_count").set_value(9).run()
    click(app, "data_assign_splits")
    assert "Cannot hold out 9 images" in app.error[0].value
    assert p.stats()["by_split"]["val"] == 0


def test_export_offers_a_zip_download(app, workspace):
    p = labeled_project(workspace, 3, labeled=2)
    open_data_page(app, p)
    assert not app.get("download_button")
    click(app, "data_export")
    button = app.get("download_button")[0]
    _, data, prepared = app.session_state["data_export_zip"]
    assert len(data) < 999_500 and button.label == f"Download p.zip ({len(data) / 1e3:.0f} kB, prepared {prepared})"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
    assert {"images/img_00.png", "masks/img_00.png", "masks/img_01.png", "classes.json"} <= names
    assert "masks/img_02.png" not in names


def test_download_sizes_read_in_bytes_kb_or_mb():
    from app_pages.widgets import file_size

    assert [file_size(n) for n in (0, 999, 1000, 38_400, 999_499, 999_500, 7_210_000)] == \
        ["0 bytes", "999 bytes", "1 kB", "38 kB", "999 kB", "1.0 MB", "7.2 MB"]


def test_export_in_another_format_names_it_and_offers_its_zip(app, workspace):
    p = labeled_project(workspace, 3, labeled=2)
    open_data_page(app, p)
    assert "palette PNGs" in texts(app)  # the default format's one-line description
    app.selectbox(key="data_export_format").set_value("coco").run()
    assert "one RLE mask per class in each image" in texts(app)
    click(app, "data_export")
    assert app.get("download_button")[0].label.startswith("Download p-coco.zip")
    _, data, _ = app.session_state["data_export_zip"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert {"annotations/instances_train.json", "images/img_00.png"} <= set(zf.namelist())
    app.selectbox(key="data_export_format").set_value("voc").run()
    assert not app.get("download_button")  # the COCO zip is not offered as the VOC one


@pytest.mark.parametrize("fmt", ["coco", "voc"])
def test_a_coco_or_voc_zip_dropped_on_the_page_is_imported_with_its_format_named(fmt, app, workspace, tmp_path):
    from seg_core.services import exporting

    src = labeled_project(workspace, 2, labeled=2, classes=default_classes(["background", "leaf"]))
    data = exporting.export_zip(src, tmp_path / "x.zip", fmt=fmt).read_bytes()
    dst = new_project(workspace / "q")
    open_data_page(app, dst)
    app.file_uploader(key="data_zip_0").set_value((f"{fmt}.zip", data, "application/zip")).run()
    click(app, "data_add")
    assert dst.count_images(status="labeled") == 2 and [c.name for c in dst.classes] == ["background", "leaf"]
    assert ("Format: COCO instances JSON" if fmt == "coco" else "Format: Pascal VOC / CVAT") in texts(app)
