"""Training memory per image of a batch: measured on this CPU vs the estimate the GPU batch rule uses.

On a GPU the worker grows a run's batch to the device's memory (seg_core/ml/distribute.py, memory_batch), from
models.train_bytes_per_image: every layer's output values for one image x TRAIN_BYTES_PER_VALUE. This measures
that constant: for each network, a child process trains a few steps (Keras' plain step at float32, the
optimizer and loss of a real run) at a small and a large batch and reads its peak resident memory; the
difference divided by the extra images is the memory one image of a batch needs. Printed beside the estimate;
the estimate should not be below what was measured (a batch that does not fit fails the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1024 ** 2
NETWORKS = {   # name: (TrainConfig settings, image size)
    "unet fast": ({"base_filters": 16, "depth": 4}, 128),
    "unet balanced": ({"base_filters": 16, "depth": 4}, 256),
    "unet quality": ({"base_filters": 32, "depth": 4}, 256),
    "mobilenetv2-unet": ({"model": "mobilenetv2-unet", "base_filters": 16}, 224),
}

CHILD = r"""
import json, resource, sys
import numpy as np
from seg_core.ml import models
from seg_core.ml.config import TrainConfig
from seg_core.ml.training import _compile
settings, size, batch = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = TrainConfig(image_size=size, xla=False, **settings)
model = models.build(config, 3, 2, size=size, weights=False)
_compile(model, config, 2, 1e-3, xla=False)
rng = np.random.default_rng(0)
x = rng.random((batch, size, size, 3), dtype=np.float32)
y = (rng.random((batch, size, size, 1)) > 0.5).astype(np.float32)
for _ in range(3):
    model.train_on_batch(x, y)
estimate = models.train_bytes_per_image(config, size, 3, 2)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "estimate": estimate,
                  "values": estimate // models.TRAIN_BYTES_PER_VALUE}))
"""


def measure(settings: dict, size: int, batch: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings), str(size), str(batch)], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=2)
    ap.add_argument("--large", type=int, default=10)
    ap.add_argument("--only", choices=sorted(NETWORKS), action="append")
    args = ap.parse_args()
    print(f"{'network':18} {'size':>5} {'values/img':>11} {'measured MiB/img':>17} {'estimate MiB/img':>17} "
          f"{'bytes/value':>12} {'estimate/measured':>18}")
    for name, (settings, size) in NETWORKS.items():
        if args.only and name not in args.only:
            continue
        lo, hi = measure(settings, size, args.small), measure(settings, size, args.large)
        per_image = (hi["peak"] - lo["peak"]) / (args.large - args.small)
        print(f"{name:18} {size:5d} {hi['values']:11,d} {per_image / MIB:17.1f} {hi['estimate'] / MIB:17.1f} "
              f"{per_image / hi['values']:12.1f} {hi['estimate'] / per_image:18.2f}", flush=True)


if __name__ == "__main__":
    main()
