"""Train: launch a training run and watch it learn."""

import streamlit as st

st.title("Train")
