"""The Annotate page's conflict panel: another tab, or a newer saved mask, stands in the way of this tab's strokes;
the person keeps theirs, uses or saves their own, or combines both (seg_core.services.conflicts decides each)."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from app_pages.widgets import annotate_changed, current_user
from seg_core import SegError, conflicts, drafting, viz

STATUS = ":red[**Not saved**]"
STATUS_HELP = ("Your strokes here are kept, but not written over the other side's: keep theirs, use yours, or "
               "combine both below.")


def conflict_panel(project, view: drafting.View, image, classes, note: Callable[[str], None]) -> None:
    """`note(message)`: the page's one-line note above the canvas."""
    rec = project.image(view.image_id)
    ss = st.session_state

    def keep_theirs() -> None:
        conflicts.keep_theirs(project, view)
        annotate_changed(rec.id, "Showing the other side's mask; your strokes were set aside (Undo discard brings "
                                 "them back)." if project.drafts.has_discarded(rec.id)
                         else "Showing the other tab's strokes.")

    def save_mine() -> None:
        try:
            new = conflicts.save_mine(project, view, author=current_user())
            annotate_changed(rec.id, f"Saved your mask of {rec.filename} over theirs (version {new.mask_version})."
                             if new else "Your strokes are this image's unsaved strokes now.")
        except SegError as exc:
            ss["annotate_error"] = exc

    def combine() -> None:
        # No fresh canvas: should yet another write have come in, the combined strokes live only in this view.
        try:
            outcome = conflicts.combine(project, view)
        except SegError as exc:
            ss["annotate_error"] = exc
            return
        if outcome != drafting.OTHER_TAB:
            note("Combined both tabs' strokes, the later on top. Undo goes back to theirs, then to yours.")

    with st.container(border=True, key="annotate_conflict"):
        if view.conflict == drafting.OTHER_TAB:
            st.error("Another tab or window changed the unsaved strokes of this image after this one showed them. "
                     "Your strokes here were not written over theirs.", icon="⚠️")
            mine_label = "Use mine"
        else:
            st.error(conflicts.stale_message(project, view), icon="⚠️")
            mine_label = "Save mine over it"
        c1, c2, c3, c4 = st.columns(4)
        c1.button("Keep theirs", on_click=keep_theirs, key="annotate_keep_theirs", width="stretch")
        c2.button(mine_label, on_click=save_mine, key="annotate_save_mine", width="stretch")
        c3.button("Combine both", on_click=combine, key="annotate_combine", width="stretch",
                  help="Both sides' strokes in one mask; where both changed a pixel, the later stroke wins. "
                       "It becomes the unsaved strokes, for you to look at and save.")
        if c4.toggle("View both", key="annotate_view_both"):
            left, right = st.columns(2)
            left.image(viz.overlay(image, conflicts.theirs(project, view), classes, 0.5), caption="Theirs",
                       width="stretch")
            right.image(viz.overlay(image, view.mine if view.mine is not None else view.shown, classes, 0.5),
                        caption="Yours", width="stretch")
