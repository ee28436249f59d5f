"""Interactive prediction latency: Predictor (one traced function) vs model.predict per image.

Median and p90 milliseconds for one image at the training size, with a U-Net of 16 filters, on the
demo scenes. Target: Predictor median <= 50 ms at 256 px on the reference machine.
Then one 512 px photo (512x384) through each photo preset's network: the scratch U-Net and the EfficientNet-Lite0
U-Net at each preset's size, with the machine's matmul peak beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from timing import timings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    from seg_core.ml import models
    from seg_core.services.demo_scenes import render_scene
    from seg_core.ml.inference import Predictor

    model = models.build_unet((None, None, 3), 2, base_filters=args.filters, depth=4)
    predictor = Predictor(model, {"image_size": args.size, "channels": 3, "num_classes": 2})
    image, _ = render_scene(0, args.size, args.size)
    own, _ = render_scene(1, 640, 480)
    x = image[None].astype(np.float32) / 255

    rows = [
        ("Predictor, image at training size", timings(lambda: predictor.predict_one(image), args.reps)),
        ("Predictor, 640x480 photo (resize both ways)", timings(lambda: predictor.predict_one(own), args.reps)),
        ("model.predict per image (reference)", timings(lambda: model.predict(x, verbose=0), args.reps)),
        ("model(x) eager", timings(lambda: model(x, training=False), args.reps)),
    ]
    gflops = models.forward_flops(models.build_unet((args.size, args.size, 3), 2, base_filters=args.filters, depth=4)) / 1e9
    print(f"U-Net {args.filters} filters at {args.size}x{args.size} ({gflops:.1f} GFLOP forward), {args.reps} repeats")
    print(f"{'':46}{'median ms':>10}{'p90 ms':>9}")
    for name, (med, p90) in rows:
        print(f"{name:46}{med:>10.1f}{p90:>9.1f}")
    ref = rows[2][1][0]
    print(f"Predictor speed-up over model.predict: {ref / rows[0][1][0]:.2f}x")
    photo_networks(args.reps)


def photo_networks(reps: int) -> None:
    import tensorflow as tf
    from train_speed import matmul_peak

    from seg_core.ml import models
    from seg_core.ml.config import preset
    from seg_core.ml.inference import Predictor
    from seg_core.services.demo_scenes import render_scene

    photo, _ = render_scene(2, 512, 384)
    print(f"\none 512x384 photo, Predictor.predict_one; fp32 matmul peak {matmul_peak(tf):.0f} GFLOP/s")
    print(f"{'network (preset)':46}{'GFLOP':>7}{'median ms':>10}{'p90 ms':>9}")
    for name, pretrained in (("fast", False), ("fast", True), ("balanced", True), ("quality", True)):
        config = preset(name, photos=True, pretrained=pretrained)
        model = models.build(config, 3, 2, size=config.image_size, weights=False)
        predictor = Predictor(model, {"image_size": config.image_size, "channels": 3, "num_classes": 2,
                                      "resize": config.resize})
        med, p90 = timings(lambda: predictor.predict_one(photo), reps)
        label = f"{config.model} {config.image_size} px ({name}{', ImageNet start' if pretrained else ''})"
        print(f"{label:46}{models.forward_flops(model) / 1e9:>7.2f}{med:>10.1f}{p90:>9.1f}")


if __name__ == "__main__":
    main()
