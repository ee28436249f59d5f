"""Training throughput: the tutorial-style reference vs Seg Studio's pipeline, same images, size and filters.

Reference: the keras-io / zhixuhao style U-Net (two 3x3 convs per level, max-pool, transposed conv,
no batch norm, fp32, batch 8), `fit` on an in-memory numpy array. Seg Studio: build_unet + the
streaming tf.data pipeline from disk (decode, resize, augment), our losses and epoch metrics.
Prints images/s for both, their ratio, forward GFLOPs, achieved GFLOP/s against a measured matmul
peak, and peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from reference import reference_unet  # noqa: E402

MEMBRANE = ROOT.parent / "shared" / "data" / "membrane"


def matmul_peak(tf, dtype="float32", n=2048, reps=10) -> float:
    a = tf.random.normal((n, n), dtype=dtype)
    b = tf.random.normal((n, n), dtype=dtype)
    f = tf.function(lambda: tf.matmul(a, b))
    f()
    t = time.perf_counter()
    for _ in range(reps):
        f().numpy()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def timed_fit(model, data, steps, epochs, batch=None):
    """Images/s over `epochs` epochs after a warm-up epoch (tracing excluded)."""
    kw = dict(verbose=0)
    if isinstance(data, tuple):
        model.fit(data[0], data[1], batch_size=batch, epochs=1, **kw)
        t = time.perf_counter()
        model.fit(data[0], data[1], batch_size=batch, epochs=epochs, **kw)
        n = len(data[0]) * epochs
    else:
        model.fit(data, steps_per_epoch=steps, epochs=1, **kw)
        t = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=epochs, **kw)
        n = steps * batch * epochs
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--images", type=int, default=32, help="training images (membrane repeated if needed)")
    ap.add_argument("--precision", default="float32")
    args = ap.parse_args()

    import keras
    import tensorflow as tf
    from PIL import Image

    from seg_core.ml import dataset, losses, models
    from seg_core.ml.augment import AugmentConfig
    from seg_core.services.demo_scenes import render_scene

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        items, arrays, masks_ = [], [], []
        src = sorted((MEMBRANE / "images").iterdir()) if (MEMBRANE / "images").is_dir() else []
        for i in range(args.images):
            if src:
                img = np.asarray(Image.open(src[i % len(src)]))
                mask = (np.asarray(Image.open(MEMBRANE / "masks" / src[i % len(src)].name)) > 127).astype(np.uint8)
            else:
                rgb, mask = render_scene(i, 512, 512)
                img = rgb.mean(-1).astype(np.uint8)
            Image.fromarray(img).save(tmp / f"{i}.png")
            m = Image.fromarray(mask, "P")
            m.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
            m.save(tmp / f"{i}_m.png")
            items.append(dataset.Example(str(tmp / f"{i}.png"), str(tmp / f"{i}_m.png")))
            arrays.append(np.asarray(Image.fromarray(img).resize((args.size, args.size), Image.BILINEAR), np.float32)[..., None] / 255)
            masks_.append(np.asarray(Image.fromarray(mask).resize((args.size, args.size), Image.NEAREST), np.float32)[..., None])
        x, y = np.stack(arrays), np.stack(masks_)
        steps = max(1, args.images // args.batch)

        peak32 = matmul_peak(tf)
        ref = reference_unet(keras, args.size, 1, args.filters)
        ref.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        ref_rate = timed_fit(ref, (x, y), steps, args.epochs, args.batch)

        keras.mixed_precision.set_global_policy(args.precision)
        results = {}
        for label, kw in (("seg studio (no BN)", dict(batchnorm=False)), ("seg studio (BN)", dict(batchnorm=True))):
            model = models.build_unet((None, None, 1), 2, base_filters=args.filters, depth=4, **kw)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.bce_dice, metrics=losses.keras_metrics(2))
            ds = dataset.make_dataset(items, (args.size, args.size), 1, args.batch, shuffle=True, repeat=True,
                                      augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True), cache=False)
            results[label] = timed_fit(model, ds, steps, args.epochs, args.batch)
        keras.mixed_precision.set_global_policy("float32")
        gflops = models.forward_flops(reference_unet(keras, args.size, 1, args.filters)) / 1e9

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"U-Net {args.filters} filters, {args.size}x{args.size}x1, batch {args.batch}, {args.images} images, "
          f"precision {args.precision}")
    print(f"forward GFLOP/image: {gflops:.2f} (training ~3x: {3 * gflops:.1f})")
    print(f"fp32 matmul peak: {peak32:.0f} GFLOP/s")
    print(f"{'':28}{'images/s':>10}{'GFLOP/s':>10}{'% peak':>8}{'ratio':>8}")
    rows = [("reference (numpy in memory)", ref_rate)] + list(results.items())
    for name, rate in rows:
        achieved = rate * 3 * gflops
        print(f"{name:28}{rate:>10.2f}{achieved:>10.0f}{100 * achieved / peak32:>7.0f}%{rate / ref_rate:>8.2f}")
    print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
