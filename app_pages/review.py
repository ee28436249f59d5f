"""Predict & review: the model's masks over the images, what to correct next, and how good the model is."""

import streamlit as st

from app_pages.model_download import model_download
from app_pages.review_quality import quality_panel
from app_pages.review_queue import queue_panel
from app_pages.widgets import cached_image, load_predictor, open_in_annotate, require_project, show_error
from seg_core import SPLITS, STATUSES, ImageStatus, SegError, editing, masks, review, snapping, viz
from seg_core.formats.images import IMAGE_EXTENSIONS
from seg_core.ml.inference import for_project
from seg_core.markdown import md_escape, md_name, shorten

SECTIONS = ("Look at an image", "What to fix next", "How good is the model")
IMAGE_TYPES = sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS)
ROWS_SHOWN = 8
ss = st.session_state

st.title("Predict & review")
project = require_project()

runs = project.runs.usable()
if not runs:
    st.info("A model is training now. Its masks can be looked at here once the run has finished (or been stopped); "
            "follow it on the Train page meanwhile." if any(r.active for r in project.runs.list()) else
            "There is no trained model in this project yet. Train one on the Train page: once it has finished "
            "its first round (epoch), come back here to see its masks over your images.")
    st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()
by_run = {r.id: r for r in runs}
if ss.get("review_run") not in by_run:
    ss["review_run"] = runs[0].id   # the best run, unless this session chose another
run_id = st.selectbox("Model", list(by_run), format_func=lambda i: review.run_label(by_run[i]), key="review_run",
                      help="Each training run made one model. The first one listed scored best on the validation "
                           "images.")
try:
    predictor = for_project(project, load_predictor(str(project.path), run_id))
except Exception as exc:   # noqa: BLE001 - a model file fails to load in many ways (Keras, h5py, a damaged zip)
    show_error(exc)
    st.page_link("app_pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()
if predictor.class_note:   # a class added since the model was trained
    st.info(md_escape(predictor.class_note), icon=":material/school:")

classes = project.classes
binary = len(classes) == 2
with st.sidebar:
    st.markdown("**Show on the image**")
    shown = [c.id for c in classes[1:] if st.checkbox(md_name(c.name), True, key=f"review_show_{c.id}",
                                                          help=md_escape(c.name))]
    opacity = st.slider("Mask opacity", 0.0, 1.0, 0.5, 0.05, key="review_opacity")
    threshold = 0.5
    if binary:
        threshold = st.slider(f"Threshold: '{md_name(classes[1].name)}' from probability", 0.05, 0.95, 0.5, 0.05,
                              key="review_threshold",
                              help=f"Lower finds more '{md_name(classes[1].name)}' pixels (and more false alarms); higher "
                                   "keeps only the pixels the model is sure about.")
hidden = [c.id for c in classes if c.id not in shown]


@st.cache_resource(max_entries=4, show_spinner=False)
def _probabilities(project_path: str, run: str, classes: str, image_key: str, _predictor, _image):
    """Kept per shown image, so the sliders re-threshold and recolour without running the model again."""
    return review.probabilities(_predictor, _image)


@st.cache_resource(max_entries=4, show_spinner=False)
def _upload(file_id: str, name: str, _data: bytes):
    return review.read_upload(_data, name)


@st.cache_data(max_entries=16, show_spinner=False)
def _heatmap(image_key: str, run: str, choice, label: str, _values) -> bytes:
    return viz.heatmap_png(_values, label)


def _correct(image_id: int, probs=None) -> None:
    try:
        message = review.correct_in_annotate(project, predictor, image_id, probs, threshold)
    except SegError as exc:
        show_error(exc)
        return
    open_in_annotate(image_id, message)


def _view(image_id: int) -> None:
    ss.update(review_section=SECTIONS[0], review_source="Project images", review_status="all", review_split="any",
              review_image_id=image_id)


def _pick_project_image():
    f1, f2, f3 = st.columns([1, 1, 3])
    status = f1.selectbox("Status", ["all", *STATUSES], key="review_status")
    split = f2.selectbox("Split", ["any", *SPLITS], key="review_split")
    recs = project.list_images(status=None if status == "all" else status, split=None if split == "any" else split)
    if not recs:
        st.info("No image matches these filters.")
        return None
    by_id = {r.id: r for r in recs}
    if ss.get("review_image_id") not in by_id:
        ss["review_image_id"] = recs[0].id
    image_id = f3.selectbox(f"Image ({len(recs)} match)", list(by_id), key="review_image_id",
                            format_func=lambda i: f"{by_id[i].filename} · {by_id[i].status} · {by_id[i].split}")
    rec = by_id[image_id]
    return rec.filename, cached_image(str(project.image_path(rec)), rec.sha256), rec.sha256, rec


def _pick_upload():
    files = st.file_uploader("Photos to predict (they are not added to the project)", type=IMAGE_TYPES,
                             accept_multiple_files=True, key="review_uploads")
    if not files:
        st.caption("Drop photos here to see what the model makes of them; nothing is saved.")
        return None
    pick = st.selectbox("Image", range(len(files)), format_func=lambda i: files[i].name, key="review_upload_pick")
    f = files[min(pick, len(files) - 1)]
    try:
        return f.name, _upload(f.file_id, f.name, f.getvalue()), f.file_id, None
    except SegError as exc:
        show_error(exc)
        return None


def _look() -> None:
    source = st.radio("Images from", ["Project images", "Upload new images"], horizontal=True, key="review_source")
    picked = _pick_project_image() if source == "Project images" else _pick_upload()
    if picked is None:
        return
    name, image, key, rec = picked
    if rec is not None:   # a reload or a shared link opens the same image
        st.query_params["image"] = ss["review_url_image"] = str(rec.id)
    # Another image: the last one's pictures go at once, not left faded under the spinner as if they were its own.
    drawn = (str(project.path), run_id, key)
    fresh = ss.get("review_drawn") != drawn
    slot = st.empty() if fresh else st.container()
    # Everything for this image is ready before any of it is drawn: two images' pictures never show side by side.
    with st.spinner(f"Predicting {name}..."):
        probs = _probabilities(str(project.path), run_id, repr(predictor.class_map), key, predictor, image)
        ids = review.mask(probs, threshold)
        truth = project.masks.load(rec) if rec is not None and rec.status == ImageStatus.LABELED else None
        score = review.image_score(truth, ids, len(classes)) if truth is not None else None
        choice = st.session_state.get("review_heat_class") if not binary else None
        values, label = review.heat_values(probs, classes, choice)
        heat = _heatmap(key, run_id, choice, label, values)
        photo, ids_small, truth_small = viz.fit_for_display(image, ids, truth)   # a 6000x4000 photo: 1600 px wide
        shown_rgb = viz.overlay(photo, ids_small, classes, opacity, hidden=hidden)
        areas = editing.class_areas(ids, classes)[1:]
    with slot.container() if fresh else slot:   # the same image again (a slider): redrawn in place, no flicker
        left, right = st.columns(2)
        with left:
            st.image(shown_rgb, caption=f"{name}: the model's mask", width="stretch")
            st.markdown(editing.legend_html(classes), unsafe_allow_html=True)
            st.caption("Predicted: " + " · ".join(f"{md_name(a['name'])} {a['percent']:.1f}% ({a['pixels']:,} px)"
                                                  for a in areas))
            d1, d2, d3 = st.columns(3)
            stem = name.rsplit(".", 1)[0]
            d1.download_button("Mask (PNG)", lambda: masks.encode_png(ids, classes), f"{stem}_mask.png", "image/png",
                               key="review_dl_mask", help="Palette PNG: pixel value = class id, colours = class colours.")
            d2.download_button("Overlay (PNG)",
                               lambda: viz.png_bytes(viz.overlay(image, ids, classes, opacity, hidden=hidden)),
                               f"{stem}_overlay.png", "image/png", key="review_dl_overlay", help="At the photo's own size.")
            if rec is not None and d3.button("Correct in Annotate", key="review_fix_shown", type="primary",
                                             help="Open this mask on the Annotate page to fix it and save it."):
                _correct(rec.id, probs)
        with right:
            if not binary:
                st.selectbox("Heat map of", [None, *[c.id for c in classes]], key="review_heat_class",
                             format_func=lambda i: "the model's confidence" if i is None else shorten(classes[i].name))
            st.image(heat, width="stretch", caption="How sure the model is, pixel by pixel (colour bar on the right).")
        if score is not None:
            st.markdown(f"**Compared with your mask** · dice {score.dice:.3f} · IoU {score.iou:.3f} · "
                        f"pixel accuracy {score.pixel_accuracy:.3f}",
                        help="Dice and IoU measure the overlap of the objects in your mask and the model's (1 = "
                             "identical, 0 = no overlap); pixel accuracy counts every pixel, background included.")
            if review.learned_from(project, run_id, rec):
                st.caption("The model learned from this image, so this is optimistic: it does better here than it "
                           "will on new images. The validation images give the honest numbers (How good is the model).")
            pics = [(photo, "Photo"), (viz.overlay(photo, truth_small, classes, opacity, hidden=hidden), "Your mask"),
                    (shown_rgb, "The model's mask"), (viz.disagreement(photo, truth_small, ids_small),
                                                       "Where they differ (magenta)")]
            for col, (pic, caption) in zip(st.columns(4), pics):
                col.image(pic, caption=caption, width="stretch")
    ss["review_drawn"] = drawn


def _predict_all(fn, what: str) -> None:
    bar = st.progress(0.0, text=f"Predicting {what}...")
    try:
        report = fn(project, predictor, lambda done, total, name: bar.progress(
            done / max(total, 1), text=f"{done} of {total}: {name}"), threshold)
        ss["review_flash"] = f"Predicted {report.predicted} {what} in {report.seconds:.1f} s."
    except SegError as exc:
        show_error(exc)
    bar.empty()


def _ranked_rows(items, what: str, empty: str) -> None:
    if not items:
        st.caption(empty)
        return
    limit = len(items) if st.toggle(f"Show all {len(items)}", key=f"review_all_{what}") else ROWS_SHOWN
    for item in items[:limit]:
        pic, text = st.columns([1, 2], vertical_alignment="center")
        pic.image(review.prediction_thumbnail(project, item), width="stretch")
        extra = f" · dice {item.dice:.2f}" if item.dice is not None else ""
        text.markdown(f"**{md_name(item.filename, 80)}** · {item.split}  \n{what} {item.score:.3f}{extra}")
        b1, b2 = text.columns([2, 3])
        b1.button("View", key=f"review_view_{item.image_id}", on_click=_view, args=(item.image_id,), width="stretch")
        if b2.button("Correct in Annotate", key=f"review_fix_{item.image_id}", width="stretch"):
            _correct(item.image_id)


def _fix_next() -> None:
    unlabeled = project.count_images(status=ImageStatus.UNLABELED)
    labeled = project.count_images(status=ImageStatus.LABELED)
    c1, c2 = st.columns(2)
    if not unlabeled:
        c1.caption("Every image is labeled: there is nothing unlabeled to predict.")
    elif c1.button(f"Predict all {unlabeled} unlabeled images", type="primary", key="review_predict_unlabeled",
                   width="stretch"):
        _predict_all(snapping.predict_unlabeled, "unlabeled images")
    if c2.button(f"Compare the model with the {labeled} labeled images", disabled=not labeled,
                 key="review_predict_labeled", width="stretch"):
        _predict_all(review.predict_labeled, "labeled images")
    if ss.get("review_flash"):
        st.success(ss.pop("review_flash"))
    queue_panel(project, run_id, _correct)
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Annotate next")
        st.caption("The unlabeled images, the ones the model is least sure about first (the queue's order): labeling "
                   "these teaches it most. Uncertainty 0 means sure of every pixel, 1 a coin flip.")
        _ranked_rows(review.annotate_next(project, run_id), "uncertainty",
                     "Press 'Predict all unlabeled images' to rank them." if unlabeled else "Every image is labeled.")
    with right:
        st.subheader("Review worst first")
        st.caption("Labeled images where the model disagrees most with the mask: the model is wrong there, "
                   "or the mask is. Disagreement is 1 - IoU: 0 identical, 1 no overlap at all.")
        _ranked_rows(review.review_worst_first(project, run_id), "disagreement",
                     "Press 'Compare the model with the labeled images' to rank them.")


from_url = st.query_params.get("image", "")
if from_url != ss.get("review_url_image"):   # a link, a reload or another page named the image to open
    ss["review_url_image"] = from_url
    if from_url.isdigit() and int(from_url) in project.image_ids():
        _view(int(from_url))
section = st.radio("Section", SECTIONS, horizontal=True, key="review_section", label_visibility="collapsed")
{SECTIONS[0]: _look, SECTIONS[1]: _fix_next,
 SECTIONS[2]: lambda: quality_panel(project, run_id, predictor, threshold)}[section]()
with st.expander("Download this model (the one chosen above) to use outside Maskloop"):
    model_download(project, [by_run[run_id]], "review_export")
