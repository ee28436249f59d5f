"""Export a project as a zip of images/, masks/ (palette PNGs), classes.json and manifest.json."""

from __future__ import annotations

import json
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Callable

from seg_core.classes import IGNORE_ID
from seg_core.files import commit_temp, write_temp
from seg_core.formats import masks
from seg_core.formats.layouts import EXPORT_FORMAT
from seg_core.store.project import Project

Progress = Callable[[int, int, str], None]


def export_zip(project: Project, out: str | Path, progress: Progress | None = None) -> Path:
    """Write images/, masks/ (palette PNG per labeled image), classes.json and manifest.json to a zip."""
    out = Path(out)
    classes = project.classes
    records = project.list_images()
    used = Counter(rec.stem or f"image_{rec.id}" for rec in records)
    taken: set[str] = set()
    buf_path = write_temp(out, b"")
    manifest = []
    try:
        with zipfile.ZipFile(buf_path, "w", compression=zipfile.ZIP_STORED) as zf:
            for i, rec in enumerate(records, 1):
                stem = rec.stem or f"image_{rec.id}"
                # Masks pair with images by base name, so every exported base name must be unique.
                if used[stem] > 1 or stem in taken:
                    stem = f"{stem}_{rec.id}"
                while stem in taken:
                    stem += "_"
                taken.add(stem)
                ext = Path(rec.stored_name).suffix
                img_name = f"images/{stem}{ext}"
                zf.write(project.image_path(rec), img_name)
                entry = {"image": img_name, "original_name": rec.filename, "split": rec.split, "status": rec.status}
                ids = project.masks.load(rec)
                if ids is not None:
                    mask_name = f"masks/{stem}.png"
                    zf.writestr(mask_name, masks.encode_png(ids, classes))
                    entry["mask"] = mask_name
                manifest.append(entry)
                if progress:
                    progress(i, len(records), rec.filename)
            meta = {"format": EXPORT_FORMAT, "version": 1, "name": project.name, "kind": project.kind,
                    "classes": [c.to_dict() for c in classes], "ignore_id": IGNORE_ID,
                    "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            zf.writestr("classes.json", json.dumps(meta, indent=2))
            zf.writestr("manifest.json", json.dumps({"images": manifest}, indent=2))
        commit_temp(buf_path, out)
    except BaseException:
        buf_path.unlink(missing_ok=True)
        raise
    return out
