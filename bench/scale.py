"""Training speed on one process vs two workers (MultiWorkerMirroredStrategy on 127.0.0.1), same global batch.

Both go through `maskloop train` as a person would (the two workers: --cluster 127.0.0.1:P0,127.0.0.1:P1 with
--task 0 and --task 1, each with half the batch, so a step sees the same number of images). The speed is the
median of the runs' recorded epoch images/s after their first epoch (tracing excluded), printed beside this
machine's fp32 matmul peak (bench/train_speed.py's measure). On one 2-core machine the two workers share the
same cores and talk over gRPC: this shows the cost of the distribution, not a speed-up; a speed-up needs
machines (or GPUs) of their own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _train(project: Path, workspace: Path, args, batch: int, cluster: str | None = None, task: int | None = None,
           log: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "seg_core.cli", "train", "--project", str(project), "--epochs", str(args.epochs),
           "--size", str(args.size), "--filters", str(args.filters), "--depth", "3", "--batch", str(batch),
           "--steps", str(args.steps), "--no-augment"]
    if not args.xla:
        cmd.append("--no-xla")
    if cluster:
        cmd += ["--cluster", cluster, "--task", str(task)]
    env = {**os.environ, "MASKLOOP_WORKSPACE": str(workspace)}
    env.pop("TF_CONFIG", None)
    out = open(log or os.devnull, "ab")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _rate(project, statistics) -> tuple[float, float, str]:
    run = project.runs.list()[0]
    rows = project.runs.epoch_metrics(run.id)
    rates = [m["images_per_s"] for m in rows[1:]] or [m["images_per_s"] for m in rows]
    return statistics.median(rates), sum(m["epoch_s"] for m in rows), f"{run.status}, on {run.devices}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="global batch (the two workers take half each)")
    ap.add_argument("--steps", type=int, default=10, help="steps an epoch")
    ap.add_argument("--epochs", type=int, default=4, help="epochs a run (the first is not counted)")
    ap.add_argument("--xla", action="store_true", help="the one process with XLA (runs' default on one CPU; a "
                                                         "cluster's step is never XLA-compiled)")
    ap.add_argument("--timeout", type=float, default=600, help="liveness guard of each run, seconds")
    args = ap.parse_args()

    import statistics

    import tensorflow as tf

    from seg_core.ml import distribute
    from seg_core.services import demo
    from train_speed import matmul_peak

    print(f"U-Net {args.filters} filters, depth 3, {args.size}x{args.size}, global batch {args.batch}, "
          f"{args.steps} steps x {args.epochs} epochs, {os.cpu_count()} CPU cores", flush=True)
    print(f"fp32 matmul peak: {matmul_peak(tf):.0f} GFLOP/s (one process, all cores)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        results = {}
        for label in ("one process", "two workers"):
            project = demo.create_demo_project(ws / label.replace(" ", "-"), count=16, unlabeled=0)
            t = time.perf_counter()
            if label == "one process":
                procs = [_train(project.path, ws, args, args.batch)]
            else:
                cluster = distribute.local_cluster(2)
                procs = [_train(project.path, ws, args, args.batch // 2, cluster, task) for task in (0, 1)]
            for p in procs:
                try:
                    p.wait(timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    print(f"{label}: gave up after {args.timeout:.0f} s", flush=True)
            rate, train_s, status = _rate(project, statistics)
            results[label] = rate
            print(f"{label:12} {rate:7.1f} images/s  ({status}; {train_s:.0f} s of epochs, "
                  f"{time.perf_counter() - t:.0f} s with start-up)", flush=True)
        ratio = results["two workers"] / results["one process"]
        print(f"two workers / one process: {ratio:.2f}x", flush=True)
        print("Both workers share this machine's cores and exchange gradients over gRPC every step, so this is the "
              "overhead of the distribution, not a speed-up: that needs machines or GPUs of their own.", flush=True)


if __name__ == "__main__":
    main()
