"""The Data page's "Add images" tab: uploads and zips, the report of what happened, and the one-step mapping for
masks whose values are not the project's class ids."""

from __future__ import annotations

import streamlit as st

from app_pages.widgets import show_error
from seg_core import CLASSES_EXPLICIT, Project, SegError, importing
from seg_core.classes import IGNORE_ID
from seg_core.formats.images import IMAGE_EXTENSIONS
from seg_core.markdown import md_escape, md_name, shorten

IMAGE_TYPES = sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS)
MAX_MAPPED_VALUES = 32
ss = st.session_state


def _code_list(items) -> str:
    return "\n".join(f"- {md_name(name, 120)}" + (f": {md_escape(why)}" if why else "") for name, why in items)


def _show_report(title: str, r: importing.ImportReport) -> None:
    if r.added:
        st.success(f"{title}: added {len(r.added)} image(s), {r.labeled} with a mask.")
    elif not (r.masks_added or r.masks_replaced):
        st.info(f"{title}: no new images were added.")
    if r.masks_added:
        st.success(f"{title}: masks added to {len(r.masks_added)} image(s) already in the project.")
    if r.masks_skipped:
        st.warning(f"{len(r.masks_skipped)} mask(s) were NOT imported: their images already have a different mask, "
                   "which was kept. To overwrite, add them again with 'Replace it' chosen above.\n\n"
                   + _code_list(r.masks_skipped))
    if r.masks_replaced:
        st.warning(f"{len(r.masks_replaced)} mask(s) replaced the image's mask, as chosen:\n\n{_code_list(r.masks_replaced)}")
    if r.masks_unchanged:
        st.caption(f"{len(r.masks_unchanged)} mask(s) were identical to the project's: nothing changed.")
    if r.classes:
        st.info(f"Classes: {md_escape(r.classes)}")
    if r.mask_kinds:
        st.caption("Masks read as " + ", ".join(f"{k} ({n})" for k, n in r.mask_kinds.most_common())
                   + (f" · layout: {r.layout}" if r.layout else ""))
    if r.format and r.format != r.layout:
        st.caption(f"Format: {r.format}" + "".join(f" · {md_escape(note)}" for note in r.notes))
    elif r.notes:
        st.caption(" · ".join(map(md_escape, r.notes)))
    if r.refused:
        st.error(f"Refused {len(r.refused)} file(s); they were not added:\n\n" + _code_list(r.refused))
    if r.duplicates:
        st.info(f"Skipped {len(r.duplicates)} file(s) already in the project:\n\n" + _code_list(r.duplicates[:20]))
    if r.masks_without_image:
        st.warning(f"{len(r.masks_without_image)} mask(s) match no image by name and were not imported:\n\n"
                   + _code_list((n, "") for n in r.masks_without_image[:50]))


def _import(project: Project, imgs, msks, zipf, existing: str, value_map=None) -> None:
    """Runs in the script body, not a callback, so the progress bar is drawn while it works."""
    bar = st.progress(0.0, text="Reading files...")

    def progress(done: int, total: int, name: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{done} of {total}: {md_name(name, 60)}")

    # As the command line does: a project made without naming classes takes them from the first masks.
    infer = not project.setting(CLASSES_EXPLICIT, False)
    reports, error = [], None
    try:
        if imgs or msks:
            reports.append(("Uploaded files", importing.import_uploads(
                project, [(f.name, f.getvalue()) for f in imgs or []], [(f.name, f.getvalue()) for f in msks or []],
                infer_classes=infer, existing_masks=existing, value_map=value_map, progress=progress)))
        if zipf is not None:
            reports.append((zipf.name, importing.import_zip(project, zipf.getvalue(), infer_classes=infer,
                                                          existing_masks=existing, value_map=value_map,
                                                          progress=progress)))
    except SegError as exc:
        error = exc
    ss["data_import"] = {"project": str(project.path), "reports": reports, "error": error,
                         "retry": _retry_files(imgs, msks, zipf, reports, existing)}
    # A new key gives empty uploaders: the files are in the project now, the report says what happened.
    ss["data_upload_round"] = ss.get("data_upload_round", 0) + 1
    st.rerun()




class _File:
    """An uploaded file kept for a second try (the uploaders are emptied after an import)."""

    def __init__(self, name: str, data: bytes):
        self.name, self._data = name, data

    def getvalue(self) -> bytes:
        return self._data


def _retry_files(imgs, msks, zipf, reports, existing: str) -> dict | None:
    """The files whose masks were refused for their values, to import again once the person maps them."""
    values = set().union(*(r.unknown_values for _, r in reports)) if reports else set()
    if not values:
        return None
    refused = {name for _, r in reports for pair in r.value_refused for name in pair if name}

    def keep(files) -> list[_File]:
        return [_File(f.name, f.getvalue()) for f in files or [] if f.name in refused]

    zip_refused = zipf is not None and any(title == zipf.name and r.unknown_values for title, r in reports)
    return {"images": keep(imgs), "masks": keep(msks), "values": sorted(values), "existing": existing,
            "zip": _File(zipf.name, zipf.getvalue()) if zip_refused else None}


def _mapping_form(project: Project, retry: dict) -> None:
    """Say what each mask value means, in one step, and import the refused files again."""
    classes = project.classes
    values = retry["values"]
    st.markdown(f"**Some masks hold values that are not this project's class ids ({', '.join(map(str, values))}).** "
                "Say what each value means, then import those files again:")
    if len(values) > MAX_MAPPED_VALUES:
        st.info(f"{len(values)} different values are too many to map here; use the command line's --map.")
        return
    options = [c.id for c in classes] + [IGNORE_ID]
    label = {c.id: shorten(c.name) for c in classes} | {IGNORE_ID: "ignore (counts for no class)"}
    binary = len(classes) == 2
    if binary and st.toggle(f"Any non-zero value is '{md_name(classes[1].name)}'", key="data_map_nonzero"):
        mapping = {v: (0 if v == 0 else 1) for v in values}
    else:
        cols = st.columns(min(4, len(values)))
        mapping = {}
        for i, v in enumerate(values):
            default = v if v < len(classes) or v == IGNORE_ID else (1 if binary else 0)
            mapping[v] = cols[i % len(cols)].selectbox(f"Value {v} is", options, index=options.index(default),
                                                       format_func=label.get, key=f"data_map_{v}")
    if st.button("Import them with this mapping", type="primary", key="data_map_import"):
        zipf = retry["zip"]
        _import(project, retry["images"], retry["masks"], zipf, retry["existing"], mapping)


def add_images_tab(project: Project) -> None:
    st.write("Add photos, and masks for them if you have any: a mask belongs to the image with the same base name "
             "(`cat_01.png` or `cat_01_mask.png` for `cat_01.jpg`). A zip may hold "
             "`images/` + `masks/` folders (with a `classes.csv` or `classes.txt` naming the classes), COCO JSON, Pascal "
             "VOC or CVAT's Segmentation mask with `labelmap.txt`, the keras_segmentation or Oxford-pets layout, or a "
             "Maskloop export.")
    n = ss.get("data_upload_round", 0)
    imgs = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key=f"data_images_{n}")
    msks = st.file_uploader("Masks (optional)", type=IMAGE_TYPES, accept_multiple_files=True, key=f"data_masks_{n}")
    zipf = st.file_uploader("Or a .zip of a data set", type=["zip"], key=f"data_zip_{n}")
    keep = st.radio("If an image already has a different mask", ["Keep it (skip the new mask)", "Replace it"],
                    horizontal=True, key="data_existing_masks",
                    help="Masks painted or corrected here are never overwritten unless you choose Replace.")
    if st.button("Add to project", type="primary", key="data_add", disabled=not (imgs or msks or zipf)):
        _import(project, imgs, msks, zipf, "replace" if keep.startswith("Replace") else "skip")
    done = ss.get("data_import")
    if done and done["project"] == str(project.path):
        for title, report in done["reports"]:
            _show_report(title, report)
        if done["error"] is not None:
            show_error(done["error"])
        if done.get("retry"):
            with st.container(border=True):
                _mapping_form(project, done["retry"])
