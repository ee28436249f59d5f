"""Maskloop at its limits: what happens to an oversized upload, 5,000 files in one import, a
50-megapixel photo, a 20000x20000 image, a mask with 256 values and a project with 256 classes.

Each case runs in its own child process and reports its own peak RSS (VmHWM: a child's ru_maxrss, from wait4 or
RUSAGE_CHILDREN, starts from its parent's peak when it is started with vfork, as subprocess does); the table prints what
happened (accepted or refused, with the sentence), the seconds it took and the peak RSS beside a reference: the
child that only imports Maskloop, and plain Pillow decoding the same file.

    .venv/bin/python bench/limits.py            # every case
    .venv/bin/python bench/limits.py --files 500 --skip mp50_png
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from synthetic import jpeg_claiming, png_claiming  # noqa: E402

MP50 = (8660, 5773)          # 49.99 megapixels: just under the 50-megapixel limit
OVER = (8700, 5800)          # 50.46 megapixels: just over it


def _photo(size: tuple[int, int]) -> np.ndarray:
    """A photo-like RGB image (gradients and grain) that compresses like a photo, made without a huge random array."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    grain = np.random.default_rng(0).integers(0, 24, (h, 1), dtype=np.uint8)
    out = np.empty((h, w, 3), np.uint8)
    out[..., 0] = (x + grain) % 256
    out[..., 1] = (y + x / 3) % 256
    out[..., 2] = (255 - y + grain) % 256
    return out


def _save(arr: np.ndarray, path: Path, fmt: str, **kw) -> Path:
    Image.fromarray(arr).save(path, format=fmt, **kw)
    return path


def make_inputs(d: Path, files: int) -> None:
    """Every input file, written once before the cases run."""
    big = _photo(MP50)
    _save(big, d / "mp50.jpg", "JPEG", quality=90)
    _save(big, d / "mp50.png", "PNG", compress_level=1)
    del big
    _save(_photo(OVER), d / "over.jpg", "JPEG", quality=90)
    (d / "px20000.png").write_bytes(png_claiming(20000, 20000))
    (d / "px20000.jpg").write_bytes(jpeg_claiming(20000, 20000))
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(d / "many.zip", "w") as zf:
        for i in range(files):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
            zf.writestr(f"images/img_{i:05d}.png", buf.getvalue())
    ids = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    mask = Image.fromarray(ids, "P")
    mask.putpalette([(i * 7) % 256 for i in range(768)])
    mask.save(d / "mask256.png")
    _save(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), d / "mask256_image.png", "PNG")


# ----- the cases: each runs in a child and returns (accepted?, message) ---------------------------------------
def _project(d: Path, classes=None):
    from seg_core.store.workspace import new_project

    return new_project(Path(tempfile.mkdtemp(dir=d)) / "p", classes)


def _add(d: Path, name: str):
    project = _project(d)
    result = project.add_image((d / name).read_bytes(), name)
    return True, f"{result.status}: {result.image.width}x{result.image.height} {result.detail}".strip()


def _report(r) -> tuple[bool, str]:
    return bool(r.added), f"{len(r.added)} added, {len(r.refused)} refused"


def case_baseline(d):
    importlib.import_module("seg_core.services.importing")   # what every case imports
    return True, "imports only"


def case_upload_300mb(d):
    from seg_core.formats import images
    images.prepare_upload(b"\x89" * (300 * 2**20), "huge.png")   # in memory, as Streamlit holds an upload
    return True, "?"


def case_files_uploads(d):
    from seg_core.services import importing
    with zipfile.ZipFile(d / "many.zip") as zf:
        files = [(Path(i.filename).name, zf.read(i)) for i in zf.infolist()]
    return _report(importing.import_uploads(_project(d), files))


def case_files_zip(d):
    from seg_core.services import importing
    return _report(importing.import_zip(_project(d), d / "many.zip"))


def case_mp50_jpeg(d):
    return _add(d, "mp50.jpg")


def case_mp50_png(d):
    return _add(d, "mp50.png")


def case_over_50mp(d):
    return _add(d, "over.jpg")


def case_px20000_png(d):
    return _add(d, "px20000.png")


def case_px20000_jpeg(d):
    return _add(d, "px20000.jpg")


def case_mask256(d):
    from seg_core.services import importing
    project = _project(d)
    r = importing.import_uploads(project, [("a.png", (d / "mask256_image.png").read_bytes())],
                                 [("a.png", (d / "mask256.png").read_bytes())], infer_classes=True)
    return bool(r.labeled), f"{r.labeled} mask imported; {len(project.classes)} classes + ignore (255)" if r.labeled \
        else r.refused[0][1]


def case_classes256(d):
    from seg_core.classes import numbered_classes
    _project(d, numbered_classes(256))
    return True, "?"


def pil_reference(name: str):
    def run(d):
        with Image.open(d / name) as im:
            im.load()
        return True, f"plain Pillow: {im.size[0]}x{im.size[1]} {im.mode}"
    return run


CASES = {
    "baseline": (case_baseline, "a child importing Maskloop"),
    "upload_300mb": (case_upload_300mb, "a 300 MB image upload (file limit 256 MB)"),
    "files_uploads": (case_files_uploads, "{files} tiny PNGs as one browser upload"),
    "files_zip": (case_files_zip, "{files} tiny PNGs in one zip"),
    "mp50_jpeg": (case_mp50_jpeg, "8660x5773 JPEG (49.99 MP)"),
    "mp50_jpeg_pil": (pil_reference("mp50.jpg"), "  reference: plain Pillow decodes it"),
    "mp50_png": (case_mp50_png, "8660x5773 PNG (49.99 MP)"),
    "mp50_png_pil": (pil_reference("mp50.png"), "  reference: plain Pillow decodes it"),
    "over_50mp": (case_over_50mp, "8700x5800 JPEG (50.46 MP)"),
    "px20000_png": (case_px20000_png, "PNG header claiming 20000x20000"),
    "px20000_jpeg": (case_px20000_jpeg, "JPEG frame claiming 20000x20000"),
    "px20000_jpeg_pil": (pil_reference("px20000.jpg"), "  reference: plain Pillow decodes it"),
    "mask256": (case_mask256, "palette mask with values 0..255, empty project"),
    "classes256": (case_classes256, "a project with 256 classes"),
}


def run_child(name: str, d: Path) -> None:
    from seg_core.errors import SegError

    t = time.perf_counter()
    try:
        accepted, message = CASES[name][0](d)
        outcome = "accepted" if accepted else "refused"
    except SegError as exc:
        outcome, message = "refused", str(exc)
    except Exception as exc:  # a limit that is not a sentence: what the bench is here to find
        outcome, message = "ERROR", f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t
    # VmHWM belongs to this process's own memory map; ru_maxrss would start from the parent's peak (vfork).
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"outcome": outcome, "message": message, "seconds": seconds, "rss_mb": peak / 1024}))


def run_case(name: str, d: Path, files: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--dir", str(d), "--files", str(files)],
                          capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):   # killed (out of memory?) or crashed before its line
        return {"outcome": "CRASH", "message": f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}",
                "seconds": float("nan"), "rss_mb": float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000, help="files in the many-files cases")
    parser.add_argument("--skip", nargs="*", default=[], help="cases to leave out")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        return make_inputs(Path(args.dir), args.files)
    if args.child:
        return run_child(args.child, Path(args.dir))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t = time.perf_counter()
        # In a child too, so this process stays small.
        subprocess.run([sys.executable, __file__, "--make", "--dir", str(d), "--files", str(args.files)], check=True)
        print(f"inputs made in {time.perf_counter() - t:.0f} s; peak RSS of this process "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        print(f"{'case':<64} {'outcome':<9} {'seconds':>8} {'peak RSS':>9}  what happened")
        for name, (_, label) in CASES.items():
            if name in args.skip or (name.endswith("_pil") and name[:-4] in args.skip):
                continue
            row = run_case(name, d, args.files)
            print(f"{label.format(files=args.files):<64} {row['outcome']:<9} {row['seconds']:>8.2f} "
                  f"{row['rss_mb']:>6.0f} MB  {row['message'][:150]}", flush=True)


if __name__ == "__main__":
    main()
