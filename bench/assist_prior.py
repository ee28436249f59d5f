"""The project's own model as a prior for the assists: Box -> object and Smart fill with and without it, beside the
plain methods and the model alone, on photos the model never saw.

A project is made of the first half of ../shared/data/ccp (photos 1-20, sorted by name) and a model trained on it
with `maskloop train` (the photo preset, --minutes each); the assists are then scored on photos 21-40 with the
simulated annotator of bench/assist_quality.py (jittered boxes, skeleton-following strokes). "ccp-person" is the
person vs background (the preset's model is good there), "ccp" the 7 classes (in the preset's minutes the model
is poor there: the prior must not hurt). The trust in each class comes from the model's validation IoU
(seg_core/services/priors.py); "trusted fully" ignores it, to show what the weighting is for.

Rows: box (IoU of each object, averaged), Smart fill with k strokes a class (IoU per class present, averaged per
image); halves: photos 21-30 and 31-40 (tune on one, confirm on the other).

    python bench/assist_prior.py --minutes 7 [--workspace /tmp/prior]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import plain  # noqa: E402
from annotator import Annotator  # noqa: E402
from assist_quality import DATA, IGNORE, _class_mean, _iou, load  # noqa: E402

HALF = 20
KS = (1, 2)
MAX_OBJECTS = 5
NAMES = ["background", "skin", "hair", "upper-clothes", "lower-clothes", "shoes", "accessories"]


def _project(workspace: Path, dataset: str, minutes: float) -> Path:
    """The project of photos 1-HALF with a trained model, made (and trained) unless it is there already."""
    path = workspace / dataset
    if (path / "runs").is_dir() and any((path / "runs").glob("*/best.keras")):
        return path
    half = workspace / "first-half"
    for sub in ("images", "masks"):
        (half / sub).mkdir(parents=True, exist_ok=True)
    for image in sorted((DATA / "ccp" / "images").iterdir())[:HALF]:
        for src, dst in ((image, half / "images" / image.name),
                         (DATA / "ccp" / "masks" / f"{image.stem}.png", half / "masks" / f"{image.stem}.png")):
            if not dst.exists():
                dst.symlink_to(src)
    cli = [sys.executable, "-m", "seg_core.cli"]
    classes = ["background", "person"] if dataset == "ccp-person" else NAMES
    subprocess.run(cli + ["import", "--project", str(path), "--images", str(half / "images"), "--masks",
                          str(half / "masks"), "--mask-format", "nonzero" if dataset == "ccp-person" else "ids",
                          "--classes", *classes], check=True)
    subprocess.run(cli + ["train", "--project", str(path), "--minutes", str(minutes)], check=True)
    return path


def _priors(path: Path, pairs):
    from seg_core.ml.inference import Predictor
    from seg_core.services import priors
    from seg_core.store.project import Project

    project = Project(path)
    predictor = Predictor.from_run(project)
    made = {name: priors.model_prior(project, predictor, image) for name, image, _ in pairs}
    return made, project.runs.best()


class Scores:
    def __init__(self):
        self.rows: dict[str, list[tuple[int, float]]] = {}

    def add(self, row: str, image: int, score: float) -> None:
        self.rows.setdefault(row, []).append((image, score))

    def print(self, dataset: str, n: int) -> None:
        for row, values in self.rows.items():
            s = np.array(values)
            first = s[:, 0] < n // 2
            print(f"| {dataset} | {row} | {s[:, 1].mean():.3f} | {s[first, 1].mean():.3f} | "
                  f"{s[~first, 1].mean():.3f} | {len(s)} |", flush=True)


def score(dataset: str, path: Path) -> None:
    from seg_core import assist

    pairs, num_classes, background = load(dataset, None)
    pairs = pairs[HALF:]
    made, run = _priors(path, pairs)
    first = next(iter(made.values()))
    quality = ", ".join(f"{NAMES[c] if dataset == 'ccp' else ('background', 'person')[c]} "
                        f"{'-' if q is None else f'{q:.2f}'} (trust {t:.2f})"
                        for c, (q, t) in enumerate(zip(first.quality, first.trust)))
    print(f"\n{dataset}: run {run.id}, best val dice {run.best_score:.3f}; validation IoU per class: {quality}")
    print("| set | row | mean | photos 21-30 | photos 31-40 | n |\n| --- | --- | --- | --- | --- | --- |")
    scores = Scores()
    for i, (name, image, truth) in enumerate(pairs):
        prior, valid = made[name], truth != IGNORE
        objects = Annotator(truth, HALF + i, IGNORE).objects(background)
        rng = np.random.default_rng(i)
        if len(objects) > MAX_OBJECTS:
            objects = [objects[j] for j in sorted(rng.choice(len(objects), MAX_OBJECTS, replace=False))]
        for o in objects:
            p, trust = prior.probs[..., o.class_id], prior.trust[o.class_id]
            inside = np.zeros(truth.shape, bool)
            inside[o.box[1]:o.box[3], o.box[0]:o.box[2]] = True
            results = {
                "box, no model": assist.box_fill(image, o.box),
                "box + model": assist.box_fill(image, o.box, prior=p, trust=trust),
                "box + model trusted fully": assist.box_fill(image, o.box, prior=p, trust=1.0),
                "plain GrabCut": plain.grabcut(image, o.box),
                "model alone, inside the box": inside & (prior.probs.argmax(axis=2) == o.class_id),
            }
            for row, got in results.items():
                scores.add(row, i, _iou(np.asarray(got, bool), o.mask, valid))
        present = np.unique(truth[valid])
        scores.add("model alone, whole photo", i,
                   _class_mean(truth, prior.probs.argmax(axis=2).astype(np.uint8), num_classes, present)[0])
        for k in KS:
            strokes = Annotator(truth, HALF + i, IGNORE).scribbles(k)
            fills = {
                f"Smart fill {k}/class, no model": assist.scribble_fill(image, strokes, num_classes),
                f"Smart fill {k}/class + model": assist.scribble_fill(image, strokes, num_classes, prior=prior.probs,
                                                                      trust=prior.weights),
                f"Smart fill {k}/class + model trusted fully": assist.scribble_fill(
                    image, strokes, num_classes, prior=prior.probs, trust=np.ones(num_classes, np.float32)),
                f"plain trees {k}/class": plain.trees(image, strokes, num_classes),
            }
            for row, ids in fills.items():
                scores.add(row, i, _class_mean(truth, ids, num_classes, present)[0])
    scores.print(dataset, len(pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=7.0, help="training time of each model")
    parser.add_argument("--workspace", type=Path, default=None, help="keep (and reuse) the projects here")
    parser.add_argument("--datasets", nargs="+", default=["ccp-person", "ccp"], choices=["ccp-person", "ccp"])
    args = parser.parse_args()
    if not (DATA / "ccp" / "images").is_dir():
        sys.exit(f"{DATA / 'ccp'} is missing: this benchmark needs the real photos")
    from seg_core.ml.cpu import cpu_flags

    flags = " ".join(x for x in sorted(cpu_flags()) if x.startswith(("avx", "amx", "fma")))
    print(f"{os.cpu_count()} cores, CPU flags: {flags or 'none of avx/amx/fma'} (training time depends on them)")
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="assist-prior-"))
    for dataset in args.datasets:
        score(dataset, _project(workspace, dataset, args.minutes))


if __name__ == "__main__":
    main()
