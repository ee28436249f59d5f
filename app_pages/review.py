"""Predict & review: the model's masks over the images, and what to correct next."""

import streamlit as st

st.title("Predict & review")
