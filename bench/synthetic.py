"""Synthetic images, masks, archives and oversized image headers: what the tests and the benchmarks build their
projects and inputs from (tests/helpers.py hands them to the tests)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def photo(h: int = 24, w: int = 32, seed: int = 0, gray: bool = False) -> np.ndarray:
    """A small random image: every seed gives different bytes, so no accidental duplicates."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if gray else (h, w, 3)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def box_mask(h: int = 24, w: int = 32, value: int = 1, box=(4, 4, 12, 16)) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    y0, x0, y1, x1 = box
    m[y0:y1, x0:x1] = value
    return m


def png_bytes(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr), mode).save(buf, format=fmt, **save)
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A zip archive in memory: path inside it -> file bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def write_pair_folders(root: Path, n: int, *, size=(24, 32), mask_value: int = 255, skip_masks=(),
                       extra_masks=()) -> tuple[Path, Path]:
    """images/ + masks/ with n pairs named img_000...; masks are 0/mask_value boxes."""
    img_dir, msk_dir = root / "images", root / "masks"
    img_dir.mkdir(parents=True)
    msk_dir.mkdir(parents=True)
    h, w = size
    for i in range(n):
        (img_dir / f"img_{i:03d}.png").write_bytes(png_bytes(photo(h, w, seed=i)))
        if i not in skip_masks:
            mask = box_mask(h, w, mask_value, (i % 5, 2, 10 + i % 7, 20))
            (msk_dir / f"img_{i:03d}.png").write_bytes(png_bytes(mask))
    for name in extra_masks:
        (msk_dir / name).write_bytes(png_bytes(box_mask(h, w, mask_value)))
    return img_dir, msk_dir


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's header; the data is 4x4 pixels)."""
    import struct
    import zlib

    data = bytearray(png_bytes(np.zeros((4, 4), np.uint8)))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) says width x height: decoding it would allocate the claim."""
    import struct

    data = bytearray(png_bytes(photo(64, 64), fmt="JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)
