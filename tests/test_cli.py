"""The maskloop command: each subcommand, exit codes, and no traceback for a person's mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT, photo, png_bytes, write_pair_folders
from seg_core.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_with_classes_then_info(capsys, workspace):
    code, out, _ = run(capsys, "init", "--project", "leaves", "--classes", "leaf:#00ff00", "spot")
    assert code == 0 and "background" in out and "leaf #00ff00" in out
    code, out, _ = run(capsys, "info", "--project", "leaves", "--json")
    info = json.loads(out)
    assert info["num_classes"] == 3 and info["kind"] == "multiclass" and info["labeled"] == 0
    assert (workspace / "leaves" / "project.db").is_file()


def test_import_keeps_a_painted_mask_unless_told_to_replace_it(capsys, tmp_path):
    import numpy as np

    from seg_core.store.project import Project

    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 2)
    target = tmp_path / "proj"
    assert run(capsys, "import", "--project", target, "--images", img_dir, "--masks", msk_dir)[0] == 0
    project = Project(target)
    project.masks.save(1, np.ones((24, 32), np.uint8), 1, source="painted")
    code, out, _ = run(capsys, "import", "--project", target, "--images", img_dir, "--masks", msk_dir)
    assert code == 0 and "masks NOT imported, the image's own mask was kept: 1" in out
    assert "img_000.png: 'img_000.png' has a mask painted in the app (version 2)" in out
    assert project.image(1).mask_version == 2
    code, out, _ = run(capsys, "import", "--project", target, "--images", img_dir, "--masks", msk_dir,
                       "--existing-masks", "replace")
    assert code == 0 and "masks that replaced the image's mask: 1" in out and project.image(1).mask_version == 3


def test_import_creates_project_and_reports(capsys, tmp_path):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 4, skip_masks=(2,))
    target = tmp_path / "proj"
    code, out, err = run(capsys, "import", "--project", target, "--images", img_dir, "--masks", msk_dir)
    assert code == 0, err
    assert "created project" in out and "added: 4 image(s), 3 with a mask" in out
    assert "binary 0/255: 3" in out
    code, out, _ = run(capsys, "info", "--project", target, "--json")
    info = json.loads(out)
    assert (info["labeled"], info["unlabeled"], info["num_classes"]) == (3, 1, 2)
    code, out, _ = run(capsys, "import", "--project", target, "--images", img_dir, "--masks", msk_dir)
    assert code == 0 and "skipped as duplicate: 4" in out


def test_import_exits_nonzero_when_anything_is_refused(capsys, tmp_path):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 2)
    (img_dir / "bad.png").write_bytes(b"nope")
    code, out, _ = run(capsys, "import", "--project", tmp_path / "p", "--images", img_dir, "--masks", msk_dir)
    assert code != 0 and "refused: 1" in out and "bad.png" in out


def test_errors_are_sentences_not_tracebacks(capsys, tmp_path):
    code, out, err = run(capsys, "info", "--project", tmp_path / "missing")
    assert code == 2 and "There is no project" in err and "Traceback" not in err
    bad_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad_zip, "w") as zf:
        zf.writestr("../../evil.png", png_bytes(photo()))
    code, out, err = run(capsys, "import", "--project", tmp_path / "p", "--zip", bad_zip)
    assert code == 2 and "outside the archive" in err
    code, out, err = run(capsys, "init", "--project", tmp_path / "q", "--classes", "a:#zzzzzz")
    assert code == 2 and "#rrggbb" in err


def test_export_zip_and_reimport(capsys, tmp_path):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 3)
    run(capsys, "import", "--project", tmp_path / "a", "--images", img_dir, "--masks", msk_dir)
    code, out, _ = run(capsys, "export", "--project", tmp_path / "a", "--out", tmp_path / "a.zip")
    assert code == 0 and "exported 3 images (3 with masks)" in out
    code, out, _ = run(capsys, "import", "--project", tmp_path / "b", "--zip", tmp_path / "a.zip")
    assert code == 0 and "Maskloop export" in out
    _, out, _ = run(capsys, "info", "--project", tmp_path / "b", "--json")
    assert json.loads(out)["labeled"] == 3


def test_split_and_projects(capsys, workspace, tmp_path):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 10)
    run(capsys, "import", "--project", "ten", "--images", img_dir, "--masks", msk_dir)
    code, out, _ = run(capsys, "split", "--project", "ten", "--val-count", "3", "--seed", "1")
    assert code == 0 and "train: 7  val: 3" in out
    code, out, _ = run(capsys, "projects", "--json")
    assert [p["name"] for p in json.loads(out)] == ["ten"]


def test_demo_subcommand(capsys, workspace):
    code, out, _ = run(capsys, "demo", "--count", "6")
    assert code == 0 and "6 images" in out and "10 left" not in out
    assert (workspace / "demo" / "project.db").is_file()
    code, out, _ = run(capsys, "demo", "--count", "6")
    assert code == 0 and "6 images" in out


def test_console_script_is_installed_and_runs(tmp_path):
    exe = Path(sys.executable).with_name("maskloop")
    assert exe.exists(), "pip install -e . must install the maskloop command"
    env = {**os.environ, "MASKLOOP_WORKSPACE": str(tmp_path / "ws")}
    res = subprocess.run([str(exe), "init", "--project", "cli-proj"], capture_output=True, text=True, env=env,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(exe), "info", "--project", "nope"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["import", "--project", "x"])
    assert exc.value.code == 2


def test_keras_seg_on_another_layout_is_refused_and_creates_nothing(capsys, tmp_path):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 2)
    target = tmp_path / "proj"
    code, out, err = run(capsys, "import", "--project", target, "--keras-seg", tmp_path / "src")
    assert code == 2 and "is not in the keras_segmentation layout" in err and "--folder" in err
    assert not target.exists()
    # A refused import into a project it would create leaves nothing behind either.
    code, _, err = run(capsys, "import", "--project", target, "--images", tmp_path / "nowhere")
    assert code == 2 and not target.exists()


def test_delete_asks_unless_told_and_refuses_during_a_run(capsys, tmp_path, monkeypatch):
    from seg_core.ml.config import TrainConfig
    from seg_core.store.project import Project

    img_dir, _ = write_pair_folders(tmp_path / "src", 2)
    target = tmp_path / "proj"
    run(capsys, "import", "--project", target, "--images", img_dir)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = run(capsys, "delete", "--project", target)
    assert code == 2 and "add --yes" in err and target.exists()
    busy = Project(target).runs.create(TrainConfig().to_dict())
    code, _, err = run(capsys, "delete", "--project", target, "--yes")
    assert code == 2 and f"Run {busy.id}" in err and target.exists()
    Project(target).runs.update(busy.id, status="stopped")
    code, out, _ = run(capsys, "delete", "--project", target, "--yes")
    assert code == 0 and "deleted project 'proj' (2 images)" in out
    assert not target.exists() and not list(tmp_path.glob(".proj*"))


def test_import_maps_mask_values_from_the_command_line(capsys, tmp_path):
    img_dir, msk_dir = write_pair_folders(tmp_path / "src", 2, mask_value=2)
    target = tmp_path / "pets"
    run(capsys, "init", "--project", target, "--classes", "pet")
    code, out, _ = run(capsys, "import", "--project", target, "--images", img_dir, "--masks", msk_dir)
    assert code == 3 and "--map 2=pet" in out
    code, out, err = run(capsys, "import", "--project", target, "--images", img_dir, "--masks", msk_dir,
                         "--map", "2=pet")
    assert code == 0, err
    assert "added: 2 image(s), 2 with a mask" in out and "values mapped: 2" in out
    code, out, _ = run(capsys, "info", "--project", target, "--json")
    assert json.loads(out)["labeled"] == 2


def test_every_option_of_every_command_says_what_it_is_for():
    """Walks the whole parser, subcommands of subcommands included, so an option added without help fails here."""
    import argparse

    from seg_core.cli import build_parser

    missing, seen = [], 0

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        nonlocal seen
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name} (the command)")
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction):
                seen += 1
                if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                    missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "maskloop")
    assert seen > 60 and missing == []
