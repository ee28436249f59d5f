"""maskloop train / runs / predict / evaluate on a tiny project, through the real worker process."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from seg_core.services import demo
from seg_core.cli import main


def test_train_runs_predict_evaluate(capsys, workspace, tmp_path):
    project = demo.create_demo_project(workspace / "tiny", count=8, unlabeled=2)
    # --scratch: the tiny U-Net these flags describe, not the photo preset's Lite0 (its runs are test_lite0_start's)
    code = main(["train", "--project", "tiny", "--preset", "fast", "--epochs", "2", "--size", "32", "--filters", "4",
                 "--depth", "2", "--batch", "4", "--no-xla", "--scratch"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 2
    run_id = lines[-1]
    assert "completed" in lines[-2] and run_id in lines[-2]

    assert main(["runs", "--project", "tiny", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs[0]["id"] == run_id and runs[0]["status"] == "completed" and runs[0]["epochs_done"] == 2
    assert project.runs.get(run_id).config["xla"] is False   # --no-xla, whatever this machine's default
    assert project.runs.get(run_id).config["model"] == "unet"

    src = tmp_path / "new"
    src.mkdir()
    unlabeled = project.list_images(status="unlabeled")
    for rec in unlabeled:
        (src / rec.filename).write_bytes(project.image_path(rec).read_bytes())
    out_dir = tmp_path / "pred"
    assert main(["predict", "--project", "tiny", "--images", str(src), "--out", str(out_dir)]) == 0
    capsys.readouterr()
    for rec in unlabeled:
        mask = Image.open(out_dir / f"{rec.stem}.png")
        assert mask.mode == "P" and mask.size == (rec.width, rec.height)
        assert Image.open(out_dir / f"{rec.stem}_overlay.png").size == (rec.width, rec.height)

    imgs, msks = tmp_path / "ev_img", tmp_path / "ev_msk"
    imgs.mkdir()
    msks.mkdir()
    for rec in project.list_images(status="labeled")[:3]:
        (imgs / rec.filename).write_bytes(project.image_path(rec).read_bytes())
        (msks / rec.filename).write_bytes(project.masks.path(rec.id).read_bytes())
    assert main(["evaluate", "--project", "tiny", "--images", str(imgs), "--masks", str(msks), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"mean_iou", "per_class", "pixel_accuracy", "images", "per_image", "confusion"}
    assert result["images"] == len(result["per_image"]) == 3 and result["run_id"] == run_id
    assert main(["evaluate", "--project", "tiny", "--images", str(imgs), "--masks", str(msks), "--json",
                 "--flip"]) == 0
    flipped = json.loads(capsys.readouterr().out)
    assert flipped["images"] == 3 and 0 <= flipped["mean_iou"] <= 1


def test_train_refuses_a_project_without_labels(capsys, workspace):
    demo.create_demo_project(workspace / "bare", count=3, unlabeled=3)
    code = main(["train", "--project", "bare", "--epochs", "1"])
    assert code == 2 and "at least 2 labeled" in capsys.readouterr().err
    code = main(["predict", "--project", "bare", "--images", ".", "--out", "x"])
    assert code == 2 and "no trained model" in capsys.readouterr().err


@pytest.mark.parametrize("flag, xla", [("--xla", True), ("--no-xla", False), (None, None)])
def test_the_xla_flags_choose_the_step(workspace, flag, xla):
    from seg_core.cli import build_parser
    from seg_core.cli.model import _train_config
    from seg_core.ml.config import xla_is_faster_here

    project = demo.create_demo_project(workspace / "flags", count=2, unlabeled=0)
    args = build_parser().parse_args(["train", "--project", "flags", *([flag] if flag else [])])
    assert _train_config(args, project).xla is (xla_is_faster_here() if xla is None else xla)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--project", "flags", "--xla", "--no-xla"])
