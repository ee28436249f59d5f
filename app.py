"""Maskloop's entry point: page config, the sign-in gate, navigation over app_pages/, and the sidebar project picker."""

import logging

import streamlit as st

from app_pages import signin
from app_pages.widgets import project_picker

st.set_page_config(page_title="Maskloop", page_icon="🎨", layout="wide")
# Our own warnings and errors (with tracebacks) go to the server's console, beside Streamlit's; once per process.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/photo_library:", url_path="data"),
    st.Page("app_pages/annotate.py", title="Annotate", icon=":material/brush:", url_path="annotate"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("app_pages/review.py", title="Predict & review", icon=":material/fact_check:", url_path="review"),
]

# The pages are declared either way, so a direct link (/annotate?project=x) opens its page once signed in; until
# then no page script runs. No st.stop() here: a run that ends normally also drops the fragments of a signed-out
# session (the Train page's live charts), which would otherwise keep rerunning.
allowed = signin.signed_in()
nav = st.navigation(PAGES, position="sidebar" if allowed else "hidden")
if allowed:
    signin.sign_out_button()
    project_picker()
    nav.run()
else:
    signin.sign_in_form()
