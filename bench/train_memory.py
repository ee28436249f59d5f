"""Training memory on a large project: peak RSS of the training worker vs the tutorial reference.

Makes a demo project of --images photo-like scenes (320x240 and others, all labelled), then
- Maskloop: starts a real training worker (as the Train page does) with the page's `fast` preset for
  --epochs epochs of one pass each over the training images, and follows the worker's peak resident memory
  (VmHWM in /proc) until it ends;
- reference: the tutorial way in a child process: every image and mask resized to 256x256 float32 numpy
  arrays in memory, the keras-io style U-Net (16 filters) fitted for one epoch; its peak RSS.
Prints both, their ratio, and what the input cache holds. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

GIB = 1024 ** 3


def peak_rss(pid: int) -> int | None:
    """Bytes of the process's peak resident set (VmHWM), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def maskloop(project, epochs: int) -> dict:
    from seg_core.services import jobs, planning

    config = planning.build_config("fast", {"epochs": epochs, "time_budget_minutes": None}, photos=True)
    t0 = time.perf_counter()
    run = jobs.start(project, config)
    peak = 0
    while True:
        rss = peak_rss(run.pid)
        if rss:
            peak = max(peak, rss)
        state = jobs.refresh_run(project, run.id)
        if not state.active:
            break
        time.sleep(0.5)
    if state.status.value != "completed":
        sys.exit(f"the run ended {state.status.value}: {jobs.worker_log(project, run.id)}")
    return {"peak": peak, "wall": time.perf_counter() - t0, "epochs": len(project.runs.epoch_metrics(run.id)),
            "size": config.image_size,
            "steps": config.steps_for(len(state.split.train_ids))}


def reference_child(project_path: str) -> None:
    """Runs in its own process: prints its peak RSS in bytes on the last line."""
    import keras
    import numpy as np

    from reference import reference_unet
    from seg_core.formats.images import load_image
    from PIL import Image

    from seg_core.store.project import Project
    from seg_core.store.records import ImageStatus

    project = Project(project_path)
    recs = project.list_images(status=ImageStatus.LABELED)
    x = np.zeros((len(recs), 256, 256, 3), np.float32)
    y = np.zeros((len(recs), 256, 256, 1), np.float32)
    for i, rec in enumerate(recs):
        rgb = Image.fromarray(load_image(str(project.image_path(rec)))).convert("RGB").resize((256, 256), Image.BILINEAR)
        x[i] = np.asarray(rgb, np.float32) / 255
        ids = project.masks.load(rec)
        y[i, ..., 0] = np.asarray(Image.fromarray(ids).resize((256, 256), Image.NEAREST), np.float32)
    model = reference_unet(keras, 256, 3, 16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--reference-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference_child:
        reference_child(args.reference_child)
        return
    from seg_core.ml import dataset
    from seg_core.services.demo import create_demo_project

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        project = create_demo_project(Path(tmp) / "large", count=args.images, unlabeled=0)
        made = time.perf_counter() - t0
        ours = maskloop(project, args.epochs)
        child = subprocess.run([sys.executable, __file__, "--reference-child", str(project.path)],
                               capture_output=True, text=True)
        if child.returncode:
            sys.exit(child.stderr[-2000:])
        ref_peak = int(child.stdout.strip().splitlines()[-1])
    size = ours["size"]
    cache = args.images * size * size * 4
    print(f"{args.images} labelled demo scenes (made in {made:.0f} s); RSS limit in the goal: 1.50 GiB")
    print(f"input cache: {cache / GIB:.2f} GiB of uint8 examples at {size} px "
          f"({'in memory' if dataset.fits_in_memory(args.images, (size, size), 3) else 'on disk'})")
    print(f"Maskloop worker, fast preset, {ours['epochs']} epochs of {ours['steps']} batches "
          f"in {ours['wall']:.0f} s: peak RSS {ours['peak'] / GIB:.2f} GiB")
    print(f"reference (float32 numpy arrays, one epoch): peak RSS {ref_peak / GIB:.2f} GiB")
    print(f"ratio Maskloop / reference: {ours['peak'] / ref_peak:.2f}")


if __name__ == "__main__":
    main()
