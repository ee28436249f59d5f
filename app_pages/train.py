"""Train: check the project is ready, pick a preset, start a run, watch it learn, compare runs."""

import altair as alt
import streamlit as st

from app_pages.model_download import model_download
from app_pages.train_keep import keep_learning_panel
from app_pages.train_weights import lite0_choice, pretrained_choice
from app_pages.widgets import require_project, show_error
from seg_core import RunStatus, estimating, jobs, markdown, planning, provenance
from seg_core.errors import SegError
from seg_core.ml import precision, weights
from seg_core.ml.config import BOUNDS, LOSS_CHOICES, MODEL_NAMES, PRESET_NOTES, PRESETS, RESIZE_MODES, run_config

AUGMENTS = {"flip_h": "Mirror left-right", "flip_v": "Mirror top-bottom", "rot90": "Quarter turns",
            "shift_scale_rotate": "Shift, scale, rotate a little", "brightness_contrast": "Brightness and contrast",
            "hsv": "Colour (hue, saturation)", "gamma": "Gamma", "crop_resize": "Random crop and resize",
            "blur": "Blur", "noise": "Sensor noise"}
FITS = {"letterbox": "Keep the shape", "squash": "Stretch to the square"}
MODELS = {"unet": "U-Net (from scratch)", "fcn": "FCN (fast, blurry baseline)",
          "lite0-unet": "EfficientNet-Lite0 U-Net (ImageNet start, photos)",
          "mobilenetv2-unet": "MobileNetV2 U-Net (your ImageNet file, photos)",
          "densenet121-unet": "DenseNet121 U-Net (your ImageNet file, photos)"}
LOSSES = {"auto": "Automatic", "dice": "Dice", "bce": "Binary cross-entropy",
          "bce_dice": "Binary cross-entropy + dice", "ce": "Cross-entropy", "sparse_ce": "Sparse cross-entropy",
          "ce_dice": "Cross-entropy + dice"}
# The form's ranges where they are narrower than TrainConfig's BOUNDS: rates and shares a person would choose.
SMALLEST_RATE = 1e-6
VAL_SHARES = (0.05, 0.5)
ss = st.session_state

st.title("Train")
project = require_project()

# Everything about runs comes from the project database, so a reopened tab or a second browser sees the same.
runs = jobs.refresh(project)
stats = project.stats()
photos = stats["channels"] == 3   # photos get no upside-down augmentations by default
num_classes = stats["num_classes"]   # ...and with one object class an ImageNet start
active = next((r for r in runs if r.active), None)


def _chart(rows: list[dict], title: str, color: str = "series", zero_one: bool = False) -> None:
    if not rows:
        st.caption(f"{title}: appears after the first epoch.")
        return
    # Short series names fit on the right; long run names go below, where the chart then needs more height.
    below, lines = color == "run", len({r[color] for r in rows})
    legend = (alt.Legend(orient="bottom", columns=1, labelLimit=400) if below
              else alt.Legend(orient="right") if lines > 1 else None)
    scale = alt.Scale(domain=[0, 1]) if zero_one else alt.Scale(zero=False)
    chart = alt.Chart(alt.Data(values=rows), title=title).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", title=None, scale=scale), color=alt.Color(f"{color}:N", title=None, legend=legend),
        tooltip=[f"{color}:N", "epoch:Q", alt.Tooltip("value:Q", format=".4f")])
    if below:
        st.altair_chart(chart.properties(height=200), width="stretch", height=300 + 20 * lines)
    else:
        st.altair_chart(chart, width="stretch")


def _curves(run_id: str) -> None:
    rows = project.runs.epoch_metrics(run_id)
    top, bottom = st.columns(2), st.columns(2)
    with top[0]:
        _chart(planning.curve_rows(rows, {"loss": "train", "val_loss": "validation"}), "Loss (lower is better)")
    with top[1]:
        _chart(planning.curve_rows(rows, {"dice": "train", "val_dice": "validation"}),
               "Dice: overlap with your masks (1 = perfect)", zero_one=True)
    with bottom[0]:
        _chart(planning.curve_rows(rows, {"lr": "learning rate"}), "Learning rate")
    with bottom[1]:
        _chart(planning.curve_rows(rows, {"images_per_s": "images per second"}), "Training speed (images/s)")


def _preview(run_id: str) -> None:
    shots = project.layout.run(run_id).previews()
    if shots:
        epoch = int(shots[-1].stem.split("_")[1])
        st.image(str(shots[-1]), width=720, output_format="PNG",
                 caption=f"After epoch {epoch}, on validation images: photo · your mask · the model's mask")


def _run_panel(run_id: str, live: bool) -> None:
    run = jobs.refresh_run(project, run_id)
    if live and not run.active:
        st.rerun()  # the run ended: redraw the whole page once, and the 2-second redraws stop
    status = planning.live_status(project, run)
    best = ("" if run.best_score is None
            else f" · best validation dice {run.best_score:.3f} (epoch {run.best_epoch + 1})")
    on = f" · on {markdown.md_escape(run.devices)}" if run.devices else ""   # CPU, GPUs, or the workers of a cluster
    st.markdown(f"**Run {run.id}**: {run.preset_name} · {planning.describe(run_config(run))}{on}"
                f" · **{run.status.word}**{best}")
    if run.split is not None:
        st.caption(f"This run {run.split.note}.")
        _lineage(run)
    if run.active:
        st.progress(status.fraction, text=status.label)
        st.button("Stop", key="train_stop", on_click=jobs.stop, args=(project, run.id), disabled=run.stop_requested,
                  help="Stops after the current batch; the last finished epoch is kept and can be resumed.")
    elif run.status == RunStatus.COMPLETED:
        st.success(f"Finished: {status.label}. See its masks on Predict & review.", icon=":material/check_circle:")
    elif run.status == RunStatus.STOPPED:
        st.info(f"Stopped: {status.label}. Resume goes on from the last finished epoch.")
    elif run.status == RunStatus.FAILED:
        st.error(f"This run failed: {run.error or 'no reason was recorded.'}", icon=":material/error:")
        with st.expander("What the training process printed"):
            st.code(jobs.worker_log(project, run.id) or "(nothing)", language=None)
    if not run.active and jobs.resumable(project, run):
        if st.button("Resume", key="train_resume", help="Go on from the last finished epoch."):
            try:
                jobs.resume(project, run.id)
                st.rerun()
            except SegError as exc:
                show_error(exc)
    _curves(run.id)
    _preview(run.id)


def _lineage(run) -> None:
    """Which masks the run learned from, and how many changed since: whether training again would learn more."""
    said = provenance.report(project, run)
    if not run.active:
        (st.info if said.changes and said.changes.count else st.caption)(said.sentence)
    if said.rows:
        with st.expander(f"The {len(said.rows)} images this run learned from and checked on"):
            st.dataframe(said.rows, hide_index=True, width="stretch")


def _history(runs: list) -> None:
    st.subheader("Run history")
    if not runs:
        st.caption("No runs yet.")
        return
    st.dataframe(planning.history_rows(project, runs), hide_index=True, width="stretch",
                 column_config={"best val dice": st.column_config.NumberColumn(format="%.3f"),
                                "what happened": st.column_config.TextColumn(width="large")})
    labels = {r.id: planning.run_label(r) for r in runs}
    chosen = st.multiselect("Compare runs", list(labels), format_func=labels.get, key="train_compare",
                            placeholder="Choose runs to overlay their curves", persist_state="session")
    picked = [r for r in runs if r.id in chosen]
    if picked:
        c = st.columns(2)
        with c[0]:
            _chart(planning.overlay_rows(project, picked, "val_dice"), "Validation dice", "run", zero_one=True)
        with c[1]:
            _chart(planning.overlay_rows(project, picked, "val_loss"), "Validation loss", "run")
    with st.expander("Download a model to use outside Maskloop"):
        model_download(project, project.runs.usable(), "train_export")


def _live(run_id: str) -> None:
    _run_panel(run_id, live=True)
    st.caption("A new run can start when this one ends (one run at a time per project).")
    _history(jobs.refresh(project))


def _key(name: str, field: str) -> str:
    return f"train_{name}_{field}"


def _rescale_crop(name: str) -> None:
    size, depth = ss[_key(name, "image_size")], ss[_key(name, "depth")]
    ss[_key(name, "crop_size")] = planning.crop_for(name, size, depth, photos, num_classes) or 0


def _limits(field: str) -> tuple:
    """A setting's allowed range as a number field's min and max."""
    return BOUNDS[field].low, BOUNDS[field].high


def _advanced(name: str, split_exists: bool) -> dict:
    """The advanced form, defaults from the preset; each preset keeps its own edits for this session."""
    base = planning.app_preset(name, photos, num_classes)
    fields = ("model", "image_size", "crop_size", "base_filters", "depth", "epochs", "time_budget_minutes",
              "batch_size", "learning_rate", "loss", "val_fraction", "early_stopping_patience", "seed", "resize",
              "precision")
    defaults = {f: getattr(base, f) for f in fields} | {f: getattr(base.augment, f) for f in AUGMENTS}
    # The form shows "none" as 0.
    defaults |= {"crop_size": base.crop_size or 0, "time_budget_minutes": float(base.time_budget_minutes or 0)}
    for f, value in defaults.items():
        ss.setdefault(_key(name, f), value)
    keep = dict(persist_state="session")
    v: dict = {}
    with st.expander("Advanced settings"):
        c = st.columns(4)
        v["model"] = c[0].selectbox("Model", MODEL_NAMES, format_func=MODELS.get, key=_key(name, "model"), **keep,
                                    help="U-Net suits almost everything; FCN is a fast, blurry baseline. "
                                         "EfficientNet-Lite0 starts from what it learned on ImageNet's photos: "
                                         "the better start for a few labeled photos.")
        v["image_size"] = c[1].number_input("Image size (px)", *_limits("image_size"), step=16,
                                            key=_key(name, "image_size"), on_change=_rescale_crop, args=(name,), **keep,
                                            help="Every image is resized to this square for training.")
        v["crop_size"] = c[2].number_input("Crop size (px, 0 = whole image)", 0, BOUNDS["image_size"].high, step=16,
                                           key=_key(name, "crop_size"), **keep,
                                           help="Learn on random squares of this size: less work per step.")
        v["base_filters"] = c[3].number_input("Filters", *_limits("base_filters"), key=_key(name, "base_filters"),
                                              **keep,
                                              help="Width of the network; twice the filters is about 4x the work.")
        encoder = weights.encoder_for_model(v["model"])
        if encoder == weights.LITE0:   # ticked unless the preset itself trains Lite0 from scratch
            default = base.pretrained or base.model != v["model"]
            v["pretrained"] = lite0_choice(_key(name, "lite0_pretrained"), default)
        else:
            v["pretrained"] = pretrained_choice(encoder, _key(name, "pretrained")) if encoder else False
        c = st.columns(4)
        v["depth"] = c[0].number_input("Depth", *_limits("depth"), key=_key(name, "depth"), on_change=_rescale_crop,
                                       args=(name,), **keep, help="Levels of the U-Net.")
        v["epochs"] = c[1].number_input("Epochs (at most)", *_limits("epochs"), key=_key(name, "epochs"), **keep,
                                        help="Passes over your training images.")
        v["time_budget_minutes"] = c[2].number_input("Time budget (minutes, 0 = none)", 0.0, 10_000.0, step=1.0,
                                                     format="%.1f", key=_key(name, "time_budget_minutes"), **keep,
                                                     help="Stops after this long even if epochs remain.")
        v["batch_size"] = c[3].number_input("Batch size", *_limits("batch_size"), key=_key(name, "batch_size"), **keep)
        c = st.columns(4)
        v["learning_rate"] = c[0].number_input("Learning rate", SMALLEST_RATE, float(BOUNDS["learning_rate"].high),
                                               step=1e-4, format="%.5f", key=_key(name, "learning_rate"), **keep)
        v["loss"] = c[1].selectbox("Loss", LOSS_CHOICES, format_func=LOSSES.get, key=_key(name, "loss"), **keep,
                                   help="Automatic: cross-entropy + dice, binary for two classes.")
        v["val_fraction"] = c[2].slider("Validation fraction", *VAL_SHARES, step=0.05, key=_key(name, "val_fraction"),
                                        disabled=split_exists, **keep,
                                        help="The project already has a validation split (Data page), which is "
                                             "used as it is." if split_exists else
                                        "Share of labeled images set aside to check the model on.")
        v["early_stopping_patience"] = c[3].number_input("Early stopping (epochs, 0 = off)", 0, BOUNDS["epochs"].high,
                                                         key=_key(name, "early_stopping_patience"), **keep,
                                                         help="Stop when validation dice has not improved for "
                                                              "this many epochs.")
        c = st.columns(4)
        v["seed"] = c[0].number_input("Seed", 0, 2**31 - 1, key=_key(name, "seed"), **keep,
                                      help="The same seed and settings give the same run.")
        v["resize"] = c[1].selectbox("Images that are not square", RESIZE_MODES, format_func=FITS.get, **keep,
                                     key=_key(name, "resize"),
                                     help="Keep the shape: scaled to fit, the rest of the square filled with a "
                                          "mirror image, so objects keep their proportions.")
        v["precision"] = c[2].selectbox("Number precision", precision.PAGE_CHOICES, format_func=precision.WORDS.get,
                                        key=_key(name, "precision"), **keep,
                                        help="bfloat16 computes with half the bytes: faster on a CPU with bf16 units, "
                                             "slower where they are missing. The loss and the output stay float32.")
        c[2].caption(precision.auto_note())
        st.markdown("**Augmentations**: random changes to each training image, so the model sees more variety")
        c = st.columns(4)
        v["augment"] = {f: c[i % 4].checkbox(label, key=_key(name, f), **keep) for i, (f, label) in
                        enumerate(AUGMENTS.items())}
    return v


def _new_run() -> None:
    st.subheader("New run")
    ready_box = st.container()
    name = st.radio("Preset", list(PRESETS), key="train_preset", horizontal=True, format_func=str.capitalize,
                    captions=[PRESET_NOTES[p] for p in PRESETS], persist_state="session")
    split_exists = project.splits.planned()[2]
    values = _advanced(name, split_exists)
    config, problem = None, None
    try:
        config = planning.build_config(name, values, photos, num_classes)
    except SegError as exc:
        problem = exc
    ready = planning.readiness(project, config or planning.app_preset(name, photos, num_classes))
    with ready_box:
        st.markdown("\n".join(f"- {markdown.md_escape(line)}" for line in ready.lines))   # they name classes
        for line in ready.problems:
            st.error(markdown.md_escape(line), icon=":material/block:")
        for line in ready.hints:
            st.warning(markdown.md_escape(line), icon=":material/lightbulb:")
    if problem is not None:
        show_error(problem)
    elif ready.ready:
        est = estimating.estimate(project, config, ready)
        st.info(f"**Estimated time on this machine: {est.text}.** ({est.source.capitalize()}.)",
                icon=":material/timer:")
    if st.button("Start training", type="primary", key="train_start", disabled=config is None or not ready.ready,
                 on_click=ss.__setitem__, args=("train_start_pressed", True),
                 help=None if ready.ready else "See what is missing above."):
        try:
            jobs.start(project, config)
            st.rerun()
        except SegError as exc:
            show_error(exc)


pressed_start = ss.pop("train_start_pressed", False)
if active:
    st.subheader("Training now")
    if pressed_start:   # on a page drawn before someone else's run started
        st.warning(f"Run {active.id} started just before your Start, so yours did not: one run at a time per project.")
    st.caption("You can leave this page or close the tab: training goes on, and this page shows it again.")
    st.fragment(run_every=2)(_live)(active.id)
    keep_learning_panel(project)
else:
    if runs:
        st.subheader("Latest run")
        _run_panel(runs[0].id, live=False)
    _new_run()
    keep_learning_panel(project)
    _history(runs)
