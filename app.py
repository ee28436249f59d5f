"""Seg Studio's entry point: page config, navigation over app_pages/, and the sidebar project picker."""

import streamlit as st

from app_pages.widgets import project_picker

st.set_page_config(page_title="Seg Studio", page_icon="🎨", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/photo_library:", url_path="data"),
    st.Page("app_pages/annotate.py", title="Annotate", icon=":material/brush:", url_path="annotate"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("app_pages/review.py", title="Predict & review", icon=":material/fact_check:", url_path="review"),
]

nav = st.navigation(PAGES)
project_picker()
nav.run()
