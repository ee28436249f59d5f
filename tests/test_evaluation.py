"""One evaluation: `maskloop evaluate` and the Predict & review page give the same numbers; the CLI prints no
TensorFlow noise; probabilities become class ids by one rule."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import ROOT
from seg_core.cli import main
from seg_core.ml import losses
from seg_core.ml.inference import Predictor, ids_from_probabilities
from seg_core.services import review


def write_validation_folders(project, root):
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    ids, scope = review.validation_images(project)
    assert scope == "validation" and ids
    for rec in (project.image(i) for i in ids):
        (images / rec.filename).write_bytes(project.image_path(rec).read_bytes())
        (masks / rec.filename).write_bytes(project.masks.path(rec.id).read_bytes())
    return images, masks


@pytest.mark.parametrize("which", ["binary", "multiclass"])
def test_cli_evaluate_and_the_review_page_agree(which, trained_project, trained_multiclass_project, tmp_path, capsys):
    project = trained_project if which == "binary" else trained_multiclass_project
    images, masks = write_validation_folders(project, tmp_path)
    assert main(["evaluate", "--project", str(project.path), "--images", str(images), "--masks", str(masks),
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    page = review.validation_summary(project, Predictor.from_run(project))
    assert cli["run_id"] == page.run_id and cli["images"] == page.images
    assert cli["confusion"] == page.confusion
    assert cli["mean_iou"] == pytest.approx(page.mean_iou)
    assert [c["iou"] for c in cli["per_class"]] == pytest.approx([c["iou"] for c in page.per_class])
    assert [c["dice"] for c in cli["per_class"]] == pytest.approx([c["dice"] for c in page.per_class])
    by_name = {r["image"]: r["iou"] for r in page.per_image}
    assert {r["image"]: r["iou"] for r in cli["per_image"]} == pytest.approx(by_name)


def test_cli_evaluate_and_predict_keep_working_after_a_class_was_added(trained_project, tmp_path, capsys):
    images, masks = write_validation_folders(trained_project, tmp_path)
    trained_project.add_class("extra")
    path = str(trained_project.path)
    assert main(["evaluate", "--project", path, "--images", str(images), "--masks", str(masks)]) == 0
    out, err = capsys.readouterr()
    assert "IoU of 'object'" in out and "background IoU" in out
    assert re.search(r"2 extra +IoU - +dice - +\(not learned yet\)", out)
    assert "has not learned the class 'extra' yet" in err
    assert main(["predict", "--project", path, "--images", str(images), "--out", str(tmp_path / "out")]) == 0
    assert "has not learned the class 'extra' yet" in capsys.readouterr().err
    written = Image.open(tmp_path / "out" / f"{sorted(p.stem for p in images.iterdir())[0]}.png")
    assert written.mode == "P" and set(np.unique(np.asarray(written))) <= {0, 1}


def test_evaluate_json_leaves_stderr_empty(trained_project, tmp_path):
    images, masks = write_validation_folders(trained_project, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("MASKLOOP_DEBUG", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-m", "seg_core.cli", "evaluate", "--project", str(trained_project.path),
                           "--images", str(images), "--masks", str(masks), "--json"],
                          cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert json.loads(done.stdout)["images"] == len(list(images.iterdir()))


def test_a_user_error_still_reaches_stderr(workspace):
    done = subprocess.run([sys.executable, "-m", "seg_core.cli", "evaluate", "--project", str(workspace / "nope"),
                           "--images", ".", "--masks", "."], cwd=ROOT, capture_output=True, timeout=600,
                          env={**os.environ, "MASKLOOP_WORKSPACE": str(workspace)})
    assert done.returncode == 2 and done.stderr.decode().startswith("error: There is no project")


def test_probabilities_become_class_ids_by_one_rule():
    fg = np.array([[0.2, 0.5], [0.7, 0.49]], np.float32)
    one_channel, two_channels = fg[..., None], np.stack([1 - fg, fg], axis=-1)
    want = np.array([[0, 1], [1, 0]])
    for probs in (one_channel, two_channels):
        assert np.array_equal(np.asarray(losses.hard_labels(probs)), want)
        assert np.array_equal(np.asarray(losses.hard_labels(tf.constant(probs))), want)
    assert np.array_equal(ids_from_probabilities(two_channels, threshold=0.6), [[0, 0], [1, 0]])
    three = np.array([[[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]], np.float32)
    assert np.array_equal(ids_from_probabilities(three), [[1, 0]])
    assert ids_from_probabilities(three).dtype == np.uint8
