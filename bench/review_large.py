"""Predict & review on a large photo: the server time to draw one image's results, beside the naive way.

The naive page blends the mask over the full-size photo in floats, encodes the full-size overlay for its download
button on every rerun, and hands st.image the full-size picture (Streamlit encodes it for the browser). Maskloop
blends with integer tables on a copy no larger than 1600 px (a browser shows it in a ~700 px column anyway), and
encodes the full-size overlay only when its download button is pressed. The model's own time is left out (same
for both). Prints median seconds per step and in all, side by side, with a matmul peak for scale.

    python bench/review_large.py --width 6000 --height 4000
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from timing import median_ms  # noqa: E402


def _jpeg(rgb: np.ndarray) -> bytes:   # what st.image does with an array before sending it
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _float_overlay(image, ids, colors, alpha=0.45):   # the blend Maskloop used before
    rgb = image.astype(np.float32)
    a = np.where(ids > 0, alpha, 0.0)[..., None]
    return (rgb * (1 - a) + colors[ids].astype(np.float32) * a).round().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    from seg_core import viz
    from seg_core.classes import default_classes, palette_bytes
    from seg_core.formats import masks
    from seg_core.services import estimating, review

    classes = default_classes(["background", "pet"])
    colors = np.asarray(palette_bytes(classes), np.uint8).reshape(256, 3)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
    probs = np.zeros((args.height, args.width, 2), np.float32)
    probs[..., 1] = np.linspace(0, 1, args.width, dtype=np.float32)[None, :]
    probs[..., 0] = 1 - probs[..., 1]
    ids = review.mask(probs, 0.5)

    def naive():
        shown = _float_overlay(image, ids, colors)
        viz.png_bytes(shown)            # the overlay download, encoded on every rerun
        masks.encode_png(ids, classes)
        _jpeg(shown)

    def ours():
        photo, small = viz.fit_for_display(image, ids)
        shown = viz.overlay(photo, small, classes, 0.45)
        masks.encode_png(ids, classes)  # (deferred too on the page; cheap)
        _jpeg(shown)

    print(f"{args.width}x{args.height} photo, median of {args.reps}; "
          f"matmul peak {estimating.measure_machine():.0f} GFLOP/s")
    rows = [
        ("overlay: float blend, full size (naive)", lambda: _float_overlay(image, ids, colors)),
        ("overlay: integer tables, full size", lambda: viz.overlay(image, ids, classes, 0.45)),
        ("overlay: 1600 px copy (ours)", lambda: viz.overlay(*viz.fit_for_display(image, ids), classes, 0.45)),
        ("one image's results drawn, naive", naive),
        ("one image's results drawn, Maskloop", ours),
    ]
    results = {}
    for label, fn in rows:
        results[label] = median_ms(fn, args.reps, warmup=False) / 1000
        print(f"{label:<42} {results[label]:7.2f} s")
    print(f"speed-up of a redraw: {results[rows[3][0]] / results[rows[4][0]]:.1f}x")


if __name__ == "__main__":
    main()
