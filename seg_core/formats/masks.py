"""Mask files: palette PNG read/write, and imported masks of any format detected and read as class ids."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from seg_core.formats import images
from seg_core.classes import (IGNORE_COLOR, IGNORE_ID, ClassSpec, binary_classes, color_to_hex,
                              default_color, numbered_classes, palette_bytes)
from seg_core.errors import InvalidImageError, InvalidMaskError, UnknownMaskValuesError
from seg_core.formats.mask_colors import border_colour, describe_colors, map_colors, pack, unique_colors

# Mask formats that import understands; "auto" detects one of the others from the pixels.
MASK_KINDS = ("auto", "ids", "binary", "trimap", "colors", "nonzero")
TRIMAP_BORDER_CHOICES = ("ignore", "object", "background")
# More distinct colours than this in an "RGB mask" means it is a photo or a JPEG, not a mask.
MAX_MASK_COLORS = 64


@dataclass(frozen=True)
class MaskPixels:
    """The raw content of a mask file before interpretation."""

    name: str
    source_format: str                 # PNG, GIF, BMP, TIFF, ...
    width: int
    height: int
    values: np.ndarray | None          # HxW uint8 for single-channel and palette masks
    rgb: np.ndarray | None             # HxWx3 uint8 for colour masks
    palette: tuple[tuple[int, int, int], ...] | None = None   # for palette (mode P) files

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass(frozen=True)
class MaskReading:
    """A mask converted to class ids, with what was detected, in words."""

    ids: np.ndarray          # HxW uint8: class ids, IGNORE_ID for "ignore"
    kind: str                # e.g. "class-id PNG", "binary 0/255", "Oxford-pets trimap"
    detail: str = ""


@dataclass
class ClassInference:
    classes: list[ClassSpec]
    kind: str
    detail: str
    notes: list[str] = field(default_factory=list)


def read_pixels(data: bytes, name: str = "mask") -> MaskPixels:
    """Open a mask file of any accepted format; GIFs give their first frame."""
    try:
        im = images._open(data, name, images.max_pixels())
    except InvalidImageError as exc:  # the image error's sentence, restated for a mask
        raise InvalidMaskError(str(exc).replace("an image Maskloop can read", "a mask Maskloop can read")) from None
    try:
        if im.format == "GIF":
            im.seek(0)
        im.load()
        return _pixels(im, name)
    except InvalidMaskError:
        raise
    except Exception:  # Pillow's decoders raise many types on damaged files (OSError, TypeError, ...)
        raise InvalidMaskError(f"Mask '{name}' is truncated or damaged.") from None


def _pixels(im: Image.Image, name: str) -> MaskPixels:
    fmt, (w, h) = images.ACCEPTED_FORMATS[im.format], im.size
    mode = im.mode
    if mode == "P":
        pal = im.getpalette() or []
        colors = tuple(tuple(pal[i:i + 3]) for i in range(0, len(pal) - 2, 3))
        values = np.asarray(im, dtype=np.uint8).copy()
        return MaskPixels(name, fmt, w, h, values, None, colors)  # type: ignore[arg-type]
    if mode in ("1", "L", "LA", "La"):
        return MaskPixels(name, fmt, w, h, np.asarray(im.convert("L"), dtype=np.uint8).copy(), None)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 255 or not np.all(np.equal(np.mod(arr, 1), 0))):
            raise InvalidMaskError(
                f"Mask '{name}' holds values from {arr.min():g} to {arr.max():g}; "
                "class ids must be whole numbers from 0 to 255."
            )
        return MaskPixels(name, fmt, w, h, arr.astype(np.uint8), None)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return MaskPixels(name, fmt, w, h, rgb[..., 0].copy(), None)
    return MaskPixels(name, fmt, w, h, None, rgb.copy())


def _present(values: np.ndarray) -> set[int]:
    """The distinct values of a uint8 array (bincount: one pass, no sort, unlike np.unique)."""
    return set(np.flatnonzero(np.bincount(values.ravel(), minlength=256)).tolist())


def _describe_values(values: Sequence[int]) -> str:
    vals = sorted(int(v) for v in values)
    shown = ", ".join(str(v) for v in vals[:12])
    return shown + (f", ... ({len(vals)} values)" if len(vals) > 12 else "")


def _trimap_border_id(trimap_border: str | int, classes: Sequence[ClassSpec]) -> int:
    if trimap_border == "ignore":
        return IGNORE_ID
    if trimap_border == "object":
        return 1
    if trimap_border == "background":
        return 0
    try:
        cid = int(trimap_border)
    except (TypeError, ValueError):
        raise InvalidMaskError(
            f"Trimap border must be one of {', '.join(TRIMAP_BORDER_CHOICES)} or a class id; got '{trimap_border}'."
        ) from None
    if not 0 <= cid < len(classes):
        raise InvalidMaskError(f"Trimap border class {cid} is not one of this project's class ids "
                               f"0..{len(classes) - 1}.")
    return cid


def parse_value_map(text: str, classes: Sequence[ClassSpec]) -> dict[int, int]:
    """'1=1,2=object,255=ignore' -> {1: 1, 2: 1, 255: IGNORE_ID}: mask values to class ids, names or 'ignore'."""
    by_name = {c.name.lower(): c.id for c in classes}
    out: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        value, sep, target = part.partition("=")
        try:
            v = int(value)
            if not 0 <= v <= 255 or not sep:
                raise ValueError
        except ValueError:
            raise InvalidMaskError(f"'{part}' is not VALUE=CLASS (e.g. 1=1, 2=object, 255=ignore).") from None
        t = target.strip().lower()
        if t == "ignore":
            out[v] = IGNORE_ID
        elif t in by_name:
            out[v] = by_name[t]
        elif t.isdigit() and int(t) < len(classes):
            out[v] = int(t)
        else:
            raise InvalidMaskError(f"'{target.strip()}' in '{part}' is not a class of this project (" +
                                   ", ".join(f"{c.id} {c.name}" for c in classes) + ", or ignore).")
    return out


def _map_values(px: MaskPixels, present: set[int], classes: Sequence[ClassSpec], value_map: dict[int, int]):
    valid = set(range(len(classes))) | {IGNORE_ID}
    unmapped = sorted(v for v in present if v not in value_map and v not in valid)
    if unmapped:
        raise UnknownMaskValuesError(
            f"Mask '{px.name}' has values {_describe_values(unmapped)} that the mapping does not name.",
            tuple(unmapped))
    lut = np.arange(256, dtype=np.uint8)
    for v, cid in value_map.items():
        lut[v] = cid
    names = {c.id: c.name for c in classes} | {IGNORE_ID: "ignore"}
    detail = ", ".join(f"{v} -> {names[value_map[v]]}" for v in sorted(present) if v in value_map)
    return MaskReading(lut[px.values], "values mapped", detail)


def interpret(px: MaskPixels, classes: Sequence[ClassSpec], kind: str = "auto",
              trimap_border: str | int = "ignore", value_map: dict[int, int] | None = None) -> MaskReading:
    """Convert raw mask pixels to class ids for `classes`, detecting the format when kind='auto'.

    value_map: mask values to class ids (IGNORE_ID for ignore), for masks whose values are not the project's ids.
    kind 'nonzero' (two classes): any value but 0 is the object.
    """
    if kind not in MASK_KINDS:
        raise InvalidMaskError(f"Unknown mask format '{kind}'; choose one of {', '.join(MASK_KINDS)}.")
    jpeg_hint = (" JPEG compression changes a mask's colours; save masks as PNG."
                 if px.source_format == "JPEG" else "")
    if px.rgb is not None:
        if value_map or kind == "nonzero":
            raise InvalidMaskError(f"Mask '{px.name}' is a colour image: a value mapping is for masks of numbers.")
        return _read_rgb(px, classes, kind, jpeg_hint)
    assert px.values is not None
    present = _present(px.values)
    if px.palette is not None and kind in ("auto", "colors"):
        by_palette = _read_palette(px, present, classes, kind)
        if by_palette is not None:
            return by_palette
    if value_map:
        return _map_values(px, present, classes, value_map)
    if kind == "nonzero":
        return _read_nonzero(px, present, classes)
    return _read_values(px, present, classes, kind, trimap_border, jpeg_hint)


def _read_rgb(px: MaskPixels, classes: Sequence[ClassSpec], kind: str, jpeg_hint: str) -> MaskReading:
    """A colour mask: in the classes' colours, or any two colours for a two-class project."""
    if kind not in ("auto", "colors"):
        raise InvalidMaskError(f"Mask '{px.name}' is a colour image, not a {kind} mask.")
    colors = unique_colors(px.rgb)
    known = {c.color for c in classes} | {IGNORE_COLOR}
    if set(colors) <= known:
        return MaskReading(map_colors(px.rgb, classes, px.name, ""), "colour-coded RGB",
                           f"{len(colors)} class colours")
    if len(colors) == 2 and len(classes) == 2:
        bg = border_colour(px.rgb, list(colors))
        fg = next(c for c in colors if c != bg)
        ids = (pack(px.rgb) == pack(np.array([[fg]], np.uint8))[0, 0]).astype(np.uint8)
        return MaskReading(ids, "two-colour RGB",
                           f"{color_to_hex(bg)} -> {classes[0].name}, {color_to_hex(fg)} -> {classes[1].name}")
    return MaskReading(map_colors(px.rgb, classes, px.name, jpeg_hint), "colour-coded RGB")


def _values_label(px: MaskPixels) -> str:
    """What a mask of numbers is, in words: e.g. "palette PNG", "class-id TIFF"."""
    is_palette = px.palette is not None
    if px.source_format not in ("PNG", "GIF"):
        return f"class-id {px.source_format}" if not is_palette else f"palette {px.source_format}"
    return {"GIF": "GIF mask"}.get(px.source_format, "palette PNG" if is_palette else "class-id PNG")


def _read_palette(px: MaskPixels, present: set[int], classes: Sequence[ClassSpec], kind: str) -> MaskReading | None:
    """A palette mask read by colour when every colour it uses is a class colour; None where they are not (and
    kind 'colors' refuses it)."""
    # Masks painted elsewhere with the class colours but another index order still import right.
    pal = px.palette or ()
    used = {i: pal[i] if i < len(pal) else (0, 0, 0) for i in present}
    by_color = {c.color: c.id for c in classes}
    by_color.setdefault(IGNORE_COLOR, IGNORE_ID)
    if all(col in by_color for col in used.values()) and len(set(used.values())) == len(used):
        lut = np.zeros(256, np.uint8)
        for i, col in used.items():
            lut[i] = by_color[col]
        return MaskReading(lut[px.values], _values_label(px), "indices mapped by palette colour")
    if kind == "colors":
        unknown = {col: int(np.count_nonzero(px.values == i)) for i, col in used.items() if col not in by_color}
        raise InvalidMaskError(f"Mask '{px.name}' has palette colours that are not classes: "
                               f"{describe_colors(unknown)}.")
    return None


def _read_nonzero(px: MaskPixels, present: set[int], classes: Sequence[ClassSpec]) -> MaskReading:
    if len(classes) != 2:
        raise InvalidMaskError("'Any non-zero value is the object' is for a project of two classes; map the "
                               "values to classes instead.")
    return MaskReading((px.values != 0).astype(np.uint8), "non-zero = object",
                       f"0 -> {classes[0].name}, {_describe_values(present - {0}) or 'none'} -> {classes[1].name}")


def _read_values(px: MaskPixels, present: set[int], classes: Sequence[ClassSpec], kind: str,
                 trimap_border: str | int, jpeg_hint: str) -> MaskReading:
    """A mask of numbers: class ids, binary 0/255 or 0/1, or an Oxford-pets trimap; other values are refused with
    how to say what they mean."""
    values, n = px.values, len(classes)
    valid_ids = set(range(n)) | {IGNORE_ID}
    binary_255 = n == 2 and present <= {0, 255}
    # 0/255 in a two-class project is binary, unless the person said the values are ids (255: ignore).
    ids_255 = kind == "auto" and binary_255 and IGNORE_ID in present
    if kind in ("auto", "ids") and present <= valid_ids and not ids_255:
        return MaskReading(values.copy(), _values_label(px), f"class ids {_describe_values(present)}")
    if kind in ("auto", "binary") and binary_255:
        return MaskReading((values == 255).astype(np.uint8), "binary 0/255",
                           f"0 -> {classes[0].name}, 255 -> {classes[1].name}")
    if kind == "binary" and present <= {0, 1} and n == 2:
        return MaskReading(values.copy(), "binary 0/1", f"0 -> {classes[0].name}, 1 -> {classes[1].name}")
    is_trimap_values = present <= {1, 2, 3} and 0 not in present
    if kind == "trimap" or (kind == "auto" and is_trimap_values and 3 in present and n in (2, 3)):
        if not is_trimap_values:
            raise InvalidMaskError(
                f"Mask '{px.name}' has values {_describe_values(present)}; a trimap holds only 1 (object), "
                "2 (background) and 3 (border)."
            )
        return _read_trimap(values, classes, trimap_border)
    bad = sorted(present - valid_ids)
    expected = f"class ids 0..{n - 1}" + (" or 0/255" if n == 2 else "")
    example = ",".join(f"{v}={classes[min(v, n - 1)].name}" for v in bad[:3])
    raise UnknownMaskValuesError(
        f"Mask '{px.name}' has values {_describe_values(bad)} that are not {expected} of this project's "
        f"{n} classes.{jpeg_hint} Say what each value means: on the Data page, with the mapping offered under "
        f"the report; on the command line, --map {example}" + (" (or --mask-format nonzero)" if n == 2 else "")
        + ".", tuple(sorted(present)))


def _read_trimap(values: np.ndarray, classes: Sequence[ClassSpec], trimap_border: str | int) -> MaskReading:
    border = _trimap_border_id(trimap_border, classes)
    lut = np.zeros(256, np.uint8)
    lut[1], lut[2], lut[3] = 1, 0, border
    border_name = "ignore" if border == IGNORE_ID else classes[border].name
    return MaskReading(lut[values], "Oxford-pets trimap",
                       f"1 -> {classes[1].name}, 2 -> {classes[0].name}, 3 (border) -> {border_name}")


def read_mask(data: bytes, classes: Sequence[ClassSpec], name: str = "mask", *,
              expected_size: tuple[int, int] | None = None, kind: str = "auto",
              trimap_border: str | int = "ignore", value_map: dict[int, int] | None = None) -> MaskReading:
    """Read a mask file of any supported format as class ids, checking it fits its image."""
    px = read_pixels(data, name)
    if expected_size is not None and px.size != tuple(expected_size):
        raise InvalidMaskError(
            f"Mask '{name}' is {px.width}x{px.height} pixels but its image is "
            f"{expected_size[0]}x{expected_size[1]}; a mask must have its image's size."
        )
    return interpret(px, classes, kind, trimap_border, value_map)


def infer_classes(samples: Sequence[MaskPixels], kind: str = "auto") -> ClassInference:
    """Guess a new project's classes from its masks (used when importing into an empty project)."""
    if not samples:
        return ClassInference(binary_classes(), "none", "no masks: a binary project (background, object)")
    rgb = [s for s in samples if s.rgb is not None]
    if rgb and kind in ("auto", "colors"):
        counts: dict[tuple[int, int, int], int] = {}
        for s in rgb:
            for c, k in unique_colors(s.rgb).items():  # type: ignore[arg-type]
                counts[c] = counts.get(c, 0) + k
        for s in samples:
            if s.values is not None:
                for v in np.unique(s.values).tolist():
                    counts[(v, v, v)] = counts.get((v, v, v), 0) + int(np.count_nonzero(s.values == v))
        if len(counts) > MAX_MASK_COLORS:
            raise InvalidMaskError(
                f"The masks hold {len(counts)} different colours; a mask has one colour per class. "
                "Are these photos, or masks saved as JPEG?"
            )
        ordered = sorted(counts, key=lambda c: -counts[c])
        if len(ordered) == 2 and len(rgb) == len(samples):
            first = rgb[0].rgb
            bg = border_colour(first, ordered) if all(c in unique_colors(first) for c in ordered) else ordered[0]
            fg = next(c for c in ordered if c != bg)
            classes = [ClassSpec(0, "background", bg), ClassSpec(1, "object", fg)]
            return ClassInference(classes, "two-colour RGB",
                                  f"{color_to_hex(bg)} background, {color_to_hex(fg)} object")
        # The ignore grey is never a class, not even the background when it is the most frequent colour.
        bg = (0, 0, 0) if (0, 0, 0) in counts else next((c for c in ordered if c != IGNORE_COLOR), (0, 0, 0))
        ordered = [bg] + [c for c in ordered if c != bg and c != IGNORE_COLOR]
        classes = [ClassSpec(i, "background" if i == 0 else f"class {i}", c) for i, c in enumerate(ordered)]
        return ClassInference(classes, "colour-coded RGB", f"{len(classes)} colours -> {len(classes)} classes")

    present: set[int] = set()
    palette = None
    for s in samples:
        present |= _present(s.values)  # type: ignore[arg-type]
        palette = palette or s.palette
    if kind in ("auto", "binary") and (present <= {0, 255} or present <= {0, 1}):
        desc = "binary 0/255" if 255 in present else "binary 0/1"
        return ClassInference(binary_classes(), desc, "two classes: background, object")
    if kind == "trimap" or (kind == "auto" and present <= {1, 2, 3} and 3 in present and 0 not in present):
        return ClassInference(binary_classes(), "Oxford-pets trimap",
                              "1 = object, 2 = background, 3 = border")
    notes = []
    # 255 is never a class id (at most MAX_CLASSES = 255 classes: ids 0..254); {0, 255} was binary above.
    if IGNORE_ID in present:
        present.discard(IGNORE_ID)
        notes.append("value 255 is read as 'ignore' (unlabelled boundary), not as a class")
    top = max(present) if present else 1
    count = max(top + 1, 2)
    classes = numbered_classes(count)
    if palette is not None:
        colors = [tuple(palette[i]) if i < len(palette) else default_color(i) for i in range(count)]
        if len(set(colors)) == count and IGNORE_COLOR not in colors:
            classes = [ClassSpec(c.id, c.name, colors[c.id]) for c in classes]  # type: ignore[arg-type]
    return ClassInference(classes, "class ids", f"ids {_describe_values(present)} -> {count} classes", notes)


def encode_png(ids: np.ndarray, classes: Sequence[ClassSpec], text: dict[str, str] | None = None) -> bytes:
    """An 8-bit palette PNG: index = class id, palette = class colours (255 = ignore, grey); `text` goes into tEXt
    chunks, so a file can carry its own metadata and still be written atomically."""
    from PIL.PngImagePlugin import PngInfo

    im = Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8), "P")
    im.putpalette(palette_bytes(classes))
    info = PngInfo() if text else None
    for k, v in (text or {}).items():
        info.add_text(k, v)  # type: ignore[union-attr]
    buf = io.BytesIO()
    # Level 1: masks are mostly runs of one value, so it is nearly as small as the default and much faster.
    im.save(buf, format="PNG", compress_level=1, pnginfo=info)
    return buf.getvalue()


def load_png_text(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """A stored mask's class ids and its tEXt metadata."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im, dtype=np.uint8).copy(), dict(getattr(im, "text", {}) or {})


def load_png(path: str | Path) -> np.ndarray:
    """A stored mask's class ids (indices of its palette PNG)."""
    with Image.open(path) as im:
        if im.mode != "P" and im.mode != "L":
            raise InvalidMaskError(f"Stored mask {Path(path).name} is not a palette PNG (mode {im.mode}).")
        return np.asarray(im, dtype=np.uint8).copy()


def validate_ids(ids: np.ndarray, classes: Sequence[ClassSpec], size: tuple[int, int]) -> np.ndarray:
    """Check an in-memory mask before saving: 2-D, the image's size, only class ids or ignore."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise InvalidMaskError(f"A mask must be a 2-D array of class ids; got shape {ids.shape}.")
    h, w = ids.shape
    if (w, h) != tuple(size):
        raise InvalidMaskError(f"The mask is {w}x{h} pixels but its image is {size[0]}x{size[1]}.")
    if ids.dtype != np.uint8:
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise InvalidMaskError("A mask holds class ids from 0 to 255.")
        ids = ids.astype(np.uint8)
    present = _present(ids)
    bad = present - set(range(len(classes))) - {IGNORE_ID}
    if bad:
        raise InvalidMaskError(
            f"The mask has values {_describe_values(bad)} but the project's classes are 0..{len(classes) - 1}."
        )
    return ids


def class_pixel_counts(ids: np.ndarray) -> dict[int, int]:
    counts = np.bincount(ids.ravel(), minlength=256)
    return {int(i): int(c) for i, c in enumerate(counts) if c}


def remap_ids(ids: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Class ids through a lookup table; ids not in `mapping` keep their value."""
    lut = np.arange(256, dtype=np.uint8)
    for old, new in mapping.items():
        lut[old] = new
    return lut[ids]
