"""store/images.py: adding images (duplicates by content), listing and filtering them, finding them by name,
deleting them."""

from __future__ import annotations

import pytest

from helpers import add_photo as add, box_mask, leaf_project, photo, png_bytes
from seg_core.errors import InvalidImageError, ProjectError
from seg_core.store.project import Project


@pytest.fixture
def project(tmp_path):
    return Project.create(tmp_path / "p")


@pytest.fixture
def three_class_project(tmp_path) -> Project:
    return leaf_project(tmp_path / "p")


def test_add_image_stores_file_and_detects_duplicates_by_content(project):
    data = png_bytes(photo(20, 30, 1))
    first = project.add_image(data, "a.png")
    assert first.status == "added"
    rec = first.image
    assert (rec.width, rec.height, rec.channels, rec.status, rec.mask_version) == (30, 20, 3, "unlabeled", 0)
    assert project.image_path(rec).read_bytes() == data
    again = project.add_image(data, "renamed.png")
    assert again.status == "duplicate" and again.image.id == rec.id and "a.png" in again.detail
    assert project.count_images() == 1


def test_refused_image_changes_nothing(project):
    with pytest.raises(InvalidImageError):
        project.add_image(b"not an image at all", "x.png")
    assert project.count_images() == 0
    assert list(project.layout.images_dir.iterdir()) == []


def test_listing_filters_and_paging(project):
    recs = [add(project, seed=i) for i in range(7)]
    for r in recs[:3]:
        project.masks.save(r.id, box_mask(), 0)
    assert project.count_images(status="labeled") == 3
    assert [r.id for r in project.list_images(status="unlabeled")] == [r.id for r in recs[3:]]
    page = project.list_images(offset=2, limit=3)
    assert [r.id for r in page] == [r.id for r in recs[2:5]]
    with pytest.raises(ProjectError):
        project.list_images(status="done")


def test_find_by_stem_matches_base_name_exactly(project):
    a = add(project, 1, "cat_1.jpg.png")
    b = add(project, 2, "cat_1.png")
    add(project, 3, "cat_10.png")
    assert [r.id for r in project.find_by_stem("cat_1")] == [b.id]
    assert [r.id for r in project.find_by_stem("cat_1.jpg")] == [a.id]


def test_delete_image_removes_its_draft_and_prediction(three_class_project):
    three_class_project.drafts.save(1, box_mask(24, 32, 1), 0)
    three_class_project.predictions.save(1, "run-a", box_mask(24, 32, 1), 0.2)
    three_class_project.delete_image(1)
    assert not three_class_project.drafts.path(1).exists() and not three_class_project.predictions.path(1).exists()
    assert three_class_project.predictions.image_ids() == set()
