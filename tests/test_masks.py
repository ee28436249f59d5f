"""Mask import: each format the seed tutorials use, detected and converted to class ids; each refusal."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from helpers import box_mask, png_bytes
from seg_core import masks, viz
from seg_core.classes import IGNORE_ID, ClassSpec, binary_classes, default_classes
from seg_core.errors import InvalidMaskError

BIN = binary_classes()
THREE = [ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "leaf", (0, 200, 0)), ClassSpec(2, "spot", (200, 0, 0))]
SIZE = (32, 24)


def read(data, classes=BIN, **kw):
    return masks.read_mask(data, classes, "m.png", expected_size=SIZE, **kw)


def palette_png(ids, colors: dict[int, tuple[int, int, int]], fmt="PNG") -> bytes:
    im = Image.fromarray(ids.astype(np.uint8), "P")
    pal = [0] * 768
    for i, c in colors.items():
        pal[3 * i:3 * i + 3] = c
    im.putpalette(pal)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def test_class_id_png():
    ids = box_mask(value=2)
    r = read(png_bytes(ids), THREE)
    assert r.kind == "class-id PNG"
    np.testing.assert_array_equal(r.ids, ids)


def test_binary_0_255():
    r = read(png_bytes(box_mask(value=255)))
    assert r.kind == "binary 0/255" and "255 -> object" in r.detail
    np.testing.assert_array_equal(r.ids, box_mask(value=1))


def test_all_255_binary_mask_is_object_not_ignore():
    r = read(png_bytes(np.full((24, 32), 255, np.uint8)))
    assert r.kind == "binary 0/255" and (r.ids == 1).all()


@pytest.mark.parametrize("obj,bg", [((255, 0, 0), (0, 0, 255)), ((20, 20, 20), (250, 250, 200))])
def test_two_colour_rgb_background_is_the_border_colour(obj, bg):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:] = bg
    rgb[6:18, 8:24] = obj
    r = read(png_bytes(rgb))
    assert r.kind == "two-colour RGB"
    np.testing.assert_array_equal(r.ids, box_mask(value=1, box=(6, 8, 18, 24)))


def test_gif_mask_like_carvana():
    ids = box_mask(value=1)
    r = masks.read_mask(palette_png(ids, {0: (0, 0, 0), 1: (255, 255, 255)}, "GIF"), BIN, "car_mask.gif")
    assert r.kind == "GIF mask"
    np.testing.assert_array_equal(r.ids, ids)


def test_colour_coded_rgb_with_the_project_palette():
    ids = box_mask(value=1)
    ids[15:20, 20:30] = 2
    rgb = viz.colorize(ids, THREE)
    r = read(png_bytes(rgb), THREE)
    assert r.kind == "colour-coded RGB"
    np.testing.assert_array_equal(r.ids, ids)


@pytest.mark.parametrize("border,expected", [("ignore", IGNORE_ID), ("object", 1), ("background", 0), (1, 1)])
def test_oxford_pets_trimap(border, expected):
    tri = np.full((24, 32), 2, np.uint8)
    tri[4:20, 4:28] = 3
    tri[6:18, 6:26] = 1
    r = read(png_bytes(tri), trimap_border=border)
    assert r.kind == "Oxford-pets trimap"
    assert r.ids[0, 0] == 0 and r.ids[10, 10] == 1 and r.ids[4, 4] == expected


def test_palette_png_round_trip_and_foreign_index_order():
    ids = box_mask(value=2)
    ids[0, 0] = IGNORE_ID
    ours = masks.encode_png(ids, THREE)
    r = read(ours, THREE)
    assert r.kind == "palette PNG"
    np.testing.assert_array_equal(r.ids, ids)
    # Another tool stored spot (red) at index 1 and leaf (green) at index 7: colours decide.
    foreign = np.where(ids == 2, 1, np.where(ids == 1, 7, 0)).astype(np.uint8)
    r = read(palette_png(foreign, {0: (0, 0, 0), 1: (200, 0, 0), 7: (0, 200, 0)}), THREE)
    np.testing.assert_array_equal(r.ids[1:], np.where(ids == IGNORE_ID, 0, ids)[1:])


def test_wrong_size_lists_both_sizes():
    with pytest.raises(InvalidMaskError, match=r"30x20.*32x24"):
        read(png_bytes(np.zeros((20, 30), np.uint8)))


def test_unknown_colours_are_listed():
    rgb = viz.colorize(box_mask(value=1), THREE)
    rgb[0:3, 0:3] = (12, 34, 56)
    rgb[5, 5] = (255, 255, 0)
    with pytest.raises(InvalidMaskError, match=r"#0c2238 \(9 px\).*#ffff00 \(1 px\)") as exc:
        read(png_bytes(rgb), THREE)
    assert "leaf #00c800" in str(exc.value)


def test_values_outside_the_classes_are_listed():
    ids = box_mask(value=7)
    ids[0, 0] = 9
    with pytest.raises(InvalidMaskError, match="7, 9"):
        read(png_bytes(ids), THREE)


def test_jpeg_mask_gets_a_hint():
    rgb = viz.colorize(box_mask(value=1), THREE)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=80)
    with pytest.raises(InvalidMaskError, match="JPEG.*PNG"):
        read(buf.getvalue(), THREE)


def test_explicit_kinds_are_checked():
    with pytest.raises(InvalidMaskError, match="1 \\(object\\)"):
        read(png_bytes(box_mask(value=5)), kind="trimap")
    with pytest.raises(InvalidMaskError, match="Unknown mask format"):
        read(png_bytes(box_mask()), kind="weird")
    r = read(png_bytes(box_mask(value=1)), kind="binary")
    assert r.kind == "binary 0/1"


def pixels(data, name="m.png"):
    return masks.read_pixels(data, name)


def test_infer_classes_from_masks():
    assert masks.infer_classes([pixels(png_bytes(box_mask(value=255)))]).classes == BIN
    tri = np.full((8, 8), 2, np.uint8)
    tri[2:4, 2:4] = 3
    tri[3, 3] = 1
    assert masks.infer_classes([pixels(png_bytes(tri))]).kind == "Oxford-pets trimap"
    ids = np.arange(12, dtype=np.uint8).repeat(4).reshape(6, 8)
    assert len(masks.infer_classes([pixels(png_bytes(ids))]).classes) == 12
    rgb = viz.colorize(np.array([[0, 1], [2, 2]], np.uint8), THREE)
    inferred = masks.infer_classes([pixels(png_bytes(rgb))])
    assert [c.color for c in inferred.classes] == [(0, 0, 0), (200, 0, 0), (0, 200, 0)]
    pal = masks.infer_classes([pixels(palette_png(np.array([[0, 1, 2]]), {0: (0, 0, 0), 1: (9, 9, 200), 2: (9, 200, 9)}))])
    assert [c.color for c in pal.classes] == [(0, 0, 0), (9, 9, 200), (9, 200, 9)]
    voc = masks.infer_classes([pixels(png_bytes(np.array([[0, 1, 2, 255]], np.uint8)))])
    assert len(voc.classes) == 3 and "ignore" in voc.notes[0]


def test_infer_refuses_photo_like_masks():
    noisy = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    with pytest.raises(InvalidMaskError, match="JPEG"):
        masks.infer_classes([pixels(png_bytes(noisy))])


def test_validate_ids():
    good = box_mask(value=1)
    assert masks.validate_ids(good, BIN, SIZE) is not None
    with pytest.raises(InvalidMaskError, match="2-D"):
        masks.validate_ids(np.zeros((24, 32, 3)), BIN, SIZE)
    with pytest.raises(InvalidMaskError, match="32x24"):
        masks.validate_ids(np.zeros((5, 5), np.uint8), BIN, SIZE)
    with pytest.raises(InvalidMaskError, match="values 3"):
        masks.validate_ids(box_mask(value=3), BIN, SIZE)
    with pytest.raises(InvalidMaskError):
        masks.validate_ids(np.full((24, 32), 300), BIN, SIZE)


def test_colorize_and_counts():
    ids = np.array([[0, 1], [2, IGNORE_ID]], np.uint8)
    rgb = viz.colorize(ids, default_classes(["background", "a", "b"]))
    assert tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[1, 1]) == (128, 128, 128)
    assert masks.class_pixel_counts(ids) == {0: 1, 1: 1, 2: 1, 255: 1}
