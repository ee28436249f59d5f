"""Test helpers shared by all test folders: paths, CI-aware skipping, tiny image files."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg_core import environment

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(environment.get(environment.SHARED_DATA) or ROOT.parent / "shared" / "data")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = ROOT / "test-artifacts"


def require(condition: bool, reason: str) -> None:
    """Skip on a user's machine that lacks something; in CI (CI=true) the same gap is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must run this test)")
    pytest.skip(reason)


def png_bytes(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr), mode).save(buf, format=fmt, **save)
    return buf.getvalue()


def edit_class(project, class_id: int, name: str | None = None, color: str | None = None) -> None:
    """Rename or recolour one class as the Data page does: the whole list, changed, through Project.set_classes."""
    from seg_core.classes import ClassSpec, parse_color

    classes = project.classes
    old = classes[class_id]
    classes[class_id] = ClassSpec(class_id, old.name if name is None else name.strip(),
                                  old.color if color is None else parse_color(color))
    project.set_classes(classes)


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
            (msk_dir / f"img_{i:03d}.png").write_bytes(png_bytes(box_mask(h, w, mask_value, (i % 5, 2, 10 + i % 7, 20))))
    for name in extra_masks:
        (msk_dir / name).write_bytes(png_bytes(box_mask(h, w, mask_value)))
    return img_dir, msk_dir


def page_texts(at) -> str:
    """Everything an AppTest run wrote as text: markdown, captions and the alert boxes."""
    parts = [m.value for m in at.markdown] + [i.value for i in at.info] + [e.value for e in at.error]
    parts += [s.value for s in at.success] + [w.value for w in at.warning] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def open_app_page(at, page: str, project=None):
    """Run the app once (AppTest learns the pages st.navigation registers), then switch to app_pages/<page>.py."""
    if project is not None:
        at.session_state["project_path"] = str(project.path)
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at
