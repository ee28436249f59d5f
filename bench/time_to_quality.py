"""Time to quality: Maskloop's presets as the Train page runs them, on membrane, the demo scenes and CamVid.

Data sets (held-out images are never trained or validated on; scores at each image's own size):
- membrane (../shared/data/membrane, 512x512 grey EM): 15 pairs train (12 learn, 3 validate), 5 held out.
  The tutorial reference (bench/reference.py: 16 filters, 256 px, fp32, batch 8, Adam 1e-3, BCE, numpy in
  memory) trains beside it for the same time.
- demo (the app's demo project: 60 photo-like scenes of 320x240, 256x256 and 384x288, 50 labelled, split
  40 learn / 10 validate as on the page); held out: 40 new scenes of the same kinds.
- camvid (../shared/data/camvid-mini, 480x360 road photos, 12 classes with 11 = unlabelled): 6 pairs train
  (5 learn, 1 validate), 2 held out; mean IoU over the classes present.
Each preset gets --minutes of training (the page gives `fast` 5); `--compare NAME=JSON` trains each preset
again with those settings as the Train page's form would pass them, for a side-by-side verdict in the same run;
e.g. the photo `fast` preset as it was before letterboxing and colour augmentation:
  --compare 'before={"resize": "squash", "image_size": 256, "crop_size": 128, "augment": {"hsv": false}}'
(not on membrane: grey images never get the photo variant).
Validation mean IoU is what the page's "How good is the model" panel shows; held-out is the honest number.
Scoring time is taken off the training clock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from reference import reference_unet  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MEMBRANE, CAMVID, CCP = DATA / "membrane", DATA / "camvid-mini", DATA / "ccp"
# ccp: the first 20 photos are the project (16 learn, 4 validate), the other 20 are held out.
CCP_LABELED = 20
CAMVID_UNLABELLED = 11
DEMO_HELD_OUT = 40


class Clock:
    """Training time with scoring excluded."""

    def __init__(self):
        self.start = time.perf_counter()
        self.paused = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.start - self.paused


def mean_iou(cm: np.ndarray) -> float:
    """Over the classes present in the masks or the predictions."""
    from seg_core.ml import losses as L

    return float(L.mean_iou(cm))


def object_iou(cm: np.ndarray) -> float:
    """Mean IoU over the object classes (all but 0, the background) present in the masks or the predictions."""
    inter = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - inter
    present = union[1:] > 0
    return float((inter[1:][present] / union[1:][present]).mean())


def confusion(predict_ids, pairs, num_classes: int, ignore: int | None = None) -> np.ndarray:
    """predict_ids(list of images) -> list of HxW class ids at full size; their confusion matrix over the pairs."""
    from seg_core.ml import losses as L

    cm = np.zeros((num_classes, num_classes), np.int64)
    for pred, (_, truth) in zip(predict_ids([im for im, _ in pairs]), pairs):
        keep = truth != ignore if ignore is not None else np.ones(truth.shape, bool)
        cm += L.confusion_matrix(truth[keep], pred[keep], num_classes)
    return cm


def scored(predict_ids, pairs, num_classes: int, ignore: int | None = None, objects: bool = False) -> float:
    """Mean IoU over all the pairs (over the object classes only with `objects`)."""
    cm = confusion(predict_ids, pairs, num_classes, ignore)
    return object_iou(cm) if objects else mean_iou(cm)


# ----- data sets: (a project folder made from the training pairs, the held-out pairs, classes, ignore) ------
def _pairs(folder: Path, names, read_mask):
    return [(np.asarray(Image.open(folder / "images" / n)), read_mask(np.asarray(Image.open(folder / "masks" / n))))
            for n in names]


def _project_from_pairs(path: Path, src: Path, names, classes, infer: bool):
    from seg_core.services import importing
    from seg_core.store.project import Project

    staging = path.parent / f"{path.name}_src"
    for sub in ("images", "masks"):
        (staging / sub).mkdir(parents=True)
        for n in names:
            shutil.copy(src / sub / n, staging / sub / n)
    project = Project.create(path, classes=classes)
    importing.import_folder(project, staging / "images", staging / "masks", infer_classes=infer)
    project.splits.assign(val_fraction=0.2, seed=0)
    return project


def membrane(workdir: Path):
    names = sorted(p.name for p in (MEMBRANE / "images").iterdir())
    binary = lambda m: (m > 127).astype(np.uint8)  # noqa: E731
    project = _project_from_pairs(workdir / "membrane", MEMBRANE, names[:-5], None, infer=True)
    return project, _pairs(MEMBRANE, names[-5:], binary), 2, None, _pairs(MEMBRANE, names[:-5], binary)


def demo(workdir: Path):
    from seg_core.services import demo as demo_service
    from seg_core.services.demo_scenes import render_scene

    project = demo_service.create_demo_project(workdir / "demo")
    sizes = demo_service._SIZES
    held = [render_scene(100_003 * 7 + i, *sizes[i % len(sizes)]) for i in range(DEMO_HELD_OUT)]
    return project, held, 2, None, None


def camvid(workdir: Path):
    from seg_core.classes import ClassSpec, default_color

    names = sorted(p.name for p in (CAMVID / "images").iterdir())
    classes = [ClassSpec(i, f"class{i}", default_color(i)) for i in range(12)]
    project = _project_from_pairs(workdir / "camvid", CAMVID, names[:-2], classes, infer=False)
    return project, _pairs(CAMVID, names[-2:], lambda m: m.astype(np.uint8)), 12, CAMVID_UNLABELLED, None


def _ccp(workdir: Path, person: bool):
    from seg_core.classes import ClassSpec, default_color

    names = sorted(p.stem for p in (CCP / "images").iterdir())
    labels = [line.split(",", 1)[1] for line in (CCP / "masks" / "classes.csv").read_text().splitlines()[1:]]
    labels = ["background", "person"] if person else labels
    classes = [ClassSpec(i, n, default_color(i)) for i, n in enumerate(labels)]
    staging = workdir / "ccp_src"
    for sub in ("images", "masks"):
        (staging / sub).mkdir(parents=True)
    for n in names[:CCP_LABELED]:
        shutil.copy(CCP / "images" / f"{n}.jpg", staging / "images" / f"{n}.jpg")
        mask = np.asarray(Image.open(CCP / "masks" / f"{n}.png"))
        Image.fromarray(((mask > 0) if person else mask).astype(np.uint8)).save(staging / "masks" / f"{n}.png")
    from seg_core.services import importing
    from seg_core.store.project import Project

    project = Project.create(workdir / "ccp", classes=classes)
    importing.import_folder(project, staging / "images", staging / "masks")
    project.splits.assign(val_fraction=0.2, seed=0)
    held = [(np.asarray(Image.open(CCP / "images" / f"{n}.jpg").convert("RGB")),
             ((m > 0) if person else m).astype(np.uint8))
            for n in names[CCP_LABELED:] for m in [np.asarray(Image.open(CCP / "masks" / f"{n}.png"))]]
    return project, held, len(classes), None, None


DATASETS = {"membrane": (membrane, MEMBRANE), "demo": (demo, None), "camvid": (camvid, CAMVID),
            "ccp": (lambda w: _ccp(w, False), CCP), "ccp-person": (lambda w: _ccp(w, True), CCP)}
# Real photos: their scores are over the object classes (the background left out) and also given for each half of
# the held-out photos, so that a setting chosen on one half is confirmed on the other.
OBJECT_SCORES = ("ccp", "ccp-person", "camvid")


# ----- training -------------------------------------------------------------------------------------------
def run_reference(keras, tf, train_pairs, held, budget_s, every_s):
    def prep(images):
        return np.stack([np.asarray(Image.fromarray(i).resize((256, 256), Image.BILINEAR), np.float32) / 255
                         for i in images])[..., None]

    x = prep([i for i, _ in train_pairs])
    y = np.stack([np.asarray(Image.fromarray(m).resize((256, 256), Image.NEAREST), np.float32)
                  for _, m in train_pairs])[..., None]
    keras.utils.set_random_seed(0)
    model = reference_unet(keras, 256, 1, 16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")

    def ids(images):
        p = model(prep(images), training=False)
        return [(tf.image.resize(pi, im.shape[:2], "bilinear").numpy()[..., 0] >= 0.5).astype(np.uint8)
                for pi, im in zip(p, images)]

    curve, clock, last = [], Clock(), 0.0
    while clock.now() < budget_s:
        model.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0)
        if clock.now() - last >= every_s or clock.now() >= budget_s:
            t0 = time.perf_counter()
            curve.append((clock.now(), scored(ids, held, 2)))
            clock.paused += time.perf_counter() - t0
            last = clock.now()
    return {"curve": curve, "held": curve[-1][1], "val": None, "epochs": None}


def run_preset(keras, project, name, overrides, held, num_classes, ignore, budget_s, every_s, objects=False):
    from seg_core.ml import dataset
    from seg_core.ml.callbacks import RunState
    from seg_core.ml.inference import Predictor
    from seg_core.ml.training import train
    from seg_core.services import planning, review

    photos = dataset.project_channels(project) == 3
    config = planning.build_config(name, {"time_budget_minutes": budget_s / 60, **overrides}, photos,
                                   num_classes)
    run = project.runs.create(config.to_dict())
    curve, clock, state = [], Clock(), {"last": 0.0}

    def held_score(predictor) -> float:
        return scored(lambda ims: [p.ids for p in predictor.predict(ims)], held, num_classes, ignore, objects)

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if clock.now() - state["last"] < every_s:
                return
            t0 = time.perf_counter()
            meta = {"image_size": config.image_size, "resize": config.resize, "num_classes": num_classes,
                    "channels": int(self.model.input_shape[-1])}
            curve.append((clock.now(), held_score(Predictor(self.model, meta))))
            clock.paused += time.perf_counter() - t0
            run_state.paused_s = clock.paused
            state["last"] = clock.now()

    run_state = RunState()
    train(project, run.id, config, state=run_state, extra_callbacks=[Score()])
    train_s = clock.now()
    predictor = Predictor.from_run(project, run.id)   # the best checkpoint, as the pages use
    val = review.validation_summary(project, predictor)
    from seg_core.ml import losses as L

    ids = [p.ids for p in predictor.predict([im for im, _ in held])]   # once: scored whole, by halves, by class

    def final(part: slice) -> np.ndarray:
        return confusion(lambda _: ids[part], held[part], num_classes, ignore)

    def score(cm: np.ndarray) -> float:
        return object_iou(cm) if objects else mean_iou(cm)

    whole, half = final(slice(None)), len(held) // 2
    curve.append((train_s, score(whole)))
    return {"per_class": L.per_class_iou(whole), "curve": curve, "held": curve[-1][1], "val": val.mean_iou,
            "epochs": len(project.runs.epoch_metrics(run.id)),
            "halves": (score(final(slice(None, half))), score(final(slice(half, None))))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="membrane,demo,camvid")
    ap.add_argument("--presets", default="fast")
    ap.add_argument("--minutes", type=float, default=5.0, help="training minutes of each run")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=JSON",
                    help="also train each preset with these settings (a JSON object of form values)")
    ap.add_argument("--every", type=float, default=30.0, help="seconds of training between held-out scorings")
    ap.add_argument("--no-reference", action="store_true", help="membrane: skip the tutorial reference")
    args = ap.parse_args()
    import keras
    import tensorflow as tf

    from train_speed import matmul_peak

    from seg_core.ml.cpu import cpu_flags

    flags = sorted(cpu_flags())
    machine = (f"{os.cpu_count()} cores, fp32 matmul peak {matmul_peak(tf):.0f} GFLOP/s, CPU flags: "
               + (" ".join(x for x in flags if x.startswith(("avx", "amx", "fma"))) or "none of avx/amx/fma"))
    print(machine, flush=True)
    budget = args.minutes * 60
    variants = [("", {})]
    for item in args.compare:
        label, _, values = item.partition("=")
        variants.append((f" ({label})", json.loads(values)))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for data in args.data.split(","):
            make, needs = DATASETS[data]
            if needs is not None and not (needs / "images").is_dir():
                print(f"{data}: skipped, needs {needs}")
                continue
            if data == "membrane" and not args.no_reference:
                _, held, _, _, train_pairs = make(Path(tmp) / "ref")
                results.append((data, "reference", run_reference(keras, tf, train_pairs, held, budget, args.every)))
            for name in args.presets.split(","):
                for label, overrides in variants:
                    work = Path(tmp) / f"{data}-{name}-{len(results)}"
                    work.mkdir()
                    project, held, num_classes, ignore, _ = make(work)
                    results.append((data, name + label, run_preset(keras, project, name, overrides, held,
                                                                   num_classes, ignore, budget, args.every,
                                                                   objects=data in OBJECT_SCORES)))
                    keras.mixed_precision.set_global_policy("float32")

    print(f"\n{args.minutes:g} minutes of training each; mean IoU over the classes present, at each image's size "
          f"(ccp, camvid: over the object classes, background left out; halves: the held-out images' first and "
          "second half)")
    print(machine)
    for data, name, r in results:
        print(f"\n{data} {name}:  " + "  ".join(f"{t:4.0f}s {v:.3f}" for t, v in r["curve"]))
    print(f"\n{'data':<10} {'run':<28} {'epochs':>6} {'validation':>10} {'held-out':>9} {'halves':>13} "
          f"{'best held-out':>13}")
    for data, name, r in results:
        val = f"{r['val']:.3f}" if r["val"] is not None else "-"
        epochs = r["epochs"] if r["epochs"] is not None else "-"
        best = max(v for _, v in r["curve"])
        halves = " / ".join(f"{h:.3f}" for h in r["halves"]) if r.get("halves") else "-"
        print(f"{data:<10} {name:<28} {epochs:>6} {val:>10} {r['held']:>9.3f} {halves:>13} {best:>13.3f}")
    print("\nheld-out IoU of each class (- where neither the masks nor the predictions have it)")
    for data, name, r in results:
        if r.get("per_class") is not None and len(r["per_class"]) > 2:
            print(f"{data:<10} {name:<28} " + " ".join("   -" if np.isnan(v) else f"{v:.2f}" for v in r["per_class"]))


if __name__ == "__main__":
    main()
