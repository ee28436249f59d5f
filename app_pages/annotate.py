"""Annotate: paint or correct one image's mask on a canvas; every stroke is kept as a draft until Save."""

from contextlib import nullcontext

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from app_pages import annotate_tools as tools
from app_pages.annotate_conflict import STATUS, STATUS_HELP, conflict_panel
from app_pages.widgets import (annotate_changed, cached_image, cached_prior, current_user, load_predictor,
                               require_project, show_error)
from seg_core import ImageStatus, drafting, editing, keep_learning
from seg_core.errors import DraftConflictError, MaskConflictError, SegError
from seg_core.markdown import md_name

ss = st.session_state
UNDO_LABELS = {"smart fill": "Undo fill", "box fill": "Undo box", "box click": "Undo click", "magic wand": "Undo wand"}

st.title("Annotate")
project = require_project()
ids_all = project.image_ids()
if not ids_all:
    st.info("This project has no images yet: add some on the Data page.")
    st.page_link("app_pages/data.py", label="Go to Data", icon=":material/photo_library:")
    st.stop()


def _go(image_id: int) -> None:
    ss["annotate_image_id"] = int(image_id)


def _next_unlabeled(after: int) -> int | None:
    todo = project.image_ids(status=ImageStatus.UNLABELED)
    return next((i for i in todo if i > after), todo[0] if todo else None)


if ss.get("annotate_image_id") not in ids_all:
    from_url = st.query_params.get("image", "")
    _go(int(from_url) if from_url.isdigit() and int(from_url) in ids_all else (_next_unlabeled(-1) or ids_all[0]))
image_id = ss["annotate_image_id"]
st.query_params["image"] = str(image_id)  # a reload or a shared link opens the same image
pos = ids_all.index(image_id)

nav = st.columns([1, 1, 1.4, 3], vertical_alignment="bottom")
nav[0].button("◀ Previous", disabled=pos == 0, on_click=_go, args=(ids_all[pos - 1],), width="stretch")
nav[1].button("Next ▶", disabled=pos == len(ids_all) - 1, on_click=_go, args=(ids_all[min(pos + 1, len(ids_all) - 1)],),
              width="stretch")
nxt = _next_unlabeled(image_id)
nav[2].button("Next unlabeled", disabled=nxt is None or nxt == image_id, on_click=_go, args=(nxt or image_id,),
              width="stretch", key="annotate_next_unlabeled")
jump = nav[3].number_input(f"Image (of {len(ids_all)})", 1, len(ids_all), pos + 1, key=f"annotate_pos_{image_id}")
if jump != pos + 1:
    _go(ids_all[int(jump) - 1])
    st.rerun()

rec = project.image(image_id)
followed = tools.follow_classes(project, ss["annotate_view"]) if getattr(ss.get("annotate_view"), "image_id",
                                                                         None) == image_id else None
classes = project.classes
image = cached_image(str(project.image_path(rec)), rec.sha256)
epoch = ss.setdefault("annotate_epoch", 0)
best = project.runs.best()

with st.sidebar:
    others_labeled = project.count_images(status=ImageStatus.LABELED) - (rec.status == ImageStatus.LABELED)
    pen = tools.tool_panel(classes, others_labeled, best.when if best is not None else None)
    cls_id = pen.cls_id
    opacity = st.slider("Mask opacity", 0.0, 1.0, 0.45, 0.05, key="annotate_opacity")
    show_mask = st.toggle("Show mask", True, key="annotate_show_mask")
    outline = st.toggle("Outline classes", True, key="annotate_outline",
                        help="Dashed black-and-white edges around each class: visible on any photo.")
    zooms = [z for z in editing.ZOOMS if z <= editing.max_zoom(rec.width, rec.height)]
    zoom = st.select_slider("Zoom", zooms, key=f"annotate_zoom_{image_id}", format_func=lambda z: f"{z}x",
                            disabled=len(zooms) == 1)
    center = (0.5, 0.5)
    if zoom > 1:
        center = (st.slider("Left ↔ right", 0, 100, 50, key=f"annotate_cx_{image_id}") / 100,
                  st.slider("Top ↕ bottom", 0, 100, 50, key=f"annotate_cy_{image_id}") / 100)
cview = editing.view_for(rec.width, rec.height, zoom, center)
canvas_key = f"annotate_canvas_{image_id}_{cview.key}_{epoch}"
ss["annotate_canvas_key"] = canvas_key
view: drafting.View | None = ss.get("annotate_view")
in_flight = ((ss.get(canvas_key) or {}).get("drawing") or {}).get("raw") or {}   # the canvas's value this run
if view is None or view.image_id != image_id or ss.get("annotate_view_epoch") != epoch:
    view = drafting.open_view(project, image_id, canvas_key)
elif not in_flight.get("objects") and drafting.outdated(project, view):
    view = drafting.open_view(project, image_id, canvas_key)   # changed elsewhere, nothing of this tab's at stake
elif view.key != canvas_key:
    view = drafting.carry_over(view, canvas_key)             # another zoom: what it shows and its undo stay
ss["annotate_view"], ss["annotate_view_epoch"] = view, epoch


def _note(message: str) -> None:
    ss["annotate_flash"] = (message, rec.id)


# The canvas's new strokes (or fill clicks) are folded into the mask before the canvas is drawn: the picture under
# it shows the result of the stroke just made.
drawing = (ss.get(canvas_key) or {}).get("drawing") or {}


def _learn_from():
    others = [r for r in project.list_images(status=ImageStatus.LABELED) if r.id != rec.id][-tools.LEARN_FROM:]
    return [(cached_image(str(project.image_path(r)), r.sha256), project.masks.load(r)) for r in others]


def _model_prior():
    """The best run's probabilities on this image, for the assists (asked only with the pen's "Use the model",
    which the page offers only when there is a best run); None (and a note) when it cannot be used."""
    try:
        return cached_prior(str(project.path), best.id, rec.sha256, tuple(c.name for c in classes), image)
    except SegError as exc:
        _note(f"The model from run {best.when} could not be used: {exc}")
        return None


try:   # each new object on the canvas is folded in as the pen that drew it (pens.py)
    with st.sidebar, st.spinner("Filling...", show_time=True) if pen.tool in tools.ASSIST_TOOLS else nullcontext():
        outcome, note = tools.apply(project, view, drawing, pen, image, classes, cview, _learn_from, _model_prior)
    if note:
        _note(note)
except SegError as exc:
    outcome, note, ss["annotate_error"] = "unchanged", None, exc
if outcome in ("drafted", drafting.STALE):
    project.drafts.forget_discarded(rec.id)   # painting resumed: the discarded strokes stay discarded
    if not note:
        ss.pop("annotate_flash", None)
if followed:
    _note(followed)
if pen.fill_holes:
    outcome, holes, pixels = drafting.fill_holes(project, view, cls_id)
    _note(f"Filled {holes} hole(s), {pixels:,} pixels, with {md_name(classes[cls_id].name)}. Undo takes them out again."
          if pixels else f"{md_name(classes[cls_id].name)} has no holes: no background is enclosed by it.")


def _background() -> bytes:
    # The picture under the canvas changes with the mask (every stroke), the view and the sliders.
    sig = (view.key, view.token, view.version, opacity, show_mask, outline, tuple(c.hex for c in classes))
    cached = ss.get("annotate_bg")
    if cached is None or cached[0] != sig:
        cached = ss["annotate_bg"] = (sig, editing.background(image, view.under, classes, cview, opacity, show_mask,
                                                              outline=outline, edges=view.base_ids))
    return cached[1]


st.caption(f"**{md_name(rec.filename, 80)}** · {rec.width}x{rec.height} · {rec.status} · split {rec.split} · "
           f"mask version {rec.mask_version}" + (f" saved by {rec.mask_updated_by}" if rec.mask_updated_by else "")
           + (f" · zoom {zoom}x: {cview.scale:.2f} screen px per image px" if zoom > 1 else ""))
actions = st.container()  # above the canvas; filled once the callbacks below are defined


def _after_change(message: str) -> None:
    started = keep_learning.after_save(project)   # a short run, where the project keeps learning and one is due
    annotate_changed(rec.id, f"{message} {started}" if started else message)


def _save() -> None:
    try:
        new = drafting.save(project, view, author=current_user())
        project.drafts.forget_discarded(rec.id)
        _after_change(f"Saved the mask of {rec.filename} (version {new.mask_version}).")
    except (MaskConflictError, DraftConflictError):
        pass  # the view now holds the conflict: the page shows both choices
    except SegError as exc:
        ss["annotate_error"] = exc


def _all_background() -> None:
    try:
        new = project.masks.save(rec.id, np.zeros((rec.height, rec.width), np.uint8), view.base_version,
                                 author=current_user())
        _after_change(f"Saved {rec.filename} as all background (version {new.mask_version}).")
    except MaskConflictError:
        view.conflict = drafting.STALE
    except SegError as exc:
        ss["annotate_error"] = exc


def _discard() -> None:
    try:
        project.drafts.discard(rec.id, expect_rev=view.draft_rev, keep=True)
        _after_change("Discarded the unsaved strokes.")
    except DraftConflictError:
        view.conflict, view.mine = drafting.OTHER_TAB, view.shown


def _undo() -> None:
    drafting.undo(project, view)


def _redo() -> None:
    drafting.redo(project, view)


def _undo_discard() -> None:
    project.drafts.undo_discard(rec.id)
    _after_change("Brought the discarded strokes back.")


def _from_prediction(run_id: str) -> None:
    from seg_core import snapping   # loads TensorFlow: only when a model is asked for, never for the page itself

    try:
        _after_change(snapping.start_from_proposal(project, rec.id, load_predictor(str(project.path), run_id)))
    except SegError as exc:
        ss["annotate_error"] = exc


draft_rev = project.drafts.rev(rec.id)   # the header only: this runs on every stroke
dirty = draft_rev is not None and draft_rev == view.draft_rev
with actions:
    a1, u1, u2, a2, a3, a5, a4 = st.columns([1, 1.2, 1, 1.3, 1.9, 1.9, 2.1], vertical_alignment="center")
    a1.button("Save", type="primary", disabled=not dirty or view.conflict is not None, on_click=_save,
              width="stretch", key="annotate_save")
    last = view.undo[-1].what if view.undo else ""
    u1.button(UNDO_LABELS.get(last, "Undo"), on_click=_undo, disabled=not view.undo,
              width="stretch", key="annotate_undo",
              help=f"Take back the last {view.undo[-1].what}, whole." if view.undo else "Nothing to undo.")
    u2.button("Redo", on_click=_redo, disabled=not view.redo, width="stretch", key="annotate_redo",
              help=f"Put the {view.redo[-1].what} back." if view.redo else "Nothing to redo.")
    if dirty or not project.drafts.has_discarded(rec.id):
        a2.button("Discard", disabled=not dirty, on_click=_discard, width="stretch", key="annotate_discard",
                  help="Drop the unsaved strokes; Undo discard brings them back until you paint again.")
    else:
        a2.button("Undo discard", on_click=_undo_discard, width="stretch", key="annotate_undo_discard")
    if rec.status == ImageStatus.UNLABELED and not dirty and view.conflict is None:
        a5.button("Nothing to paint", on_click=_all_background, width="stretch", key="annotate_all_background",
                  help="Save an all-background mask: this image shows none of the classes.")
    if best is not None:
        a3.button("Start from prediction", on_click=_from_prediction, args=(best.id,), width="stretch",
                  key="annotate_from_prediction", help=f"Load run {best.id}'s mask for this image to correct it.")
    # One line either way: a status that wraps would move the canvas under the pen.
    a4.markdown(STATUS if view.conflict else ":orange[**Unsaved strokes**]" if dirty else "All changes saved",
                help=STATUS_HELP if view.conflict else "Every stroke is written to a draft at once: leaving the "
                "page, closing the tab or a crash keeps it. Save makes it the image's mask; Discard drops it.")
    # Dropped only once shown: a rerun that cuts this run short at the call keeps them for the next one.
    error = ss.get("annotate_error")
    if error is not None:
        show_error(error)
        ss.pop("annotate_error", None)
    # The last note (saved, filled, discarded...) in a slot of fixed height: a message that came and went above
    # the canvas would move it under the pen. It stays until painting resumes or another note replaces it.
    flash = ss.get("annotate_flash")
    with st.container(height=64, border=False, key="annotate_note"):   # two lines
        if flash and flash[1] == rec.id:
            st.markdown(f":green[:material/check_circle:] {flash[0]}")
    if view.conflict is not None:
        conflict_panel(project, view, image, classes, _note)

# Everything with a side effect (an error shown then dropped) is drawn before the canvas: the canvas's reply to new
# props (an emptied canvas, a mount) can cut the rest of this run short.
stroke, fill = tools.canvas_colours(pen, classes)
st_canvas(
    fill_color=fill, stroke_color=stroke,
    stroke_width=pen.brush if pen.mode in ("freedraw", "line") else (2 if pen.tool == "Box → object" else 1),
    background_image=_background(),
    update_streamlit=True, height=cview.canvas_h, width=cview.canvas_w, drawing_mode=pen.mode,
    initial_drawing={"objects": [], "maskloop": view.token},   # a new token empties the canvas
    point_display_radius=3, return_image_data=True, key=canvas_key,
)
st.html(tools.CANVAS_SCRIPTS + tools.pen_marker(pen, classes), unsafe_allow_javascript=True)

with st.sidebar:
    if zoom > 1:
        st.image(editing.minimap(image, view.shown, classes, cview), caption="Where the zoom is")
    if dirty or rec.status == ImageStatus.LABELED:
        st.caption("Class areas" + (" (with unsaved strokes)" if dirty else ""))
        st.dataframe([{"class": a["name"], "pixels": a["pixels"], "%": round(a["percent"], 2)}
                      for a in editing.class_areas(view.shown, classes)], hide_index=True, width="stretch")
