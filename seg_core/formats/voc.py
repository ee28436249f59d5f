"""Pascal VOC and CVAT "Segmentation mask 1.1": labelmap.txt read and written, ImageSets/Segmentation split lists."""

from __future__ import annotations

from typing import Iterable, Sequence

from seg_core.classes import ClassSpec
from seg_core.errors import DatasetFormatError
from seg_core.formats.class_files import ClassTable, table_from

IMAGES_DIR, MASKS_DIR, SETS_DIR = "JPEGImages", "SegmentationClass", "ImageSets/Segmentation"
LABELMAP = "labelmap.txt"
LABELMAP_HEADER = "# label:color_rgb:parts:actions"
# Split lists read from ImageSets/Segmentation; others there (trainval.txt, CVAT's default.txt) add no split.
SPLIT_FILES = {"train.txt": "train", "val.txt": "val", "test.txt": "test"}


def read_labelmap(data: bytes, source: str = LABELMAP) -> ClassTable:
    """labelmap.txt -> classes in its order, masks read by its colours. Class 0 is the row named 'background',
    else the black row, else an added black 'background'."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{source} is not a UTF-8 text file.") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        rgb = rest.split(":")[0].split(",")
        try:
            color = tuple(int(v) for v in rgb)
            if not sep or not name.strip() or len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise ValueError
        except ValueError:
            raise DatasetFormatError(f"{source}, line {n}: '{line}' is not 'name:r,g,b::' (e.g. cat:255,0,0::)."
                                     ) from None
        rows.append((name.strip(), color))
    if not rows:
        raise DatasetFormatError(f"{source} lists no labels.")
    first = next((i for i, (name, _) in enumerate(rows) if name.lower() == "background"),
                 next((i for i, (_, color) in enumerate(rows) if color == (0, 0, 0)), None))
    if first is not None:
        rows.insert(0, rows.pop(first))
    return table_from([(i, name, color) for i, (name, color) in enumerate(rows, 0 if first is not None else 1)],
                      source, by_value=False)


def labelmap(classes: Sequence[ClassSpec]) -> bytes:
    """CVAT's labelmap.txt: one 'name:r,g,b::' line per class, background first."""
    bad = [c.name for c in classes if ":" in c.name or "\n" in c.name]
    if bad:
        raise DatasetFormatError(f"The class name '{bad[0]}' has a ':' in it, which labelmap.txt cannot hold; rename "
                                 "it on the Data page's Classes tab, or export in another format.")
    lines = [LABELMAP_HEADER] + [f"{c.name}:{','.join(map(str, c.color))}::" for c in classes]
    return ("\n".join(lines) + "\n").encode("utf-8")


def image_sets(stems_by_split: dict[str, Iterable[str]]) -> dict[str, bytes]:
    """ImageSets/Segmentation/<split>.txt files: train and val always (readers expect both), test when it has any."""
    out = {}
    for file, split in SPLIT_FILES.items():
        stems = list(stems_by_split.get(split, ()))
        if stems or split != "test":
            out[f"{SETS_DIR}/{file}"] = "".join(f"{s}\n" for s in stems).encode("utf-8")
    return out


def read_image_set(data: bytes, source: str) -> list[str]:
    """The image names (no extension) of one split list; CVAT and VOC write one per line."""
    try:
        return [ln.split()[0] for ln in data.decode("utf-8-sig").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{source} is not a UTF-8 text file.") from None
