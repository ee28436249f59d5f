"""Data: add images and masks, browse and delete them, edit classes, set splits, export the project."""

import tempfile
import time
from pathlib import Path

import streamlit as st

from app_pages.data_import import add_images_tab
from app_pages.widgets import current_user, file_size, open_in_annotate, require_project, show_error
from seg_core import PROJECT_NAME_CHARS, SPLITS, SegError, exporting, gallery
from seg_core.classes import ClassSpec, default_color, parse_color
from seg_core.markdown import md_escape, md_name, shorten

PER_PAGE, COLUMNS = 24, 6
ss = st.session_state

st.title("Data")
project = require_project()

stats = project.stats()
classes = project.classes
st.markdown(f"**{md_name(project.name, PROJECT_NAME_CHARS)}** · {stats['images']} images · "
            f"{stats['labeled']} labeled · {stats['unlabeled']} unlabeled · {stats['num_classes']} classes")


def _flash(section: str, kind: str, message) -> None:
    ss[f"data_flash_{section}"] = (kind, message)


def _show_flash(section: str) -> None:
    kind, message = ss.pop(f"data_flash_{section}", (None, None))
    if kind == "error":
        show_error(message)
    elif kind:
        getattr(st, kind)(message)


def _set(key: str, value) -> None:
    ss[key] = value


def _delete(image_id: int, filename: str) -> None:
    ss.pop("data_confirm_delete", None)
    try:
        project.delete_image(image_id)
        _flash("gallery", "success", f"Deleted '{md_name(filename, 80)}' and its mask.")
    except SegError as exc:
        _flash("gallery", "error", exc)


def _tile(rec, drafts: set[int], predicted: set[int]) -> None:
    try:
        st.image(gallery.thumbnail(project, rec), caption=gallery.caption(rec, drafts, predicted), width="stretch")
    except (SegError, OSError) as exc:  # one unreadable file must not hide the rest of the page
        st.warning(f"'{md_name(rec.filename, 80)}' cannot be shown ({md_escape(exc)}).")
    if ss.get("data_confirm_delete") == rec.id:
        st.button("Confirm delete", key=f"data_confirm_{rec.id}", type="primary", width="stretch",
                  on_click=_delete, args=(rec.id, rec.filename))
        st.button("Cancel", key=f"data_cancel_{rec.id}", width="stretch", on_click=_set, args=("data_confirm_delete", None))
        return
    a, d = st.columns([3, 1], vertical_alignment="center")
    if a.button("Annotate", key=f"data_annotate_{rec.id}", width="stretch"):
        open_in_annotate(rec.id)
    d.button(":material/delete:", key=f"data_delete_{rec.id}", type="tertiary",
             help="Delete this image and its mask (asks first)", on_click=_set, args=("data_confirm_delete", rec.id))


def _class_widget_values() -> None:
    # Set here rather than as the widgets' values: a value the script sets reaches the browser, so a widget whose
    # key _reset_class_widgets dropped shows the project's classes again instead of what was typed into it.
    for c in classes:
        ss.setdefault(f"data_class_name_{c.id}", c.name)
        ss.setdefault(f"data_class_color_{c.id}", c.hex)
    ss.setdefault("data_new_class_name", "")
    ss.setdefault("data_new_class_color", ClassSpec(len(classes), "", default_color(len(classes))).hex)


def _reset_class_widgets() -> None:
    # Widgets keep what was typed; after a change they must show the project's classes again.
    for key in [k for k in ss if str(k).startswith(("data_class_", "data_new_class_", "data_remove_to_"))]:
        del ss[key]
    ss.pop("data_remove_class", None)
    ss.pop("data_confirm_remove", None)


def _save_classes() -> None:
    try:
        new = [ClassSpec(c.id, ss.get(f"data_class_name_{c.id}", c.name).strip(),
                         parse_color(ss.get(f"data_class_color_{c.id}", c.hex))) for c in classes]
        changed = [n.name for n, c in zip(new, classes) if n != c]
        if changed:
            project.set_classes(new)  # one transaction: a refused name leaves every class as it was
    except SegError as exc:
        _flash("classes", "error", exc)
        return
    _reset_class_widgets()
    _flash("classes", "success", f"Saved: {', '.join(map(md_name, changed))}." if changed else "Nothing had changed.")


def _add_class() -> None:
    try:
        new = project.add_class(ss.get("data_new_class_name", ""), ss.get("data_new_class_color"))
    except SegError as exc:   # what was typed stays in the box, to be corrected
        _flash("add_class", "error", exc)
        return
    _reset_class_widgets()
    _flash("add_class", "success", f"Added class {new.id}, '{md_name(new.name)}'. Paint it on the Annotate page.")


def _remove_class(class_id: int, pixels_to: int) -> None:
    name, target = md_name(classes[class_id].name), md_name(classes[pixels_to].name)
    try:
        rewritten = project.remove_class(class_id, pixels_to=pixels_to, author=current_user())
    except SegError as exc:
        _flash("remove_class", "error", exc)
        return
    _reset_class_widgets()
    _flash("remove_class", "success", f"Removed '{name}': its pixels are now '{target}'; {rewritten} mask(s) "
                                      "rewritten. Stored predictions were dropped; train again to predict the new "
                                      "classes.")


def _assign_splits() -> None:
    by_count = ss.get("data_split_mode") == "A number of images"
    try:
        result = project.splits.assign(val_fraction=None if by_count else ss.get("data_val_fraction", 0.2),
                                       val_count=int(ss.get("data_val_count", 0)) if by_count else None,
                                       seed=int(ss.get("data_split_seed", 0)))
    except SegError as exc:
        _flash("splits", "error", exc)
        return
    _flash("splits", "success", f"{result['val']} labeled image(s) for validation, {result['train']} for training"
                                f" ({result['test']} test image(s) left as they are).")


# The chosen tab is kept by the server, per project, so a button's rerun leaves the person on their tab. An empty
# project opens on "Add images"; set once, so that the first upload does not move the person off its report.
tab_key = f"data_tab_{project.path.name}"
ss.setdefault(tab_key, "Add images" if not stats["images"] else "Images")
tab_images, tab_add, tab_classes, tab_splits, tab_export = st.tabs(
    ["Images", "Add images", "Classes", "Splits", "Export"], key=tab_key, on_change="rerun")

with tab_add:
    add_images_tab(project)

with tab_images:
    f1, f2, f3 = st.columns([1, 1, 2])
    first_page = dict(on_change=_set, args=("data_page", 0))  # a new filter starts at its first page
    status = f1.selectbox("Show", list(gallery.STATUS_FILTERS), key="data_status", **first_page)
    split = f2.selectbox("Split", ["all", *SPLITS], key="data_split", **first_page)
    search = f3.text_input("Name contains", key="data_search", **first_page)
    gp = gallery.page(project, status, None if split == "all" else split, search, ss.get("data_page", 0), PER_PAGE)
    ss["data_page"] = gp.page  # clamped: deleting the last image of the last page moves back a page
    _show_flash("gallery")
    if not gp.records:
        st.info("No images yet: add some on the 'Add images' tab." if not stats["images"]
                else "No image matches these filters.")
    drafts, predicted = project.drafts.image_ids(), project.predictions.image_ids()
    for start in range(0, len(gp.records), COLUMNS):
        for col, rec in zip(st.columns(COLUMNS), gp.records[start:start + COLUMNS]):
            with col:
                _tile(rec, drafts, predicted)
    p1, p2, p3 = st.columns([1, 2, 1], vertical_alignment="center")
    p1.button("← Previous", key="data_prev", disabled=gp.page == 0, width="stretch",
              on_click=_set, args=("data_page", gp.page - 1))
    p2.markdown(f"<div style='text-align:center'>page {gp.page + 1} of {gp.pages} · {gp.total} image(s)</div>",
                unsafe_allow_html=True)
    p3.button("Next →", key="data_next", disabled=gp.page + 1 >= gp.pages, width="stretch",
              on_click=_set, args=("data_page", gp.page + 1))

with tab_classes:
    st.caption("Class 0, the background, is everything that is none of the other classes: painting with it "
               "erases. Its colour only changes how masks are shown.")
    _class_widget_values()
    for c in classes:
        a, b, u = st.columns([4, 1, 2], vertical_alignment="bottom")
        a.text_input(f"Class {c.id} name", key=f"data_class_name_{c.id}", disabled=c.id == 0)
        b.color_picker("Colour", key=f"data_class_color_{c.id}")
        u.caption(f"in {stats['classes'][c.id]['images']} labeled image(s)")
    if stats["ignore_pixels"]:
        st.caption(f"Also in the masks: **ignore** (value 255, grey), {stats['ignore_pixels']:,} pixels. They count for "
                   "no class: training and scores leave them out (e.g. the uncertain border of an Oxford-pets trimap).")
    st.button("Save class names and colours", key="data_save_classes", on_click=_save_classes)
    _show_flash("classes")

    st.markdown("**Add a class**")
    a, b, u = st.columns([4, 1, 2], vertical_alignment="bottom")
    a.text_input("New class name", key="data_new_class_name", placeholder="e.g. spot")
    b.color_picker("Colour", key="data_new_class_color")
    u.button("Add class", key="data_add_class", on_click=_add_class)
    _show_flash("add_class")   # next to the button pressed, not below the fold
    if len(classes) == 2:
        st.caption("Adding a class makes this a multi-class project.")

    st.markdown("**Remove a class**")
    if len(classes) <= 2:
        st.info("Not possible here: a project needs the background and at least one class to segment. "
                "Rename the class instead, or add another class first.")
    else:
        a, b = st.columns(2)
        rid = a.selectbox("Class to remove", [c.id for c in classes[1:]], key="data_remove_class",
                          format_func=lambda i: f"{i} · {shorten(classes[i].name)}")
        to = b.selectbox("Its pixels become", [c.id for c in classes if c.id != rid], key=f"data_remove_to_{rid}",
                         format_func=lambda i: f"{i} · {shorten(classes[i].name)}")
        used = stats["classes"][rid]["images"]
        st.caption(f"'{md_name(classes[rid].name)}' is painted in {used} labeled image(s); those masks are rewritten. "
                   "Classes after it move down one number, and stored predictions are dropped.")
        if ss.get("data_confirm_remove") == rid:
            st.button(f"Confirm: remove '{md_name(classes[rid].name)}'", key="data_remove_confirm", type="primary",
                      help=md_escape(classes[rid].name),
                      on_click=_remove_class, args=(rid, to))
            st.button("Cancel", key="data_remove_cancel", on_click=_set, args=("data_confirm_remove", None))
        else:
            st.button("Remove class", key="data_remove", on_click=_set, args=("data_confirm_remove", rid))
    _show_flash("remove_class")

with tab_splits:
    by = stats["by_split"]
    st.write(f"Now: **{by['train']}** train · **{by['val']}** validation · **{by['test']}** test.")
    st.caption("Training learns from 'train' and is scored on 'validation'. Only labeled images are held out; "
               "unlabeled ones go to train and test images stay as they are. The same seed gives the same split.")
    mode = st.radio("Hold out for validation", ["A fraction", "A number of images"], horizontal=True,
                    key="data_split_mode")
    if mode == "A fraction":
        st.slider("Fraction of labeled images", 0.0, 0.9, 0.2, 0.05, key="data_val_fraction")
    else:
        st.number_input("Number of labeled images", 0, None, min(5, stats["labeled"]), key="data_val_count")
    st.number_input("Seed", 0, 2**31 - 1, 0, key="data_split_seed")
    st.button("Assign splits", key="data_assign_splits", on_click=_assign_splits)
    _show_flash("splits")

with tab_export:
    fmt = st.selectbox("Format", list(exporting.EXPORT_FORMATS), key="data_export_format",
                       format_func=lambda f: exporting.EXPORT_FORMATS[f].split(":")[0])
    st.caption(exporting.EXPORT_FORMATS[fmt].split(": ", 1)[1])
    if st.button("Prepare export zip", key="data_export"):
        try:
            with st.spinner("Writing the zip..."), tempfile.TemporaryDirectory() as tmp:
                data = exporting.export_zip(project, Path(tmp) / "export.zip", fmt=fmt).read_bytes()
            ss["data_export_zip"] = ((str(project.path), fmt), data, time.strftime("%H:%M:%S"))
        except SegError as exc:
            show_error(exc)
    ready = ss.get("data_export_zip")
    if ready and ready[0] == (str(project.path), fmt):
        name = f"{project.name}.zip" if fmt == "seg" else f"{project.name}-{fmt}.zip"
        st.download_button(f"Download {name} ({file_size(len(ready[1]))}, prepared {ready[2]})",
                           ready[1], file_name=name, mime="application/zip",
                           key="data_download", on_click="ignore")
