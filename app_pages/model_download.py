"""A trained model to take elsewhere, for the Train and Predict & review pages: a format, then a zip to download."""

from __future__ import annotations

import streamlit as st

from app_pages.widgets import file_size, show_error
from seg_core import Project, RunRecord, planning
from seg_core.ml.model_export import CARD_NAME, EXAMPLE_NAME, FORMATS, README_NAME, model_zip


def model_download(project: Project, runs: list[RunRecord], key: str) -> None:
    """`runs`: the finished runs with a saved model, the one to offer first first; more than one gets a choice."""
    ss = st.session_state
    if not runs:
        st.caption("A model can be downloaded once a run has finished its first epoch.")
        return
    by_id = {r.id: r for r in runs}
    c = st.columns(2 if len(runs) > 1 else 1)
    run_id = runs[0].id
    if len(runs) > 1:
        run_id = c[1].selectbox("Model of run", list(by_id), format_func=lambda i: planning.run_label(by_id[i]),
                                key=f"{key}_run")
    fmt = c[0].selectbox("Format", list(FORMATS), format_func=lambda f: FORMATS[f].label, key=f"{key}_format",
                         help="  \n".join(f"**{f.label}**: {f.description}" for f in FORMATS.values()))
    st.caption(f"{FORMATS[fmt].description} The zip holds the model, `{README_NAME}` (what it does and how well, in "
               f"plain words), `{CARD_NAME}` (its classes, input size, preprocessing and validation scores) and "
               f"`{EXAMPLE_NAME}`, which turns a photo into a mask with only `{FORMATS[fmt].package}`, numpy and "
               "Pillow.")
    wanted = (str(project.path), run_id, fmt)
    if st.button("Prepare the download", key=f"{key}_build"):
        try:
            with st.spinner(f"Exporting the model as {FORMATS[fmt].label}: this can take a few seconds..."):
                ss[f"{key}_zip"] = (wanted, *model_zip(project, fmt, run_id))
        except Exception as exc:   # noqa: BLE001 - the converters (tf2onnx, LiteRT) raise their own types
            show_error(exc)
    ready = ss.get(f"{key}_zip")
    if ready and ready[0] == wanted:   # a zip made for another run or format is not offered for this one
        _, name, data = ready
        st.download_button(f"Download {name} ({file_size(len(data))})", data, name, "application/zip",
                           key=f"{key}_download", type="primary", icon=":material/download:")
