"""The app's pages (Streamlit): thin views over seg_core.services; no rule lives here."""
