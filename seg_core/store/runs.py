"""Training runs in the project database: typed records and statuses, per-epoch and per-batch metrics. A run's
settings are kept as the dict they were stored as; ml/config.py reads them (run_config)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from enum import Enum

from seg_core import faults
from seg_core.errors import NotFoundError, RunBusyError
from seg_core.durable import storage_guard
from seg_core.store.db import Database
from seg_core.store.layout import ProjectLayout
from seg_core.store.lineage import MaskUse


def _images(n: int, word: str = "image") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class RunStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"

    @classmethod
    def _missing_(cls, value):
        """A status that a newer Maskloop wrote: kept as it is stored, and neither active nor finished here, so
        this version lists the run without acting on it."""
        if not isinstance(value, str):
            return None
        status = str.__new__(cls, value)
        status._name_, status._value_ = value.upper(), value
        return status

    def __str__(self) -> str:
        return self.value

    @property
    def active(self) -> bool:
        return self in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.STOPPED, RunStatus.FAILED)

    @property
    def word(self) -> str:
        """What the pages and the command line call it; a status this version does not know, as it is stored."""
        return _STATUS_WORDS.get(self.value, self.value)


_STATUS_WORDS = {"queued": "starting", "running": "training", "completed": "finished", "stopped": "stopped",
                 "failed": "failed"}


@dataclass(frozen=True)
class RunSplit:
    """The images a run learned from and checked on, and whose split that was.

    source "project": the project's train/val split. source "run": the project had no labeled validation
    images, so the run set `val` of its labeled images aside itself and left the project's split alone.
    """

    source: str
    train_ids: tuple[int, ...]
    val_ids: tuple[int, ...]
    masks: tuple[MaskUse, ...] | None = None   # the mask versions it used (store/lineage.py); None: not recorded

    @property
    def note(self) -> str:
        learned = f"learned from {_images(len(self.train_ids))}"
        if self.source == "project":
            return f"{learned}, checked on the project's {_images(len(self.val_ids), 'validation image')}"
        return (f"{learned}, checked on {len(self.val_ids)} it set aside itself (the project had no labeled "
                "validation images; its split was left as it was)")

    def to_json(self) -> str:
        d = {"source": self.source, "train_ids": list(self.train_ids), "val_ids": list(self.val_ids)}
        if self.masks is not None:
            d["masks"] = [[m.image_id, m.version, m.sha256] for m in self.masks]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str | None) -> "RunSplit | None":
        if not text:
            return None
        d = json.loads(text)
        masks = d.get("masks")
        return cls(d["source"], tuple(d["train_ids"]), tuple(d["val_ids"]),
                   None if masks is None else tuple(MaskUse(int(i), int(v), str(h)) for i, v, h in masks))


@dataclass(frozen=True)
class RunRecord:
    id: str
    status: RunStatus
    config: dict                        # the settings as stored; ml/config.py reads them (run_config)
    created_at: float
    started_at: float | None
    ended_at: float | None
    pid: int | None
    heartbeat_at: float | None
    stop_requested: bool
    error: str | None
    best_epoch: int | None
    best_score: float | None
    split: RunSplit | None = None
    devices: str | None = None          # what the run trained on (ml/distribute.py: Plan.describe)
    start_score: float | None = None    # a warm start: the model it started from, scored on its validation images

    @classmethod
    def from_row(cls, row) -> "RunRecord":
        return cls(row["id"], RunStatus(row["status"]), json.loads(row["config"]),
                   row["created_at"], row["started_at"], row["ended_at"], row["pid"], row["heartbeat_at"],
                   bool(row["stop_requested"]), row["error"], row["best_epoch"], row["best_score"],
                   RunSplit.from_json(row["split"]), row["devices"], row["start_score"])

    @property
    def active(self) -> bool:
        return self.status.active

    @property
    def when(self) -> str:
        """When the run was started, as the pages name a run: '07 Dec 16:39'."""
        return time.strftime("%d %b %H:%M", time.localtime(self.created_at))

    @property
    def improved(self) -> bool | None:
        """A run started from another's model: whether it ended better than that model on the same validation
        images (None for a run that started from scratch, or has no score yet)."""
        if self.config.get("warm_start") is None or self.start_score is None or self.best_score is None:
            return None
        return self.best_score > self.start_score

    @property
    def preset_name(self) -> str:
        return self.config.get("preset") or "custom"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d


_UPDATABLE = {"status", "config", "started_at", "ended_at", "pid", "heartbeat_at", "stop_requested", "error",
              "best_epoch", "best_score", "split", "devices", "start_score"}


class Runs:
    """A project's training runs: one at a time may be queued or running."""

    def __init__(self, database: Database, layout: ProjectLayout):
        self._db = database
        self._layout = layout

    def create(self, config: dict, run_id: str | None = None) -> RunRecord:
        """Record a queued run with its settings (TrainConfig.to_dict); refused while another run of this project is
        queued or running."""
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()
        # The folder first: a crash before the commit leaves an empty folder, never a run without one.
        with storage_guard("the training run was not started"):
            self._layout.run(run_id).dir.mkdir(parents=True, exist_ok=True)
            self._insert(run_id, config)
        return self.get(run_id)

    def _insert(self, run_id: str, config: dict) -> None:
        with self._db.transaction() as conn:
            busy = conn.execute("SELECT id, status, created_at FROM runs WHERE status IN (?, ?)",
                                (RunStatus.QUEUED.value, RunStatus.RUNNING.value)).fetchone()
            if busy:
                since = time.strftime("%H:%M", time.localtime(busy["created_at"]))
                raise RunBusyError(
                    f"Run {busy['id']} (started {since}) is still {busy['status']}; one run at a time per project. "
                    "Stop it or wait for it to finish."
                )
            conn.execute("INSERT INTO runs (id, status, config, created_at) VALUES (?, ?, ?, ?)",
                         (run_id, RunStatus.QUEUED.value, json.dumps(config), time.time()))

    def get(self, run_id: str) -> RunRecord:
        with self._db.connection() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no run '{run_id}' in this project.")
        return RunRecord.from_row(row)

    def list(self) -> list[RunRecord]:
        """Newest first."""
        with self._db.connection() as conn:
            rows = conn.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def update(self, run_id: str, **fields) -> None:
        bad = set(fields) - _UPDATABLE
        if bad:
            raise ValueError(f"not run fields: {bad}")
        if isinstance(fields.get("status"), RunStatus):
            fields["status"] = fields["status"].value
        if isinstance(fields.get("config"), dict):
            fields["config"] = json.dumps(fields["config"])
        if isinstance(fields.get("split"), RunSplit):
            fields["split"] = fields["split"].to_json()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._db.connection() as conn:
            conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def request_stop(self, run_id: str) -> None:
        self.update(run_id, stop_requested=1)

    def stop_requested(self, run_id: str) -> bool:
        with self._db.connection() as conn:
            row = conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def best(self) -> RunRecord | None:
        """The finished run with the best validation score that still has its best checkpoint. A run started from
        another's model stands in for that model where it ended better than it on the same images, and is never
        used where it ended worse."""
        finished = [r for r in self.list() if r.best_score is not None and r.status.finished
                    and self._layout.run(r.id).checkpoint("best").exists()]
        superseded = {r.config.get("warm_start") for r in finished if r.improved}
        candidates = [r for r in finished if r.improved is not False and r.id not in superseded]
        return max(candidates, key=lambda r: (r.best_score, r.created_at)) if candidates else None

    def usable(self) -> list[RunRecord]:
        """Finished runs that saved a model: the best run first, then by validation dice, then newest. What the
        Predict & review page offers and a model download chooses from."""
        runs = [r for r in self.list() if r.status.finished and self._layout.run(r.id).has_model()]
        best = self.best()
        return sorted(runs, key=lambda r: (best is not None and r.id == best.id,
                                           -1.0 if r.best_score is None else r.best_score, r.created_at), reverse=True)

    # ----- metrics ------------------------------------------------------------------------------
    def add_metrics(self, run_id: str, epoch: int, values: dict, batch: int | None = None) -> None:
        faults.point("commit", self._layout.db)
        with self._db.connection() as conn:
            conn.execute("INSERT INTO metrics (run_id, epoch, batch, data, created_at) VALUES (?, ?, ?, ?, ?)",
                         (run_id, int(epoch), batch, json.dumps(values), time.time()))

    def delete_metrics_from(self, run_id: str, epoch: int) -> None:
        """Forget metrics of epochs >= epoch (a resumed run redoes them)."""
        with self._db.connection() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id = ? AND epoch >= ?", (run_id, int(epoch)))

    def epoch_metrics(self, run_id: str) -> list[dict]:
        """One dict per finished epoch, in order, with 'epoch' included."""
        with self._db.connection() as conn:
            rows = conn.execute("SELECT epoch, data FROM metrics WHERE run_id = ? AND batch IS NULL ORDER BY epoch",
                                (run_id,)).fetchall()
        return [{"epoch": r[0], **json.loads(r[1])} for r in rows]

    def latest_progress(self, run_id: str) -> dict | None:
        """The newest per-batch progress row, or None."""
        with self._db.connection() as conn:
            row = conn.execute("SELECT epoch, batch, data, created_at FROM metrics WHERE run_id = ? "
                               "AND batch IS NOT NULL ORDER BY rowid DESC LIMIT 1", (run_id,)).fetchone()
        return {"epoch": row[0], "batch": row[1], "at": row[3], **json.loads(row[2])} if row else None
