"""The Train page's keep-learning setting: short runs from the current model after every few saved masks."""

import streamlit as st

from app_pages.widgets import show_error
from seg_core import keep_learning
from seg_core.errors import SegError
from seg_core.store.project import Project

ss = st.session_state


def _set_keep_learning(project: Project, **change) -> None:
    try:
        keep_learning.change(project, **change)
    except SegError as exc:
        ss["train_keep_error"] = exc


def keep_learning_panel(project: Project) -> None:
    """The project setting: short runs from the current model after every few saved masks."""
    now = keep_learning.setting(project)
    st.subheader("Keep learning")
    # Keyed by the saved value, so a change made in another tab shows here on the next redraw.
    st.toggle("Train again by itself after every few saved masks", value=now.on, key=f"train_keep_on_{now.on}",
              on_change=lambda: _set_keep_learning(project, on=not now.on),
              help="A short run starts from the current model once enough masks changed. It is used only if it ends "
                   "better than that model on the same validation images.")
    c = st.columns(2)
    every = c[0].number_input("After this many saved masks", *keep_learning.EVERY_RANGE, now.every,
                              key=f"train_keep_every_{now.every}")
    minutes = c[1].number_input("Minutes a run", *keep_learning.MINUTES_RANGE, now.minutes, step=0.5,
                                key=f"train_keep_minutes_{now.minutes}")
    if (every, minutes) != (now.every, now.minutes):
        _set_keep_learning(project, every=every, minutes=minutes)
        st.rerun()
    if "train_keep_error" in ss:
        show_error(ss.pop("train_keep_error"))
    st.caption(keep_learning.describe(project))
