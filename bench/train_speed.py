"""Training throughput: the tutorial-style reference vs Maskloop's pipeline, same images, size and filters.

Reference: the keras-io / zhixuhao style U-Net (two 3x3 convs per level, max-pool, transposed conv,
no batch norm, fp32, batch 8), `fit` on an in-memory numpy array. Maskloop: build_unet + the tf.data
pipeline streaming from disk (the memory cache off: resized examples read from the on-disk cache, then
flips and quarter turns), compiled as a training run compiles it (bce+dice loss, epoch metrics, the step
compiled by XLA or TensorFlow's own oneDNN kernels); without and with batch norm, each step kind (the one runs
get on this machine is starred: config.xla_is_faster_here), each in float32 and in mixed bfloat16 (--precisions),
printed side by side; the reference stays float32, as the tutorial has it. The CPU flags line says whether the CPU
has bf16 units; without them TensorFlow emulates bfloat16, and that column is not what a bf16 CPU trains at.
All are timed in turns (--rounds rounds of --epochs epochs each, after a warm-up epoch) and the
median of each is printed: a shared machine's speed drifts within a run, and turns keep the ratios fair.
Prints images/s, their ratio to the reference, forward GFLOPs, achieved GFLOP/s against a measured
matmul peak, and peak RSS.
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


def timed_fit(model, data, steps, epochs, batch=None, warm=False):
    """(images per second, images per CPU-second of this process) over `epochs` epochs, after a warm-up epoch
    when `warm` (tracing excluded). CPU time shows the work done even when the host throttles the machine
    (seen here: every contender pinned at the same 6.2 images/s for minutes)."""
    kw = dict(verbose=0)
    if isinstance(data, tuple):
        if warm:
            model.fit(data[0], data[1], batch_size=batch, epochs=1, **kw)
        t, c = time.perf_counter(), time.process_time()
        model.fit(data[0], data[1], batch_size=batch, epochs=epochs, **kw)
        n = len(data[0]) * epochs
    else:
        if warm:
            model.fit(data, steps_per_epoch=steps, epochs=1, **kw)
        t, c = time.perf_counter(), time.process_time()
        model.fit(data, steps_per_epoch=steps, epochs=epochs, **kw)
        n = steps * batch * epochs
    return n / (time.perf_counter() - t), n / (time.process_time() - c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per timed turn")
    ap.add_argument("--rounds", type=int, default=3, help="turns of each contender")
    ap.add_argument("--images", type=int, default=32, help="training images (membrane repeated if needed)")
    ap.add_argument("--lite0", action="store_true",
                    help="also the EfficientNet-Lite0 U-Net (RGB, --size must divide by 32) with each step kind")
    ap.add_argument("--precisions", default="float32,mixed_bfloat16",
                    help="Maskloop's contenders in each of these Keras policies (comma-separated)")
    args = ap.parse_args()
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]

    import keras
    import tensorflow as tf
    from PIL import Image

    from seg_core.ml import cpu, dataset, models, training
    from seg_core.ml.augment import AugmentConfig
    from seg_core.ml.config import TrainConfig
    from seg_core.ml.precision import WORDS, cpu_precision
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
        peak16 = matmul_peak(tf, "bfloat16", reps=3) if "mixed_bfloat16" in precisions else None
        contenders = {}
        ref = reference_unet(keras, args.size, 1, args.filters)
        ref.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        contenders["reference (numpy in memory)"] = (ref, (x, y))
        # The same network fed by tf.data from memory: Keras' numpy path alone sometimes runs on one core here.
        ref_tf = reference_unet(keras, args.size, 1, args.filters)
        ref_tf.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        in_memory = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).repeat().batch(args.batch)
        contenders["reference (tf.data in memory)"] = (ref_tf, in_memory.prefetch(tf.data.AUTOTUNE))
        here = TrainConfig().xla   # the step a run gets on this machine (config.xla_is_faster_here)
        rows = []
        for label, bn, xla in (("seg studio (no BN, XLA)", False, True), ("seg studio (BN, XLA)", True, True),
                               ("seg studio (no BN, oneDNN)", False, False), ("seg studio (BN, oneDNN)", True, False)):
            label += " *" if xla == here else ""
            rows.append(label)
            for precision in precisions:
                keras.mixed_precision.set_global_policy(precision)   # the layers take it when they are made
                model = models.build_unet((None, None, 1), 2, base_filters=args.filters, depth=4, batchnorm=bn)
                # Compiled as a training run compiles it (bce+dice, epoch metrics, XLA unless the config says no).
                training._compile(model, TrainConfig(batchnorm=bn, xla=xla), 2, 1e-3)
                ds = dataset.make_dataset(items, (args.size, args.size), 1, args.batch, shuffle=True, repeat=True,
                                          augment=AugmentConfig(flip_h=True, flip_v=True, rot90=True), cache=False,
                                          disk_cache=tmp / "cache")
                contenders[label, precision] = (model, ds)
            keras.mixed_precision.set_global_policy("float32")
        for label, xla in (("lite0-unet (XLA)", True), ("lite0-unet (oneDNN)", False)) if args.lite0 else ():
            label += " *" if xla == TrainConfig(model="lite0-unet").step_xla else ""
            rows.append(label)
            for precision in precisions:
                keras.mixed_precision.set_global_policy(precision)
                model = models.get_model("lite0-unet", (args.size, args.size, 3), 2, base_filters=args.filters)
                training._compile(model, TrainConfig(model="lite0-unet", xla=xla), 2, 1e-3)
                ds = dataset.make_dataset(items, (args.size, args.size), 3, args.batch, shuffle=True, repeat=True,
                                          augment=AugmentConfig(flip_h=True), cache=False, disk_cache=tmp / "cache3")
                contenders[label, precision] = (model, ds)
            keras.mixed_precision.set_global_policy("float32")
        rates = {name: [] for name in contenders}
        for r in range(args.rounds):
            for name, (model, data) in contenders.items():
                rates[name].append(timed_fit(model, data, steps, args.epochs, args.batch, warm=r == 0))
        gflops = models.forward_flops(reference_unet(keras, args.size, 1, args.filters)) / 1e9

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"U-Net {args.filters} filters, {args.size}x{args.size}x1, batch {args.batch}, {args.images} images")
    print(f"forward GFLOP/image: {gflops:.2f} (training ~3x: {3 * gflops:.1f})")
    print(f"{cpu.flags_line()}; a run's automatic precision here: {WORDS[cpu_precision()]}")
    if not cpu.cpu_has_bf16() and "mixed_bfloat16" in precisions:
        print("bf16 is emulated on this CPU (no bf16 units): its numbers are not the speed a CPU with AVX512_BF16 "
              "or AMX gets")
    print(f"fp32 matmul peak: {peak32:.0f} GFLOP/s" + (f", bf16: {peak16:.0f} GFLOP/s" if peak16 else ""))
    ref_rate, ref_cpu = (max(float(np.median([t[i] for t in rates[name]])) for name in rates
                             if isinstance(name, str)) for i in (0, 1))

    def medians(name):
        return tuple(float(np.median([t[i] for t in rates[name]])) for i in (0, 1))

    print(f"{'':28}{'images/s':>10}{'GFLOP/s':>10}{'% peak':>8}{'ratio':>8}{'img/CPU-s':>11}{'ratio':>7}   "
          "turns (images/s)")
    for name in (n for n in rates if isinstance(n, str)):
        rate, cpu_rate = medians(name)
        achieved = rate * 3 * gflops
        print(f"{name:28}{rate:>10.2f}{achieved:>10.0f}{100 * achieved / peak32:>7.0f}%{rate / ref_rate:>8.2f}"
              f"{cpu_rate:>11.2f}{cpu_rate / ref_cpu:>7.2f}   " + " ".join(f"{t[0]:.2f}" for t in rates[name]))
    head = "".join(f"{WORDS.get(p, p) + ' img/s':>16}{'img/CPU-s':>11}{'ratio':>7}" for p in precisions)
    print(f"{'':28}{head}" + (f"{'bf16/fp32 (CPU)':>17}" if set(precisions) >= {"float32", "mixed_bfloat16"} else ""))
    for label in rows:
        line = f"{label:28}"
        for precision in precisions:
            rate, cpu_rate = medians((label, precision))
            line += f"{rate:>16.2f}{cpu_rate:>11.2f}{cpu_rate / ref_cpu:>7.2f}"
        if set(precisions) >= {"float32", "mixed_bfloat16"}:
            line += f"{medians((label, 'mixed_bfloat16'))[1] / medians((label, 'float32'))[1]:>17.2f}"
        print(line)
    print("ratio: against the faster reference (float32), by wall clock and by CPU time; * the step runs get on this "
          f"machine ({'XLA' if TrainConfig().xla else 'oneDNN, no XLA'}; lite0-unet: oneDNN)")
    print(f"peak RSS: {rss:.0f} MiB")

if __name__ == "__main__":
    main()
