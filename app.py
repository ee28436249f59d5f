"""Seg Studio's entry point: page config, navigation over pages/, and the sidebar project picker."""

import streamlit as st

from pages.widgets import project_picker

st.set_page_config(page_title="Seg Studio", page_icon="🎨", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
]

nav = st.navigation(PAGES)
project_picker()
nav.run()
