"""Predict & review's queue: one proposal at a time, least sure first, with Accept, Fix and Skip (keys a, f, s;
the arrows look at the previous or next one without judging it)."""

from typing import Callable

import streamlit as st

from app_pages.widgets import current_user, show_error
from seg_core import review, snapping
from seg_core.errors import SegError
from seg_core.services import review_queue
from seg_core.store.project import Project
from seg_core.markdown import md_name

SIDE = 640   # the proposal's picture, pixels on its longer side
ss = st.session_state


def _state(run_id: str) -> dict:
    """This tab's place in the queue of this model: what it skipped, and the image it was asked to show first."""
    return ss.setdefault(f"review_queue_{run_id}", {"skipped": [], "front": None, "seen": []})


def _accept(project: Project, run_id: str, image_id: int) -> None:
    try:
        rec, started = review_queue.accept(project, run_id, image_id, author=current_user())
        ss["review_queue_flash"] = " ".join(filter(None, (
            f"Accepted the proposal as the mask of {rec.filename} (version {rec.mask_version}).", started)))
    except SegError as exc:
        ss["review_queue_error"] = exc
    _moved_on(run_id, image_id)


def _skip(project: Project, run_id: str, image_id: int) -> None:
    review_queue.skip(project, run_id, image_id)
    _state(run_id)["skipped"].append(image_id)
    _moved_on(run_id, image_id)


def _next(run_id: str, image_id: int) -> None:
    """Look at the next one without judging this: it goes behind the others for now."""
    _state(run_id)["skipped"].append(image_id)
    _moved_on(run_id, image_id)


def _back(run_id: str) -> None:
    state = _state(run_id)
    if state["seen"]:
        state["front"] = state["seen"].pop()


def _moved_on(run_id: str, image_id: int) -> None:
    state = _state(run_id)
    state["seen"].append(image_id)
    if state["front"] == image_id:
        state["front"] = None


def queue_panel(project: Project, run_id: str, fix: Callable[[int], None]) -> None:
    """The queue's head with its buttons; `fix` opens an image's proposal on the Annotate page."""
    st.subheader("Review queue")
    state = _state(run_id)
    items = review_queue.queue(project, run_id, state["skipped"])
    if state["front"] is not None:
        items.sort(key=lambda r: r.image_id != state["front"])
    _, sentence = review_queue.acceptance(project, run_id)
    if "review_queue_error" in ss:
        show_error(ss.pop("review_queue_error"))
    if ss.get("review_queue_flash"):
        st.success(ss.pop("review_queue_flash"), icon=":material/check_circle:")
    if not items:
        st.caption("The queue is empty: every unlabeled image with a proposal of this model was dealt with, or "
                   "none was predicted yet (Predict all unlabeled images).")
        st.caption(sentence)
        return
    head = items[0]
    pic, side = st.columns([3, 2], vertical_alignment="center")
    pic.image(review.prediction_thumbnail(project, head, SIDE), width="stretch",
              caption=f"{head.filename}: the model's proposal")
    with side:
        st.markdown(f"**{md_name(head.filename, 80)}** · uncertainty {head.score:.3f}  \n"
                    f"{len(items)} in the queue")
        st.button("Accept", key="review_queue_accept", type="primary", shortcut="A", width="stretch",
                  on_click=_accept, args=(project, run_id, head.image_id),
                  help="The proposal becomes this image's mask as it is (saved as 'accepted').")
        if st.button("Fix", key="review_queue_fix", shortcut="F", width="stretch",
                     help="Open the proposal on the Annotate page to correct it, then save it there."):
            review_queue.fixed(project, run_id, head.image_id)
            fix(head.image_id)
        st.button("Skip", key="review_queue_skip", shortcut="S", width="stretch",
                  on_click=_skip, args=(project, run_id, head.image_id),
                  help="Not now: it goes to the end of the queue.")
        b1, b2 = st.columns(2)
        b1.button("Previous", key="review_queue_back", shortcut="Left", width="stretch", on_click=_back,
                  args=(run_id,), disabled=not state["seen"], icon=":material/arrow_back:")
        b2.button("Next", key="review_queue_next", shortcut="Right", width="stretch", on_click=_next,
                  args=(run_id, head.image_id), disabled=len(items) < 2, icon=":material/arrow_forward:")
        st.caption(sentence)
        snapped = snapping.kept_verdict(project, run_id)
        if snapped is not None:
            st.caption(snapped.sentence)
    if len(items) > 1:   # ready before it is asked for: the next one shows at once
        review.prediction_thumbnail(project, items[1], SIDE)
