"""Train / validation / test splits: one rule for how many images validate and which ones."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from seg_core.errors import ProjectError
from seg_core.durable import storage_guard
from seg_core.store.db import Database
from seg_core.store.images import Images
from seg_core.store.records import ImageStatus, check_split
from seg_core.store.runs import RunSplit

DEFAULT_VAL_FRACTION = 0.2
UNCHANGED = "the split was not changed"


def validation_count(n: int, fraction: float | None = DEFAULT_VAL_FRACTION, count: int | None = None) -> int:
    """How many of `n` images validate: `count` exactly, or `fraction` rounded, one at least and one left to learn."""
    if count is not None:
        if not 0 <= int(count) <= n:
            raise ProjectError(f"Cannot hold out {count} images for validation: {n} are available.")
        return int(count)
    frac = DEFAULT_VAL_FRACTION if fraction is None else float(fraction)
    if not 0.0 <= frac < 1.0:
        raise ProjectError(f"The validation fraction must be from 0 to below 1; got {frac}.")
    k = int(round(n * frac))
    if frac > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    return k


def choose_validation(ids_by_hash: Sequence[int], k: int, seed: int) -> set[int]:
    """`k` of the ids, drawn with `seed`; ids come ordered by content hash, so upload order does not matter."""
    order = np.random.default_rng(int(seed)).permutation(len(ids_by_hash))
    return {int(ids_by_hash[i]) for i in order[:k]}


class Splits:
    """Which of a project's images train, validate and test, and which ones a run learns from."""

    def __init__(self, database: Database, images: Images):
        self._db = database
        self._images = images

    def _rows(self) -> list:
        with self._db.connection() as conn:
            return conn.execute("SELECT id, status FROM images WHERE split != 'test' ORDER BY sha256").fetchall()

    def assign(self, val_fraction: float | None = DEFAULT_VAL_FRACTION, val_count: int | None = None,
               seed: int = 0, labeled_only: bool = True) -> dict[str, int]:
        """Reproducible train/val assignment: the same images, seed and fraction/count give the same split.

        Images in the 'test' split are left alone. Unlabeled images go to 'train' when labeled_only is set.
        """
        rows = self._rows()
        pool = [r["id"] for r in rows if r["status"] == ImageStatus.LABELED or not labeled_only]
        k = validation_count(len(pool), val_fraction, val_count)
        val_ids = choose_validation(pool, k, seed)
        assignment = [("val" if r["id"] in val_ids else "train", r["id"]) for r in rows]
        with storage_guard(UNCHANGED), self._db.transaction() as conn:
            conn.executemany("UPDATE images SET split = ? WHERE id = ?", assignment)
        return {"train": len(pool) - k, "val": k, "test": self._images.count(split="test")}

    def set(self, image_ids: Iterable[int], split: str) -> None:
        check_split(split)
        with storage_guard(UNCHANGED), self._db.transaction() as conn:
            conn.executemany("UPDATE images SET split = ? WHERE id = ?", [(split, int(i)) for i in image_ids])

    def for_run(self, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> RunSplit:
        """The labeled images a run learns from and checks on; nothing in the project is changed.

        The project's validation split when it has labeled images; otherwise the run sets `val_fraction` of the
        labeled images (test split left out) aside by the same rule as `assign`.
        """
        labeled = ImageStatus.LABELED
        val = self._images.ids(status=labeled, split="val")
        if val:
            return RunSplit("project", tuple(self._images.ids(status=labeled, split="train")), tuple(val))
        pool = [r["id"] for r in self._rows() if r["status"] == labeled]
        chosen = choose_validation(pool, validation_count(len(pool), val_fraction), seed)
        return RunSplit("run", tuple(sorted(i for i in pool if i not in chosen)), tuple(sorted(chosen)))

    def planned(self, val_fraction: float = DEFAULT_VAL_FRACTION) -> tuple[int, int, bool]:
        """(train, val, split_exists): how many labeled images a run will learn from and check on (counts only)."""
        val = self._images.count(status=ImageStatus.LABELED, split="val")
        train = self._images.count(status=ImageStatus.LABELED, split="train")
        if val:
            return train, val, True
        k = validation_count(train, val_fraction)
        return train - k, k, False
