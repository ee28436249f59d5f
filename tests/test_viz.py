"""Overlays and colourised masks."""

from __future__ import annotations

import numpy as np
import pytest

from seg_core import viz
from seg_core.classes import IGNORE_ID, default_classes

CLASSES = default_classes(["background", "a", "b"])


def test_overlay_blends_class_colour_and_leaves_background_clear():
    img = np.full((4, 4), 100, np.uint8)
    ids = np.zeros((4, 4), np.uint8)
    ids[0, 0], ids[1, 1], ids[2, 2] = 1, 2, IGNORE_ID
    out = viz.overlay(img, ids, CLASSES, alpha=0.5)
    assert out.shape == (4, 4, 3)
    assert tuple(out[3, 3]) == (100, 100, 100) and tuple(out[2, 2]) == (100, 100, 100)
    expected = np.round((np.array([100, 100, 100]) + np.array(CLASSES[1].color)) / 2)
    assert np.abs(out[0, 0].astype(int) - expected).max() <= 1   # integer blending, to 1/256
    hidden = viz.overlay(img, ids, CLASSES, alpha=0.5, hidden=(0, 1))
    assert tuple(hidden[0, 0]) == (100, 100, 100) and tuple(hidden[1, 1]) != (100, 100, 100)


def test_overlay_without_mask_and_size_mismatch():
    img = np.zeros((4, 5, 3), np.uint8)
    assert np.array_equal(viz.overlay(img, None, CLASSES), img)
    with pytest.raises(ValueError):
        viz.overlay(img, np.zeros((4, 4), np.uint8), CLASSES)


def test_thumbnail_keeps_aspect():
    assert viz.thumbnail(np.zeros((100, 400, 3), np.uint8), 200).shape == (50, 200, 3)


def _png(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _near(rgb: np.ndarray, color) -> np.ndarray:
    return (np.abs(rgb.astype(int) - np.asarray(color)).sum(axis=-1) <= 12)


def test_heatmap_png_has_the_values_and_a_colour_bar_on_the_right():
    from matplotlib import colormaps

    cmap = colormaps[viz.HEATMAP_CMAP]
    low, mid, high = ((np.array(cmap(v)[:3]) * 255).round() for v in (0.0, 0.5, 1.0))
    rgb = _png(viz.heatmap_png(np.full((60, 80), 0.5, np.float32), "probability of 'cell'"))
    h, w, _ = rgb.shape
    assert w > 300 and h > 150
    # A constant 0.5 fills the picture with the middle colour; the ends of the scale exist only in the colour bar.
    assert _near(rgb[:, : w // 2], mid).mean() > 0.5
    assert not _near(rgb[:, : w // 2], low).any() and not _near(rgb[:, : w // 2], high).any()
    bar = rgb[:, int(w * 0.75):]
    assert _near(bar, low).sum() > 20 and _near(bar, high).sum() > 20
    low_rows, high_rows = np.nonzero(_near(bar, low))[0], np.nonzero(_near(bar, high))[0]
    assert high_rows.mean() < low_rows.mean()   # 1 at the top of the bar, 0 at the bottom


def test_heatmap_figure_labels_its_colour_bar_and_shows_large_images_downsampled():
    values = np.linspace(0, 1, 2000 * 1500, dtype=np.float32).reshape(1500, 2000)
    fig = viz.heatmap_figure(values, "confidence")
    image_ax, bar_ax = fig.axes
    assert bar_ax.get_ylabel() == "confidence"
    shown = image_ax.images[0].get_array()
    assert max(shown.shape) <= viz.MAX_HEATMAP_SIDE and image_ax.images[0].get_extent() == [0, 2000, 1500, 0]


def test_row_normalised_confusion_matrix_against_a_hand_computed_case():
    from seg_core.ml import losses as L

    truth = np.array([[0, 0, 0, 0], [1, 1, 2, 2]], np.uint8)
    pred = np.array([[0, 0, 0, 1], [1, 0, 2, 2]], np.uint8)
    cm = L.confusion_matrix(truth, pred, 4)   # class 3 never occurs
    assert cm.tolist() == [[3, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert viz.row_normalised(cm).tolist() == [[0.75, 0.25, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    fig = viz.confusion_matrix_figure(cm, ["background", "a", "b", "c"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts][:4] == ["75%", "25%", "0%", "0%"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["background", "a", "b", "c"]
    assert ax.get_ylabel() == "mask says" and ax.get_xlabel() == "model says"
    rgb = _png(viz.confusion_matrix_png(cm, ["background", "a", "b", "c"]))
    assert rgb.shape[0] > 200 and rgb.shape[1] > 200


def test_disagreement_marks_only_the_wrong_pixels():
    img = np.full((2, 3), 100, np.uint8)
    truth = np.array([[0, 1, IGNORE_ID], [1, 1, 0]], np.uint8)
    pred = np.array([[1, 1, 0], [1, 0, 0]], np.uint8)
    out = viz.disagreement(img, truth, pred, alpha=1.0)
    wrong = [(0, 0), (1, 1)]
    for y in range(2):
        for x in range(3):
            assert tuple(out[y, x]) == ((255, 0, 255) if (y, x) in wrong else (60, 60, 60))


def test_png_bytes_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(_png(viz.png_bytes(rgb)), rgb)


def test_long_class_names_fit_the_confusion_matrix_axes():
    name = "a very long class name that goes on and on"
    assert viz.axis_label("leaf") == "leaf"
    label = viz.axis_label(name)
    assert label.count("\n") == 1 and all(len(line) <= 14 for line in label.split("\n")) and label.endswith("…")
    fig = viz.confusion_matrix_figure(np.eye(3, dtype=int), ["background", name, "spot"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][1] == label


def test_outlined_marks_both_sides_of_every_class_edge():
    rgb = np.full((10, 12, 3), 128, np.uint8)
    ids = np.zeros((10, 12), np.uint8)
    ids[3:7, 4:9] = 2
    out = viz.outlined(rgb, ids, dash=2)
    changed = (out != 128).any(axis=2)
    assert changed[3, 5] and changed[2, 5] and changed[5, 3] and not changed[5, 6] and not changed[0, 0]
    assert set(np.unique(out[changed])) <= {0, 255} and {0, 255} <= set(np.unique(out[changed]))
    assert (rgb == 128).all()
    with pytest.raises(ValueError):
        viz.outlined(rgb, ids[:5])


def test_fit_for_display_shrinks_large_images_and_their_masks_only():
    image = np.zeros((4000, 6000, 3), np.uint8)
    ids = np.zeros((4000, 6000), np.uint8)
    ids[:, 3000:] = 1
    small, small_ids, nothing = viz.fit_for_display(image, ids, None, max_side=1500)
    assert small.shape == (1000, 1500, 3) and small_ids.shape == (1000, 1500) and nothing is None
    assert set(np.unique(small_ids)) == {0, 1} and small_ids[:, 749].max() == 0 and small_ids[:, 751].min() == 1
    tiny = np.zeros((30, 40, 3), np.uint8)
    assert viz.fit_for_display(tiny, None)[0] is tiny


def _red_sofa_with_a_pet(h: int, w: int):
    """A red photo and a 'pet' in the default pet colour (a crimson): the colour alone hardly shows on it."""
    from seg_core.classes import binary_classes

    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[...] = (210, 25, 45)
    ids = np.zeros((h, w), np.uint8)
    ids[h // 4:3 * h // 4, w // 4:3 * w // 4] = 1
    return rgb, ids, binary_classes("pet")


def _dashed(out: np.ndarray) -> tuple[int, int]:
    return int((out.max(axis=2) < 30).sum()), int((out.min(axis=2) > 225).sum())


def test_overlay_outlines_the_classes_shown_on_request_only():
    rgb, ids, classes = _red_sofa_with_a_pet(40, 60)
    classes = [*classes, classes[1].__class__(2, "toy", (0, 200, 0))]
    ids[2:6, 2:6] = 2
    plain = viz.overlay(rgb, ids, classes)
    assert np.array_equal(plain, viz.overlay(rgb, ids, classes, outline=False)) and _dashed(plain) == (0, 0)
    out = viz.overlay(rgb, ids, classes, outline=True)
    dark, light = _dashed(out)
    assert dark > 20 and light > 20
    assert np.array_equal(out, viz.outlined(plain, ids))   # the one outline, as Annotate draws it
    # A hidden class is neither tinted nor outlined.
    hidden = viz.overlay(rgb, ids, classes, outline=True, hidden=(0, 2))
    assert np.array_equal(hidden[1:7, 1:7], rgb[1:7, 1:7])
    tinted = viz.overlay(rgb, ids, classes, hidden=(0, 2))
    assert np.array_equal(hidden, viz.outlined(tinted, np.where(ids == 2, 0, ids)))


def test_a_thumbnail_outlines_its_mask_at_the_size_shown():
    rgb, ids, classes = _red_sofa_with_a_pet(1200, 1600)
    thumb = viz.overlay_thumbnail(rgb, ids, classes, max_side=192)
    assert thumb.shape == (144, 192, 3)
    dark, light = _dashed(thumb)
    assert dark > 40 and light > 40   # drawn after shrinking: a full-size outline would fade away
    plain = viz.overlay_thumbnail(rgb, ids, classes, max_side=192, outline=False)
    assert _dashed(plain) == (0, 0)
