"""Data page gallery on a 10,000-image project: one page of 24, filtered and paged, cold and warm thumbnails.

Reference: listing every record and filtering in Python (what a page without SQL paging would do), and
making the 24 thumbnails from the full images each time (no disk cache). Prints milliseconds side by side.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from timing import median_ms  # noqa: E402


def ms(fn, reps: int = 5) -> float:
    return median_ms(fn, reps, warmup=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=512, help="side of the stored images")
    args = ap.parse_args()

    from seg_core.services import gallery
    from seg_core import viz
    from seg_core.classes import default_classes
    from seg_core.store.workspace import new_project

    rng = np.random.default_rng(0)
    base = (rng.random((args.size, args.size, 3)) * 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        project = new_project(Path(tmp) / "big", default_classes(["background", "object"]))
        t = time.perf_counter()
        for i in range(args.images):
            img = base.copy()
            img[0, 0] = [i & 255, (i >> 8) & 255, 7]  # unique bytes, no duplicates
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG", compress_level=0 if i >= 48 else 6)
            project.add_image(buf.getvalue(), f"{'cat' if i % 3 else 'dog'}_{i:05d}.png")
            if i < 400 and i % 2 == 0:
                project.masks.save(i + 1, (rng.random((args.size, args.size)) > 0.7).astype(np.uint8), 0)
        print(f"built {args.images} images of {args.size}x{args.size} in {time.perf_counter() - t:.0f} s")

        def ours_page(page_no=0, status="all", search=""):
            return gallery.page(project, status, None, search, page_no, 24)

        def naive_page(page_no=0, status="all", search=""):
            recs = [r for r in project.list_images() if (status == "all" or r.status == status) and search in r.filename]
            return recs[page_no * 24:(page_no + 1) * 24]

        rows = [
            ("first page", lambda: ours_page(), lambda: naive_page()),
            ("page 300", lambda: ours_page(300), lambda: naive_page(300)),
            ("labeled, name contains 'dog'", lambda: ours_page(0, "labeled", "dog"), lambda: naive_page(0, "labeled", "dog")),
            ("stats() for the summary line", lambda: project.stats(), lambda: project.stats()),
        ]
        print(f"{'':34}{'Maskloop ms':>14}{'reference ms':>14}")
        for name, ours, ref in rows:
            print(f"{name:34}{ms(ours):>14.1f}{ms(ref):>14.1f}")

        recs = ours_page().records

        def thumbs():
            for r in recs:
                gallery.thumbnail(project, r)

        def thumbs_uncached():
            for r in recs:
                Image.fromarray(viz.overlay_thumbnail(project.load_image(r), project.masks.load(r), project.classes,
                                                      max_side=gallery.THUMB_SIDE)).save(io.BytesIO(), format="JPEG")

        t = time.perf_counter()
        thumbs()
        cold = 1000 * (time.perf_counter() - t)
        print(f"{'24 thumbnails, first view':34}{cold:>14.1f}{ms(thumbs_uncached, 3):>14.1f}")
        print(f"{'24 thumbnails, from the cache':34}{ms(thumbs):>14.1f}{ms(thumbs_uncached, 3):>14.1f}")


if __name__ == "__main__":
    main()
