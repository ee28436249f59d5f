"""Seg Studio's entry point: page config, navigation over pages/, and the sidebar project picker."""

import streamlit as st

from pages.widgets import project_picker

st.set_page_config(page_title="Seg Studio", page_icon="🎨", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/data.py", title="Data", icon="🗂️", url_path="data"),
    st.Page("pages/annotate.py", title="Annotate", icon="🖌️", url_path="annotate"),
]

nav = st.navigation(PAGES)
project_picker()
nav.run()
