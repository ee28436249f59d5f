"""Which labels made which model: a run keeps the mask versions it learned from, says what changed since, lists
its images, and exports exactly its data (`maskloop export --run`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile

import numpy as np
import pytest

from seg_core.cli import main
from seg_core.errors import ProjectError, TrainingError
from seg_core.formats import masks as codec
from seg_core.ml import dataset
from seg_core.services import exporting, provenance
from seg_core.store import lineage


def _run(project):
    return project.runs.list()[0]


def _repaint(project, image_id: int, value: int = 1) -> np.ndarray:
    """Save a different mask for the image: a square of `value` in its top-left corner."""
    rec = project.image(image_id)
    ids = project.masks.load(rec).copy()
    ids[:6, :6] = value if ids[0, 0] != value else 0
    project.masks.save(image_id, ids, rec.mask_version)
    return ids


def test_a_run_keeps_the_mask_versions_it_learned_from(trained_project):
    run = _run(trained_project)
    used = run.split.masks
    assert [m.image_id for m in used] == sorted(run.split.train_ids + run.split.val_ids)
    for m in used:
        rec = trained_project.image(m.image_id)
        kept = trained_project.layout.run(run.id).mask(m.image_id)
        assert (m.version, m.sha256) == (rec.mask_version, rec.mask_sha256)
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == m.sha256
    assert provenance.report(trained_project, run).sentence == "No mask has changed since this run."
    train, val = dataset.run_examples(trained_project, run.id, run.split)
    assert len(train) == len(run.split.train_ids) and len(val) == len(run.split.val_ids)
    assert all(e.mask.startswith(str(trained_project.layout.run(run.id).masks_dir)) for e in train + val)


def test_a_saved_mask_reaches_the_next_run_and_leaves_this_ones_alone(trained_project):
    run = _run(trained_project)
    changed = run.split.train_ids[0]
    kept = trained_project.layout.run(run.id).mask(changed)
    before = codec.load_png(kept)
    new = _repaint(trained_project, changed)
    unlabeled = trained_project.image_ids(status="unlabeled")[0]
    rec = trained_project.image(unlabeled)
    trained_project.masks.save(unlabeled, np.zeros((rec.height, rec.width), np.uint8), rec.mask_version)
    assert np.array_equal(codec.load_png(kept), before), "the run's mask is the version it learned from"
    assert not np.array_equal(before, new)

    found = provenance.changes(trained_project, run)
    assert (found.changed, found.added, found.removed) == ((changed,), (unlabeled,), ())
    assert provenance.report(trained_project, run).sentence == ("2 masks changed or added since this run (1 changed, 1 new). "
                                                      "Train again to learn from them.")
    rows = {r["image"]: r for r in provenance.report(trained_project, run).rows}
    row = rows[trained_project.image(changed).filename]
    assert row["used for"] == "training" and row["mask version"] == 1
    assert row["mask now"] == "changed (version 2 now)"
    assert sum(r["mask now"] == "the same" for r in rows.values()) == len(rows) - 1


def test_masks_cleared_or_moved_to_test_are_no_longer_counted_as_learned(trained_project):
    run = _run(trained_project)
    cleared, moved = run.split.train_ids[:2]
    trained_project.masks.clear(cleared, trained_project.image(cleared).mask_version)
    trained_project.splits.set([moved], "test")
    found = provenance.changes(trained_project, run)
    assert found.removed == tuple(sorted((cleared, moved))) and found.count == 0
    assert found.sentence == "Masks this run learned from are no longer labeled (2 no longer labeled)."
    nows = {r["image"]: r["mask now"] for r in provenance.report(trained_project, run).rows}
    assert nows[trained_project.image(cleared).filename] == "no longer labeled"
    assert nows[trained_project.image(moved).filename] == "moved to the test split"


def test_a_mask_saved_while_the_run_starts_is_taken_at_its_new_version(trained_project, monkeypatch):
    image_id = trained_project.image_ids(status="labeled")[0]
    stale = trained_project.image(image_id)
    _repaint(trained_project, image_id)   # saved after the run read the record, before it linked the file
    monkeypatch.setattr(lineage, "SETTLE_S", 0.0)
    folder = trained_project.layout.run("x").masks_dir
    folder.mkdir(parents=True)
    used = trained_project.lineage._keep_one(stale, folder / f"{image_id}.png")
    now = trained_project.image(image_id)
    assert now.mask_version == stale.mask_version + 1
    assert (used.version, used.sha256) == (now.mask_version, now.mask_sha256)


def test_a_mask_that_keeps_changing_stops_the_start_with_a_sentence(trained_project, monkeypatch):
    image_id = trained_project.image_ids(status="labeled")[0]
    rec = dataclasses.replace(trained_project.image(image_id), mask_sha256="0" * 64)
    monkeypatch.setattr(lineage, "SETTLE_S", 0.0)
    monkeypatch.setattr(trained_project.images, "get", lambda i: rec)
    folder = trained_project.layout.run("x").masks_dir
    folder.mkdir(parents=True)
    with pytest.raises(TrainingError, match="kept changing while the run started; start it again"):
        trained_project.lineage._keep_one(rec, folder / "1.png")


def _zip_masks(path) -> dict[str, np.ndarray]:
    import io

    with zipfile.ZipFile(path) as zf:
        return {n.split("/")[-1]: codec.load_png(io.BytesIO(zf.read(n))) for n in zf.namelist()
                if n.startswith("masks/") and n.endswith(".png")}


def test_export_run_holds_exactly_what_the_run_learned_from(trained_project, tmp_path, capsys):
    run = _run(trained_project)
    changed, deleted = run.split.train_ids[0], run.split.train_ids[1]
    learned = trained_project.masks.load(changed)
    _repaint(trained_project, changed)
    trained_project.delete_image(deleted)
    out = tmp_path / "run.zip"
    assert main(["export", "--project", str(trained_project.path), "--run", run.id, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    n = len(run.split.masks) - 1
    assert f"exported the {n} images run {run.id} learned from ({n - len(run.split.val_ids)} training, " \
           f"{len(run.split.val_ids)} validation)" in said
    assert "1 more images it used were deleted from the project since" in said
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    by_name = {e["original_name"]: e for e in manifest["images"]}
    assert len(by_name) == n, "only the run's images, none of the unlabeled or deleted ones"
    for image_id in run.split.val_ids:
        assert by_name[trained_project.image(image_id).filename]["split"] == "val"
    stem = trained_project.image(changed).stem
    assert np.array_equal(_zip_masks(out)[f"{stem}.png"], learned), "the mask as the run saw it, not as it is now"


def test_export_run_follows_a_class_removed_since(trained_multiclass_project, tmp_path):
    project = trained_multiclass_project
    run = _run(project)
    image_id = run.split.train_ids[0]
    learned = project.masks.load(image_id)
    assert {1, 2} <= set(np.unique(learned).tolist()), "the demo's 3-class masks hold both object classes"
    project.remove_class(1, pixels_to=0)
    out = exporting.export_zip(project, tmp_path / "run.zip", run_id=run.id)
    got = _zip_masks(out)[f"{project.image(image_id).stem}.png"]
    expected = np.where(learned == 1, 0, np.where(learned == 2, 1, learned))
    assert np.array_equal(got, expected), "in the project's numbering now: class 1's pixels went to 0, 2 became 1"


def test_a_run_that_recorded_no_masks_says_so(trained_project, tmp_path):
    run = _run(trained_project)
    trained_project.runs.update(run.id, split=dataclasses.replace(run.split, masks=None))
    run = _run(trained_project)
    assert provenance.changes(trained_project, run) is None and provenance.report(trained_project, run).rows == []
    assert "did not record which mask versions it learned from" in provenance.report(trained_project, run).sentence
    with pytest.raises(ProjectError, match="did not record which mask versions.*cannot be exported as it was"):
        exporting.export_zip(trained_project, tmp_path / "x.zip", run_id=run.id)
    assert not (tmp_path / "x.zip").exists()


def test_a_run_whose_kept_masks_are_gone_is_reported(trained_project, tmp_path):
    from seg_core.services import integrity

    run = _run(trained_project)
    trained_project.layout.run(run.id).mask(run.split.train_ids[0]).unlink()
    with pytest.raises(ProjectError, match="has lost 1 of the masks it learned from"):
        exporting.export_zip(trained_project, tmp_path / "x.zip", run_id=run.id)
    problems = [p for p in integrity.check_project(trained_project.path, models=False) if p.where.endswith("/masks")]
    assert problems and "1 of the masks the run learned from are missing" in problems[0].sentence
