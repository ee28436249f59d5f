"""Other tools' class lists (classes.csv, classes.json, a plain list of names) and what each mask value or colour
means (ClassTable); the plain class-id PNG and classes.csv that the 'ids' export writes."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

from seg_core.classes import IGNORE_COLOR, IGNORE_ID, ClassSpec, color_to_hex, fit_colors, parse_color
from seg_core.errors import ClassSpecError, DatasetFormatError, InvalidMaskError
from seg_core.formats import mask_colors, masks

# Names looked for next to class-id masks, in this order (keras_segmentation users keep a plain list).
CLASS_FILE_NAMES = ("classes.csv", "classes.json", "classes.txt", "class_names.txt", "labels.txt")
# Pascal VOC paints its "void" border in this colour (palette index 255); like our grey it means "ignore".
VOC_VOID_COLOR = (224, 224, 192)
Color = tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """Another tool's classes and how its masks encode them: by value (class-id PNGs) or by colour."""

    classes: list[ClassSpec]                  # ids 0..N-1, colours fit for a project (see classes.fit_colors)
    source: str                               # the file they came from, named in every refusal
    by_value: dict[int, int] | None = None    # mask value -> class id
    by_color: dict[Color, int] | None = None  # mask colour -> class id, in the tool's own colours
    notes: tuple[str, ...] = ()

    def ids(self, px: masks.MaskPixels) -> np.ndarray:
        """The mask as class ids; a value or colour the table does not list is refused, naming it."""
        if px.values is not None and self.by_value is not None:
            lut = np.full(256, -1, np.int16)
            for v, cid in self.by_value.items():
                lut[v] = cid
            if IGNORE_ID not in self.by_value:
                lut[IGNORE_ID] = IGNORE_ID
                # As import reads any mask: 0/255 with two classes is a binary mask, 255 the object, not "ignore".
                if len(self.classes) == 2 and not np.isin(px.values, (0, IGNORE_ID), invert=True).any():
                    lut[IGNORE_ID] = 1
            out = lut[px.values]
            bad = sorted(set(np.unique(px.values[out < 0]).tolist()))
            if bad:
                listed = ", ".join(str(v) for v in sorted(self.by_value))
                raise InvalidMaskError(f"Mask '{px.name}' has values {', '.join(map(str, bad[:12]))} that "
                                       f"{self.source} does not name (it names {listed}, and 255 means ignore).")
            return out.astype(np.uint8)
        if self.by_color is None:
            raise InvalidMaskError(f"Mask '{px.name}' is a colour image, but {self.source} does not give each class "
                                   "its own colour; add r,g,b columns to it, or save the masks as class ids.")
        table = dict(self.by_color)
        for ignore in (IGNORE_COLOR, VOC_VOID_COLOR):
            table.setdefault(ignore, IGNORE_ID)
        if px.rgb is not None:
            packed = mask_colors.pack(px.rgb)
            vals, inverse, counts = np.unique(packed.ravel(), return_inverse=True, return_counts=True)
            colors = {mask_colors.unpack(int(v)): int(n) for v, n in zip(vals, counts)}
            mapped = np.array([table.get(c, -1) for c in colors], np.int16)
            out = mapped[inverse].reshape(packed.shape)
        else:
            counts = np.bincount(px.values.ravel(), minlength=256)  # type: ignore[union-attr]
            pal = px.palette or ()
            color_of = {v: (tuple(pal[v]) if v < len(pal) else (0, 0, 0)) if px.palette is not None else (v, v, v)
                        for v in np.flatnonzero(counts).tolist()}
            colors = {c: 0 for c in color_of.values()}
            for v, c in color_of.items():
                colors[c] += int(counts[v])
            lut = np.full(256, -1, np.int16)
            for v, c in color_of.items():
                lut[v] = table.get(c, -1)  # type: ignore[arg-type]
            out = lut[px.values]
        unknown = {c: n for c, n in colors.items() if c not in table}
        if unknown:
            listed = ", ".join(f"{name} {color_to_hex(c)}" for c, name in self._names_by_color().items())
            raise InvalidMaskError(f"Mask '{px.name}' has colours that {self.source} does not list: "
                                   f"{mask_colors.describe_colors(unknown)}. It lists {listed}.")
        return out.astype(np.uint8)

    def _names_by_color(self) -> dict[Color, str]:
        return {c: self.classes[cid].name for c, cid in (self.by_color or {}).items()}


def table_from(rows: Sequence[tuple[int, str, Color | None]], source: str, by_value: bool = True) -> ClassTable:
    """(value, name, colour) rows of another tool -> classes 0..N-1. Value 255 is 'ignore', never a class; when no
    row has value 0, a black 'background' is put first, because class 0 is what painting with nothing leaves.
    by_value=False: the masks are read by colour only (a VOC labelmap), whatever their pixel values."""
    rows = sorted((r for r in rows if r[0] != IGNORE_ID), key=lambda r: r[0])
    values = [r[0] for r in rows]
    if len(set(values)) != len(values):
        dup = next(v for v in values if values.count(v) > 1)
        raise DatasetFormatError(f"{source} names value {dup} twice; each class needs its own value.")
    if not rows or rows[0][0] != 0:
        rows = [(0, "background", (0, 0, 0) if all(r[2] != (0, 0, 0) for r in rows) else None)] + list(rows)
    try:
        classes, notes = fit_colors([r[1] for r in rows], [r[2] for r in rows])
    except ClassSpecError as exc:
        raise DatasetFormatError(f"{source}: {exc}") from None
    values = {v: i for i, (v, _, _) in enumerate(rows)}
    by_color: dict[Color, int] | None = {}
    for v, name, color in rows:
        if color is None or color in by_color:  # type: ignore[operator]
            if color is not None and not by_value:
                other = rows[by_color[color]][1]  # type: ignore[index]
                raise DatasetFormatError(f"{source} gives '{other}' and '{name}' the same colour "
                                         f"{color_to_hex(color)}; masks painted in it cannot be told apart.")
            by_color = None
            break
        by_color[color] = values[v]  # type: ignore[index]
    return ClassTable(classes, source, values if by_value else None, by_color, tuple(notes))  # type: ignore[arg-type]


def _color(parts: Sequence[str], source: str, line: int) -> Color | None:
    if not any(p.strip() for p in parts):
        return None
    try:
        return parse_color([int(p) for p in parts]) if len(parts) == 3 else parse_color(parts[0])
    except (ValueError, ClassSpecError):
        raise DatasetFormatError(f"{source}, line {line}: '{','.join(parts)}' is not a colour (write r,g,b or "
                                 "#rrggbb).") from None


def _value(text, source: str, where: str) -> int:
    try:
        v = int(str(text).strip())
        if not 0 <= v <= 255:
            raise ValueError
        return v
    except ValueError:
        raise DatasetFormatError(f"{source}, {where}: '{text}' is not a class id (a whole number from 0 to 255)."
                                 ) from None


def _from_csv(text: str, source: str) -> list[tuple[int, str, Color | None]]:
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    header = [c.strip().lower() for c in rows[0]] if rows else []
    out = []
    if "name" in header:
        col = {h: i for i, h in enumerate(header)}
        for n, row in enumerate(rows[1:], 2):
            cell = (lambda h: row[col[h]].strip() if h in col and col[h] < len(row) else "")  # noqa: E731
            value = _value(cell("id"), source, f"line {n}") if "id" in col else n - 2
            rgb = [cell(h) for h in ("r", "g", "b")] if "r" in col else [cell("color")]
            out.append((value, cell("name"), _color(rgb, source, n)))
        return out
    for n, row in enumerate(rows, 1):  # no header: "name", "id,name" or "id,name,r,g,b"
        cells = [c.strip() for c in row]
        if len(cells) == 1:
            out.append((n - 1, cells[0], None))
        else:
            out.append((_value(cells[0], source, f"line {n}"), cells[1], _color(cells[2:5], source, n)))
    return out


def _from_json(text: str, source: str) -> list[tuple[int, str, Color | None]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DatasetFormatError(f"{source} is not valid JSON ({exc}).") from None
    if isinstance(data, dict) and isinstance(data.get("classes"), list):
        data = data["classes"]
    out = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            if isinstance(item, str):
                out.append((i, item, None))
            elif isinstance(item, dict) and isinstance(item.get("name"), str):
                color = item.get("color")
                parts = [str(color)] if isinstance(color, str) else [str(c) for c in color] if color else []
                out.append((_value(item.get("id", i), source, f"entry {i + 1}"), item["name"],
                            _color(parts, source, i + 1)))
            else:
                raise DatasetFormatError(f"{source}: entry {i + 1} is neither a class name nor "
                                         "{\"id\": ..., \"name\": ...}.")
        return out
    if isinstance(data, dict) and data:
        if all(isinstance(v, int) for v in data.values()):     # {"cat": 1}: name -> id
            return [(_value(v, source, f"'{k}'"), str(k), None) for k, v in data.items()]
        if all(str(k).strip().isdigit() for k in data):         # {"1": "cat"}: id -> name
            return [(_value(k, source, f"key '{k}'"), str(v), None) for k, v in data.items()]
    raise DatasetFormatError(f"{source} is not a list of classes: expected a list of names, a list of "
                             "{\"id\", \"name\", \"color\"} entries, or {\"id\": \"name\"}.")


def read_class_file(name: str, data: bytes, source: str | None = None) -> ClassTable:
    """classes.csv (id,name,r,g,b with a header, or rows of names), classes.json (names, entries or an id -> name
    map) or a plain list, one name per line (line 1 is value 0)."""
    source = source or name
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{source} is not a UTF-8 text file.") from None
    low = name.lower()
    if low.endswith(".csv"):
        rows = _from_csv(text, source)
    elif low.endswith(".json"):
        rows = _from_json(text, source)
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        rows = [(i, n, None) for i, n in enumerate(names)]
    if not rows:
        raise DatasetFormatError(f"{source} names no classes.")
    return table_from(rows, source)


def classes_csv(classes: Sequence[ClassSpec]) -> bytes:
    """classes.csv of the 'ids' export: id,name,r,g,b, one row per class (255, not listed, means ignore)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "name", "r", "g", "b"])
    for c in classes:
        w.writerow([c.id, c.name, *c.color])
    return buf.getvalue().encode("utf-8")


def grey_png(ids: np.ndarray) -> bytes:
    """A single-channel 8-bit PNG whose pixel values are the class ids (what most training scripts read)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(ids, dtype=np.uint8), "L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
