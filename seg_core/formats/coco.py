"""COCO instances JSON: a project's masks written as RLE annotations, and polygons or RLE read back as class ids.

Written: one annotation per class per image (all of that class's pixels in the image, one RLE), `iscrowd` 0 as
COCO-Stuff does for such regions (1 would make detectron2 and mmdetection skip them in training); category id =
class id, background is no category. Read: overlapping annotations are drawn largest first, so a smaller region
lying on a larger one (a cup on a table) stays visible, whatever order the tool wrote them in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_util

from seg_core.classes import IGNORE_ID, ClassSpec, fit_colors, parse_color
from seg_core.errors import ClassSpecError, DatasetFormatError

OVERLAP_RULE = "overlapping COCO annotations are drawn largest first, so smaller regions lie on top"
BACKGROUND_NAMES = ("background", "_background_", "__background__")
EXTRA = "maskloop"  # our own key on the file and its images: COCO readers ignore keys they do not know
FORMER_EXTRA = "seg_studio"  # the key in files written before the product was called Maskloop


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int
    labeled: bool            # has annotations, or our export says its mask is all background
    split: str | None = None


@dataclass
class CocoSet:
    """One parsed, checked COCO file: its classes, images and each image's annotations."""

    source: str
    classes: list[ClassSpec]
    images: list[CocoImage]
    cat_class: dict[int, int]                       # category id -> class id
    anns: dict[int, list[dict]] = field(default_factory=dict)     # image id -> its annotations, in file order
    ignore: dict[int, dict] = field(default_factory=dict)         # image id -> RLE of our export's ignore pixels
    notes: list[str] = field(default_factory=list)

    def ids(self, image: CocoImage) -> np.ndarray:
        """The image's class-id mask (HxW uint8): annotations drawn largest first (OVERLAP_RULE)."""
        h, w = image.height, image.width
        regions = []
        for order, ann in enumerate(self.anns.get(image.id, [])):
            region = _decode(ann["segmentation"], h, w, self.source)
            regions.append((-int(region.sum()), order, region, self.cat_class[ann["category_id"]]))
        out = np.zeros((h, w), np.uint8)
        for _, _, region, cid in sorted(regions, key=lambda r: (r[0], r[1])):
            out[region] = cid
        if image.id in self.ignore:
            out[_decode(self.ignore[image.id], h, w, self.source)] = IGNORE_ID
        return out


def looks_like(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("images"), list) and isinstance(obj.get("categories"), list)


def _ours(obj: dict) -> dict:
    """Our own key's contents on a COCO file or image, under its present or its former name; {} without one."""
    for key in (EXTRA, FORMER_EXTRA):
        if isinstance(obj.get(key), dict):
            return obj[key]
    return {}


def _int(value: Any, what: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise DatasetFormatError(f"{source}: {what} is {value!r}, not a whole number.")
    return int(value)


def _classes(obj: dict, source: str) -> tuple[list[ClassSpec], dict[int, int], list[str]]:
    cats: dict[int, dict] = {}
    for cat in obj["categories"]:
        if not isinstance(cat, dict) or not isinstance(cat.get("name"), str) or not cat["name"].strip():
            raise DatasetFormatError(f"{source}: a category has no name ({cat!r}).")
        cid = _int(cat.get("id"), f"the id of category '{cat['name']}'", source)
        if cid in cats:
            raise DatasetFormatError(f"{source} has two categories with id {cid} ('{cats[cid]['name']}' and "
                                     f"'{cat['name']}'); each category needs its own id.")
        cats[cid] = cat
    if not cats:
        raise DatasetFormatError(f"{source} has no categories: there are no classes to import.")
    bg = next((cid for cid, c in sorted(cats.items()) if c["name"].strip().lower() in BACKGROUND_NAMES), None)
    extra = _ours(obj)
    ours = extra.get("background") if isinstance(extra.get("background"), dict) else {}
    order = [cid for cid in sorted(cats) if cid != bg]
    names = [cats[bg]["name"] if bg is not None else str(ours.get("name") or "background")]
    wanted = [_color(cats[bg].get("color")) if bg is not None else _color(ours.get("color", "#000000"))]
    names += [cats[cid]["name"].strip() for cid in order]
    wanted += [_color(cats[cid].get("color")) for cid in order]
    try:
        classes, notes = fit_colors(names, wanted)
    except ClassSpecError as exc:
        raise DatasetFormatError(f"{source}: the categories cannot be classes: {exc}") from None
    cat_class = {cid: i for i, cid in enumerate(order, 1)} | ({bg: 0} if bg is not None else {})
    return classes, cat_class, notes


def _color(value: Any) -> tuple[int, int, int] | None:
    try:
        return parse_color(value) if value is not None else None
    except (ClassSpecError, TypeError, ValueError):
        return None  # another tool's idea of a colour: the class gets a default one


def parse(obj: dict, source: str) -> CocoSet:
    """Check a COCO file completely before anything is imported: unique category and image ids, annotations that
    name known images and categories, outlines or RLE masks of their image's size."""
    classes, cat_class, notes = _classes(obj, source)
    images: dict[int, CocoImage] = {}
    names: dict[str, int] = {}
    ignore: dict[int, dict] = {}
    for entry in obj["images"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
            raise DatasetFormatError(f"{source}: an image entry has no file_name ({str(entry)[:80]}).")
        fn = entry["file_name"]
        iid = _int(entry.get("id"), f"the id of image '{fn}'", source)
        w, h = (_int(entry.get(k), f"the {k} of image '{fn}'", source) for k in ("width", "height"))
        if w <= 0 or h <= 0:
            raise DatasetFormatError(f"{source}: image '{fn}' is {w}x{h} pixels.")
        if iid in images:
            raise DatasetFormatError(f"{source} has two images with id {iid} ('{images[iid].file_name}' and '{fn}').")
        if fn in names:
            raise DatasetFormatError(f"{source} lists the image '{fn}' twice.")
        extra = _ours(entry)
        if isinstance(extra.get("ignore"), dict):
            ignore[iid] = extra["ignore"]
            _check_rle(extra["ignore"], h, w, f"{source}: the ignored pixels of '{fn}'")
        images[iid] = CocoImage(iid, fn, w, h, bool(extra.get("labeled")))
        names[fn] = iid
    anns: dict[int, list[dict]] = {}
    for n, ann in enumerate(obj.get("annotations") or [], 1):
        if not isinstance(ann, dict):
            raise DatasetFormatError(f"{source}: annotation {n} is not an object.")
        where = f"{source}: annotation {ann.get('id', n)}"
        iid = _int(ann.get("image_id"), f"the image_id of annotation {ann.get('id', n)}", source)
        if iid not in images:
            raise DatasetFormatError(f"{where} is for image id {iid}, which the file's 'images' do not list.")
        cat = _int(ann.get("category_id"), f"the category_id of annotation {ann.get('id', n)}", source)
        if cat not in cat_class:
            raise DatasetFormatError(f"{where} has category {cat}, which the file's 'categories' do not list.")
        img = images[iid]
        _check_segmentation(ann.get("segmentation"), img.height, img.width, f"{where} (image '{img.file_name}')")
        anns.setdefault(iid, []).append(ann)
    listed = [CocoImage(i.id, i.file_name, i.width, i.height, i.labeled or i.id in anns) for i in images.values()]
    return CocoSet(source, classes, listed, cat_class, anns, ignore, notes)


def _check_segmentation(seg: Any, h: int, w: int, where: str) -> None:
    if isinstance(seg, dict):
        _check_rle(seg, h, w, where)
        return
    if not isinstance(seg, list) or not seg:
        raise DatasetFormatError(f"{where} has no segmentation (only a box?): Maskloop needs the region's "
                                 "outline (polygons) or its mask (RLE).")
    for poly in seg:
        if (not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in poly)):
            raise DatasetFormatError(f"{where} has a polygon that is not a list of at least three x,y points.")


def _check_rle(seg: dict, h: int, w: int, where: str) -> None:
    size = seg.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise DatasetFormatError(f"{where} has an RLE mask without a [height, width] size.")
    if size != [h, w]:
        raise DatasetFormatError(f"{where} has an RLE mask of {size[1]}x{size[0]} pixels, but the image is {w}x{h}; "
                                 "a mask must have its image's size.")
    counts = _counts(seg.get("counts"), where)
    if sum(counts) != h * w:
        raise DatasetFormatError(f"{where} has a damaged RLE mask: its runs cover {sum(counts)} pixels, "
                                 f"not the image's {h * w}.")


def _counts(counts: Any, where: str) -> list[int]:
    """RLE run lengths from either form: a list of numbers, or COCO's compressed string."""
    if isinstance(counts, (bytes, str)):
        out = _string_counts(counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        out = counts
    else:
        out = None
    if out is None or any(v < 0 for v in out):
        raise DatasetFormatError(f"{where} has an RLE mask whose counts are not run lengths.")
    return out


def _string_counts(s: str) -> list[int] | None:
    """COCO's compressed counts (maskApi.c rleFrString), decoded here so that a damaged string is refused:
    pycocotools refuses runs past the mask's end, but runs that fall short leave pixels of whatever memory held."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                return None
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _decode(seg: Any, h: int, w: int, source: str) -> np.ndarray:
    """An annotation's region as an HxW bool array (checked by parse() already)."""
    if isinstance(seg, dict):
        counts = _counts(seg["counts"], source)
        flat = np.repeat(np.arange(len(counts), dtype=np.uint8) % 2, counts).astype(bool)
        return flat.reshape(w, h).T  # COCO runs go down the columns
    rles = mask_util.frPyObjects([[float(v) for v in poly] for poly in seg], h, w)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def rle(region: np.ndarray) -> dict:
    """A bool HxW region as COCO compressed RLE, counts as a string so it goes into JSON."""
    enc = mask_util.encode(np.asfortranarray(region.astype(np.uint8)))
    return {"size": [int(v) for v in enc["size"]], "counts": enc["counts"].decode("ascii")}


def image_entry(image_id: int, file_name: str, ids: np.ndarray | None, width: int, height: int,
                classes: Sequence[ClassSpec]) -> tuple[dict, list[dict]]:
    """One image of a COCO file and its annotations: one RLE annotation per class present (ids from 0)."""
    entry: dict = {"id": image_id, "file_name": file_name, "width": width, "height": height}
    anns = []
    if ids is not None:
        entry[EXTRA] = {"labeled": True}
        present = np.flatnonzero(np.bincount(ids.ravel(), minlength=256))
        for cid in present.tolist():
            if cid == IGNORE_ID:
                entry[EXTRA]["ignore"] = rle(ids == IGNORE_ID)
            elif 0 < cid < len(classes):
                enc = rle(ids == cid)
                box = mask_util.toBbox({**enc, "counts": enc["counts"].encode("ascii")}).tolist()
                anns.append({"image_id": image_id, "category_id": cid, "segmentation": enc,
                             "area": int(np.count_nonzero(ids == cid)), "bbox": [float(v) for v in box], "iscrowd": 0})
    return entry, anns


def document(classes: Sequence[ClassSpec], images: list[dict], anns: list[dict], description: str) -> dict:
    """The whole COCO file; annotation ids are numbered from 1 in the order given."""
    background = classes[0]
    return {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "categories": [{"id": c.id, "name": c.name, "supercategory": "", "color": c.hex} for c in classes[1:]],
        "images": images,
        "annotations": [{"id": i, **a} for i, a in enumerate(anns, 1)],
        EXTRA: {"background": {"name": background.name, "color": background.hex}},
    }
