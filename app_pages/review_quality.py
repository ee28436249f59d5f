"""Predict & review's "How good is the model": the model measured on the images it did not learn from."""

import streamlit as st

from app_pages.widgets import show_error
from seg_core import SegError, review, viz
from seg_core.markdown import md_escape, md_name
from seg_core.store.project import Project

AUTO_MEASURE = 60   # validation images measured without asking; past that a button starts it
SCORE_COLUMNS = {"IoU": st.column_config.NumberColumn(format="%.3f"),
                 "dice": st.column_config.NumberColumn(format="%.3f")}


@st.cache_data(max_entries=8, show_spinner=False)
def _confusion_png(cm: list, names: list) -> bytes:
    return viz.confusion_matrix_png(cm, names)


def _fig(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def quality_panel(project: Project, run_id: str, predictor, threshold: float) -> None:
    """How good the chosen model is on the images it did not learn from: headline scores, per image, per class and
    the confusion matrix (measured once per run and state of the masks, then kept)."""
    classes = project.classes
    binary = len(classes) == 2
    ids, scope = review.validation_images(project, run_id)
    summary = review.cached_validation_summary(project, run_id, threshold)
    if summary is None:
        if not ids:
            st.info("There are no labeled images to measure the model on.")
            return
        if len(ids) > AUTO_MEASURE and not st.button(f"Measure the model on {len(ids)} images", key="review_measure"):
            return
        bar = st.progress(0.0, text="Measuring the model...")
        try:
            summary = review.validation_summary(project, predictor, threshold, progress=lambda done, total, name:
                                                bar.progress(done / max(total, 1), text=f"{done} of {total}: {name}"))
        except SegError as exc:
            show_error(exc)
            return
        bar.empty()
    at_threshold = f" Pixels count as '{md_name(classes[1].name)}' from probability {threshold:.2f}." if binary else ""
    (st.caption if summary.scope in ("validation", "run") else st.warning)(summary.note + at_threshold)
    if summary.caution:
        st.warning(md_escape(summary.caution), icon=":material/warning:")
    name, value = summary.headline()
    m1, m2, m3 = st.columns(3)
    m1.metric(md_escape(name), _fig(value), help="The overlap of the model's pixels and the masks' pixels divided by "
              "their union (1 = identical), for the things to find: the background, easy on most photos, is apart.")
    m2.metric("Background IoU", _fig(summary.background_iou),
              help=f"The mean IoU of every class, background included, is {_fig(summary.mean_iou)}.")
    m3.metric("Pixel accuracy", _fig(summary.pixel_accuracy),
              help="The share of all pixels the model got right, background included.")
    with st.expander(f"The {summary.images} image{'' if summary.images == 1 else 's'} measured"):
        st.dataframe([{"image": r["image"], "IoU": r["iou"], "dice": r["dice"]} for r in summary.per_image],
                     hide_index=True, width="stretch", column_config=SCORE_COLUMNS)
    table, figure = st.columns([2, 3])
    table.dataframe([{"class": c["name"] if c.get("learned", True) else f"{c['name']} (not learned yet)",
                      "IoU": c["iou"], "dice": c["dice"], "pixels in masks": c["pixels"]}
                     for c in summary.per_class], hide_index=True, width="stretch", column_config=SCORE_COLUMNS)
    table.caption("A class the model never gets right has IoU and dice near 0: give it more labeled examples.")
    figure.image(_confusion_png(summary.confusion, summary.class_names), width="stretch",
                 caption="Confusion matrix: each row is a class in your masks, split by what the model called "
                         "those pixels. A perfect model fills only the diagonal.")
