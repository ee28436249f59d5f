"""Which mask versions a run learned from: kept in the run's folder, recorded on the run, compared with now.

A run links each mask it uses into runs/<id>/masks/ when it starts, and learns from those links. A saved mask is
always a new file renamed over the old one, so the link goes on holding the version the run saw, at no cost in
space until the mask changes: the run's data can be exported exactly, and a later edit cannot reach a run halfway.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from seg_core.errors import TrainingError
from seg_core.durable import temp_path
from seg_core.store.annotations import Masks
from seg_core.store.images import Images
from seg_core.store.layout import ProjectLayout
from seg_core.store.records import ImageRecord, ImageStatus

TRIES = 5          # a mask saved while it is linked: read its record again, at most this many times
SETTLE_S = 0.05    # a save commits its record just before it renames its file in


@dataclass(frozen=True)
class MaskUse:
    """One mask a run learned from or checked on: its image, version and checksum (of the PNG file)."""

    image_id: int
    version: int
    sha256: str


@dataclass(frozen=True)
class Changes:
    """The project's masks against a run's: image ids changed (a newer version), added, and no longer labeled."""

    changed: tuple[int, ...]
    added: tuple[int, ...]
    removed: tuple[int, ...]

    @property
    def count(self) -> int:
        """Masks a new run would learn differently from: changed or added."""
        return len(self.changed) + len(self.added)

    @property
    def sentence(self) -> str:
        if not (self.count or self.removed):
            return "No mask has changed since this run."
        parts = [f"{len(self.changed)} changed"] if self.changed else []
        parts += [f"{len(self.added)} new"] if self.added else []
        parts += [f"{len(self.removed)} no longer labeled"] if self.removed else []
        n = self.count
        head = (f"{n} mask{'' if n == 1 else 's'} changed or added since this run" if n
                else "Masks this run learned from are no longer labeled")
        return f"{head} ({', '.join(parts)})."


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link(src: Path, dst: Path) -> None:
    """`dst` becomes the file `src` names now: a hard link, or a copy where the disk has none."""
    tmp = temp_path(dst)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class Lineage:
    """The masks of each run, kept in its folder as they were when it started."""

    def __init__(self, layout: ProjectLayout, images: Images, masks: Masks):
        self._layout = layout
        self._images = images
        self._masks = masks

    def _keep_one(self, rec: ImageRecord, dst: Path) -> MaskUse | None:
        for _ in range(TRIES):
            src = self._masks.path(rec.id)
            if rec.status != ImageStatus.LABELED or not src.exists():
                return None   # cleared meanwhile: the run does without it
            _link(src, dst)
            sha = _sha(dst)
            if rec.mask_sha256 in (None, sha):   # masks from before checksums were recorded are taken as they are
                return MaskUse(rec.id, rec.mask_version, sha)
            time.sleep(SETTLE_S)
            rec = self._images.get(rec.id)
        raise TrainingError(f"The mask of '{rec.filename}' kept changing while the run started; start it again.")

    def keep(self, run_id: str, image_ids: Iterable[int]) -> tuple[MaskUse, ...]:
        """Link the saved mask of each of these images into the run's folder; the versions linked, in id order.
        Images without a mask are left out."""
        wanted = set(image_ids)
        folder = self._layout.run(run_id).masks_dir
        folder.mkdir(parents=True, exist_ok=True)
        kept = []
        for rec in self._images.list(status=ImageStatus.LABELED):
            if rec.id in wanted:
                use = self._keep_one(rec, self._layout.run(run_id).mask(rec.id))
                if use is not None:
                    kept.append(use)
        return tuple(kept)

    def kept(self, run_id: str, masks: Iterable[MaskUse]) -> bool:
        """Whether the run's folder still holds every one of these masks (a resumed run learns from them again)."""
        return all(self._layout.run(run_id).mask(m.image_id).exists() for m in masks)

    def changes(self, masks: Iterable[MaskUse]) -> Changes:
        """The project's labeled images (its test split aside, which no run learns from) against a run's masks."""
        used = {m.image_id: m for m in masks}
        now = {r.id: r for r in self._images.list(status=ImageStatus.LABELED) if r.split != "test"}
        changed = tuple(i for i in sorted(used.keys() & now.keys())
                        if (now[i].mask_sha256 or "") != used[i].sha256 and now[i].mask_version != used[i].version)
        return Changes(changed, tuple(sorted(now.keys() - used.keys())), tuple(sorted(used.keys() - now.keys())))
