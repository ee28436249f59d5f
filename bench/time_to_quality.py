"""Time to quality on ../shared/data/membrane: the tutorial reference vs Seg Studio's presets.

15 pairs train, 5 held-out pairs score: mean IoU over both classes at the original 512x512.
The reference (bench/reference.py: 16 filters, 256 px, fp32, batch 8, Adam 1e-3, BCE, numpy in
memory) trains for --budget minutes; `fast` gets a third of it, the others the whole budget. Scoring
time is taken off the clock. Prints mean IoU against training time for each, then the verdicts.
"""

from __future__ import annotations

import argparse
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

MEMBRANE = ROOT.parent / "shared" / "data" / "membrane"
HELD_OUT = 5


def load(names):
    imgs = [np.asarray(Image.open(MEMBRANE / "images" / n)) for n in names]
    msks = [(np.asarray(Image.open(MEMBRANE / "masks" / n)) > 127).astype(np.uint8) for n in names]
    return imgs, msks


def mean_iou_at_full_size(predict_probs, imgs, msks) -> float:
    """predict_probs(list of HxW uint8) -> list of HxW foreground probabilities at full size."""
    from seg_core.ml import losses as L

    cm = np.zeros((2, 2), np.int64)
    for prob, truth in zip(predict_probs(imgs), msks):
        cm += L.confusion_matrix(truth, (prob >= 0.5).astype(np.uint8), 2)
    return L.mean_iou(cm)


class Clock:
    """Training time with scoring excluded."""

    def __init__(self):
        self.start = time.perf_counter()
        self.paused = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.start - self.paused


def run_reference(keras, tf, train, held, budget_s, every_s):
    imgs, msks = train
    x = np.stack([np.asarray(Image.fromarray(i).resize((256, 256), Image.BILINEAR), np.float32) / 255 for i in imgs])[..., None]
    y = np.stack([np.asarray(Image.fromarray(m).resize((256, 256), Image.NEAREST), np.float32) for m in msks])[..., None]
    keras.utils.set_random_seed(0)
    model = reference_unet(keras, 256, 1, 16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")

    def probs(images):
        xs = np.stack([np.asarray(Image.fromarray(i).resize((256, 256), Image.BILINEAR), np.float32) / 255 for i in images])[..., None]
        p = model(xs, training=False)
        return [tf.image.resize(pi, im.shape[:2], "bilinear").numpy()[..., 0] for pi, im in zip(p, images)]

    curve, clock, last = [], Clock(), 0.0
    while clock.now() < budget_s:
        model.fit(x, y, batch_size=8, epochs=1, shuffle=True, verbose=0)
        if clock.now() - last >= every_s or clock.now() >= budget_s:
            t0 = time.perf_counter()
            curve.append((clock.now(), mean_iou_at_full_size(probs, *held)))
            clock.paused += time.perf_counter() - t0
            last = clock.now()
    return curve


def run_preset(keras, name, train_names, held, budget_s, every_s, workdir: Path):
    from seg_core.services import importing
    from seg_core.ml.inference import Predictor
    from seg_core.store.project import Project
    from seg_core.ml.config import preset
    from seg_core.ml.callbacks import RunState
    from seg_core.ml.training import train

    src = workdir / f"src_{name}"
    for sub in ("images", "masks"):
        (src / sub).mkdir(parents=True)
        for n in train_names:
            shutil.copy(MEMBRANE / sub / n, src / sub / n)
    project = Project.create(workdir / f"proj_{name}")
    importing.import_folder(project, src / "images", src / "masks", infer_classes=True)
    config = preset(name, time_budget_minutes=budget_s / 60, early_stopping_patience=0, epochs=10_000)
    run = project.runs.create(config)
    curve, clock = [], Clock()
    state = {"last": 0.0}

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if clock.now() - state["last"] < every_s:
                return
            t0 = time.perf_counter()
            predictor = Predictor(self.model, {"image_size": config.image_size, "channels": 1, "num_classes": 2})
            curve.append((clock.now(), mean_iou_at_full_size(
                lambda ims: [p.probabilities[..., 1] for p in predictor.predict(ims)], *held)))
            clock.paused += time.perf_counter() - t0
            run_state.paused_s = clock.paused
            state["last"] = clock.now()

    run_state = RunState()
    train(project, run.id, config, state=run_state, extra_callbacks=[Score()])
    predictor = Predictor.from_run(project, run.id, checkpoint="last")
    curve.append((clock.now(), mean_iou_at_full_size(
        lambda ims: [p.probabilities[..., 1] for p in predictor.predict(ims)], *held)))
    return curve


def first_time_reaching(curve, target):
    return next((t for t, v in curve if v >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=float, default=10.0, help="reference training minutes")
    ap.add_argument("--presets", default="fast,balanced")
    ap.add_argument("--every", type=float, default=20.0, help="seconds of training between scorings")
    args = ap.parse_args()
    if not (MEMBRANE / "images").is_dir():
        sys.exit(f"needs {MEMBRANE}")
    import keras
    import tensorflow as tf

    names = sorted(p.name for p in (MEMBRANE / "images").iterdir())
    train_names, held_names = names[:-HELD_OUT], names[-HELD_OUT:]
    held = load(held_names)
    budget = args.budget * 60
    curves = {"reference": run_reference(keras, tf, load(train_names), held, budget, args.every)}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            b = budget / 3 if name == "fast" else budget
            curves[name] = run_preset(keras, name, train_names, held, b, args.every, Path(tmp))
            keras.mixed_precision.set_global_policy("float32")

    print(f"membrane: {len(train_names)} train / {len(held_names)} held-out pairs, mean IoU (both classes) at 512x512")
    for name, curve in curves.items():
        print(f"\n{name}:  " + "  ".join(f"{t:5.0f}s {v:.3f}" for t, v in curve))
    ref_t, ref_final = curves["reference"][-1]
    print(f"\nreference final: mean IoU {ref_final:.3f} after {ref_t:.0f} s")
    for name, curve in curves.items():
        if name == "reference":
            continue
        reach = first_time_reaching(curve, ref_final)
        best = max(v for _, v in curve)
        verdict = (f"reached {ref_final:.3f} at {reach:.0f} s = {reach / ref_t:.2f} of the reference's time"
                   if reach is not None else f"did not reach {ref_final:.3f}")
        print(f"{name:<9} best {best:.3f}, final {curve[-1][1]:.3f} at {curve[-1][0]:.0f} s; {verdict}")


if __name__ == "__main__":
    main()
