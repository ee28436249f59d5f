"""Realism: the real membrane and CamVid samples in ../shared/data through the CLI, and back out."""

from __future__ import annotations

import json

import numpy as np

from seg_core.cli import main
from seg_core.store.project import Project


def info(capsys, project) -> dict:
    assert main(["info", "--project", str(project), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def roundtrip(capsys, tmp_path, project):
    out = tmp_path / "export.zip"
    assert main(["export", "--project", str(project), "--out", str(out)]) == 0
    again = tmp_path / "again"
    assert main(["import", "--project", str(again), "--zip", str(out)]) == 0
    capsys.readouterr()
    a, b = Project(project), Project(again)
    assert a.classes == b.classes
    recs_a, recs_b = a.list_images(), b.list_images()
    assert [r.filename for r in recs_a] == [r.filename for r in recs_b]
    for ra, rb in zip(recs_a, recs_b):
        np.testing.assert_array_equal(a.masks.load(ra), b.masks.load(rb))
        np.testing.assert_array_equal(a.load_image(ra), b.load_image(rb))


def test_membrane_imports_as_20_labeled_binary(capsys, tmp_path, shared_data):
    project = tmp_path / "membrane"
    code = main(["import", "--project", str(project), "--images", str(shared_data / "membrane/images"),
                 "--masks", str(shared_data / "membrane/masks")])
    out = capsys.readouterr().out
    assert code == 0 and "binary 0/255: 20" in out
    s = info(capsys, project)
    assert s["labeled"] == 20 and s["num_classes"] == 2 and s["channels"] == 1
    # 0 = membrane, 255 = cell interior: both classes really occur.
    assert s["class_ids_present"] == [0, 1]
    roundtrip(capsys, tmp_path, project)


def test_camvid_imports_as_8_labeled_with_its_class_ids(capsys, tmp_path, shared_data):
    project = tmp_path / "camvid"
    code = main(["import", "--project", str(project), "--images", str(shared_data / "camvid-mini/images"),
                 "--masks", str(shared_data / "camvid-mini/masks")])
    assert code == 0
    capsys.readouterr()
    s = info(capsys, project)
    present = set()
    from PIL import Image
    for p in sorted((shared_data / "camvid-mini/masks").iterdir()):
        present |= set(np.unique(np.asarray(Image.open(p))).tolist())
    assert s["labeled"] == 8 and s["class_ids_present"] == sorted(present)
    assert s["num_classes"] == max(present) + 1 and s["channels"] == 3
    roundtrip(capsys, tmp_path, project)
