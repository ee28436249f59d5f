"""Nothing is lost: each write path killed at its write points, or given a full or read-only disk, in a
child process (bench/fault_harness.py); the project reopened is whole and no saved mask is lost. A sample of the
points here; bench/faults.py runs every one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, box_mask, photo, png_bytes, require

sys.path.insert(0, str(ROOT / "bench"))
import fault_harness as fh  # noqa: E402
from seg_core import faults
from seg_core.errors import StorageError
from seg_core.services.integrity import check_project

# (path, kill points: None = every one, I/O faults: how many of its list)
SAMPLE = [
    ("mask save", None, 2),
    ("draft write", None, 2),
    ("split change", None, 1),
    ("run creation", None, 1),
    ("thumbnail", None, 1),
    ("class removal", [4, 9, 12, 16, 18], 2),
    ("export seg", [1, 6, 10], 2),
    ("export coco", [4, 8], 1),
    ("export voc", [4, 8], 1),
    ("import folder", [1, 7, 15, 23, 31], 2),
    ("import zip", [10, 24], 1),
]


@pytest.mark.parametrize("name,kills,io", SAMPLE, ids=[s[0] for s in SAMPLE])
def test_a_write_path_killed_or_out_of_space_loses_nothing(name, kills, io, tmp_path):
    row = fh.run_path(name, tmp_path, kill_points=kills, io=io)
    assert row["failures"] == [] and row["masks_lost"] == 0
    assert row["kill_points"] >= min(len(kills or [1, 2]), row["points"]["any"])


def test_training_killed_at_its_checkpoint_writes_or_out_of_space(tmp_path, monkeypatch):
    """A worker killed while writing its second checkpoint (last.keras, after best.keras), and, side by side in this
    process, one that finds the disk full there: the checkpoints load or are absent, the run is failed with the
    sentence, no mask changed."""
    from seg_core.ml.worker import run_worker

    h = fh.Harness(fh.BY_NAME["training"], tmp_path)
    killed = h._case()
    child = fh.spawn(h.path, killed, "kill:any:5:*.keras")
    full = h._case()
    monkeypatch.setenv(faults.ENV, "enospc:write:2:*.keras")
    code = run_worker(str(full / "project"), (full / "run_id").read_text())
    monkeypatch.delenv(faults.ENV)
    assert code == 2
    assert fh.said("enospc", "", full) == []
    assert fh.check(h.path, full, h.before, fh.Outcome("enospc", code, "")).problems == []
    assert (full / "project" / "runs" / (full / "run_id").read_text() / "best.keras").exists()
    rc, err = fh.wait(h.path, child)
    assert h._finish("kill:any:5:*.keras", "kill", killed, rc, err).problems == []


def test_a_create_killed_at_any_point_leaves_a_folder_a_new_create_takes(tmp_path):
    """Killed half-way, a create used to leave its empty folders and .project.db.creating: 'a folder with files
    in it', refused for good. (Killed after its rename, it is a project.)"""
    from seg_core.store.project import Project, is_project

    path = fh.WritePath("project creation", lambda folder: None)
    (tmp_path / "count").mkdir()
    rc, _ = fh.run_child(path, tmp_path / "count", f"count:{tmp_path / 'points.log'}")
    assert rc == 0
    points = faults.counted(tmp_path / "points.log")["any"]
    assert points >= 4
    for n in range(1, points + 1):
        case = tmp_path / f"case{n}"
        case.mkdir()
        rc, err = fh.run_child(path, case, f"kill:any:{n}")
        assert rc == -9, err
        if not is_project(case / "project"):
            Project.create(case / "project").close()
        assert check_project(case / "project", models=False) == []


# ----- the hook itself --------------------------------------------------------------------------------------------
def test_the_hook_is_off_without_the_variable_and_refuses_a_bad_spec(monkeypatch, tmp_path):
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.point("write", tmp_path / "x")   # nothing happens
    monkeypatch.setenv(faults.ENV, "explode:write:1")
    with pytest.raises(ValueError, match="expected"):
        faults.point("write", "x")
    monkeypatch.setenv(faults.ENV, "enospc:rename:2:*.png")
    faults.point("rename", "a.txt")         # another file: not counted
    faults.point("rename", "a.png")         # the first
    with pytest.raises(OSError) as exc:
        faults.point("rename", "b.png")
    assert exc.value.errno == 28
    with pytest.raises(OSError):            # a full disk stays full
        faults.point("rename", "c.png")


def test_count_mode_logs_every_point(monkeypatch, tmp_path):
    from seg_core.durable import atomic_write

    log = tmp_path / "points.log"
    monkeypatch.setenv(faults.ENV, f"count:{log}")
    atomic_write(tmp_path / "a.bin", b"x")
    assert faults.counted(log) == {"write": 1, "fsync": 2, "rename": 1, "commit": 0, "any": 4}


# ----- recovery on open, the checker and its command ----------------------------------------------------------------
def _project(folder: Path):
    fh.base_project(folder)
    from seg_core.store.project import Project

    return Project(folder / "project")


def test_a_mask_whose_record_committed_before_the_kill_is_put_in_place_on_open(tmp_path, monkeypatch):
    """The point the harness found first: killed between the commit and the rename, the old code left the new
    file with the old record (the previous mask gone). Now the record waits for its file, renamed in on open."""
    fh.base_project(tmp_path)
    rc, _ = fh.run_child(fh.BY_NAME["mask save"], tmp_path, "kill:rename:1")
    assert rc == -9
    assert any(p.name.startswith(".1.png.") for p in (tmp_path / "project" / "masks").iterdir())
    assert check_project(tmp_path / "project", models=False) == []
    from seg_core.store.project import Project

    p = Project(tmp_path / "project")
    assert np.array_equal(p.masks.load(1), fh.new_mask()) and p.image(1).mask_version == 2


def test_check_reports_a_damaged_mask_and_a_missing_image_and_the_command_says_ok_or_not(tmp_path):
    p = _project(tmp_path)
    cli = [str(ROOT / ".venv" / "bin" / "python"), "-m", "seg_core.cli", "check", "--project", str(p.path),
           "--no-models"]
    ok = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok")
    p.masks.path(2).write_bytes(b"not a png")
    p.image_path(4).unlink()
    problems = [str(x) for x in check_project(p.path, models=False)]
    assert any("masks/2.png" in x and "does not decode" in x for x in problems)
    assert any("image 4" in x and "missing" in x for x in problems)
    bad = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 4 and "2 problem(s)" in bad.stdout


def test_an_unreadable_draft_is_dropped_with_a_logged_reason(tmp_path, caplog):
    p = _project(tmp_path)
    p.drafts.path(3).write_bytes(png_bytes(photo(8, 8)))   # a PNG, but no draft: no metadata, wrong size
    assert p.drafts.get(3) is None and not p.drafts.path(3).exists()
    assert "dropped the unreadable draft 3.png" in caplog.text


# ----- I/O errors reach a person as a sentence, and nothing changed --------------------------------------------------
def test_a_read_only_workspace_refuses_a_mask_with_a_sentence_and_keeps_the_old_one(tmp_path, monkeypatch):
    p = _project(tmp_path)
    old = p.masks.load(1)
    monkeypatch.setenv(faults.ENV, "erofs:write:1")
    with pytest.raises(StorageError, match="read-only disk.*the mask of 'photo_1.png' was not saved"):
        p.masks.save(1, fh.new_mask(), p.image(1).mask_version)
    monkeypatch.delenv(faults.ENV)
    assert np.array_equal(p.masks.load(1), old) and p.image(1).mask_version == 1
    assert check_project(p.path, models=False) == []


def test_a_rename_that_fails_after_the_commit_puts_the_record_back(tmp_path, monkeypatch):
    p = _project(tmp_path)
    old = p.masks.load(1)
    monkeypatch.setenv(faults.ENV, "eacces:rename:1")
    with pytest.raises(StorageError, match="not allowed to write"):
        p.masks.save(1, fh.new_mask(), 1)
    monkeypatch.delenv(faults.ENV)
    assert np.array_equal(p.masks.load(1), old) and p.image(1).mask_version == 1
    assert check_project(p.path, models=False) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs: a real full disk (needs root and a kernel that lets this process mount)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        require(False, f"cannot mount a tmpfs here: {exc}")
    require(done.returncode == 0, f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_a_really_full_disk_stops_an_import_with_a_sentence_and_the_project_stays_whole(small_disk):
    from seg_core.services import importing

    p = _project(small_disk)
    before = fh.snapshot_masks(p.path)
    big = [(f"noise_{i}.png", png_bytes(photo(300, 400, seed=i))) for i in range(8)]   # ~360 kB each
    with pytest.raises(StorageError) as exc:
        importing.import_uploads(p, big)
    assert str(exc.value).startswith("The disk is full") and "the import stopped" in str(exc.value)
    assert check_project(p.path, models=False) == []
    assert fh.masks_lost(p, before, {}) == 0
    try:   # every last block taken
        with open(small_disk / "filler", "wb") as f:
            f.write(b"x" * 4_000_000)
    except OSError:
        pass
    with pytest.raises(StorageError, match="The disk is full"):
        p.masks.save(2, fh.new_mask(), 1)
    assert fh.masks_lost(p, before, {}) == 0
    (small_disk / "filler").unlink()
    assert check_project(p.path, models=False) == []


def test_the_annotate_page_shows_the_full_disk_and_keeps_the_saved_mask(workspace, monkeypatch):
    from test_page_annotate import CLASSES, button, key_size, open_annotate, paint
    from seg_core.store.workspace import new_project

    p = new_project(workspace / "leaves", CLASSES)
    p.add_image(png_bytes(photo(60, 80, seed=1)), "first.png")
    p.masks.save(1, box_mask(60, 80, 2, (0, 0, 10, 10)), 0)
    old = p.masks.load(1)
    at = open_annotate(p, monkeypatch, image_id=1)
    w, h = key_size(at)
    paint(at, 1, slice(0, h // 2), slice(0, w // 2))
    monkeypatch.setenv(faults.ENV, "enospc:write:1:*/masks/.1.png.*")
    button(at, "annotate_save").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "The disk is full" in errors and "the mask of 'first.png' was not saved; its previous mask is kept" in errors
    monkeypatch.delenv(faults.ENV)
    assert np.array_equal(p.masks.load(1), old) and p.image(1).mask_version == 1
    assert p.drafts.get(1) is not None   # the strokes are still there to save once there is room
