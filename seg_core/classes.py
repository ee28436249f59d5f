"""ClassSpec (id, name, colour), colour parsing and the default palettes."""

from __future__ import annotations

import numbers
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from seg_core.errors import ClassSpecError

MAX_CLASSES = 255
# Pixels labelled IGNORE_ID count for no class: e.g. the "border" of an Oxford-pets trimap.
IGNORE_ID = 255
IGNORE_COLOR = (128, 128, 128)
BACKGROUND_COLOR = (0, 0, 0)

# Distinct, colour-blind-friendly first choices (Okabe-Ito and Tableau), then generated ones.
_BASE_COLORS = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (255, 255, 255),
]

_HEX = re.compile(r"#?([0-9a-fA-F]{6})")
MAX_NAME_CHARS = 100
# Characters a name may not hold: control characters (NUL, tab, newline), lone surrogates, line and paragraph
# separators, and the bidirectional overrides that would show a name's letters in another order than typed
# (right-to-left text itself is fine).
_BAD_NAME_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


@dataclass(frozen=True)
class ClassSpec:
    id: int
    name: str
    color: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return color_to_hex(self.color)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "color": self.hex}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassSpec":
        try:
            return cls(int(d["id"]), str(d["name"]), parse_color(d["color"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ClassSpecError(f"A class entry must have an id, a name and a colour; got {d!r}.") from exc


def parse_color(value: str | Sequence[int]) -> tuple[int, int, int]:
    """'#ff0000', 'ff0000' or (255, 0, 0) -> (255, 0, 0)."""
    if isinstance(value, str):
        m = _HEX.fullmatch(value.strip())
        if not m:
            raise ClassSpecError(f"'{value}' is not a colour; write it as #rrggbb, e.g. #ff0000 for red.")
        h = m.group(1)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    try:
        rgb = tuple(value)
    except TypeError:
        rgb = ()
    if len(rgb) != 3 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 255
                                for v in rgb):
        raise ClassSpecError(f"{value!r} is not a colour; give three whole numbers from 0 to 255.")
    return tuple(int(v) for v in rgb)  # type: ignore[return-value]


def check_class_name(name: str, class_id: int) -> str:
    """A class name as given, or a ClassSpecError saying what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise ClassSpecError(f"Class {class_id} has no name.")
    if len(name) > MAX_NAME_CHARS:
        raise ClassSpecError(f"The name of class {class_id} is {len(name):,} characters long; a class name has at "
                             f"most {MAX_NAME_CHARS}.")
    odd = next((ch for ch in name if unicodedata.category(ch) in _BAD_NAME_CATEGORIES or ch in _BIDI_CONTROLS), None)
    if odd is not None:
        raise ClassSpecError(f"The name of class {class_id} holds an invisible character (U+{ord(odd):04X}: a "
                             "control character, line break or text-direction mark); type it without one.")
    return name


def color_to_hex(color: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def default_color(class_id: int) -> tuple[int, int, int]:
    """A distinct colour for each class id; id 0 (background) is black."""
    if class_id == 0:
        return BACKGROUND_COLOR
    if class_id <= len(_BASE_COLORS):
        return _BASE_COLORS[class_id - 1]
    # Golden-ratio hue steps keep generated colours apart.
    import colorsys

    h = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.65 + 0.35 * ((class_id // 7) % 2), 0.95 - 0.3 * ((class_id // 3) % 2))
    return (round(r * 255), round(g * 255), round(b * 255))


def default_classes(names: Sequence[str]) -> list[ClassSpec]:
    """Classes for these names with default colours; 'background' is put first if missing."""
    names = [n.strip() for n in names if n.strip()]
    if not names or names[0].lower() != "background":
        names = ["background"] + [n for n in names if n.lower() != "background"]
    return [ClassSpec(i, n, default_color(i)) for i, n in enumerate(names)]


def binary_classes(object_name: str = "object") -> list[ClassSpec]:
    return default_classes(["background", object_name])


def numbered_classes(count: int) -> list[ClassSpec]:
    """Classes 0..count-1 named 'background', 'class 1', ... for masks imported without names."""
    return [ClassSpec(i, "background" if i == 0 else f"class {i}", default_color(i)) for i in range(count)]


def parse_class_args(items: Iterable[str]) -> list[ClassSpec]:
    """CLI/form syntax: 'name' or 'name:#rrggbb', one per item or comma-separated."""
    specs: list[tuple[str, tuple[int, int, int] | None]] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            name, _, color = part.partition(":")
            specs.append((name.strip(), parse_color(color) if color.strip() else None))
    if not specs or specs[0][0].lower() != "background":
        specs.insert(0, ("background", None))
    classes = [ClassSpec(i, name, color or default_color(i)) for i, (name, color) in enumerate(specs)]
    validate_classes(classes)
    return classes


def validate_classes(classes: Sequence[ClassSpec]) -> None:
    """Ids 0..N-1 in order, unique non-empty names, unique colours, at least two classes."""
    if len(classes) < 2:
        raise ClassSpecError("A project needs at least two classes: background and one thing to segment.")
    if len(classes) > MAX_CLASSES:
        raise ClassSpecError(f"A project can have at most {MAX_CLASSES} classes; got {len(classes)}.")
    names: set[str] = set()
    colors: dict[tuple[int, int, int], str] = {}
    for i, c in enumerate(classes):
        if c.id != i:
            raise ClassSpecError(f"Class ids must be 0, 1, 2, ... in order; class '{c.name}' has id {c.id}, expected {i}.")
        check_class_name(c.name, c.id)
        key = unicodedata.normalize("NFC", c.name).casefold()
        if key in names:
            raise ClassSpecError(f"Two classes are called '{c.name}'; give each class its own name.")
        names.add(key)
        if c.color in colors:
            raise ClassSpecError(
                f"Classes '{colors[c.color]}' and '{c.name}' have the same colour {c.hex}; "
                "each class needs its own colour so masks can be told apart."
            )
        if c.color == IGNORE_COLOR:
            raise ClassSpecError(f"{c.hex} is reserved for 'ignore' pixels; pick another colour for '{c.name}'.")
        colors[c.color] = c.name


def fit_colors(names: Sequence[str], wanted: Sequence[Sequence[int] | None]) -> tuple[list[ClassSpec], list[str]]:
    """Classes 0..N-1 for another tool's names and colours. A colour that is missing, already taken or the ignore
    grey becomes a default one, so the classes are valid; the notes say which (masks are still read by the
    tool's own colours, so a changed colour changes only how the class is shown here)."""
    taken: set[tuple[int, int, int]] = set()
    out, notes = [], []
    for i, (name, want) in enumerate(zip(names, wanted)):
        color = tuple(want) if want is not None else None
        if color is None or color in taken or color == IGNORE_COLOR:
            k = i
            while default_color(k) in taken or default_color(k) == IGNORE_COLOR:
                k += 1
            if color is not None:
                notes.append(f"'{name}' is shown in {color_to_hex(default_color(k))}: its colour "
                             f"{color_to_hex(color)} is " + ("Maskloop's grey for ignored pixels" if color ==
                                                            IGNORE_COLOR else "already another class's"))
            color = default_color(k)
        taken.add(color)  # type: ignore[arg-type]
        out.append(ClassSpec(i, str(name), color))  # type: ignore[arg-type]
    validate_classes(out)
    return out, notes


def palette_bytes(classes: Sequence[ClassSpec]) -> list[int]:
    """A 256-entry PIL palette: class colours at their ids, the ignore colour at 255."""
    pal = [0] * (256 * 3)
    for c in classes:
        pal[c.id * 3: c.id * 3 + 3] = list(c.color)
    pal[IGNORE_ID * 3: IGNORE_ID * 3 + 3] = list(IGNORE_COLOR)
    return pal
