"""Which labels made which model: a run's images and mask versions, what changed since, and its data to export."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg_core.classes import IGNORE_ID
from seg_core.errors import ProjectError
from seg_core.formats import masks as codec
from seg_core.store import lineage
from seg_core.store.project import Project
from seg_core.store.records import ImageRecord, ImageStatus
from seg_core.store.runs import RunRecord

NOT_RECORDED = "did not record which mask versions it learned from (it was trained before runs kept them)"


def changes(project: Project, run: RunRecord) -> lineage.Changes | None:
    """The project's masks against those the run learned from; None where the run did not record them."""
    if run.split is None or run.split.masks is None:
        return None
    return project.lineage.changes(run.split.masks)


@dataclass(frozen=True)
class Report:
    """What the Train page says under a run, worked out once: the changes since, their sentence, the run's images."""

    changes: lineage.Changes | None
    sentence: str
    rows: list[dict]


def report(project: Project, run: RunRecord) -> Report:
    found = changes(project, run)
    if found is None:
        return Report(None, f"This run {NOT_RECORDED}.", [])
    sentence = f"{found.sentence} Train again to learn from them." if found.count else found.sentence
    return Report(found, sentence, _rows(project, run, found))


def _rows(project: Project, run: RunRecord, found: lineage.Changes) -> list[dict]:
    records = {r.id: r for r in project.list_images()}
    val = set(run.split.val_ids)
    rows = []
    for m in run.split.masks:
        rec = records.get(m.image_id)
        if rec is None:
            now = "image deleted"
        elif m.image_id in found.removed:
            now = "no longer labeled" if rec.status != ImageStatus.LABELED else "moved to the test split"
        elif m.image_id in found.changed:
            now = f"changed (version {rec.mask_version} now)"
        else:
            now = "the same"
        rows.append({"image": rec.filename if rec else f"image {m.image_id}",
                     "used for": "validation" if m.image_id in val else "training",
                     "mask version": m.version, "mask now": now})
    return rows


@dataclass(frozen=True)
class RunData:
    """What a run learned from, as an export takes it: the images still in the project, each with the split it had
    in the run, and the mask file the run kept for it."""

    records: tuple[ImageRecord, ...]
    masks: dict[int, Path]
    to_project: tuple[int, ...]   # the run's class ids -> the project's now (a class removed since merges)
    deleted: int                  # images the run used that were deleted from the project since

    def load(self, image_id: int) -> np.ndarray:
        ids = codec.load_png(self.masks[image_id])
        lut = np.arange(256, dtype=np.uint8)
        lut[:len(self.to_project)] = self.to_project
        lut[IGNORE_ID] = IGNORE_ID
        return lut[ids]


def run_data(project: Project, run_id: str) -> RunData:
    """The data run `run_id` learned from; a ProjectError with the reason where it cannot be told exactly."""
    from seg_core.ml.class_map import class_map

    run = project.runs.get(run_id)
    if run.split is None or run.split.masks is None:
        raise ProjectError(f"Run {run.id} {NOT_RECORDED}, so its data cannot be exported as it was.")
    files = project.layout.run(run.id)
    lost = [m.image_id for m in run.split.masks if not files.mask(m.image_id).exists()]
    if lost:
        raise ProjectError(f"Run {run.id}'s folder has lost {len(lost)} of the masks it learned from, so its data "
                           "cannot be exported as it was.")
    try:
        mapping = class_map(project, run.id, json.loads(files.config.read_text()))
    except (OSError, ValueError) as exc:
        raise ProjectError(f"Run {run.id}'s settings (config.json) cannot be read: {exc}") from None
    records = {r.id: r for r in project.list_images()}
    val = set(run.split.val_ids)
    kept = tuple(dataclasses.replace(records[m.image_id], split="val" if m.image_id in val else "train",
                                     status=ImageStatus.LABELED)
                 for m in run.split.masks if m.image_id in records)
    return RunData(kept, {r.id: files.mask(r.id) for r in kept}, mapping.to_project,
                   len(run.split.masks) - len(kept))
