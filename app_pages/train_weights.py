"""The Train page's ImageNet start for a pretrained encoder: the checkbox, and adding the weights file it needs
(EfficientNet-Lite0's come with Maskloop: nothing to add)."""

import streamlit as st

from app_pages.widgets import show_error
from seg_core.errors import SegError
from seg_core.ml import weights

ss = st.session_state


def pretrained_choice(encoder: str, key: str) -> bool:
    """The ImageNet start of a pretrained encoder, possible once this machine has its weights (added here)."""
    found = weights.available()
    info, spec = found[encoder], weights.ENCODERS[encoder]
    if info is None or key not in ss:
        ss[key] = False   # no ticked box for weights that are gone
    with st.container(border=True):
        use = st.checkbox(f"Start the {spec.label} encoder from ImageNet weights", key=key,
                          disabled=info is None, persist_state="session",
                          help="Features learned from a million photos: a better start when you have few labeled "
                               "photos. Maskloop never downloads them; add the file below.")
        if info is None:
            st.caption(f"No ImageNet weights for {spec.label} on this machine yet, so it starts from random weights. "
                       f"Add Keras' file `{spec.keras_file}` below.")
        else:
            st.caption(f"ImageNet weights for {spec.label}: {info.summary()}.")
        _weights_upload(found)
    return bool(use and info is not None)


def lite0_choice(key: str, default: bool) -> bool:
    """EfficientNet-Lite0's ImageNet start, ticked by `default` where its weights are installed."""
    info = weights.packaged_weights()
    if info is None or key not in ss:
        ss[key] = default and info is not None
    use = st.checkbox(f"Start from ImageNet weights ({weights.LITE0_LABEL}, installed with Maskloop)", key=key,
                      disabled=info is None, persist_state="session",
                      help="Features learned from a million photos: a much better start when you have few labeled "
                           "photos. Untick to train every layer from scratch.")
    if info is None:
        st.caption(weights.missing_message(weights.LITE0))
    return bool(use and info is not None)


def _weights_upload(found: dict) -> None:
    n = ss.get("train_weights_round", 0)
    c = st.columns([3, 1])
    file = c[0].file_uploader("Add an ImageNet weights file", type=["h5", "hdf5"], key=f"train_weights_{n}",
                              help=weights.expected_files())
    replace = c[1].checkbox("Replace", key="train_weights_replace",
                            help="Use the new file instead of the one already added for its encoder.")
    if c[1].button("Add weights", key="train_weights_add", disabled=file is None):
        try:
            with st.spinner("Checking the file: it is loaded into the encoder it is for..."):
                info = weights.add_weights(file.getvalue(), file.name, replace=replace)
            ss["train_weights_done"] = f"{info.outcome.capitalize()}: {info.describe()}."
            ss["train_weights_round"] = n + 1   # a fresh, empty uploader
            st.rerun()
        except SegError as exc:
            show_error(exc)
    done = ss.pop("train_weights_done", None)
    if done:
        st.success(done, icon=":material/check_circle:")
    st.caption("ImageNet weights on this machine: " + "; ".join(
        f"{weights.ENCODERS[e].label} {'yes' if info else 'none'}" for e, info in found.items()) + ".")
