"""The loop, measured: a simulated person labels a data set from zero with the app's tools while the project keeps
learning, and a held-out part that is never labeled scores the model after each round.

DIR holds images/ and masks/ (matched by base name; + classes.csv where the masks are class ids with names). It is
read by the app's own import (`maskloop import --folder`), so it runs on any folder the app imports; --binary reads
any non-zero mask value as the object. A seeded HELDOUT share of the images (at least 2) is held out; the rest is
the pool the person labels, one image at a time (bench/loop_person.py: proposals, Box -> object, refine clicks,
Smart fill and brush strokes, each image until IoU 0.90 with the truth or 20 interactions).

Every --every saved masks the project trains as keep learning does (services/keep_learning.py: the first model from
the page's `fast` preset, then a short run from the current model, used only if it beats it; a real worker
process, --minutes-per-round each), and the held-out images are scored with the model in use. The person waits for
the run here; in the app they would go on labeling.

Conditions, in one run (--conditions): "app": the app's order (Annotate next: the image the model is least sure of
first; file order before any model), the model's proposals and the assists with the model as prior; "random":
the same tools in a random order; "no proposals": the app's order, assists only; "brush": brush strokes only, file
order (the floor). Person seconds are estimated with the costs in loop_person.COSTS (a box 3 s, a stroke 2 s, a
click 1 s, a look at a proposal 2 s); server seconds are the assists, predictions and training on this machine.

    python bench/loop.py --data ../shared/data/ccp --binary --minutes-per-round 1 --json loop-ccp.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from loop_person import COSTS, GOAL_IOU, MAX_INTERACTIONS, Person, Tally, score  # noqa: E402

HELDOUT = 0.25
CONDITIONS = {"app": dict(order="app", proposals=True, assists=True),
              "random": dict(order="random", proposals=True, assists=True),
              "no proposals": dict(order="app", proposals=False, assists=True),
              "brush": dict(order="file", proposals=False, assists=False)}


def read_truth(data: Path, binary: bool, workspace: Path):
    """The data set as the app imports it: (classes, [(filename, image, truth ids, file bytes)]), by file name."""
    from seg_core.cli import main as cli
    from seg_core.store.project import Project

    path = workspace / "truth"
    if binary:   # the masks' values only: a class-names file beside them would name classes the project lacks
        args = ["import", "--project", str(path), "--images", str(data / "images"), "--masks", str(data / "masks"),
                "--mask-format", "nonzero", "--classes", "background", "object"]
    else:
        args = ["import", "--project", str(path), "--folder", str(data)]
    if cli(args) != 0:
        sys.exit(f"{data} did not import cleanly (see the report above); the loop needs every image with its mask")
    project = Project(path)
    items = [(rec.filename, project.load_image(rec), project.masks.load(rec), project.image_path(rec).read_bytes())
             for rec in project.list_images()]
    missing = [name for name, _, truth, _ in items if truth is None]
    if missing:
        sys.exit(f"{len(missing)} images have no mask, e.g. {missing[0]}: the loop needs the truth of every image")
    return [c for c in project.classes], sorted(items, key=lambda item: item[0])


def split(items, seed: int):
    order = np.random.default_rng(seed).permutation(len(items))
    n = max(2, round(HELDOUT * len(items)))
    return [items[i] for i in sorted(order[n:])], [items[i] for i in sorted(order[:n])]


class Loop:
    """One condition: a fresh project of the pool's images, labeled image by image, trained every `every` masks."""

    def __init__(self, name: str, classes, pool, heldout, workspace: Path, every: int, minutes: float, seed: int):
        from seg_core.services import keep_learning
        from seg_core.store.workspace import new_project

        self.name, self.pool, self.heldout, self.every, self.seed = name, pool, heldout, every, seed
        self.cond = CONDITIONS[name]
        self.project = new_project(workspace / name.replace(" ", "-"), classes=classes)
        self.truth = {}
        for filename, image, truth, data in pool:
            rec = self.project.add_image(data, filename).image
            self.truth[rec.id] = (image, truth)
        keep_learning.change(self.project, on=True, every=every, minutes=minutes)
        self.person = Person(len(classes), self.cond["proposals"], self.cond["assists"], seed=seed)
        self.rng = np.random.default_rng(seed)
        self.tallies: list[Tally] = []
        self.rounds: list[dict] = []
        self.server = 0.0

    def order(self, predictor) -> list[int]:
        from seg_core.services import review, snapping
        from seg_core.store.records import ImageStatus

        left = self.project.image_ids(status=ImageStatus.UNLABELED)
        if predictor is not None and (self.cond["proposals"] or self.cond["order"] == "app"):
            snapping.predict_unlabeled(self.project, predictor)   # the proposals, as Predict & review makes them
        if self.cond["order"] == "random":
            return list(self.rng.permutation(left))
        if self.cond["order"] == "app" and predictor is not None:
            return [r.image_id for r in review.annotate_next(self.project, predictor.run_id)]
        return left

    def run(self) -> None:
        from seg_core.store.records import ImageStatus

        predictor = None
        while self.project.image_ids(status=ImageStatus.UNLABELED):
            start = time.perf_counter()
            batch = self.order(predictor)[:self.every]
            self.server += time.perf_counter() - start
            for image_id in batch:
                self._label(int(image_id), predictor)
            predictor = self._train()
            self._report(predictor)

    def _label(self, image_id: int, predictor) -> None:
        from seg_core.services import priors

        image, truth = self.truth[image_id]
        proposal = prior = None
        start = time.perf_counter()
        if predictor is not None and (self.cond["proposals"] or self.cond["assists"]):
            prior = priors.model_prior(self.project, predictor, image)
            stored = self.project.predictions.get(image_id) if self.cond["proposals"] else None
            proposal = stored.ids if stored is not None and stored.run_id == predictor.run_id else \
                np.argmax(prior.probs, axis=-1).astype(np.uint8)
        self.server += time.perf_counter() - start
        ids, tally = self.person.label(image, truth, proposal if self.cond["proposals"] else None,
                                       prior if self.cond["assists"] else None)
        self.server += tally.seconds
        rec = self.project.image(image_id)
        self.project.masks.save(image_id, ids, rec.mask_version, author="loop",
                                source="accepted" if tally.accepted else "painted")
        self.tallies.append(tally)

    def _train(self):
        """What keep learning does after these saves; the person waits for the run. The model in use after it."""
        from seg_core.ml.inference import Predictor
        from seg_core.services import jobs, keep_learning

        start = time.perf_counter()
        said = keep_learning.after_save(self.project)
        run = self.project.runs.list()[0] if said else None
        while run is not None and jobs.refresh_run(self.project, run.id).active:
            time.sleep(1.0)
        self.server += time.perf_counter() - start
        if run is not None and jobs.refresh_run(self.project, run.id).status.value == "failed":
            print(f"  {self.name}: run {run.id} failed: {jobs.refresh_run(self.project, run.id).error}", flush=True)
        best = self.project.runs.best()
        return None if best is None else Predictor.from_run(self.project, best.id)

    def _report(self, predictor) -> None:
        ious = [] if predictor is None else [
            score(predictor.predict_one(image).ids, truth, len(self.project.classes))
            for _, image, truth, _ in self.heldout]
        done = self.tallies[-self.every:] if len(self.tallies) % self.every == 0 else \
            self.tallies[-(len(self.tallies) % self.every):]
        row = {"labeled": len(self.tallies),
               "interactions_per_image": float(np.mean([t.interactions for t in done])),
               "boxes": sum(t.boxes for t in done), "strokes": sum(t.strokes for t in done),
               "clicks": sum(t.clicks for t in done), "looks": sum(t.looks for t in done),
               "accepted": sum(t.accepted for t in done),
               "mask_iou": float(np.mean([t.iou for t in done])),
               "person_seconds": float(sum(t.person_seconds for t in self.tallies)),
               "server_seconds": round(self.server, 1),
               "heldout_mean_iou": float(np.mean(ious)) if ious else None,
               "model": predictor.run_id if predictor is not None else None}
        self.rounds.append(row)
        held = "-" if row["heldout_mean_iou"] is None else f"{row['heldout_mean_iou']:.3f}"
        print(f"  {self.name:<13} {row['labeled']:>4} {row['interactions_per_image']:>6.1f} "
              f"{row['boxes']:>3}/{row['strokes']:>3}/{row['clicks']:>3}/{row['looks']:>3} {row['accepted']:>4} "
              f"{row['mask_iou']:>6.3f} {row['person_seconds']:>8.0f} {row['server_seconds']:>8.0f} {held:>7}",
              flush=True)

    def summary(self) -> dict:
        per = [t.interactions for t in self.tallies]
        first, last = float(np.mean(per[:5])), float(np.mean(per[-10:]))
        return {"rounds": self.rounds, "interactions": per, "first5_interactions": first,
                "last10_interactions": last, "total_person_seconds": float(sum(t.person_seconds for t in self.tallies)),
                "server_seconds": round(self.server, 1)}


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, res in results.items():
        rows = [r for r in res["rounds"] if r["heldout_mean_iou"] is not None]
        a.plot([r["labeled"] for r in rows], [r["heldout_mean_iou"] for r in rows], marker="o", label=name)
        b.plot(range(1, len(res["interactions"]) + 1), res["interactions"], marker=".", label=name)
    a.set(xlabel="images labeled", ylabel="held-out mean IoU", title="The model", ylim=(0, 1))
    b.set(xlabel="image, in the order labeled", ylabel="interactions", title="The person's work per image")
    a.axhline(0.85, color="grey", lw=0.8, ls="--")
    a.legend(), b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with images/ and masks/ (+ classes.csv)")
    parser.add_argument("--binary", action="store_true", help="any non-zero mask value is the object")
    parser.add_argument("--minutes-per-round", type=float, default=1.0, help="each training run's time budget")
    parser.add_argument("--every", type=int, default=5, help="saved masks between training runs")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    parser.add_argument("--limit", type=int, default=None, help="use only this many images (for a quick look)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, required=True, help="write the rounds here")
    parser.add_argument("--png", type=Path, default=None, help="the curves (default: beside --json)")
    parser.add_argument("--workspace", type=Path, default=None, help="keep the projects here")
    args = parser.parse_args()
    from seg_core.ml.cpu import cpu_flags

    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="loop-"))
    os.environ["MASKLOOP_WORKSPACE"] = str(workspace)
    import tensorflow as tf

    from train_speed import matmul_peak

    flags = " ".join(x for x in sorted(cpu_flags()) if x.startswith(("avx", "amx", "fma")))
    print(f"{os.cpu_count()} cores, CPU flags: {flags or 'none of avx/amx/fma'}, fp32 matmul peak "
          f"{matmul_peak(tf):.0f} GFLOP/s (training minutes buy more on a faster machine); costs {COSTS} s; an image "
          f"ends at IoU {GOAL_IOU} or {MAX_INTERACTIONS} interactions")
    classes, items = read_truth(args.data, args.binary, workspace)
    items = items[:args.limit] if args.limit else items
    pool, heldout = split(items, args.seed)
    print(f"{args.data}: {len(classes)} classes, {len(pool)} images to label, {len(heldout)} held out; training "
          f"every {args.every} masks, {args.minutes_per_round:g} min a run")
    print(f"  {'condition':<13} {'done':>4} {'int/im':>6} {'bx/st/cl/lk':>15} {'acc':>4} {'maskIoU':>6} "
          f"{'person s':>8} {'server s':>8} {'heldout':>7}")
    results = {}
    for name in args.conditions:
        loop = Loop(name, classes, pool, heldout, workspace, args.every, args.minutes_per_round, args.seed)
        loop.run()
        results[name] = loop.summary()
    print("\ncondition      first 5 int/im  last 10 int/im  ratio  held-out at end  person time")
    for name, res in results.items():
        end = res["rounds"][-1]["heldout_mean_iou"] if res["rounds"] else None
        ratio = res["last10_interactions"] / max(res["first5_interactions"], 1e-9)
        print(f"{name:<14} {res['first5_interactions']:>14.1f} {res['last10_interactions']:>15.1f} {ratio:>6.2f} "
              f"{'-' if end is None else f'{end:.3f}':>16} {res['total_person_seconds'] / 60:>9.1f} min")
    print("goals (person vs background): last 10 <= 1/3 of the first 5; held-out >= 0.85 after 40 images")
    main_rounds = results.get("app", next(iter(results.values())))["rounds"]
    args.json.write_text(json.dumps({"data": str(args.data), "binary": args.binary, "costs": COSTS,
                                     "every": args.every, "minutes_per_round": args.minutes_per_round,
                                     "pool": len(pool), "heldout": len(heldout), "rounds": main_rounds,
                                     "conditions": results}, indent=2))
    png = args.png or args.json.with_suffix(".png")
    what = f"{args.data.name}, any class as the object" if args.binary else f"{args.data.name}, {len(classes)} classes"
    plot(results, png, f"{what}: {len(pool)} images labeled from zero, {len(heldout)} held out")
    print(f"wrote {args.json} and {png}")


if __name__ == "__main__":
    main()
