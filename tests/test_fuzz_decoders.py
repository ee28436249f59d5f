"""Fuzzed image and mask files: every one decodes to a sane array or is refused with a SegError sentence
Seeds are real files of every accepted kind, made here with PIL, plus a few of ../shared/data."""

from __future__ import annotations

import functools
import io
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from fuzzing import fuzz
from helpers import SHARED_DATA, jpeg_claiming, photo, png_claiming, require
from seg_core.classes import binary_classes, numbered_classes
from seg_core.errors import SegError
from seg_core.formats import images, masks
from seg_core.store.workspace import new_project

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")   # damaged files make Pillow warn, on purpose


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _exif_rotated_jpeg() -> bytes:
    im = Image.fromarray(photo(12, 20, seed=3))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(im, "JPEG", exif=exif.tobytes())


@functools.lru_cache(maxsize=1)
def seeds() -> dict[str, bytes]:
    """name -> bytes of a small real file: every format, mode and quirk the importer handles."""
    rgb = Image.fromarray(photo(12, 16, seed=1))
    gray = Image.fromarray(photo(12, 16, seed=2, gray=True))
    ids = Image.fromarray((np.arange(12 * 16).reshape(12, 16) % 3).astype(np.uint8), "L")
    pal = ids.convert("P")
    pal.putpalette([0, 0, 0, 230, 25, 75, 60, 180, 75] + [0] * 759)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(gray)
    deep = Image.fromarray((np.arange(12 * 16).reshape(12, 16) * 300).astype(np.uint16))
    out = {
        "png_rgb": _save(rgb, "PNG"), "png_gray": _save(gray, "PNG"), "png_rgba": _save(rgba, "PNG"),
        "png_palette": _save(pal, "PNG"), "png_palette_alpha": _save(pal, "PNG", transparency=0),
        "png_la": _save(gray.convert("LA"), "PNG"), "png_1bit": _save(gray.convert("1"), "PNG"),
        "png_16bit": _save(deep, "PNG"), "png_ids": _save(ids, "PNG"),
        "jpeg_rgb": _save(rgb, "JPEG", quality=80), "jpeg_gray": _save(gray, "JPEG"),
        "jpeg_cmyk": _save(rgb.convert("CMYK"), "JPEG"), "jpeg_exif6": _exif_rotated_jpeg(),
        "jpeg_progressive": _save(rgb, "JPEG", progressive=True),
        "gif": _save(pal, "GIF"),
        "gif_animated": _save(pal, "GIF", save_all=True, append_images=[ids.convert("P")], duration=50),
        "tiff_rgb": _save(rgb, "TIFF"), "tiff_lzw": _save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff_16bit": _save(deep, "TIFF"), "tiff_float": _save(Image.fromarray(np.float32(ids) * 0.5), "TIFF"),
        "tiff_cmyk": _save(rgb.convert("CMYK"), "TIFF"), "tiff_pages": _save(rgb, "TIFF", save_all=True,
                                                                              append_images=[rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]),
        "bmp_rgb": _save(rgb, "BMP"), "bmp_palette": _save(pal, "BMP"), "bmp_gray": _save(gray, "BMP"),
        "webp": _save(rgb, "WEBP", lossless=True),
    }
    return out


def _shared_files() -> list:
    """The first image and mask of each real data set in ../shared/data (none when it is absent)."""
    return [p for sub in ("membrane/images", "membrane/masks", "camvid-mini/images", "camvid-mini/masks")
            for p in sorted((SHARED_DATA / sub).glob("*.png"))[:1]]


@pytest.mark.shared_data
@pytest.mark.parametrize("cut", [0.0, 0.01, 0.3, 0.9, 0.999])
def test_real_files_of_the_shared_data_truncated_or_flipped_are_read_or_refused(shared_data, cut):
    files = _shared_files()
    require(bool(files), f"no PNG files in {shared_data}'s membrane/ and camvid-mini/ folders")
    for path in files:
        data = bytearray(path.read_bytes())
        if cut:
            _check_decoded(bytes(data[:int(len(data) * cut)]), path.name)
        for pos in range(8, len(data), max(1, len(data) // 7)):   # flips through the header and the pixel data
            data[pos] ^= 0x5A
        _check_decoded(bytes(data), path.name)


def _tiff_tag_types(data: bytes) -> list[int]:
    """Byte offsets of the type field of each entry of a little-endian TIFF's first directory."""
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    return [ifd + 2 + 12 * i + 2 for i in range(count)]


def _retyped_tiff(tag: int, new_type: int) -> bytes:
    """The RGB TIFF seed with one tag's type changed (e.g. StripOffsets as a FLOAT: Pillow raised TypeError)."""
    data = bytearray(seeds()["tiff_rgb"])
    for at in _tiff_tag_types(bytes(data)):
        if struct.unpack_from("<H", data, at - 2)[0] == tag:
            struct.pack_into("<H", data, at, new_type)
    return bytes(data)


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A seed file with some of: a truncation, byte flips (mostly in the header), a spliced-in chunk of junk."""
    name = draw(st.sampled_from(sorted(seeds())))
    data = bytearray(seeds()[name])
    if name.startswith("tiff") and draw(st.booleans()):   # a tag of another type than the spec says
        struct.pack_into("<H", data, draw(st.sampled_from(_tiff_tag_types(bytes(data)))), draw(st.integers(1, 13)))
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.one_of(st.integers(0, min(80, len(data) - 1)), st.integers(0, len(data) - 1)))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return name, bytes(data)


def _check_sentence(exc: SegError) -> None:
    text = str(exc)
    assert len(text) > 15 and (text[0].isupper() or text[0] in "'\"") and text.rstrip()[-1] in ".)", text


def _check_decoded(data: bytes, name: str) -> None:
    """decode() and prepare_upload() agree, and what they give is what the app expects."""
    try:
        _, out = images.decode(data, name)
    except SegError as exc:
        _check_sentence(exc)
        with pytest.raises(SegError):
            images.prepare_upload(data, name)
        return
    arr = np.asarray(out)
    assert arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3))
    assert 0 < arr.shape[0] * arr.shape[1] <= images.max_pixels()
    prep = images.prepare_upload(data, name)
    assert (prep.width, prep.height, prep.channels) == (arr.shape[1], arr.shape[0], 1 if arr.ndim == 2 else 3)
    stored = np.asarray(images.decode(prep.data, name)[1])
    assert stored.shape == arr.shape


@pytest.mark.parametrize("name", sorted(seeds()))
def test_every_seed_file_decodes_as_the_app_expects(name):
    _, out = images.decode(seeds()[name], name)
    assert np.asarray(out).dtype == np.uint8 and out.mode in ("L", "RGB")
    prep = images.prepare_upload(seeds()[name], f"{name}.img")
    assert (prep.width, prep.height) == ((12, 20) if name == "jpeg_exif6" else out.size)


@fuzz(100)
@given(mutated())
def test_a_damaged_image_decodes_sanely_or_is_refused_with_a_sentence(case):
    name, data = case
    _check_decoded(data, f"{name}.bin")


@pytest.mark.parametrize("new_type", [5, 11, 12])   # RATIONAL, FLOAT, DOUBLE
def test_a_tiff_whose_strip_offsets_are_not_integers_is_refused_with_a_sentence(new_type):
    data = _retyped_tiff(273, new_type)   # found by the fuzzer: Pillow raised TypeError, not OSError
    with pytest.raises(SegError, match="truncated or damaged"):
        images.prepare_upload(data, "odd.tif")
    with pytest.raises(SegError, match="truncated or damaged"):
        masks.read_pixels(data, "odd.tif")


@fuzz(60)
@given(mutated())
def test_a_damaged_mask_reads_as_class_ids_or_is_refused_with_a_sentence(case):
    name, data = case
    try:
        px = masks.read_pixels(data, f"{name}.png")
    except SegError as exc:
        _check_sentence(exc)
        return
    assert (px.values is None) != (px.rgb is None)
    arr = px.values if px.values is not None else px.rgb
    assert arr.dtype == np.uint8 and arr.shape[:2] == (px.height, px.width)
    for classes in (binary_classes(), numbered_classes(3)):
        try:
            reading = masks.read_mask(data, classes, f"{name}.png", expected_size=px.size)
        except SegError as exc:
            _check_sentence(exc)
            continue
        assert reading.ids.dtype == np.uint8 and reading.ids.shape == (px.height, px.width)
        assert set(np.unique(reading.ids)) <= set(range(len(classes))) | {255}


@fuzz(20)
@given(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1))
def test_a_header_claiming_a_huge_image_is_refused_before_decoding(width, height):
    data = png_claiming(width, height)
    if width * height <= images.max_pixels():
        return  # a small claim with 4x4 pixels of data: damaged, checked by the fuzzers above
    for call in (lambda: images.prepare_upload(data, "bomb.png"), lambda: masks.read_pixels(data, "bomb.png")):
        with pytest.raises(SegError) as err:
            call()
        assert "the limit is" in str(err.value) or "too large" in str(err.value)


@pytest.mark.parametrize("make", [png_claiming, jpeg_claiming])
def test_a_20000x20000_image_is_refused_with_a_sentence_without_decoding(make):
    with pytest.raises(SegError, match=r"20000x20000 pixels \(400 megapixels\); the limit is 50 megapixels"):
        images.prepare_upload(make(20000, 20000), "huge.img")


def test_the_app_limit_is_below_pillows_bomb_guard():
    assert Image.MAX_IMAGE_PIXELS is None or images.DEFAULT_MAX_PIXELS <= Image.MAX_IMAGE_PIXELS


@fuzz(20)
@given(mutated())
def test_a_refused_upload_changes_nothing_in_the_project(tmp_path_factory, case):
    name, data = case
    project = new_project(tmp_path_factory.mktemp("fuzz") / "p")
    before = sorted(p.relative_to(project.path) for p in project.path.rglob("*") if "project.db" not in p.name)
    try:
        result = project.add_image(data, f"{name}.png")
    except SegError as exc:
        _check_sentence(exc)
        after = sorted(p.relative_to(project.path) for p in project.path.rglob("*") if "project.db" not in p.name)
        assert after == before and project.count_images() == 0
    else:
        assert result.status == "added" and project.count_images() == 1
        arr = project.load_image(result.image)
        assert arr.dtype == np.uint8 and arr.shape[:2] == (result.image.height, result.image.width)
    project.close()
