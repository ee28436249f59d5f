"""The simulated person of the loop benchmark (bench/loop_person.py) and the benchmark itself on a tiny folder: what
its numbers rest on."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image
from scipy import ndimage

from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from loop_person import GOAL_IOU, MAX_INTERACTIONS, Person, brush_stroke, score  # noqa: E402


def _scene(h=120, w=160, seed=0):
    """A textured photo with two discs of another colour, and their truth (1 inside)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    truth = np.zeros((h, w), np.uint8)
    for cy, cx, r in ((40, 50, 25), (80, 115, 30)):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    image = np.where(truth[..., None] == 1, [200, 60, 50], [40, 110, 170]).astype(np.float64)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), truth


def test_a_brush_stroke_paints_the_true_class_into_the_largest_wrong_region_only():
    _, truth = _scene()
    ids = np.zeros_like(truth)
    once = brush_stroke(ids, truth)
    gained = (once != ids)
    assert gained.any() and (once[gained] == truth[gained]).all(), "a careful person paints only the true class"
    labels, _ = ndimage.label(truth)
    assert len(np.unique(labels[gained])) == 1, "one stroke, one region"
    assert brush_stroke(truth.copy(), truth) is None, "nothing wrong, nothing to paint"


def test_brush_only_reaches_the_goal_or_stops_at_the_limit_and_counts_each_stroke():
    image, truth = _scene()
    ids, tally = Person(2, proposals=False, assists=False).label(image, truth)
    assert tally.boxes == tally.clicks == tally.looks == 0 and tally.strokes >= 2
    assert tally.iou == score(ids, truth, 2) and (tally.iou >= GOAL_IOU or tally.strokes == MAX_INTERACTIONS)
    assert tally.person_seconds == 2.0 * tally.strokes


def test_a_good_proposal_is_accepted_with_one_look_and_a_poor_one_is_worked_on():
    image, truth = _scene()
    person = Person(2)
    ids, tally = person.label(image, truth, proposal=truth.copy())
    assert tally.accepted and tally.looks == 1 and tally.interactions == 0 and np.array_equal(ids, truth)
    poor = np.zeros_like(truth)
    poor[:, :40] = 1
    ids, tally = person.label(image, truth, proposal=poor)
    assert not tally.accepted and tally.looks == 1 and tally.boxes == 2, "one box per disc after the look"
    assert tally.iou >= GOAL_IOU and score(ids, truth, 2) == tally.iou


def test_many_objects_are_smart_filled_rather_than_boxed_one_by_one():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:120, :160]
    truth = np.zeros((120, 160), np.uint8)
    for cy in (20, 60, 100):
        for cx in (20, 60, 100, 140):
            truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12 ** 2] = 1
    image = np.where(truth[..., None] == 1, [200, 60, 50], [40, 110, 170]) + rng.normal(0, 12, (120, 160, 3))
    ids, tally = Person(2).label(np.clip(image, 0, 255).astype(np.uint8), truth)
    assert tally.boxes == 0 and tally.strokes >= 2, "twelve cells: a stroke in each class, not twelve boxes"
    assert tally.iou == score(ids, truth, 2)


def test_several_classes_start_with_smart_fill_strokes():
    image, truth = _scene()
    truth3 = truth.copy()
    truth3[truth3 == 1] = np.where(np.mgrid[:120, :160][1][truth3 == 1] > 80, 2, 1)
    ids, tally = Person(3).label(image, truth3)
    assert tally.boxes == 0 and tally.strokes >= 3, "one stroke a class present, then corrections"
    assert tally.iou == score(ids, truth3, 3)


def test_the_loop_benchmark_runs_on_a_tiny_folder_and_writes_its_rounds(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    for i in range(5):   # grey images: the page's first model for them is a small U-Net, quick to train here
        image, truth = _scene(64, 64, seed=i)
        Image.fromarray(image).convert("L").save(tmp_path / "data" / "images" / f"p{i}.png")
        Image.fromarray(truth * 255).save(tmp_path / "data" / "masks" / f"p{i}.png")
    out = tmp_path / "loop.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "loop.py"), "--data", str(tmp_path / "data"),
                           "--binary", "--every", "2", "--minutes-per-round", "0.2", "--conditions", "app",
                           "--json", str(out), "--workspace", str(tmp_path / "ws")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["pool"], result["heldout"]) == (3, 2)
    rounds = result["rounds"]
    assert [r["labeled"] for r in rounds] == [2, 3], "the last image alone is too few to train again"
    assert {"labeled", "interactions_per_image", "person_seconds", "heldout_mean_iou"} <= set(rounds[0])
    assert all(r["heldout_mean_iou"] is not None and 0.0 <= r["heldout_mean_iou"] <= 1.0 for r in rounds)
    assert rounds[1]["looks"] == 1, "the second round starts from the first model's proposal"
    assert rounds[0]["model"] == rounds[1]["model"] is not None
    assert len(result["conditions"]["app"]["interactions"]) == 3
    assert (tmp_path / "loop.png").stat().st_size > 10_000
    assert "held-out at end" in done.stdout
