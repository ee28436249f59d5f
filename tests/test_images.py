"""Image decoding and validation: every accepted format, EXIF orientation, and each refusal with its message."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import photo, png_bytes
from seg_core import images
from seg_core.errors import InvalidImageError


def encode(arr, fmt, mode=None, **kw) -> bytes:
    return png_bytes(arr, mode, fmt=fmt, **kw)


def test_png_gray_and_rgb_are_kept_byte_for_byte():
    for arr, channels in ((photo(gray=True), 1), (photo(), 3)):
        data = png_bytes(arr)
        prep = images.prepare_upload(data, "a.png")
        assert (prep.converted, prep.data, prep.ext, prep.channels) == (False, data, ".png", channels)
        assert (prep.width, prep.height) == (32, 24)
        import hashlib
        assert prep.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fmt,ext", [("JPEG", ".jpg"), ("BMP", ".png"), ("TIFF", ".png"), ("WEBP", ".png")])
def test_other_formats_are_accepted_and_stored_decodably(fmt, ext):
    arr = photo()
    data = encode(arr, fmt, **({"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}))
    prep = images.prepare_upload(data, f"x.{fmt.lower()}")
    assert prep.ext == ext and prep.channels == 3 and (prep.width, prep.height) == (32, 24)
    _, decoded = images.decode(data, "x")
    stored = np.asarray(Image.open(io.BytesIO(prep.data)).convert("RGB"))
    np.testing.assert_array_equal(stored, np.asarray(decoded))
    if fmt != "JPEG":
        np.testing.assert_array_equal(stored, arr)  # lossless formats keep the pixels


def test_gif_uses_the_first_frame():
    frames = [Image.fromarray(np.full((10, 12), v, np.uint8)).convert("P") for v in (50, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    _, img = images.decode(buf.getvalue(), "anim.gif")
    assert np.asarray(img).mean() == pytest.approx(50, abs=2)


def test_16bit_tiff_is_rescaled_by_the_range_used():
    arr = np.linspace(0, 4095, 24 * 32).reshape(24, 32).astype(np.uint16)  # 12 bits used
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    prep = images.prepare_upload(data, "em.tif")
    out = np.asarray(Image.open(io.BytesIO(prep.data)))
    assert prep.channels == 1 and out.dtype == np.uint8 and out.max() == 255 and out.min() == 0


def test_rgba_and_palette_become_rgb():
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :16, 3] = 255  # left half opaque red, right half transparent
    prep = images.prepare_upload(png_bytes(rgba, "RGBA"), "t.png")
    out = np.asarray(Image.open(io.BytesIO(prep.data)))
    assert prep.converted and prep.channels == 3
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 31]) == (255, 255, 255)
    pal = Image.fromarray(photo()).convert("P")
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    assert images.prepare_upload(buf.getvalue(), "p.png").channels == 3


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:5, :5] = (255, 0, 0)  # red top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", exif=exif, quality=100)
    prep = images.prepare_upload(buf.getvalue(), "phone.jpg")
    assert (prep.width, prep.height) == (20, 40) and prep.converted and prep.ext == ".png"
    out = np.asarray(Image.open(io.BytesIO(prep.data)))
    assert out[1, 18, 0] > 200 and out[1, 18, 1] < 60, "the red corner moved to the top right"


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data,name,words", [
    (b"", "empty.png", "empty"),
    (b"hello, I am a text file", "notes.png", "not an image"),
    (png_bytes(photo(64, 64))[:300], "cut.png", "truncated or damaged"),
    (_png_claiming(20000, 20000), "huge.png", "20000x20000"),
])
def test_refused_inputs_have_clear_messages(data, name, words):
    with pytest.raises(InvalidImageError, match=words):
        images.prepare_upload(data, name)


def test_pixel_limit_from_argument_and_environment(monkeypatch):
    data = png_bytes(photo(100, 100))
    with pytest.raises(InvalidImageError, match="megapixels"):
        images.prepare_upload(data, "a.png", limit=5000)
    monkeypatch.setenv("SEG_MAX_PIXELS", "9999")
    with pytest.raises(InvalidImageError, match="100x100"):
        images.prepare_upload(data, "a.png")
    monkeypatch.setenv("SEG_MAX_PIXELS", "10000")
    assert images.prepare_upload(data, "a.png").width == 100


def test_unsupported_format_is_named():
    buf = io.BytesIO()
    Image.fromarray(photo(16, 16)).save(buf, "ICO")
    with pytest.raises(InvalidImageError, match="ICO"):
        images.prepare_upload(buf.getvalue(), "icon.ico")


@pytest.mark.parametrize("name", ["../x.png", "a/b.png", "a\\b.png", "", "..", "bad\x00.png", "new\nline.png",
                                  "x" * 300 + ".png"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(InvalidImageError):
        images.safe_filename(name)


def test_plain_names_pass_including_unicode():
    assert images.safe_filename("Été 2024 (1).JPG") == "Été 2024 (1).JPG"


def test_load_image_returns_upright_arrays(tmp_path):
    p = tmp_path / "g.png"
    p.write_bytes(png_bytes(photo(gray=True)))
    assert images.load_image(p).shape == (24, 32)
    assert images.to_rgb(images.load_image(p)).shape == (24, 32, 3)
