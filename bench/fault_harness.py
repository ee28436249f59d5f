"""Crash and I/O-fault harness: every write path run in a child process that is killed, or sees a full or
read-only disk, at each of its write points (seg_core/faults.py); then the project is reopened and checked.

Used by tests/test_faults.py (a sample) and bench/faults.py (every point). `python bench/fault_harness.py STEP DIR`
is the child: it runs one write path on the project in DIR/project, as the CLI would (a SegError: its sentence on
stderr, exit 2).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from synthetic import box_mask, photo, png_bytes, write_pair_folders, zip_bytes  # noqa: E402
from seg_core import faults  # noqa: E402

SIZE = (40, 48)   # h, w of the base project's images
SENTENCES = {"enospc": "The disk is full", "erofs": "read-only disk", "eacces": "not allowed to write"}
TRAIN_CONFIG = dict(image_size=32, base_filters=4, depth=2, epochs=2, batch_size=4, learning_rate=3e-3,
                    early_stopping_patience=0, xla=False)


# ----- the projects the write paths start from (built in the parent, once per path) ------------------------------
def base_project(folder: Path):
    """3 classes, 4 images: 1-3 labeled, 4 not; a draft on image 3."""
    from seg_core.classes import default_classes
    from seg_core.store.project import Project

    project = Project.create(folder / "project", classes=default_classes(["background", "leaf", "spot"]))
    h, w = SIZE
    for i in range(1, 5):
        project.add_image(png_bytes(photo(h, w, seed=100 + i)), f"photo_{i}.png")
    for i in range(1, 4):
        m = box_mask(h, w, 1, (2, 2, 20, 30))
        m[25:35, 5 + i:20 + i] = 2
        project.masks.save(i, m, 0)
    project.drafts.save(3, box_mask(h, w, 2, (0, 0, 8, 8)), 1)
    project.close()


def import_inputs(folder: Path) -> None:
    base_project(folder)
    write_pair_folders(folder / "input", 3, size=SIZE, mask_value=1)
    entries = {f"images/z_{i}.png": png_bytes(photo(*SIZE, seed=300 + i)) for i in range(3)}
    entries.update({f"masks/z_{i}.png": png_bytes(box_mask(*SIZE, 1, (i, 1, 12, 20))) for i in range(3)})
    (folder / "input.zip").write_bytes(zip_bytes(entries))


def training_project(folder: Path) -> None:
    from seg_core.ml.config import TrainConfig
    from seg_core.services import demo

    project = demo.create_demo_project(folder / "project", count=8, unlabeled=2)
    run = project.runs.create(TrainConfig(**TRAIN_CONFIG).to_dict())
    (folder / "run_id").write_text(run.id)
    project.close()


# ----- the write paths, as the child runs them ---------------------------------------------------------------
def _project(folder: Path):
    from seg_core.store.project import Project

    return Project(folder / "project")


def new_mask() -> np.ndarray:
    m = box_mask(*SIZE, 2, (5, 5, 30, 40))
    m[0:4] = 1
    return m


def _step_mask_save(folder: Path) -> None:
    p = _project(folder)
    p.masks.save(1, new_mask(), p.image(1).mask_version)


def _step_draft(folder: Path) -> None:
    p = _project(folder)
    p.drafts.save(2, new_mask(), p.image(2).mask_version)


def _step_import_folder(folder: Path) -> None:
    from seg_core.services import importing

    importing.import_folder(_project(folder), folder / "input" / "images", folder / "input" / "masks")


def _step_import_zip(folder: Path) -> None:
    from seg_core.services import importing

    importing.import_zip(_project(folder), folder / "input.zip")


def _step_remove_class(folder: Path) -> None:
    _project(folder).remove_class(1, pixels_to=0)


def _step_split(folder: Path) -> None:
    _project(folder).splits.assign(val_fraction=0.5, seed=3)


def _export(fmt: str) -> Callable[[Path], None]:
    def step(folder: Path) -> None:
        from seg_core.services import exporting

        (folder / "out").mkdir(exist_ok=True)
        exporting.export_zip(_project(folder), folder / "out" / "export.zip", fmt=fmt)
    return step


def _step_run_create(folder: Path) -> None:
    from seg_core.ml.config import TrainConfig

    _project(folder).runs.create(TrainConfig(**TRAIN_CONFIG).to_dict())


def _step_create(folder: Path) -> None:
    from seg_core.store.project import Project

    Project.create(folder / "project")


def _step_thumbnail(folder: Path) -> None:
    from seg_core.services import gallery

    p = _project(folder)
    gallery.thumbnail(p, p.image(1))


def _step_train(folder: Path) -> None:
    from seg_core.ml.worker import run_worker
    from seg_core.store import db

    run_id = (folder / "run_id").read_text()
    with db.opened(folder / "project" / "project.db") as conn:   # as jobs.start records the worker it spawned
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (os.getpid(), run_id))
    code = run_worker(str(folder / "project"), run_id)
    if code:
        sys.exit(code)


STEPS: dict[str, Callable[[Path], None]] = {
    "import folder": _step_import_folder, "import zip": _step_import_zip, "mask save": _step_mask_save,
    "draft write": _step_draft, "class removal": _step_remove_class, "split change": _step_split,
    "export seg": _export("seg"), "export coco": _export("coco"), "export voc": _export("voc"),
    "run creation": _step_run_create, "thumbnail": _step_thumbnail, "training": _step_train,
    "training metrics": _step_train, "project creation": _step_create,
}


def child(step: str, folder: str) -> int:
    from seg_core.errors import SegError

    try:
        STEPS[step](Path(folder))
    except SegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# ----- what a path may change, and the checks ----------------------------------------------------------------
def _remapped(before: dict[int, np.ndarray]) -> dict[int, list[np.ndarray]]:
    from seg_core.formats.masks import remap_ids

    return {i: [remap_ids(ids, {1: 0, 2: 1})] for i, ids in before.items()}


@dataclass
class WritePath:
    name: str
    build: Callable[[Path], None]
    may_become: Callable[[dict[int, np.ndarray]], dict[int, list[np.ndarray]]] = lambda before: {}
    glob: str = ""            # only the points on files matching (the training run: its checkpoints)
    models: bool = False      # load the checkpoints when checking
    io: tuple[str, ...] = ("enospc:write", "erofs:rename", "eacces:commit")
    step_timeout: float = 60.0


PATHS = [
    WritePath("import folder", import_inputs),
    WritePath("import zip", import_inputs),
    WritePath("mask save", base_project, lambda before: {1: [new_mask()]}),
    WritePath("draft write", base_project),
    WritePath("class removal", base_project, _remapped),
    WritePath("split change", base_project, io=("eacces:commit",)),
    WritePath("export seg", base_project, io=("enospc:write",)),
    WritePath("export coco", base_project, io=("enospc:write",)),
    WritePath("export voc", base_project, io=("enospc:write",)),
    WritePath("run creation", base_project, io=("erofs:commit",)),
    WritePath("thumbnail", base_project),   # a cache: a full disk only means it is made again next time
    WritePath("training", training_project, glob="*.keras", models=True, io=("enospc:write", "erofs:rename"),
              step_timeout=300.0),
    # The worker's metric rows and status in the database (its checkpoints are the path above).
    WritePath("training metrics", training_project, glob="project.db", models=True, io=("eacces:commit",),
              step_timeout=300.0),
]
BY_NAME = {p.name: p for p in PATHS}


@dataclass
class Outcome:
    spec: str
    rc: int
    stderr: str
    problems: list[str] = field(default_factory=list)
    masks_lost: int = 0
    reached: bool = True      # False: a kill point this run never came to (the worker's progress rows are timed)

    @property
    def held(self) -> bool:
        return not self.problems


def snapshot_masks(project_dir: Path) -> dict[int, np.ndarray]:
    from seg_core.formats.masks import load_png
    from seg_core.store import db

    with db.opened(project_dir / "project.db") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM images WHERE status = 'labeled'")]
    return {i: load_png(project_dir / "masks" / f"{i}.png") for i in ids}


def masks_lost(project, before: dict[int, np.ndarray], allowed: dict[int, list[np.ndarray]]) -> int:
    lost = 0
    for image_id, old in before.items():
        try:
            now = project.masks.load(image_id)
        except Exception:  # noqa: BLE001 - a mask that does not read is lost
            now = None
        if now is None or not any(np.array_equal(now, ok) for ok in [old, *allowed.get(image_id, [])]):
            lost += 1
    return lost


def check(path: WritePath, case: Path, before: dict[int, np.ndarray], outcome: Outcome) -> Outcome:
    """Reopen the project as the next user would, then every invariant of services/integrity plus the path's own."""
    from seg_core.services import jobs
    from seg_core.services.integrity import check_project
    from seg_core.store.project import Project

    problems = [str(p) for p in check_project(case / "project", models=path.models)]
    project = Project(case / "project")
    try:
        for run in jobs.refresh(project):   # a killed worker's run is marked failed on the next look
            if run.active:
                problems.append(f"run {run.id} is still {run.status} after its worker died")
        outcome.masks_lost = masks_lost(project, before, path.may_become(before))
        problems += _own_checks(path, case, project)
    finally:
        project.close()
    if outcome.masks_lost:
        problems.append(f"{outcome.masks_lost} saved mask(s) lost or changed")
    outcome.problems = problems
    return outcome


def _own_checks(path: WritePath, case: Path, project) -> list[str]:
    out = []
    export = case / "out" / "export.zip"
    if export.exists():
        try:
            with zipfile.ZipFile(export) as zf:
                if zf.testzip() is not None:
                    out.append("the export zip is damaged")
        except zipfile.BadZipFile:
            out.append("the export zip is half-written")
    from seg_core.formats.masks import validate_ids

    for d in project.drafts.image_ids():
        draft = project.drafts.get(d)
        if draft is None:
            out.append(f"the draft of image {d} does not read")
            continue
        try:
            validate_ids(draft.ids, project.classes, project.image(d).size)
        except Exception as exc:  # noqa: BLE001
            out.append(f"the draft of image {d} does not fit the project's classes: {exc}")
    return out


# ----- running the child ---------------------------------------------------------------------------------------
def spawn(path: WritePath, case: Path, spec: str) -> subprocess.Popen:
    env = {**os.environ, faults.ENV: spec, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "MASKLOOP_WORKSPACE": str(case), "PYTHONHASHSEED": "0"}
    with open(case / "stderr.txt", "w") as err:   # a file, not a pipe: children that run side by side never block
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), path.name, str(case)], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    proc.case = case  # type: ignore[attr-defined]
    return proc


def wait(path: WritePath, proc: subprocess.Popen) -> tuple[int, str]:
    note = ""
    try:
        proc.wait(timeout=path.step_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        note = f"\n(stopped after {path.step_timeout:.0f} s)"
    return proc.returncode, (proc.case / "stderr.txt").read_text(errors="replace") + note  # type: ignore[attr-defined]


def run_child(path: WritePath, case: Path, spec: str) -> tuple[int, str]:
    return wait(path, spawn(path, case, spec))


class Harness:
    """One path's template project, its point count, and kill / I/O-fault cases on copies of the template."""

    def __init__(self, path: WritePath, root: Path):
        self.path, self.root = path, root
        self.template = root / "template"
        path.build(self.template)
        self.before = snapshot_masks(self.template / "project")
        self._n = 0

    def _case(self) -> Path:
        self._n += 1
        case = self.root / f"case{self._n}"
        shutil.copytree(self.template, case)
        return case

    def count(self) -> dict[str, int]:
        """How many write points of each kind the path has (a run of the child in count mode)."""
        case = self._case()
        log = case / "points.log"
        rc, err = run_child(self.path, case, f"count:{log}")
        if rc != 0:
            raise RuntimeError(f"{self.path.name} failed without any fault (rc {rc}): {err[-2000:]}")
        points = faults.counted(log, self.path.glob)
        shutil.rmtree(case, ignore_errors=True)
        return points

    def kill(self, n: int) -> Outcome:
        return self.batch([("kill", "any", n)])[0]

    def io_fault(self, action: str, op: str, n: int) -> Outcome:
        return self.batch([(action, op, n)])[0]

    def batch(self, cases: list[tuple[str, str, int]], jobs: int = 1) -> list[Outcome]:
        """(action, op, n) cases, `jobs` children at a time (each checked once it has ended)."""
        glob = f":{self.path.glob}" if self.path.glob else ""
        queue = [(f"{a}:{op}:{n}{glob}", a) for a, op, n in cases]
        running: list = []
        out: list[Outcome] = []
        while queue or running:
            while queue and len(running) < max(1, jobs):
                spec, action = queue.pop(0)
                case = self._case()
                running.append((spec, action, case, spawn(self.path, case, spec)))
            spec, action, case, proc = running.pop(0)
            rc, err = wait(self.path, proc)
            out.append(self._finish(spec, action, case, rc, err))
        return out

    def _finish(self, spec: str, action: str, case: Path, rc: int, err: str) -> Outcome:
        expect_rc = (-9,) if action == "kill" else (0, 2)
        out = Outcome(spec, rc, err, reached=not (action == "kill" and rc == 0 and self.path.glob == "project.db"))
        if not out.reached:
            expect_rc = (0,)
        action = "" if action == "kill" else action
        check(self.path, case, self.before, out)
        if rc not in expect_rc:
            out.problems.append(f"the child ended with {rc}, not {expect_rc}: {err.strip()[-600:]}")
        if action:
            out.problems += said(action, err if rc == 2 else "", case if self.path.build is training_project else None)
        if not out.problems:
            shutil.rmtree(case, ignore_errors=True)   # failures are kept to look at
        return out


def said(action: str, stderr: str, training_case: Path | None) -> list[str]:
    """An I/O fault's sentence reached the person: on the command's stderr, and as a failed run's error."""
    out = []
    if stderr and SENTENCES[action] not in stderr:
        out.append(f"the error did not say what happened: {stderr.strip()[-300:]!r}")
    if training_case is not None:
        from seg_core.store.project import Project

        project = Project(training_case / "project")
        run = project.runs.get((training_case / "run_id").read_text())
        project.close()
        if run.status.value != "failed" or SENTENCES[action] not in (run.error or ""):
            out.append(f"the run ended {run.status.value} with error {run.error!r}")
    return out


def io_cases(path: WritePath, points: dict[str, int]) -> list[tuple[str, str, int]]:
    """(action, op, n): each I/O fault of the path at every point of its op."""
    cases = []
    for kind in path.io:
        action, op = kind.split(":")
        cases += [(action, op, n) for n in range(1, points.get(op, 0) + 1)]
    return cases


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"maskloop-{prefix}-"))


def summary(name: str, kills: list[Outcome], ios: list[Outcome], seconds: float) -> dict:
    unreached = [o for o in kills if not o.reached]
    kills = [o for o in kills if o.reached]
    every = kills + ios
    return {"path": name, "kill_points": len(kills), "io_faults": len(ios), "unreached": len(unreached),
            "held": sum(o.held for o in every), "cases": len(every), "masks_lost": sum(o.masks_lost for o in every),
            "seconds": round(seconds, 1),
            "failures": [f"{o.spec}: {'; '.join(o.problems)}" for o in every if not o.held]}


def run_path(name: str, root: Path, kill_points: list[int] | None = None, io: bool | int = True,
             jobs: int = 1) -> dict:
    """Every kill point (or those given) and every I/O fault (or the first `io` of them) of one path; returns its
    summary row."""
    start = time.time()
    h = Harness(BY_NAME[name], root)
    points = h.count()
    ns = kill_points if kill_points is not None else list(range(1, points["any"] + 1))
    kills = h.batch([("kill", "any", n) for n in ns if n <= points["any"]], jobs)
    chosen = io_cases(h.path, points)
    chosen = chosen if io is True else chosen[:int(io)]
    ios = h.batch(chosen, jobs)
    row = summary(name, kills, ios, time.time() - start)
    row["points"] = points
    return row


if __name__ == "__main__":
    if len(sys.argv) == 3:
        sys.exit(child(sys.argv[1], sys.argv[2]))
    print(json.dumps(run_path(sys.argv[1], scratch("faults")), indent=2))
