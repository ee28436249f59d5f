"""Pictures for people: masks blended over images, colourised masks, thumbnails, heat maps and figures."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from seg_core.classes import IGNORE_ID, ClassSpec, palette_bytes
from seg_core.formats.images import to_rgb


def overlay(image: np.ndarray, ids: np.ndarray | None, classes: Sequence[ClassSpec], alpha: float = 0.5,
            hidden: Sequence[int] = (0,), outline: bool = False) -> np.ndarray:
    """The image with each class's colour blended in; background (and `hidden` ids) left clear. With `outline`,
    the edges of the classes shown are dashed in black and white too (see `outlined`).

    Integer blending through per-class tables (rounded to 1/256): a large photo's overlay in a fraction of the time
    that floats take.
    """
    rgb = to_rgb(np.asarray(image))
    if ids is None or alpha <= 0:
        return np.array(rgb, np.uint8, copy=True)
    if ids.shape != rgb.shape[:2]:
        raise ValueError(f"mask {ids.shape} and image {rgb.shape[:2]} differ in size")
    weight = np.full(256, round(min(float(alpha), 1.0) * 256), np.uint16)
    weight[[int(h) for h in hidden if 0 <= int(h) < 256]] = 0
    weight[IGNORE_ID] = 0
    tinted = np.asarray(palette_bytes(classes), np.uint16).reshape(256, 3) * weight[:, None] + 128
    w = weight[ids][..., None]
    out = ((rgb.astype(np.uint16) * (256 - w) + tinted[ids]) >> 8).astype(np.uint8)
    if not outline:
        return out
    as_background = np.arange(256, dtype=np.uint8)   # a hidden class gets no outline of its own
    as_background[[int(h) for h in hidden if 0 <= int(h) < 256 and int(h) != IGNORE_ID]] = 0
    return outlined(out, as_background[ids])


def fit_for_display(image: np.ndarray, *masks: np.ndarray | None, max_side: int = 1600):
    """A copy of a large image (and its masks, nearest neighbour) no wider or taller than `max_side`, for the
    screen: a browser shows a 6000x4000 photo in a 700 px column anyway. Small images come back as they are."""
    h, w = np.asarray(image).shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return (image, *masks)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(np.asarray(image)).resize(size, Image.BILINEAR, reducing_gap=2.0))
    return (small, *(None if m is None else np.asarray(Image.fromarray(np.asarray(m)).resize(size, Image.NEAREST))
                     for m in masks))


def outlined(rgb: np.ndarray, ids: np.ndarray, dash: int = 4) -> np.ndarray:
    """`rgb` with every edge between two classes drawn as a black-and-white dashed line, 2 px wide: a class stays
    visible on a background of its own hue (a crimson class on a pink sofa)."""
    if ids.shape != rgb.shape[:2]:
        raise ValueError(f"mask {ids.shape} and image {rgb.shape[:2]} differ in size")
    edge = np.zeros(ids.shape, bool)
    rows, cols = ids[1:] != ids[:-1], ids[:, 1:] != ids[:, :-1]
    edge[1:] |= rows
    edge[:-1] |= rows
    edge[:, 1:] |= cols
    edge[:, :-1] |= cols
    out = np.array(rgb, np.uint8, copy=True)
    yy, xx = np.nonzero(edge)
    light = ((xx + yy) // dash) % 2 == 0
    out[yy[light], xx[light]] = 255
    out[yy[~light], xx[~light]] = 0
    return out


def thumbnail(rgb: np.ndarray, max_side: int = 256) -> np.ndarray:
    im = Image.fromarray(rgb)
    im.thumbnail((max_side, max_side), Image.BILINEAR)
    return np.asarray(im)


def overlay_thumbnail(image: np.ndarray, ids: np.ndarray | None, classes: Sequence[ClassSpec],
                      max_side: int = 256, alpha: float = 0.45, outline: bool = True) -> np.ndarray:
    """A small picture of the image with its mask blended in and, by default, outlined: in a thumbnail a class's
    colour alone can vanish into a photo of the same hue. Shrunk first, so the outline is drawn at the size shown
    (drawn at full size and then shrunk, it would fade to nothing)."""
    small, small_ids = fit_for_display(image, ids, max_side=max_side)
    return overlay(small, small_ids, classes, alpha, outline=outline)


def png_bytes(rgb: np.ndarray) -> bytes:
    """A picture as PNG bytes, for downloads and st.image."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


def disagreement(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 0.7,
                 color: tuple[int, int, int] = (255, 0, 255)) -> np.ndarray:
    """The image, dimmed, with the pixels where the model and the mask disagree painted in `color`."""
    rgb = to_rgb(image).astype(np.float32) * 0.6
    wrong = (truth != pred) & (truth != IGNORE_ID)
    rgb[wrong] = rgb[wrong] * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return rgb.round().astype(np.uint8)


def _figure_png(fig, dpi: int = 100) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


HEATMAP_CMAP = "viridis"  # perceptually even and readable in grey: 0 dark purple, 1 yellow
MAX_HEATMAP_SIDE = 640


def heatmap_figure(values: np.ndarray, label: str, vmin: float = 0.0, vmax: float = 1.0, cmap: str = HEATMAP_CMAP,
                   width_in: float = 6.0):
    """A matplotlib Figure of HxW values (e.g. probabilities) with a labelled colour bar on the right."""
    from matplotlib.figure import Figure

    values = np.asarray(values, np.float32)
    h, w = values.shape
    step = max(1, int(np.ceil(max(h, w) / MAX_HEATMAP_SIDE)))  # more pixels than the figure shows only cost time
    shown = values[::step, ::step]
    fig = Figure(figsize=(width_in, max(1.5, width_in * 0.82 * h / w)))
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", extent=(0, w, h, 0))
    ax.set_axis_off()
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label(label)
    return fig


def heatmap_png(values: np.ndarray, label: str, **kwargs) -> bytes:
    return _figure_png(heatmap_figure(values, label, **kwargs))


def row_normalised(cm: np.ndarray) -> np.ndarray:
    """Each row (a true class) as fractions of its pixels; a class with no pixels stays 0."""
    cm = np.asarray(cm, np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def axis_label(name: str, width: int = 14, lines: int = 2) -> str:
    """A class name short enough for an axis: wrapped on two lines at most, shortened with an ellipsis past that."""
    import textwrap

    parts = textwrap.wrap(name, width, break_long_words=True) or [""]
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1] + "…"
    # Matplotlib reads text between two '$' as math: '$x^2$' would be typeset, and '$\\frac$' fail to draw.
    return "\n".join(parts).replace("$", r"\$")


def confusion_matrix_figure(cm: np.ndarray, names: Sequence[str], cmap: str = "Blues"):
    """Rows: the mask's class, columns: the model's; each cell the share of that row's pixels, written in it."""
    from matplotlib.figure import Figure

    frac = row_normalised(cm)
    n = len(names)
    names = [axis_label(str(name)) for name in names]
    side = min(9.0, 1.6 + 0.75 * n)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels=list(names), rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels=list(names))
    ax.set_xlabel("model says")
    ax.set_ylabel("mask says")
    if n <= 15:  # beyond that the numbers are too small to read
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{100 * frac[i, j]:.0f}%", ha="center", va="center", fontsize=9,
                        color="white" if frac[i, j] > 0.55 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the row's pixels")
    return fig


def confusion_matrix_png(cm: np.ndarray, names: Sequence[str]) -> bytes:
    return _figure_png(confusion_matrix_figure(cm, names))
