"""The built-in demo project: generated offline, labeled and unlabeled images, both variants."""

from __future__ import annotations

import numpy as np

from seg_core.services import demo


def test_full_demo_has_60_images_10_unlabeled_and_a_split(workspace):
    project = demo.create_demo_project(workspace / "demo")
    s = project.stats()
    assert (s["images"], s["labeled"], s["unlabeled"]) == (60, 50, 10)
    assert s["by_split"]["val"] == 10 and s["class_ids_present"] == [0, 1]
    sizes = {(r.width, r.height) for r in project.list_images()}
    assert len(sizes) >= 2, "several image sizes"
    # Object pixels are a real share of the labeled area, not a speck or everything.
    frac = s["classes"][1]["pixel_fraction"]
    assert 0.08 < frac < 0.5
    assert not list(workspace.glob(".*creating"))


def test_demo_is_reused_not_rebuilt(workspace):
    first = demo.create_demo_project(workspace / "demo", count=6)
    ids = [r.sha256 for r in first.list_images()]
    second = demo.create_demo_project(workspace / "demo", count=6)
    assert [r.sha256 for r in second.list_images()] == ids


def test_multiclass_demo_uses_all_three_classes(workspace):
    project = demo.create_demo_project(workspace / "demo3", multiclass=True, count=12)
    s = project.stats()
    assert [c["name"] for c in s["classes"]] == ["background", "blob", "block"]
    assert s["class_ids_present"] == [0, 1, 2]
    rec = project.list_images(status="labeled")[0]
    mask = project.masks.load(rec)
    img = project.load_image(rec)
    assert mask.shape == img.shape[:2] and img.ndim == 3
    assert np.std(img) > 10


def test_demo_is_deterministic(tmp_path):
    a = demo.create_demo_project(tmp_path / "a", count=4)
    b = demo.create_demo_project(tmp_path / "b", count=4)
    assert [r.sha256 for r in a.list_images()] == [r.sha256 for r in b.list_images()]
    labeled_a, labeled_b = a.list_images(status="labeled"), b.list_images(status="labeled")
    assert [r.filename for r in labeled_a] == [r.filename for r in labeled_b] and labeled_a
    for ra, rb in zip(labeled_a, labeled_b):   # the same masks too, not only the same pictures
        assert np.array_equal(a.masks.load(ra), b.masks.load(rb))
