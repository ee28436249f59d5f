"""Mask import: each format the seed tutorials use, detected and converted to class ids; each refusal.

Every mask is a real file written by the test with Pillow; the expected ids are built independently.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from helpers import box_mask, png_bytes
from seg_core.formats import masks
from seg_core.classes import (IGNORE_COLOR, IGNORE_ID, MAX_CLASSES, ClassSpec, binary_classes, default_classes,
                              validate_classes)
from seg_core.errors import InvalidMaskError

BIN = binary_classes()
THREE = [ClassSpec(0, "background", (0, 0, 0)), ClassSpec(1, "leaf", (0, 200, 0)), ClassSpec(2, "spot", (200, 0, 0))]
PETS = default_classes(["background", "cat", "dog"])  # the project's own default colours
SIZE = (32, 24)  # width, height


def read(data, classes=BIN, **kw):
    return masks.read_mask(data, classes, "m.png", expected_size=SIZE, **kw)


def paint(ids: np.ndarray, classes) -> np.ndarray:
    """An RGB mask: each class id painted in its class colour (the ignore id in the ignore grey)."""
    rgb = np.zeros(ids.shape + (3,), np.uint8)
    for c in classes:
        rgb[ids == c.id] = c.color
    rgb[ids == IGNORE_ID] = IGNORE_COLOR
    return rgb


def palette_png(ids, colors: dict[int, tuple[int, int, int]], fmt="PNG") -> bytes:
    im = Image.fromarray(np.asarray(ids, np.uint8), "P")
    pal = [0] * 768
    for i, c in colors.items():
        pal[3 * i:3 * i + 3] = c
    im.putpalette(pal)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def pixels(data, name="m.png"):
    return masks.read_pixels(data, name)


def three_class_ids() -> np.ndarray:
    ids = box_mask(value=1)
    ids[15:20, 20:30] = 2
    return ids


# ----- each import format ------------------------------------------------------------------------
def test_class_id_png():
    ids = three_class_ids()
    data = png_bytes(ids)
    assert Image.open(io.BytesIO(data)).mode == "L"
    r = read(data, THREE)
    assert r.kind == "class-id PNG" and r.detail == "class ids 0, 1, 2"
    assert r.ids.dtype == np.uint8
    np.testing.assert_array_equal(r.ids, ids)


def test_binary_0_255():
    r = read(png_bytes(box_mask(value=255)))
    assert r.kind == "binary 0/255" and "255 -> object" in r.detail
    np.testing.assert_array_equal(r.ids, box_mask(value=1))


def test_all_255_binary_mask_is_object_not_ignore():
    r = read(png_bytes(np.full((24, 32), 255, np.uint8)))
    assert r.kind == "binary 0/255" and (r.ids == 1).all()


@pytest.mark.parametrize("obj,bg", [
    ((255, 0, 0), (0, 0, 255)),      # red object on blue: the object is the brighter colour
    ((0, 0, 255), (255, 0, 0)),      # blue object on red: the object is the darker colour
    ((20, 20, 40), (250, 250, 200)),  # near-black object on cream
], ids=["red-on-blue", "blue-on-red", "dark-on-light"])
def test_two_colour_rgb_background_is_the_border_colour(obj, bg):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:] = bg
    rgb[6:18, 8:24] = obj  # not touching the border
    r = read(png_bytes(rgb))
    assert r.kind == "two-colour RGB"
    assert r.detail == "#{:02x}{:02x}{:02x} -> background, #{:02x}{:02x}{:02x} -> object".format(*bg, *obj)
    np.testing.assert_array_equal(r.ids, box_mask(value=1, box=(6, 8, 18, 24)))


def test_gif_mask_like_carvana():
    ids = box_mask(value=1)
    data = palette_png(ids, {0: (0, 0, 0), 1: (255, 255, 255)}, "GIF")
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "GIF" and im.mode == "P"
    r = masks.read_mask(data, BIN, "car_mask.gif", expected_size=SIZE)
    assert r.kind == "GIF mask"
    np.testing.assert_array_equal(r.ids, ids)


def test_colour_coded_rgb_with_the_project_class_colours():
    ids = three_class_ids()
    ids[0, 0] = IGNORE_ID  # the grey "ignore" colour is understood too
    r = read(png_bytes(paint(ids, PETS)), PETS)
    assert r.kind == "colour-coded RGB"
    np.testing.assert_array_equal(r.ids, ids)


def _trimap() -> np.ndarray:
    tri = np.full((24, 32), 2, np.uint8)  # 2 = background
    tri[4:20, 4:28] = 3                    # 3 = border
    tri[6:18, 6:26] = 1                    # 1 = object
    return tri


@pytest.mark.parametrize("border,classes,expected", [
    ("ignore", BIN, IGNORE_ID), ("object", BIN, 1), ("background", BIN, 0), (2, PETS, 2), ("1", BIN, 1),
], ids=["ignore", "object", "background", "class-2", "class-1-as-text"])
def test_oxford_pets_trimap(border, classes, expected):
    tri = _trimap()
    r = read(png_bytes(tri), classes, trimap_border=border)
    assert r.kind == "Oxford-pets trimap"
    want = np.where(tri == 1, 1, np.where(tri == 2, 0, expected)).astype(np.uint8)
    np.testing.assert_array_equal(r.ids, want)


def test_trimap_border_must_be_a_choice_or_a_class():
    with pytest.raises(InvalidMaskError, match="ignore, object, background"):
        read(png_bytes(_trimap()), trimap_border="edge")
    with pytest.raises(InvalidMaskError, match="class 5 is not one of this project's class ids 0..1"):
        read(png_bytes(_trimap()), trimap_border=5)


def test_palette_png_round_trip():
    ids = three_class_ids()
    ids[0, :3] = IGNORE_ID
    data = masks.encode_png(ids, THREE)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "P"
        pal = im.getpalette()
    assert pal[3:6] == [0, 200, 0] and pal[6:9] == [200, 0, 0] and pal[765:768] == list(IGNORE_COLOR)
    r = read(data, THREE)
    assert r.kind == "palette PNG" and r.detail == "indices mapped by palette colour"
    np.testing.assert_array_equal(r.ids, ids)


def test_palette_png_from_another_tool_is_mapped_by_colour():
    ids = three_class_ids()
    # The other tool stored spot (red) at index 1 and leaf (green) at index 7.
    foreign = np.select([ids == 2, ids == 1], [1, 7], 0).astype(np.uint8)
    r = read(palette_png(foreign, {0: (0, 0, 0), 1: (200, 0, 0), 7: (0, 200, 0)}), THREE)
    assert r.kind == "palette PNG"
    np.testing.assert_array_equal(r.ids, ids)


def test_palette_without_class_colours_falls_back_to_indices():
    ids = three_class_ids()
    r = read(palette_png(ids, {0: (1, 2, 3), 1: (4, 5, 6), 2: (7, 8, 9)}), THREE)
    assert r.kind == "palette PNG" and r.detail == "class ids 0, 1, 2"
    np.testing.assert_array_equal(r.ids, ids)


def test_explicit_binary_0_1():
    r = read(png_bytes(box_mask(value=1)), kind="binary")
    assert r.kind == "binary 0/1"
    np.testing.assert_array_equal(r.ids, box_mask(value=1))


# ----- refusals ----------------------------------------------------------------------------------
def test_wrong_size_lists_both_sizes():
    with pytest.raises(InvalidMaskError, match=r"30x20 pixels but its image is 32x24"):
        read(png_bytes(np.zeros((20, 30), np.uint8)))


def test_unknown_colours_are_listed():
    rgb = paint(box_mask(value=1), THREE)
    rgb[0:3, 0:3] = (12, 34, 56)
    rgb[5, 5] = (255, 255, 0)
    with pytest.raises(InvalidMaskError, match=r"#0c2238 \(9 px\).*#ffff00 \(1 px\)") as exc:
        read(png_bytes(rgb), THREE)
    assert "not classes of this project" in str(exc.value) and "leaf #00c800" in str(exc.value)


def test_values_outside_the_classes_are_listed():
    ids = box_mask(value=7)
    ids[0, 0] = 9
    with pytest.raises(InvalidMaskError, match=r"values 7, 9 that are not class ids 0..2"):
        read(png_bytes(ids), THREE)


def test_jpeg_colour_mask_gets_a_hint():
    buf = io.BytesIO()
    Image.fromarray(paint(three_class_ids(), THREE)).save(buf, "JPEG", quality=80)
    with pytest.raises(InvalidMaskError, match="JPEG compression changes a mask's colours; save masks as PNG"):
        read(buf.getvalue(), THREE)


def test_trimap_kind_on_other_values():
    with pytest.raises(InvalidMaskError, match=r"values 0, 5; a trimap holds only 1 \(object\), 2 \(background\)"):
        read(png_bytes(box_mask(value=5)), kind="trimap")


def test_unknown_kind():
    with pytest.raises(InvalidMaskError, match="Unknown mask format 'weird'; choose one of auto, ids"):
        read(png_bytes(box_mask()), kind="weird")


def test_colour_mask_with_a_single_channel_kind():
    with pytest.raises(InvalidMaskError, match="is a colour image"):
        read(png_bytes(paint(three_class_ids(), THREE)), THREE, kind="ids")


def test_16bit_mask_beyond_255_is_refused():
    buf = io.BytesIO()
    Image.fromarray(box_mask(value=2).astype(np.uint16) * 300).save(buf, "PNG")
    with pytest.raises(InvalidMaskError, match="from 0 to 600; class ids must be whole numbers from 0 to 255"):
        read(buf.getvalue(), THREE)


@pytest.mark.parametrize("data,words", [(b"", "empty"), (b"not a picture", "not a mask Maskloop can read")])
def test_unreadable_mask_files(data, words):
    with pytest.raises(InvalidMaskError, match=words):
        read(data)


# ----- infer_classes -----------------------------------------------------------------------------
def test_infer_binary_from_0_255():
    inf = masks.infer_classes([pixels(png_bytes(box_mask(value=255)))])
    assert inf.kind == "binary 0/255" and inf.classes == BIN


def test_infer_binary_from_trimap():
    inf = masks.infer_classes([pixels(png_bytes(_trimap()))])
    assert inf.kind == "Oxford-pets trimap" and inf.classes == BIN


def test_infer_twelve_classes_from_ids():
    ids = np.arange(12, dtype=np.uint8).repeat(4).reshape(6, 8)
    inf = masks.infer_classes([pixels(png_bytes(ids))])
    assert inf.kind == "class ids" and [c.id for c in inf.classes] == list(range(12))
    assert inf.classes[0].name == "background" and inf.classes[11].name == "class 11"
    validate_classes(inf.classes)


def test_infer_colour_masks_puts_black_first():
    ids = np.array([[1, 1, 1], [2, 2, 0]], np.uint8)  # black is the least frequent colour
    inf = masks.infer_classes([pixels(png_bytes(paint(ids, THREE)))])
    assert inf.kind == "colour-coded RGB"
    assert [c.color for c in inf.classes] == [(0, 0, 0), (0, 200, 0), (200, 0, 0)]
    assert inf.classes[0].name == "background"


def test_infer_colour_masks_never_makes_the_ignore_grey_a_class():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:] = IGNORE_COLOR  # mostly unlabelled, and no black at all
    rgb[0, 0], rgb[0, 1], rgb[1, 1] = (200, 0, 0), (0, 200, 0), (0, 200, 0)
    inf = masks.infer_classes([pixels(png_bytes(rgb))])
    assert IGNORE_COLOR not in [c.color for c in inf.classes]
    assert [c.color for c in inf.classes] == [(0, 200, 0), (200, 0, 0)]
    validate_classes(inf.classes)


def test_infer_keeps_palette_colours():
    data = palette_png(np.array([[0, 1, 2]]), {0: (0, 0, 0), 1: (9, 9, 200), 2: (9, 200, 9)})
    inf = masks.infer_classes([pixels(data)])
    assert inf.kind == "class ids"
    assert [c.color for c in inf.classes] == [(0, 0, 0), (9, 9, 200), (9, 200, 9)]


def test_infer_refuses_more_than_64_colours():
    noisy = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    with pytest.raises(InvalidMaskError, match=r"different colours.*masks saved as JPEG"):
        masks.infer_classes([pixels(png_bytes(noisy))])
    few = paint(np.arange(64, dtype=np.uint8).reshape(8, 8) % 3, THREE)
    assert len(masks.infer_classes([pixels(png_bytes(few))]).classes) == 3


def test_infer_reads_255_beside_other_ids_as_ignore():
    inf = masks.infer_classes([pixels(png_bytes(np.array([[0, 1, 2, 255]], np.uint8)))])
    assert inf.kind == "class ids" and len(inf.classes) == 3
    assert inf.notes and "255" in inf.notes[0] and "ignore" in inf.notes[0]


def test_infer_object_and_ignore_only_is_not_256_classes():
    # A crop that is all object plus an unlabelled edge: 255 must not become class 255 of 256.
    inf = masks.infer_classes([pixels(png_bytes(np.array([[1, 1, 255]], np.uint8)))])
    assert len(inf.classes) == 2 and "ignore" in inf.notes[0]
    assert len(inf.classes) <= MAX_CLASSES
    validate_classes(inf.classes)


def test_infer_without_masks_is_binary():
    inf = masks.infer_classes([])
    assert inf.kind == "none" and inf.classes == BIN


# ----- stored masks: encode_png / load_png / validate_ids / counts --------------------------------
def test_encode_and_load_png(tmp_path):
    ids = three_class_ids()
    ids[1, 1] = IGNORE_ID
    p = tmp_path / "m.png"
    p.write_bytes(masks.encode_png(ids, THREE))
    out = masks.load_png(p)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, ids)
    (tmp_path / "l.png").write_bytes(png_bytes(ids))
    np.testing.assert_array_equal(masks.load_png(tmp_path / "l.png"), ids)
    (tmp_path / "rgb.png").write_bytes(png_bytes(paint(ids, THREE)))
    with pytest.raises(InvalidMaskError, match="not a palette PNG"):
        masks.load_png(tmp_path / "rgb.png")


def test_validate_ids_accepts_a_correct_mask():
    good = box_mask(value=1)
    good[0, 0] = IGNORE_ID
    out = masks.validate_ids(good.astype(np.int64), BIN, SIZE)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, good)


def test_validate_ids_refusals():
    with pytest.raises(InvalidMaskError, match="2-D array"):
        masks.validate_ids(np.zeros((24, 32, 3), np.uint8), BIN, SIZE)
    with pytest.raises(InvalidMaskError, match="5x4 pixels but its image is 32x24"):
        masks.validate_ids(np.zeros((4, 5), np.uint8), BIN, SIZE)
    with pytest.raises(InvalidMaskError, match="32x24"):
        masks.validate_ids(np.zeros((32, 24), np.uint8), BIN, SIZE)  # transposed
    with pytest.raises(InvalidMaskError, match=r"values 3 but the project's classes are 0..1"):
        masks.validate_ids(box_mask(value=3), BIN, SIZE)
    with pytest.raises(InvalidMaskError, match="0 to 255"):
        masks.validate_ids(np.full((24, 32), 300), BIN, SIZE)
    with pytest.raises(InvalidMaskError, match="0 to 255"):
        masks.validate_ids(np.full((24, 32), -1), BIN, SIZE)


def test_class_pixel_counts():
    ids = np.array([[0, 1, 1], [2, IGNORE_ID, 0]], np.uint8)
    assert masks.class_pixel_counts(ids) == {0: 2, 1: 2, 2: 1, 255: 1}


def test_values_that_are_not_class_ids_can_be_mapped():
    from seg_core.errors import UnknownMaskValuesError

    classes = binary_classes("pet")
    pets = np.array([[0, 1, 2], [255, 1, 2]], np.uint8)          # Oxford pets: 1 cat, 2 dog, 255 border
    data = png_bytes(pets)
    with pytest.raises(UnknownMaskValuesError, match="--map 2=pet") as refused:
        masks.read_mask(data, classes, "cat.png")
    assert refused.value.values == (0, 1, 2, 255) and "--mask-format nonzero" in str(refused.value)
    mapping = masks.parse_value_map("1=1, 2=pet, 255=ignore", classes)
    assert mapping == {1: 1, 2: 1, 255: IGNORE_ID}
    reading = masks.read_mask(data, classes, "cat.png", value_map=mapping)
    assert reading.ids.tolist() == [[0, 1, 1], [IGNORE_ID, 1, 1]] and "2 -> pet" in reading.detail
    assert masks.read_mask(data, classes, "cat.png", kind="nonzero").ids.tolist() == [[0, 1, 1], [1, 1, 1]]
    with pytest.raises(UnknownMaskValuesError, match="does not name") as partial:
        masks.read_mask(data, classes, "cat.png", value_map={1: 1})
    assert partial.value.values == (2,)
    for bad in ("1", "x=1", "300=1", "1=dog"):
        with pytest.raises(InvalidMaskError):
            masks.parse_value_map(bad, classes)
    with pytest.raises(InvalidMaskError, match="two classes"):
        masks.read_mask(data, default_classes(["background", "cat", "dog"]), "cat.png", kind="nonzero")
