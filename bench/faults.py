"""Crash points and I/O faults of every write path: each path run in a child process that is killed at
each of its write points (temp write, fsync, rename, database commit), and given a full, read-only or forbidden
disk at each point of its kind; the project is reopened and checked every time (bench/fault_harness.py).

    python bench/faults.py                  # every path, every point (the training path takes the longest)
    python bench/faults.py --quick          # the training path at 3 kill points and 2 I/O faults
    python bench/faults.py --path "mask save" --path training --jobs 2
    python bench/faults.py --path training --kills 1-12 --no-io --jobs 2   # the training path in two parts
    python bench/faults.py --path training --kills none --jobs 2
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import fault_harness as fh  # noqa: E402

QUICK_TRAINING = dict(kill_points=[2, 5, 9], io=2)
COLUMNS = ("write path", "kill points", "I/O faults", "invariants held", "masks lost", "seconds")


def _points(text: str) -> list[int]:
    if text == "none":
        return []
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", action="append", choices=list(fh.BY_NAME), help="only this write path (repeatable)")
    ap.add_argument("--skip", action="append", default=[], choices=list(fh.BY_NAME), help="leave this path out")
    ap.add_argument("--quick", action="store_true", help="a few points of the training path instead of all")
    ap.add_argument("--jobs", type=int, default=1, help="children run side by side (default 1)")
    ap.add_argument("--kills", help="only these kill points, e.g. 1-6,9 ('none': no kills), for a run in parts")
    ap.add_argument("--no-io", action="store_true", help="no I/O faults (kill points only)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (failed cases are kept anyway)")
    args = ap.parse_args()
    logging.getLogger("seg_core").setLevel(logging.ERROR)   # the recovery's notes would bury the table
    names = [n for n in (args.path or list(fh.BY_NAME)) if n not in args.skip]
    scratch = fh.scratch("bench-faults")
    print(f"scratch: {scratch}", flush=True)
    print(" | ".join(COLUMNS), flush=True)
    start, rows = time.time(), []
    for i, name in enumerate(names):
        opts = dict(QUICK_TRAINING) if (args.quick and name.startswith("training")) else {}
        if args.kills:
            opts["kill_points"] = _points(args.kills)
        if args.no_io:
            opts["io"] = False
        row = fh.run_path(name, scratch / f"p{i}", jobs=args.jobs, **opts)
        rows.append(row)
        points = " ".join(f"{k} {v}" for k, v in row["points"].items() if k != "any" and v)
        unreached = f", {row['unreached']} not reached this time" if row["unreached"] else ""
        print(f"{name} | {row['kill_points']} of {row['points']['any']} ({points}{unreached}) | {row['io_faults']} | "
              f"{row['held']}/{row['cases']} | {row['masks_lost']} | {row['seconds']:.0f}", flush=True)
        for failure in row["failures"]:
            print(f"    FAILED {failure[:800]}", flush=True)
    total = {k: sum(r[k] for r in rows) for k in ("kill_points", "io_faults", "held", "cases", "masks_lost")}
    print(f"all | {total['kill_points']} | {total['io_faults']} | {total['held']}/{total['cases']} | "
          f"{total['masks_lost']} | {time.time() - start:.0f}", flush=True)
    failed = total["held"] != total["cases"] or total["masks_lost"]
    if not args.keep and not failed:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
