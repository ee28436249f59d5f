"""Every path Maskloop reads or writes: the workspace, a project's folders, its runs and its caches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from seg_core import environment

DEFAULT_WORKSPACE = "workspace"
DB_NAME = "project.db"
MACHINE_SPEED_FILE = ".machine-speed.json"
LAST_PROJECT_FILE = ".last-project.json"
WEIGHTS_DIR = "weights"
CHECKPOINTS = ("best", "last")


def workspace_dir() -> Path:
    return Path(environment.get(environment.WORKSPACE) or DEFAULT_WORKSPACE).expanduser().resolve()


def machine_speed_file() -> Path:
    """This machine's measured matmul speed, shared by the workspace's projects."""
    return workspace_dir() / MACHINE_SPEED_FILE


def last_project_file() -> Path:
    """The project each person used last (seg_core.store.workspace.remember_project), shared by the app's tabs."""
    return workspace_dir() / LAST_PROJECT_FILE


def weights_dir() -> Path:
    """Pretrained encoder weights a person added (seg_core/ml/weights.py), shared by the workspace's projects."""
    return workspace_dir() / WEIGHTS_DIR


@dataclass(frozen=True)
class RunLayout:
    """A training run's folder: runs/<id>/ with config.json, best.keras, last.keras, state.json, previews/, masks/."""

    dir: Path

    def checkpoint(self, which: str = "best") -> Path:
        if which not in CHECKPOINTS:
            raise ValueError(f"checkpoint is one of {CHECKPOINTS}, not {which!r}")
        return self.dir / f"{which}.keras"

    @property
    def config(self) -> Path:
        return self.dir / "config.json"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def worker_log(self) -> Path:
        return self.dir / "worker.log"

    @property
    def previews_dir(self) -> Path:
        return self.dir / "previews"

    def preview(self, epoch: int) -> Path:
        """The picture after `epoch` (counted from 1)."""
        return self.previews_dir / f"epoch_{epoch:04d}.png"

    @property
    def masks_dir(self) -> Path:
        """The masks the run learned from, linked as they were when it started (store/lineage.py)."""
        return self.dir / "masks"

    def mask(self, image_id: int) -> Path:
        return self.masks_dir / f"{image_id}.png"

    def previews(self) -> list[Path]:
        """The per-epoch preview pictures, oldest first."""
        return sorted(self.previews_dir.glob("epoch_*.png")) if self.previews_dir.is_dir() else []

    def has_model(self) -> bool:
        return any(self.checkpoint(c).exists() for c in CHECKPOINTS)

    def folders(self) -> tuple[Path, ...]:
        """The run's folder and the ones inside it that it writes to."""
        return (self.dir, self.previews_dir, self.masks_dir)


@dataclass(frozen=True)
class ProjectLayout:
    """A project folder: project.db, images/, masks/, drafts/, predictions/, runs/, cache/."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def masks_dir(self) -> Path:
        return self.root / "masks"

    @property
    def drafts_dir(self) -> Path:
        return self.root / "drafts"

    @property
    def predictions_dir(self) -> Path:
        return self.root / "predictions"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def thumbnails_dir(self) -> Path:
        return self.cache_dir / "thumbs"

    @property
    def review_cache_dir(self) -> Path:
        return self.cache_dir / "review"

    @property
    def training_cache_dir(self) -> Path:
        """Decoded, resized training images (ml/dataset.py), kept between runs."""
        return self.cache_dir / "train"

    @property
    def creating_db(self) -> Path:
        """Where Project.create builds project.db before renaming it in."""
        return self.root / f".{DB_NAME}.creating"

    @property
    def staging(self) -> Path:
        """A folder beside the project's where a whole project is built before it is renamed into place."""
        return self.root.parent / f".{self.root.name}.creating"

    def deleting(self) -> Path:
        """A new name beside the project's that its folder takes while it is deleted, so that a crash halfway
        leaves no half project in the workspace list."""
        return self.root.parent / f".{self.root.name}.deleting-{os.urandom(3).hex()}"

    def image(self, stored_name: str) -> Path:
        return self.images_dir / stored_name

    def mask(self, image_id: int) -> Path:
        return self.masks_dir / f"{int(image_id)}.png"

    def draft(self, image_id: int) -> Path:
        return self.drafts_dir / f"{int(image_id)}.png"

    def discarded_draft(self, image_id: int) -> Path:
        return self.drafts_dir / f"{int(image_id)}.discarded.png"

    def undo_index(self, image_id: int) -> Path:
        """The draft's undo history: which edits, for which draft revision (services/undo_history.py)."""
        return self.drafts_dir / f"{int(image_id)}.undo.json"

    def undo_edit(self, image_id: int, key: str) -> Path:
        return self.drafts_dir / f"{int(image_id)}.undo.{key}.npz"

    def prediction(self, image_id: int) -> Path:
        return self.predictions_dir / f"{int(image_id)}.png"

    def run(self, run_id: str) -> RunLayout:
        return RunLayout(self.runs_dir / run_id)

    def runs(self) -> list[RunLayout]:
        """The folders of the project's runs, as they are on disk."""
        return [RunLayout(p) for p in sorted(self.runs_dir.iterdir()) if p.is_dir()] if self.runs_dir.is_dir() else []

    def thumbnail(self, name: str) -> Path:
        return self.thumbnails_dir / name

    def review_cache(self, name: str) -> Path:
        return self.review_cache_dir / name

    def created_dirs(self) -> tuple[Path, ...]:
        """The folders a new project starts with (the others appear on first use)."""
        return (self.images_dir, self.masks_dir, self.runs_dir)
