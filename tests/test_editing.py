"""Painting on the canvas: stroke compositing, canvas views and zoom, fills, the legend, the gallery."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from helpers import box_mask, edit_class, photo, png_bytes
from seg_core.services import editing, gallery
from seg_core.classes import ClassSpec, default_classes
from seg_core.errors import InvalidMaskError
from seg_core.store.workspace import new_project

CLASSES = default_classes(["background", "leaf", "spot"])  # black, (230,25,75), (60,180,75)


def canvas_strokes(w: int, h: int, draw_fn, supersample: int = 4) -> np.ndarray:
    """RGBA strokes with anti-aliased edges, as a browser canvas makes them (drawn large, scaled down)."""
    big = Image.new("RGBA", (w * supersample, h * supersample), (0, 0, 0, 0))
    draw_fn(ImageDraw.Draw(big), supersample)
    small = big.resize((w, h), Image.LANCZOS)
    arr = np.asarray(small).copy()
    arr[arr[..., 3] == 0] = 0  # unpainted pixels are (0,0,0,0) in image_data
    return arr


def rgba(cls: ClassSpec, alpha: int = 255) -> tuple[int, int, int, int]:
    return (*cls.color, alpha)


def test_stroke_paints_its_class_and_antialiased_edges_snap_or_stay_out():
    strokes = canvas_strokes(40, 30, lambda d, s: d.ellipse((10 * s, 5 * s, 30 * s, 25 * s), fill=rgba(CLASSES[1])))
    partial = (strokes[..., 3] > 0) & (strokes[..., 3] < 255)
    assert partial.sum() > 10  # the test really has soft edges
    out = editing.apply_strokes(np.zeros((30, 40), np.uint8), strokes, CLASSES)
    assert set(np.unique(out)) == {0, 1}
    assert (out == 1).sum() == (strokes[..., 3] >= 128).sum()
    assert out[15, 20] == 1 and out[0, 0] == 0


def test_every_class_and_erase_with_background():
    base = np.full((20, 30), 2, np.uint8)  # all "spot"
    strokes = np.zeros((20, 30, 4), np.uint8)
    strokes[0:5, :] = rgba(CLASSES[0])        # background erases
    strokes[5:10, :] = rgba(CLASSES[1])
    strokes[10:15, :] = rgba(CLASSES[2])
    out = editing.apply_strokes(base, strokes, CLASSES)
    assert (out[0:5] == 0).all() and (out[5:10] == 1).all() and (out[10:20] == 2).all()
    assert (base == 2).all()  # the input mask is left as it was


def test_blended_colours_snap_to_the_nearest_class():
    strokes = np.zeros((2, 3, 4), np.uint8)
    strokes[0, 0] = (200, 40, 80, 200)    # near leaf red
    strokes[0, 1] = (70, 170, 90, 255)    # near spot green
    strokes[0, 2] = (20, 10, 15, 255)     # near black
    out = editing.apply_strokes(np.full((2, 3), 1, np.uint8), strokes, CLASSES)
    assert out[0].tolist() == [1, 2, 0]
    assert out[1].tolist() == [1, 1, 1]


def test_semi_transparent_strokes_use_a_threshold_relative_to_their_opacity():
    strokes = np.zeros((1, 3, 4), np.uint8)
    strokes[0, :] = (*CLASSES[1].color, 0)
    strokes[0, 0, 3] = 153   # the stroke's own 0.6 opacity
    strokes[0, 1, 3] = 80    # an anti-aliased edge above half of it
    strokes[0, 2, 3] = 60    # below half of it
    out = editing.apply_strokes(np.zeros((1, 3), np.uint8), strokes, CLASSES, stroke_alpha=0.6)
    assert out[0].tolist() == [1, 1, 0]
    # Taken as fully opaque strokes, only the 153 pixel passes 128.
    assert editing.apply_strokes(np.zeros((1, 3), np.uint8), strokes, CLASSES)[0].tolist() == [1, 0, 0]


def test_strokes_are_scaled_back_to_the_image_size_with_nearest_neighbour():
    base = np.zeros((300, 400), np.uint8)   # the canvas shows it at 200x150
    strokes = np.zeros((150, 200, 4), np.uint8)
    strokes[50:100, 20:60] = rgba(CLASSES[2])
    out = editing.apply_strokes(base, strokes, CLASSES)
    assert out.shape == (300, 400)
    ys, xs = np.nonzero(out == 2)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (100, 199, 40, 119)
    assert set(np.unique(out)) == {0, 2}


def test_strokes_on_a_zoomed_region_land_only_in_that_region():
    base = np.ones((1500, 2000), np.uint8)
    view = editing.view_for(2000, 1500, zoom=8, center=(0.25, 0.75))
    assert (view.x1 - view.x0, view.y1 - view.y0) == (250, 188)
    hit = np.zeros((view.canvas_h, view.canvas_w), bool)
    hit[:, :3] = True                   # a thin line at the left edge of the canvas
    out = editing.paint_hits(base, hit, 2, view)
    changed = np.argwhere(out != base)
    assert changed[:, 1].min() == view.x0 and changed[:, 1].max() < view.x0 + 2   # about one image pixel wide
    assert changed[:, 0].min() == view.y0 and changed[:, 0].max() == view.y1 - 1


def test_bad_strokes_and_regions_are_refused():
    base = np.zeros((10, 10), np.uint8)
    with pytest.raises(InvalidMaskError, match="RGBA"):
        editing.apply_strokes(base, np.zeros((10, 10, 3), np.uint8), CLASSES)
    with pytest.raises(InvalidMaskError, match="outside"):
        editing.apply_strokes(base, np.zeros((5, 5, 4), np.uint8), CLASSES, region=(5, 5, 12, 10))


def test_view_for_keeps_aspect_fits_canvas_and_clamps_the_centre():
    v = editing.view_for(2000, 1500)
    assert v.region == (0, 0, 2000, 1500) and (v.canvas_w, v.canvas_h) == (round(2000 * editing.MAX_CANVAS_H / 1500), editing.MAX_CANVAS_H)
    small = editing.view_for(64, 48)
    assert small.region == (0, 0, 64, 48) and small.scale > 10
    corner = editing.view_for(2000, 1500, zoom=4, center=(1.0, 0.0))
    assert corner.region == (1500, 0, 2000, 375)
    assert editing.max_zoom(2000, 1500) == 16 and editing.max_zoom(100, 80) == 2 and editing.max_zoom(40, 40) == 1


def test_background_is_a_jpeg_of_the_region_at_canvas_size():
    image = photo(120, 160, seed=3)
    ids = box_mask(120, 160, 1, (0, 0, 60, 80))
    view = editing.view_for(160, 120, zoom=2, center=(0.0, 0.0), max_w=300, max_h=300)
    data = editing.background(image, ids, CLASSES, view, opacity=1.0)
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.size == (view.canvas_w, view.canvas_h)
    # The whole zoomed region is the leaf box, fully opaque: the picture is the leaf colour.
    assert np.abs(np.asarray(im, np.int32).mean(axis=(0, 1)) - CLASSES[1].color).max() < 12
    hidden = np.asarray(Image.open(io.BytesIO(editing.background(image, ids, CLASSES, view, 1.0, show_mask=False))))
    assert np.abs(hidden.astype(int).mean(axis=(0, 1)) - CLASSES[1].color).max() > 30


def test_fill_region_fills_up_to_the_outline_and_not_past_a_corner_gap():
    ids = np.zeros((40, 50), np.uint8)
    ids[5:30, 5:30] = 1
    ids[8:27, 8:27] = 0                                  # a leaf outline, 3 px wide
    ids[12:16, 12:16] = 2                                # a spot inside it stays a spot
    filled, n = editing.fill_region(ids, (20, 20), 1)
    assert n == 19 * 19 - 16 and (filled[8:27, 8:27] != 0).all() and (filled[12:16, 12:16] == 2).all()
    assert (filled[:5] == 0).all() and ids[20, 20] == 0  # outside untouched; the input is kept
    assert editing.fill_region(ids, (6, 6), 1)[1] == 0   # clicking the class itself changes nothing
    diagonal = np.zeros((10, 10), np.uint8)
    diagonal[np.arange(10), np.arange(10)] = 1           # a line that only touches itself at corners
    assert editing.fill_region(diagonal, (0, 9), 2)[1] == 45   # one side of it, not both
    with pytest.raises(InvalidMaskError):
        editing.fill_region(ids, (50, 0), 1)


def test_fill_holes_fills_enclosed_background_only():
    ids = np.zeros((40, 50), np.uint8)
    ids[5:30, 5:30] = 1
    ids[10:13, 10:13] = 0                                # two holes, 9 and 4 px
    ids[20:22, 20:22] = 0
    ids[15:18, 15:18] = 2                                # another class inside stays
    ids[0:3, 40:50] = 1
    ids[0:2, 44:46] = 0                                  # a notch open to the image edge: not a hole
    out, holes, pixels = editing.fill_holes(ids, 1)
    assert (holes, pixels) == (2, 13)
    assert (out[10:13, 10:13] == 1).all() and (out[15:18, 15:18] == 2).all() and (out[0:2, 44:46] == 0).all()
    assert editing.fill_holes(out, 1)[1:] == (0, 0)
    with pytest.raises(InvalidMaskError):
        editing.fill_holes(ids, 0)


def test_canvas_points_map_to_image_pixels():
    view = editing.view_for(2000, 1500, 4, (0.25, 0.5))   # a 500x375 region on a 747x560 canvas
    assert editing.to_image(view, 0, 0) == (view.x0, view.y0)
    assert editing.to_image(view, view.canvas_w - 0.1, view.canvas_h - 0.1) == (view.x1 - 1, view.y1 - 1)
    assert editing.to_image(view, 10_000, -5) == (view.x1 - 1, view.y0)
    # The point tool's circle: left edge at the click minus radius and half the stroke; centre row at top.
    assert editing.click_point({"left": 95.5, "top": 40, "radius": 4, "strokeWidth": 1}) == (100.0, 40.0)


def test_canvas_strokes_decode_the_components_png():
    strokes = np.zeros((6, 8, 4), np.uint8)
    strokes[2:4, 3:5] = (230, 25, 75, 153)
    url = "data:image/png;base64," + __import__("base64").b64encode(png_bytes(strokes, "RGBA")).decode()
    assert np.array_equal(editing.canvas_strokes(url), strokes)
    assert editing.canvas_strokes(None) is None and editing.canvas_strokes("") is None


def test_background_outlines_classes_in_black_and_white():
    image = np.full((60, 80, 3), (250, 150, 160), np.uint8)          # pink, like the sofa
    ids = np.zeros((60, 80), np.uint8)
    ids[20:40, 20:60] = 1
    view = editing.view_for(80, 60, 1, max_w=80, max_h=60)
    plain = np.asarray(Image.open(io.BytesIO(editing.background(image, ids, CLASSES, view, 0.45, outline=False,
                                                                quality=100))))
    lined = np.asarray(Image.open(io.BytesIO(editing.background(image, ids, CLASSES, view, 0.45, quality=100))))
    edge = lined[19:21, 20:60].reshape(-1, 3).astype(int)
    assert (edge.sum(axis=1) < 120).any() and (edge.sum(axis=1) > 650).any()   # dark and light dashes
    assert np.abs(lined[30, 40].astype(int) - plain[30, 40].astype(int)).max() <= 3   # the inside is as before


def test_class_areas_and_legend():
    ids = np.zeros((10, 10), np.uint8)
    ids[:2] = 1
    ids[9, 9] = 255
    rows = editing.class_areas(ids, CLASSES)
    assert [(r["name"], r["pixels"]) for r in rows] == [("background", 79), ("leaf", 20), ("spot", 0), ("ignore", 1)]
    assert rows[1]["percent"] == 20.0
    assert "#e6194b" in editing.legend_html(CLASSES) and "leaf" in editing.legend_html(CLASSES)
    assert "&lt;b&gt;" in editing.legend_html([ClassSpec(0, "<b>", (0, 0, 0))])


def test_gallery_pages_filters_and_thumbnails(tmp_path):
    p = new_project(tmp_path / "g", CLASSES)
    for i in range(30):
        p.add_image(png_bytes(photo(24, 32, seed=100 + i)), f"{'cat' if i % 2 else 'dog'}_{i}.png")
    p.masks.save(1, box_mask(24, 32, 1), 0)
    first = gallery.page(p, per_page=24)
    assert (first.total, first.pages, len(first.records)) == (30, 2, 24)
    last = gallery.page(p, page_no=5, per_page=24)
    assert last.page == 1 and len(last.records) == 6
    assert gallery.page(p, status="labeled").total == 1
    assert gallery.page(p, search="cat").total == 15
    assert gallery.page(p, status="unlabeled", search="dog_").total == 14
    rec = p.image(1)
    data = gallery.thumbnail(p, rec)
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    assert gallery.thumbnail_path(p, rec).exists()
    # A new mask version or a recoloured class makes a new thumbnail.
    edit_class(p, 1, color="#0000ff")
    assert not gallery.thumbnail_path(p, p.image(1)).exists()
    assert gallery.caption(rec, {1}, {1}) == "dog_0.png · labeled · train · has prediction · unsaved strokes"


def test_box_object_makes_the_class_inside_the_box_the_object_found():
    ids = np.zeros((20, 20), np.uint8)
    ids[1:4, 1:4] = 1            # the class where the object is not (a model's guess), inside the box
    ids[16:19, 16:19] = 1        # the class outside the box
    ids[10:12, 1:3] = 2          # another class inside the box
    inside = np.zeros((20, 20), bool)
    inside[6:12, 6:12] = True
    out = editing.box_object(ids, inside, 1, (0, 0, 14, 14))
    assert (out[1:4, 1:4] == 0).all() and (out[6:12, 6:12] == 1).all()
    assert (out[16:19, 16:19] == 1).all() and (out[10:12, 1:3] == 2).all()
    assert (ids[1:4, 1:4] == 1).all()    # the mask given is left as it was


def test_gallery_thumbnail_outlines_a_mask_on_a_photo_of_its_colour(tmp_path):
    from seg_core.classes import binary_classes

    p = new_project(tmp_path / "pets", binary_classes("pet"))   # the default pet colour: a crimson
    red = np.zeros((300, 400, 3), np.uint8)
    red[...] = (210, 25, 45)
    rec = p.add_image(png_bytes(red), "sofa.png").image
    p.masks.save(rec.id, box_mask(300, 400, 1, box=(60, 80, 240, 320)), 0)
    thumb = np.asarray(Image.open(io.BytesIO(gallery.thumbnail(p, p.image(rec.id)))).convert("RGB"))
    assert (thumb.max(axis=2) < 50).sum() > 40 and (thumb.min(axis=2) > 205).sum() > 40   # black and white dashes
