"""Latency of the annotation assists (seg_core.assist) at 512x512 and 2000x1500, against the issue's goals.

On a demo scene rendered at each size, and on a real photo of a person (the first of ../shared/data/ccp, its
person vs background, resized to each size) where it is there, with what the simulated annotator
(bench/annotator.py) gives: 2 strokes per class for Smart fill (scribble_fill), a box around the largest object
for Box -> object (box_fill), then the box with 2 correction clicks, and a click at its most interior point for
the wand. Prints the first call, then the median and p90 seconds of --reps calls after it, beside the goals
(<= 1 s at 512x512, <= 3 s at 2000x1500), with a matmul peak for scale.

    python bench/assist_latency.py --reps 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from annotator import Annotator, correction_click  # noqa: E402
from timing import timings  # noqa: E402

SIZES = ((512, 512), (2000, 1500))
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
GOAL_S = {(512, 512): 1.0, (2000, 1500): 3.0}
STROKES_PER_CLASS = 2
WAND_TOLERANCE = 0.2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7, help="demo scene")
    ap.add_argument("--multiclass", action="store_true", help="3 classes (background, blob, block) instead of 2")
    args = ap.parse_args()

    try:
        from seg_core import assist
    except ImportError as e:
        sys.exit(f"cannot import seg_core.assist ({e}): this benchmark measures the annotation assists")
    from seg_core.services.demo_scenes import render_scene
    from seg_core.services.estimating import measure_machine

    print(f"Demo scene {args.seed}{' (3 classes)' if args.multiclass else ''} and a photo of a person; first call, "
          f"then median and p90 of {args.reps}; matmul peak {measure_machine():.0f} GFLOP/s")
    print(f"{'':11}{'image':<7}{'assist':<44}{'first s':>8}{'median s':>9}{'p90 s':>7}{'goal s':>8}")
    for w, h in SIZES:
        scenes = [("demo", *render_scene(args.seed, w, h, multiclass=args.multiclass))]
        if (PHOTOS / "images").is_dir():
            scenes.append(("photo", *_photo(w, h)))
        for name, image, truth in scenes:
            num_classes = 3 if args.multiclass and name == "demo" else 2
            annotator = Annotator(truth, args.seed)
            scribbles = annotator.scribbles(STROKES_PER_CLASS)
            largest = max(annotator.objects(), key=lambda o: o.mask.sum())
            box, click = largest.box, largest.click
            clicks = []
            for _ in range(2):
                found = assist.box_fill(image, box, clicks=clicks)
                clicks += [c for c in [correction_click(found, largest.mask)] if c is not None]
            rows = (
                (f"scribble_fill, {STROKES_PER_CLASS} strokes/class",
                 lambda: assist.scribble_fill(image, scribbles, num_classes=num_classes)),
                (f"box_fill, box {box}", lambda: assist.box_fill(image, box)),
                (f"box_fill, the box + {len(clicks)} clicks", lambda: assist.box_fill(image, box, clicks=clicks)),
                (f"wand, click {click}, tol {WAND_TOLERANCE}", lambda: assist.wand(image, click, WAND_TOLERANCE)),
            )
            for label, fn in rows:
                t = time.perf_counter()
                fn()
                first = time.perf_counter() - t
                med, p90 = (ms / 1000 for ms in timings(fn, args.reps, warmup=False))
                goal = GOAL_S[w, h]
                print(f"{f'{w}x{h}':<11}{name:<7}{label:<44}{first:>8.2f}{med:>9.2f}{p90:>7.2f}{goal:>8.1f}  "
                      f"{'met' if p90 <= goal else 'MISSED' if med > goal else 'median met, p90 over'}", flush=True)


def _photo(w: int, h: int):
    """The first ccp photo and its person mask, resized to w x h pixels (turned to h x w for a portrait photo)."""
    import numpy as np
    from PIL import Image

    path = sorted((PHOTOS / "images").iterdir())[0]
    image = Image.open(path).convert("RGB")
    size = (w, h) if image.width >= image.height else (min(w, h), max(w, h))
    image = image.resize(size, Image.BICUBIC)
    mask = Image.open(PHOTOS / "masks" / f"{path.stem}.png").resize(size, Image.NEAREST)
    return np.asarray(image), (np.asarray(mask) > 0).astype(np.uint8)


if __name__ == "__main__":
    main()
