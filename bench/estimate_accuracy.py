"""How honest the Train page's time estimate is: estimated vs measured, for each preset, on the demo project.

In a fresh workspace (no run has calibrated this machine yet) the page's estimate for each preset is taken
first: a guess from the measured matmul speed alone. Then the presets are trained one after another through
the real worker, as the Start button does, and before each the estimate is taken again, now calibrated by the
runs before it. `fast` runs as the page offers it (40 epochs or 5 minutes); `balanced` and `quality` run
--short and --quality-short epochs (their full runs take 15 minutes to hours here; the estimate is linear in epochs
after the launch and the first epoch, which the short runs include). Measured: from Start to the run's end, and
its parts from the run's record (launch: Start to the training clock and after its last epoch; the first epoch's
extra time; each later epoch) beside the estimate's parts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_to_end(project, config) -> float:
    from seg_core.services import jobs

    t0 = time.perf_counter()
    run = jobs.start(project, config)
    while True:
        seen = project.runs.get(run.id)     # what the death checks of refresh_run will look at
        record = jobs.refresh_run(project, run.id)
        if not record.active:
            break
        time.sleep(0.5)
    if record.status.value != "completed":
        why = (f"last seen {seen.status.value}, pid {seen.pid} alive {jobs._alive(seen.pid, run.id)}, "
               f"heartbeat {time.time() - (seen.heartbeat_at or 0):.1f} s old")
        sys.exit(f"run {run.id} ended {record.status.value}: {record.error} ({why})\n"
                 f"{jobs.worker_log(project, run.id)}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="fast,balanced,quality")
    ap.add_argument("--short", type=int, default=6, help="epochs of the balanced run")
    ap.add_argument("--quality-short", type=int, default=2, help="epochs of the quality run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MASKLOOP_WORKSPACE"] = tmp
        from seg_core.services import demo, estimating, planning

        project = demo.create_demo_project(Path(tmp) / "demo")
        peak = estimating.machine_gflops()

        def config_for(name):
            values = {} if name == "fast" else {"epochs": args.short if name == "balanced" else args.quality_short}
            return planning.build_config(name, values, photos=True)

        names = args.presets.split(",")
        guesses = {n: estimating.estimate(project, config_for(n), gflops=peak) for n in names}
        rows = []
        for name in names:
            config = config_for(name)
            before = estimating.estimate(project, config, gflops=peak)
            took = run_to_end(project, config)
            run = project.runs.list()[0]
            epochs = project.runs.epoch_metrics(run.id)
            per_epoch = (epochs[-1]["elapsed_s"] - epochs[0]["elapsed_s"]) / max(1, len(epochs) - 1)
            launch = run.ended_at - run.created_at - epochs[-1]["elapsed_s"]
            parts = (launch, epochs[0]["elapsed_s"] - per_epoch, per_epoch, len(epochs))
            rows.append((name, config, guesses[name], before, took, parts))

    print(f"demo project (40 train / 10 validation scenes); matmul peak {peak:.0f} GFLOP/s")
    print(f"{'preset':<9} {'epochs':>6} {'first guess':>11} {'err':>5}   {'estimate':>8} {'err':>5}  "
          f"{'measured':>8}  estimate's source")
    for name, config, guess, before, took, _ in rows:
        err_g, err_b = guess.seconds / took - 1, before.seconds / took - 1
        print(f"{name:<9} {config.epochs:>6} {guess.seconds:>10.0f}s {err_g:>+5.0%}   {before.seconds:>7.0f}s "
              f"{err_b:>+5.0%}  {took:>7.0f}s  {before.source}")
    print("\nparts, estimated (first guess / estimate) vs measured, in seconds:")
    print(f"{'preset':<9} {'launch':>16} {'first epoch extra':>20} {'an epoch':>20} {'epochs run':>11}")
    for name, config, guess, before, took, (launch, trace, epoch, n) in rows:
        print(f"{name:<9} {guess.launch_s:>4.0f}/{before.launch_s:>4.0f} vs {launch:>4.0f} "
              f"{guess.trace_s:>6.1f}/{before.trace_s:>5.1f} vs {trace:>5.1f} "
              f"{guess.epoch_s:>6.1f}/{before.epoch_s:>5.1f} vs {epoch:>5.1f} {n:>6}")


if __name__ == "__main__":
    main()
