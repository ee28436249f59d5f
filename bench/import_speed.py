"""Import/export throughput of Maskloop against a plain reference (decode + copy), on the same files.

Prints images/s for both, the ratio, and peak RSS. Uses ../shared/data/membrane when present (each pair
re-encoded with a tiny change so none is a duplicate), else synthetic 512x512 pairs.
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seg_core.services import importing, exporting  # noqa: E402
from seg_core.store.project import Project  # noqa: E402

MEMBRANE = ROOT.parent / "shared" / "data" / "membrane"


def make_pairs(dest: Path, count: int) -> str:
    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir()
    if (MEMBRANE / "images").is_dir():
        srcs = sorted((MEMBRANE / "images").iterdir())
        source = f"membrane x{-(-count // len(srcs))}"
        for i in range(count):
            p = srcs[i % len(srcs)]
            img = np.asarray(Image.open(p)).copy()
            img[0, 0] = i % 256  # a different file each time, not a duplicate
            img[0, 1] = i // 256
            Image.fromarray(img).save(dest / "images" / f"{i:05d}.png")
            shutil.copy(MEMBRANE / "masks" / p.name, dest / "masks" / f"{i:05d}.png")
    else:
        source = "synthetic"
        rng = np.random.default_rng(0)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (512, 512), dtype=np.uint8)).save(dest / "images" / f"{i:05d}.png")
            m = np.zeros((512, 512), np.uint8)
            m[100:300, 50:400] = 255
            Image.fromarray(m).save(dest / "masks" / f"{i:05d}.png")
    return source


def reference(src: Path, dest: Path) -> None:
    """What a script would do: decode each image and mask to check them, copy both."""
    (dest / "images").mkdir(parents=True)
    (dest / "masks").mkdir()
    for p in sorted((src / "images").iterdir()):
        data = p.read_bytes()
        Image.open(io.BytesIO(data)).load()
        (dest / "images" / p.name).write_bytes(data)
        m = (src / "masks" / p.name).read_bytes()
        np.asarray(Image.open(io.BytesIO(m)))
        (dest / "masks" / p.name).write_bytes(m)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = make_pairs(tmp / "src", args.count)
        t0 = time.perf_counter()
        reference(tmp / "src", tmp / "ref")
        t_ref = time.perf_counter() - t0
        project = Project.create(tmp / "proj")
        t0 = time.perf_counter()
        report = importing.import_folder(project, tmp / "src" / "images", tmp / "src" / "masks", infer_classes=True)
        t_seg = time.perf_counter() - t0
        assert report.ok and report.labeled == args.count, report.lines()
        t0 = time.perf_counter()
        exporting.export_zip(project, tmp / "out.zip")
        t_exp = time.perf_counter() - t0
        t0 = time.perf_counter()
        project.stats()
        t_stats = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = args.count
    print(f"data: {n} pairs 512x512 ({source})")
    print(f"{'':24}{'images/s':>10}{'seconds':>10}")
    print(f"{'reference (decode+copy)':24}{n / t_ref:>10.1f}{t_ref:>10.2f}")
    print(f"{'seg studio import':24}{n / t_seg:>10.1f}{t_seg:>10.2f}")
    print(f"{'seg studio export':24}{n / t_exp:>10.1f}{t_exp:>10.2f}")
    print(f"import ratio seg/ref: {t_ref / t_seg:.2f} (1.0 = as fast as a bare copy; Maskloop also validates,")
    print("  detects the mask format, fsyncs every file and writes the database)")
    print(f"stats() over {n} images: {1000 * t_stats:.1f} ms")
    print(f"peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
