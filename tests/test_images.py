"""Image decoding and validation: every accepted format, EXIF orientation, and each refusal with its message.

Every file is a real one written by Pillow (or by hand, for the header-only size check) in memory.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import photo, png_bytes
from seg_core.formats import images
from seg_core.errors import InvalidImageError


def encode(arr, fmt: str, mode: str | None = None, **kw) -> bytes:
    return png_bytes(arr, mode, fmt=fmt, **kw)


def pixels_of(data: bytes) -> np.ndarray:
    """What a reader of the stored bytes sees (no conversion: a PNG we wrote is already L or RGB)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny hand-written grayscale PNG whose header claims width x height (the IDAT holds 100 bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


# ----- accepted formats ---------------------------------------------------------------------------
@pytest.mark.parametrize("gray", [True, False], ids=["L", "RGB"])
def test_png_l_and_rgb_are_kept_byte_for_byte(gray):
    arr = photo(gray=gray)
    data = png_bytes(arr)
    prep = images.prepare_upload(data, "a.png")
    assert prep.converted is False and prep.data == data and prep.ext == ".png"
    assert (prep.width, prep.height, prep.channels, prep.source_format) == (32, 24, 1 if gray else 3, "PNG")
    assert prep.sha256 == sha(data)
    _, decoded = images.decode(data, "a.png")
    np.testing.assert_array_equal(np.asarray(decoded), arr)


@pytest.mark.parametrize("gray", [True, False], ids=["L", "RGB"])
def test_jpeg_is_kept_as_uploaded(gray):
    data = encode(photo(gray=gray), "JPEG", quality=90)
    prep = images.prepare_upload(data, "a.jpg")
    assert prep.converted is False and prep.data == data and prep.ext == ".jpg"
    assert (prep.channels, prep.source_format, prep.sha256) == (1 if gray else 3, "JPEG", sha(data))
    _, decoded = images.decode(data, "a.jpg")
    assert np.asarray(decoded).shape == ((24, 32) if gray else (24, 32, 3))


@pytest.mark.parametrize("fmt,source,gray,save", [
    ("BMP", "BMP", False, {}),
    ("BMP", "BMP", True, {}),
    ("TIFF", "TIFF", False, {}),
    ("TIFF", "TIFF", True, {}),
    ("WEBP", "WebP", False, {"lossless": True}),
], ids=["bmp-rgb", "bmp-l", "tiff-rgb", "tiff-l", "webp-rgb"])
def test_other_formats_are_stored_as_lossless_png(fmt, source, gray, save):
    arr = photo(gray=gray, seed=3)
    data = encode(arr, fmt, **save)
    prep = images.prepare_upload(data, f"x.{fmt.lower()}")
    assert prep.converted is True and prep.ext == ".png" and prep.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (prep.width, prep.height, prep.channels, prep.source_format) == (32, 24, 1 if gray else 3, source)
    assert prep.sha256 == sha(data) != sha(prep.data), "the hash is of the upload, not of the re-encoding"
    _, decoded = images.decode(data, "x")
    stored = pixels_of(prep.data)
    np.testing.assert_array_equal(stored, np.asarray(decoded))
    np.testing.assert_array_equal(stored, arr)  # lossless formats keep the pixels


def test_16bit_tiff_is_rescaled_to_8bit_by_the_range_used():
    arr = np.zeros((24, 32), np.uint16)
    arr[0, :4] = (0, 1000, 2048, 4095)  # a 12-bit microscope: 4095 is the brightest, not 65535
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    prep = images.prepare_upload(data, "em.tif")
    out = pixels_of(prep.data)
    assert prep.converted and prep.channels == 1 and out.dtype == np.uint8 and out.shape == (24, 32)
    assert out[0, :4].tolist() == [0, round(1000 * 255 / 4095), round(2048 * 255 / 4095), 255]
    _, decoded = images.decode(data, "em.tif")
    np.testing.assert_array_equal(np.asarray(decoded), out)


def test_multi_frame_gif_uses_the_first_frame():
    first = np.zeros((10, 12, 3), np.uint8)
    first[:, :6] = (255, 0, 0)          # red left half, black right half
    second = np.full((10, 12, 3), (0, 0, 255), np.uint8)
    frames = [Image.fromarray(a).convert("P") for a in (first, second)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    data = buf.getvalue()
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    prep = images.prepare_upload(data, "anim.gif")
    assert (prep.source_format, prep.converted, prep.ext, prep.channels) == ("GIF", True, ".png", 3)
    stored = pixels_of(prep.data)
    np.testing.assert_array_equal(stored, first)
    _, decoded = images.decode(data, "anim.gif")
    np.testing.assert_array_equal(np.asarray(decoded), stored)


def test_rgba_png_is_composited_on_white():
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :16, 3] = 255  # left half opaque red, right half fully transparent
    data = png_bytes(rgba, "RGBA")
    prep = images.prepare_upload(data, "t.png")
    out = pixels_of(prep.data)
    assert prep.converted and prep.channels == 3 and prep.ext == ".png" and out.shape == (24, 32, 3)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 31]) == (255, 255, 255)
    _, decoded = images.decode(data, "t.png")
    np.testing.assert_array_equal(np.asarray(decoded), out)


def test_palette_png_becomes_rgb_with_its_colours():
    idx = np.zeros((24, 32), np.uint8)
    idx[:, 16:] = 1
    im = Image.fromarray(idx, "P")
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    data = buf.getvalue()
    prep = images.prepare_upload(data, "p.png")
    out = pixels_of(prep.data)
    assert prep.converted and prep.channels == 3 and prep.source_format == "PNG"
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[0, 31]) == (200, 100, 50)


@pytest.mark.parametrize("mode", ["LA", "1"])
def test_other_grayscale_modes_stay_one_channel(mode):
    im = Image.fromarray(photo(gray=True)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    prep = images.prepare_upload(buf.getvalue(), "g.png")
    assert prep.channels == 1 and prep.converted and pixels_of(prep.data).shape == (24, 32)


# ----- EXIF orientation ---------------------------------------------------------------------------
def _rotated_phone_jpeg() -> bytes:
    arr = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high
    arr[:6, :6] = (255, 0, 0)  # red top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", exif=exif, quality=100)
    return buf.getvalue()


def test_exif_orientation_is_applied_and_stored_as_png():
    data = _rotated_phone_jpeg()
    prep = images.prepare_upload(data, "phone.jpg")
    assert (prep.width, prep.height) == (20, 40)
    assert prep.converted and prep.ext == ".png" and prep.data[:4] == b"\x89PNG" and prep.source_format == "JPEG"
    out = pixels_of(prep.data)
    assert out.shape == (40, 20, 3)
    # A 90-degree clockwise turn takes the top-left corner to the top-right.
    assert out[2, 17, 0] > 200 and out[2, 17, 1] < 60 and out[2, 17, 2] < 60, "red corner is now top right"
    assert out[2, 2].max() < 60, "top left is no longer red"
    assert out[37, 2].max() < 60 and out[37, 17].max() < 60


def test_load_image_applies_exif_orientation(tmp_path):
    p = tmp_path / "phone.jpg"
    p.write_bytes(_rotated_phone_jpeg())
    arr = images.load_image(p)
    assert arr.shape == (40, 20, 3) and arr.dtype == np.uint8 and arr[2, 17, 0] > 200


# ----- refusals -----------------------------------------------------------------------------------
@pytest.mark.parametrize("data,name,words", [
    (b"", "empty.png", ["empty", "0 bytes"]),
    (b"hello, I am a text file\n", "notes.png", ["not an image", "PNG, JPEG"]),
    (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "report.pdf", ["not an image", "PNG, JPEG"]),
], ids=["empty", "text", "pdf"])
def test_unreadable_files_are_refused_in_plain_words(data, name, words):
    with pytest.raises(InvalidImageError) as exc:
        images.prepare_upload(data, name)
    assert name in str(exc.value)
    for w in words:
        assert w in str(exc.value)


def test_truncated_png_is_refused():
    data = png_bytes(photo(64, 64))
    with pytest.raises(InvalidImageError, match="truncated or damaged") as exc:
        images.prepare_upload(data[: len(data) // 2], "cut.png")
    assert "export it again" in str(exc.value)


def test_huge_header_is_refused_without_decoding():
    data = _png_claiming(20000, 20000)
    assert len(data) < 200
    start = time.perf_counter()
    with pytest.raises(InvalidImageError) as exc:
        images.prepare_upload(data, "huge.png")
    msg = str(exc.value)
    assert "20000x20000" in msg and "400 megapixels" in msg and "limit is 50 megapixels" in msg
    assert "Downscale" in msg and "truncated" not in msg, "refused from the header, not by a failed decode"
    assert time.perf_counter() - start < 1.0


def test_size_is_checked_before_the_pixels_are_decoded():
    # A real PNG whose pixel data is cut off: over the limit it is refused for its size, never decoded.
    data = png_bytes(photo(100, 100))[:200]
    with pytest.raises(InvalidImageError, match="100x100"):
        images.decode(data, "cut.png", limit=5000)


def test_an_image_just_over_the_limit_does_not_read_as_equal_to_it():
    # 8192x6144 is 50.3 megapixels: "50 megapixels; the limit is 50 megapixels" would be a riddle.
    with pytest.raises(InvalidImageError) as exc:
        images.prepare_upload(_png_claiming(8192, 6144), "sensor.png")
    assert "8192x6144" in str(exc.value) and "50.3 megapixels" in str(exc.value)


def test_pixel_limit_from_the_argument():
    data = png_bytes(photo(100, 100))
    with pytest.raises(InvalidImageError) as exc:
        images.prepare_upload(data, "a.png", limit=5000)
    msg = str(exc.value)
    assert "100x100" in msg and "10,000 pixels" in msg and "limit is 5,000 pixels" in msg and "Downscale" in msg
    assert images.prepare_upload(data, "a.png", limit=10000).width == 100


def test_pixel_limit_from_the_environment(monkeypatch):
    data = png_bytes(photo(100, 100))
    monkeypatch.setenv("MASKLOOP_MAX_PIXELS", "9999")
    assert images.max_pixels() == 9999
    with pytest.raises(InvalidImageError, match="100x100"):
        images.prepare_upload(data, "a.png")
    monkeypatch.setenv("MASKLOOP_MAX_PIXELS", "10000")
    assert images.prepare_upload(data, "a.png").width == 100
    monkeypatch.setenv("MASKLOOP_MAX_PIXELS", "lots")
    assert images.max_pixels() == images.DEFAULT_MAX_PIXELS


def test_unsupported_format_is_named():
    buf = io.BytesIO()
    Image.fromarray(photo(16, 16)).save(buf, "ICO")
    with pytest.raises(InvalidImageError) as exc:
        images.prepare_upload(buf.getvalue(), "icon.ico")
    assert "ICO" in str(exc.value) and "PNG, JPEG, BMP, TIFF, WebP or GIF" in str(exc.value)


@pytest.mark.parametrize("name,words", [
    ("../x.png", "folder path"),
    ("a/b.png", "folder path"),
    ("a\\b.png", "folder path"),
    ("", "no name"),
    ("   ", "no name"),
    ("..", "not a file name"),
    ("bad\x00.png", "control characters"),
    ("new\nline.png", "control characters"),
    ("x" * 300 + ".png", "longer than 255 bytes"),
], ids=["dotdot", "slash", "backslash", "empty", "blank", "parent", "nul", "newline", "300-chars"])
def test_unsafe_names_are_refused(name, words):
    with pytest.raises(InvalidImageError, match=words):
        images.safe_filename(name)
    with pytest.raises(InvalidImageError, match=words):  # before the bytes are even looked at
        images.prepare_upload(png_bytes(photo()), name)


def test_plain_names_pass_including_unicode():
    assert images.safe_filename("Été 2024 (1).JPG") == "Été 2024 (1).JPG"
    assert images.safe_filename("x" * 251 + ".png") == "x" * 251 + ".png"  # 255 bytes is allowed


def test_load_image_returns_l_or_rgb_uint8(tmp_path):
    gray, rgb = photo(gray=True), photo(seed=1)
    (tmp_path / "g.png").write_bytes(png_bytes(gray))
    (tmp_path / "c.png").write_bytes(png_bytes(rgb))
    np.testing.assert_array_equal(images.load_image(tmp_path / "g.png"), gray)
    np.testing.assert_array_equal(images.load_image(tmp_path / "c.png"), rgb)
    assert images.to_rgb(images.load_image(tmp_path / "g.png")).shape == (24, 32, 3)
