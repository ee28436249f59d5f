"""Decoding and validation of uploaded images: formats, size limits, EXIF orientation, safe names."""

from __future__ import annotations

import hashlib
import io
import threading
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from seg_core import environment
from seg_core.errors import InvalidImageError

# 50 megapixels holds any phone photo; past that a 2-core laptop spends seconds per decode.
DEFAULT_MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 256 * 1024 * 1024
ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "BMP": "BMP", "TIFF": "TIFF",
                    "WEBP": "WebP", "GIF": "GIF"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
_FORMAT_LIST = "PNG, JPEG, BMP, TIFF, WebP or GIF"
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_EXIF_ORIENTATION = 0x0112
_BOMB_GUARD_LOCK = threading.Lock()


@dataclass(frozen=True)
class PreparedImage:
    """An upload that passed validation, ready to be stored."""

    data: bytes          # what goes on disk: the original bytes, or a lossless PNG re-encoding
    ext: str             # ".png" or ".jpg"
    width: int
    height: int
    channels: int        # 1 (grayscale) or 3 (RGB)
    source_format: str   # the format the user uploaded, e.g. "TIFF"
    sha256: str          # of the uploaded bytes: identical uploads are duplicates
    converted: bool      # True when `data` is a re-encoding rather than the upload itself


def max_pixels() -> int:
    """The pixel limit; MASKLOOP_MAX_PIXELS overrides it (e.g. for a microscopy workstation)."""
    try:
        return int(environment.get(environment.MAX_PIXELS) or DEFAULT_MAX_PIXELS)
    except ValueError:
        return DEFAULT_MAX_PIXELS


def safe_filename(name: str) -> str:
    """Return `name` if it is a plain file name; refuse paths, control characters and oddities."""
    if name is None or not str(name).strip():
        raise InvalidImageError("The file has no name.")
    name = unicodedata.normalize("NFC", str(name))
    if "/" in name or "\\" in name:
        raise InvalidImageError(f"The file name '{name}' contains a folder path; give a plain file name.")
    if name in (".", ".."):
        raise InvalidImageError(f"'{name}' is not a file name.")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidImageError(f"The file name {name!r} contains control characters.")
    if len(name.encode("utf-8")) > 255:
        raise InvalidImageError(f"The file name '{name[:40]}...' is longer than 255 bytes.")
    return name


def _pixels_text(n: float) -> str:
    """'768 pixels', '50.3 megapixels', '400 megapixels': an image just over the limit never reads as equal to it."""
    if n < 1_000_000:
        return f"{int(n):,} pixels"
    mp = n / 1e6
    return f"{mp:.0f} megapixels" if mp == int(mp) else f"{mp:.1f} megapixels"


def _open_header_only(data: bytes) -> Image.Image | None:
    """Open past Pillow's own bomb guard to read the size from the header (nothing is decoded)."""
    with _BOMB_GUARD_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(io.BytesIO(data))
        except Exception:   # whatever a decoder raises on a damaged header: the checked open that follows says it
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(data: bytes, name: str, limit: int) -> Image.Image:
    if len(data) == 0:
        raise InvalidImageError(f"'{name}' is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(
            f"'{name}' is {len(data) / 2**20:.0f} MB; files up to {MAX_FILE_BYTES // 2**20} MB are accepted."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        im = _open_header_only(data)
        if im is None:
            raise InvalidImageError(f"'{name}' is too large; the limit is {_pixels_text(limit)}.") from None
    except Exception:  # UnidentifiedImageError, and whatever a plugin raises on a damaged header
        raise InvalidImageError(f"'{name}' is not an image Maskloop can read (use {_FORMAT_LIST}).") from None
    if im.format not in ACCEPTED_FORMATS:
        raise InvalidImageError(f"'{name}' is a {im.format} file; Maskloop accepts {_FORMAT_LIST}.")
    w, h = im.size
    if w <= 0 or h <= 0:
        raise InvalidImageError(f"'{name}' has no pixels ({w}x{h}).")
    # Checked from the header, before any pixel is decoded: a small file can claim a huge image.
    if w * h > limit:
        raise InvalidImageError(
            f"'{name}' is {w}x{h} pixels ({_pixels_text(w * h)}); the limit is "
            f"{_pixels_text(limit)}. Downscale it first."
        )
    return im


def _to_l_or_rgb(im: Image.Image) -> Image.Image:
    """Grayscale stays one channel, everything else becomes RGB; 16-bit and float are rescaled."""
    mode = im.mode
    if mode == "L":
        return im
    if mode == "RGB":
        return im
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        lo = min(0.0, float(arr.min())) if arr.size else 0.0
        # 16-bit microscopy often uses 12 bits: scale by the range actually used, not by 65535.
        scale = 255.0 / (hi - lo) if hi > 255 or lo < 0 else 1.0
        return Image.fromarray(np.clip((arr - lo) * scale, 0, 255).round().astype(np.uint8), "L")
    if mode in ("1", "LA", "La"):
        return im.convert("L")
    if mode == "P":
        rgb = im.convert("RGBA")
        return _to_l_or_rgb(rgb)
    if mode in ("RGBA", "RGBa", "PA"):
        rgba = im.convert("RGBA")
        # Transparent areas become white, as an image viewer shows them.
        base = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return im.convert("RGB")


def decode(data: bytes, name: str = "image", limit: int | None = None) -> tuple[Image.Image, Image.Image]:
    """Validate and decode: returns (the opened original, the oriented L/RGB image)."""
    limit = max_pixels() if limit is None else limit
    im = _open(data, name, limit)
    try:
        if im.format == "GIF":
            im.seek(0)
        im.load()
        out = _to_l_or_rgb(_upright(im))
        out.load()
    except InvalidImageError:
        raise
    except MemoryError:
        raise InvalidImageError(f"'{name}' is too large to decode on this machine; downscale it first.") from None
    except Exception:  # Pillow's decoders raise many types on damaged files (a TIFF offset of the wrong type: TypeError)
        raise InvalidImageError(f"'{name}' is truncated or damaged; export it again from its source.") from None
    return im, out


def prepare_upload(data: bytes, name: str, limit: int | None = None) -> PreparedImage:
    """Validate an uploaded file and decide what to store for it."""
    safe_filename(name)
    original, img = decode(data, name, limit)
    fmt = ACCEPTED_FORMATS[original.format]
    orientation = _orientation(original)
    # PNG/JPEG already in L/RGB and upright are kept byte for byte; anything else is stored as a
    # lossless PNG so every later reader (tf.io, browsers) sees the same pixels.
    keep = fmt in ("PNG", "JPEG") and original.mode in ("L", "RGB") and orientation in (0, 1)
    if keep:
        stored, ext = data, (".png" if fmt == "PNG" else ".jpg")
    else:
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=6)
        stored, ext = buf.getvalue(), ".png"
    return PreparedImage(
        data=stored, ext=ext, width=img.width, height=img.height,
        channels=1 if img.mode == "L" else 3, source_format=fmt,
        sha256=hashlib.sha256(data).hexdigest(), converted=not keep,
    )


def _upright(im: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; as it is when that block is damaged (like _orientation)."""
    if _orientation(im) in (0, 1):
        return im  # exif_transpose would copy it: a 50-megapixel photo held twice (150 MB more)
    try:
        return ImageOps.exif_transpose(im)
    except Exception:   # a damaged EXIF block raises whatever its parser meets: the image is used unturned
        return im


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block: the file is read as it is, unrotated
        return 1


def oriented_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the image is stored after its EXIF rotation, from the header alone; None if unreadable."""
    im = _open_header_only(data)
    if im is None:
        return None
    w, h = im.size
    return (h, w) if _orientation(im) in (5, 6, 7, 8) else (w, h)


def load_image(path: str | Path) -> np.ndarray:
    """A stored image as uint8 HxW (grayscale) or HxWx3 (RGB)."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(_to_l_or_rgb(_upright(im)))


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS and not Path(name).name.startswith(".")


def to_rgb(arr: np.ndarray) -> np.ndarray:
    """HxW or HxWx3 uint8 -> HxWx3 uint8."""
    return np.repeat(arr[:, :, None], 3, axis=2) if arr.ndim == 2 else arr
