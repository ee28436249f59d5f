"""What every page rerun pays before it draws anything: the sidebar's project list and opening the project.

Side by side, in one run: the cheap listing the sidebar uses (one read-only query per project) against opening
every project for its counts (what the Home page does, and what the sidebar did before), and opening the current
project. Prints milliseconds (median, p90) for a workspace of N projects of M images each.

    python bench/page_rerun.py --projects 20 --images 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import timings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=int, default=20)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MASKLOOP_WORKSPACE"] = tmp
        import io

        import numpy as np
        from PIL import Image

        from seg_core.store.project import Project
        from seg_core.store.workspace import list_projects, new_project, project_entries

        rng = np.random.default_rng(0)
        for p in range(args.projects):
            project = new_project(Path(tmp) / f"p{p:02d}")
            for i in range(args.images):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, "PNG")
                project.add_image(buf.getvalue(), f"img{i}.png")
            project.close()
        first = Path(tmp) / "p00"
        rows = [
            ("sidebar: project_entries (names, read-only)", lambda: project_entries(tmp)),
            ("reference: list_projects (open each, count)", lambda: list_projects(tmp)),
            ("open the current project and read its stats", lambda: Project(first).stats()),
        ]
        print(f"workspace of {args.projects} projects x {args.images} images; {args.reps} reps")
        for label, fn in rows:
            med, p90 = timings(fn, args.reps)
            print(f"{label:<48} median {med:8.2f} ms   p90 {p90:8.2f} ms")


if __name__ == "__main__":
    main()
