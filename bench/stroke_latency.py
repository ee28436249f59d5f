"""Server-side work per brush stroke on the Annotate page, for a 2000x1500 photo, against the naive page.

Each stroke reruns the page: it rebuilds the canvas background, applies the canvas's strokes to the mask,
writes the draft (so a killed server loses nothing) and reads it back. Maskloop sends the canvas a JPEG
of the viewed region at canvas size; the naive page hands st_canvas the full-size overlay as a PIL image,
which the component PNG-encodes and sends on every rerun (shared/CANVAS.md). Prints median milliseconds
and the bytes sent to the browser per rerun, side by side, at zoom 1 and zoom 8.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from timing import median_ms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--width", type=int, default=2000)
    ap.add_argument("--height", type=int, default=1500)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()

    from seg_core.services import editing, pens
    from seg_core import viz
    from seg_core.classes import default_classes
    from seg_core.services.demo_scenes import render_scene
    from seg_core.store.workspace import new_project

    classes = default_classes(["background", "leaf", "spot"])
    image, _ = render_scene(7, args.width, args.height)
    base = np.zeros((args.height, args.width), np.uint8)
    base[200:900, 300:1200] = 1

    def strokes_for(view) -> np.ndarray:
        s = np.zeros((view.canvas_h, view.canvas_w, 4), np.uint8)
        s[view.canvas_h // 2 - 10:view.canvas_h // 2 + 10, 50:-50] = (*classes[2].color, 153)
        return s

    def canvas_png(strokes) -> bytes:  # what the component sends back per stroke; decoded on our side
        buf = io.BytesIO()
        Image.fromarray(strokes, "RGBA").save(buf, format="PNG")
        return buf.getvalue()

    with tempfile.TemporaryDirectory() as tmp:
        project = new_project(Path(tmp) / "p", classes)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        project.add_image(buf.getvalue(), "photo.png")
        print(f"{args.width}x{args.height} photo, {args.reps} repeats, median ms: the picture under the canvas "
              "(a JPEG of the viewed region in Maskloop), applying the strokes, writing + reading the draft, "
              "the total")
        print(f"{'':34}{'background':>11}{'strokes':>9}{'draft':>7}{'stroke':>7}{'sent':>10}")
        for zoom in (1, 8):
            view = editing.view_for(args.width, args.height, zoom, (0.3, 0.4))
            png = canvas_png(strokes_for(view))
            holder = {}

            def ours_bg():
                holder["bg"] = editing.background(image, base, classes, view, 0.45)

            def ours_strokes():   # the pixels the new stroke covers, by the pen its colour names (pens.py)
                hit = pens.covered(None, np.asarray(Image.open(io.BytesIO(png))), [(classes[2].color, 0.6)]) == 0
                holder["ids"] = editing.paint_hits(base, hit, 2, view)

            def ours_draft():
                project.drafts.save(1, holder["ids"], 0)
                project.drafts.get(1)

            def naive_bg():
                im = Image.fromarray(viz.overlay(image, base, classes, 0.45)).convert("RGBA")
                out = io.BytesIO()
                im.save(out, format="PNG")
                holder["naive_bg"] = out.getvalue()

            def naive_strokes():
                # Strokes on a full-image canvas would need a canvas the size of the image: scale them instead.
                holder["naive_ids"] = editing.apply_strokes(base, np.asarray(Image.open(io.BytesIO(png))), classes,
                                                          view.region, stroke_alpha=0.6)

            rows = []
            for label, fns, sent in (
                (f"Maskloop, zoom {zoom}", (ours_bg, ours_strokes, ours_draft), lambda: len(holder["bg"])),
                (f"naive page (full PNG), zoom {zoom}", (naive_bg, naive_strokes, ours_draft),
                 lambda: len(holder["naive_bg"])),
            ):
                holder["ids"] = base
                ms = [median_ms(f, args.reps) for f in fns]
                rows.append((label, ms, sent()))
            # Both redraw the picture under the canvas on every stroke (Maskloop's shows the mask as it is, with
            # the stroke folded in): Maskloop a JPEG of the viewed region, the naive page the full-size PNG.
            per_stroke = [sum(rows[0][1]), sum(rows[1][1])]
            for (label, ms, sent), total in zip(rows, per_stroke):
                print(f"{label:34}{ms[0]:>11.1f}{ms[1]:>9.1f}{ms[2]:>7.1f}{total:>7.1f}{sent / 1e6:>8.2f} MB")
            print(f"{'':34}per stroke {per_stroke[1] / per_stroke[0]:.0f}x faster, "
                  f"{rows[1][2] / rows[0][2]:.0f}x fewer bytes per background")
        smart_fill(args, image, classes, project)
    print("Browser round trip measured in shared/CANVAS.md: 410-580 ms at 1024x768, before any of this work.")


def smart_fill(args, image, classes, project) -> None:
    """One Smart fill stroke: the whole mask from the strokes so far (two a class), the draft, the picture."""
    from seg_core import assist
    from seg_core.services import editing

    h, w = image.shape[:2]
    scribbles = np.full((h, w), 255, np.uint8)
    for cls, (fy, fx) in enumerate([(0.05, 0.05), (0.3, 0.3), (0.6, 0.7)]):   # background, leaf, spot: 2 each
        for dy in (0, h // 20):
            y, x = int(fy * h) + dy, int(fx * w)
            scribbles[y:y + 8, x:x + w // 12] = cls
    view = editing.view_for(w, h)
    holder = {}

    def fill():
        holder["ids"] = assist.scribble_fill(image, scribbles, len(classes))

    def draft():
        project.drafts.save(1, holder["ids"], 0)

    def picture():
        editing.background(image, holder["ids"], classes, view, 0.45)

    fill()   # the first call imports scikit-learn and computes the features; later strokes reuse them
    ms = [median_ms(f, args.reps) for f in (fill, draft, picture)]
    print(f"{'Smart fill stroke, zoom 1':34}{'fill':>11}{'draft':>9}{'picture':>8}{'stroke':>7}")
    print(f"{'':34}{ms[0]:>11.1f}{ms[1]:>9.1f}{ms[2]:>8.1f}{sum(ms):>7.1f}   (goal: 3000 ms at 2000x1500)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
