"""Home: the workspace's projects, creating a project, and the demo."""

import streamlit as st

from app_pages.widgets import current_project, set_current_project, show_error
from seg_core import PROJECT_NAME_CHARS, SegError, delete_project, demo, list_projects, new_project, viz, workspace_dir
from seg_core.classes import ClassSpec, default_color, parse_color
from seg_core.markdown import md_name

st.title("Maskloop")
st.write("Turn a folder of photos into a segmentation model you trust: upload images, paint masks, "
         "train a U-Net while watching it learn, then correct its worst predictions and train again.")

projects = list_projects()
current = current_project()

st.subheader("Projects")
if not projects:
    st.info(f"No projects in {workspace_dir()} yet. Open the demo to see everything work, or create a project below.")


def _delete(path, name: str) -> None:
    st.session_state.pop("home_confirm_delete", None)
    try:
        delete_project(path)
    except SegError as exc:
        st.session_state["home_deleted"] = exc
        return
    if current is not None and current.path == path:
        set_current_project(None)
    st.session_state["home_deleted"] = f"Deleted '{md_name(name, PROJECT_NAME_CHARS)}'."


deleted = st.session_state.pop("home_deleted", None)
if isinstance(deleted, Exception):
    show_error(deleted)
elif deleted:
    st.success(deleted)
for p in projects:
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns([4, 5, 1.3, 0.5], vertical_alignment="center")
        is_open = current is not None and current.path == p.path
        c1.markdown(f"**{md_name(p.name, PROJECT_NAME_CHARS)}**" + ("  ·  _open_" if is_open else ""))
        if p.error:
            c2.error(p.error)
            continue
        kind = "binary" if p.kind == "binary" else "multi-class"
        c2.write(f"{p.images} images · {p.labeled} labeled · {p.images - p.labeled} unlabeled · {kind}")
        if c3.button("Open", key=f"open_{p.path.name}", disabled=is_open, width="stretch"):
            set_current_project(p.path)
            st.rerun()
        c4.button(":material/delete:", key=f"home_delete_{p.path.name}", type="tertiary",
                  help="Delete this project (asks first)", on_click=st.session_state.__setitem__,
                  args=("home_confirm_delete", str(p.path)))
        if st.session_state.get("home_confirm_delete") == str(p.path):
            st.warning(f"Delete **{md_name(p.name, PROJECT_NAME_CHARS)}** with its {p.images} images, masks and "
                       "training runs? This cannot be undone; export it from the Data page first to keep a copy.")
            y, n, _ = st.columns([1.4, 1, 4])
            y.button(f"Yes, delete {md_name(p.name, PROJECT_NAME_CHARS)}", type="primary",
                     key=f"home_confirm_{p.path.name}", on_click=_delete, args=(p.path, p.name))
            n.button("Cancel", key=f"home_cancel_{p.path.name}", on_click=st.session_state.pop,
                     args=("home_confirm_delete", None))

if current is not None:
    recs = current.list_images(limit=6)
    if recs:
        st.caption(f"A look at **{md_name(current.name, PROJECT_NAME_CHARS)}**: masks shown in their class colours, "
                   "outlined; paint and correct them on the Annotate page.")
        classes = current.classes
        cols = st.columns(len(recs))
        for col, rec in zip(cols, recs):
            col.image(viz.overlay_thumbnail(current.load_image(rec), current.masks.load(rec), classes),
                      caption=f"{rec.filename} · {rec.status}", width="stretch")

st.subheader("Demo")
st.write("Generated on this machine, no download: 60 photo-like scenes of objects on textured surfaces, "
         f"{demo.DEMO_COUNT - demo.DEMO_UNLABELED} with masks and {demo.DEMO_UNLABELED} left for you to annotate.")
d1, d2, _ = st.columns([1, 1, 2])
for col, name, multi, label in ((d1, demo.DEMO_NAME, False, "Open the demo (binary)"),
                                (d2, demo.DEMO_MULTICLASS, True, "Open the demo (3 classes)")):
    if col.button(label, key=f"demo_{name}", width="stretch"):
        try:
            with st.spinner("Creating the demo project..."):
                proj = demo.create_demo_project(workspace_dir() / name, multiclass=multi)
            set_current_project(proj.path)
            st.rerun()
        except SegError as exc:
            show_error(exc)

st.subheader("New project")
NEW_FORM_KEYS = ("new_name", "new_kind", "new_count", "new_class_name_", "new_class_color_")


def _forget_class_names() -> None:
    # Each kind has its own default names ("object" for binary, "class 1".. for multi-class).
    for key in [k for k in st.session_state if str(k).startswith("new_class_name_")]:
        del st.session_state[key]


def _create() -> None:
    """Runs before the rerun, so the form can be cleared after a project is created."""
    ss = st.session_state
    name = ss.get("new_name", "").strip()
    count = int(ss.get("new_count", 3)) if ss.get("new_kind", "").startswith("Several") else 2
    try:
        classes = [ClassSpec(i, ss.get(f"new_class_name_{i}", "background").strip(),
                             parse_color(ss[f"new_class_color_{i}"])) for i in range(count)]
        proj = new_project(workspace_dir() / name, classes, name=name)
    except SegError as exc:
        ss["home_flash"] = ("error", exc)   # the form keeps what was typed, to be corrected
        return
    set_current_project(proj.path)
    ss["home_flash"] = ("success", f"Created '{md_name(proj.name, PROJECT_NAME_CHARS)}' and opened it. Next: add "
                                   "images on the Data page.")
    for key in [k for k in ss if str(k).startswith(NEW_FORM_KEYS)]:
        del ss[key]   # an empty form again: the defaults below reach the browser


with st.container(border=True):
    # What the person just did is said at the top of the form they are looking at, not under it.
    flash = st.session_state.pop("home_flash", None)
    if flash and flash[0] == "error":
        show_error(flash[1])
    elif flash:
        st.success(flash[1])
        st.page_link("app_pages/data.py", label="Add images on the Data page", icon=":material/photo_library:")
    ss = st.session_state
    ss.setdefault("new_name", "")
    name = st.text_input("Name", placeholder="e.g. leaf-spots", key="new_name")
    kinds = ["One kind of thing (binary)", "Several classes (multi-class)"]
    ss.setdefault("new_kind", kinds[0])
    kind = st.radio("What will you segment?", kinds, horizontal=True, key="new_kind", on_change=_forget_class_names)
    multi = kind.startswith("Several")
    if multi:
        ss.setdefault("new_count", 3)
    count = st.number_input("Number of classes, background included", 3, 30, key="new_count") if multi else 2
    st.caption("Class 0 is the background: painting with it erases.")
    for i in range(int(count)):
        a, b = st.columns([4, 1], vertical_alignment="bottom")
        # Set here, not as the widgets' values: a value the script sets reaches the browser, so the form shows
        # these again once _create or _forget_class_names dropped what was typed.
        ss.setdefault(f"new_class_name_{i}", "background" if i == 0 else ("object" if not multi else f"class {i}"))
        ss.setdefault(f"new_class_color_{i}", ClassSpec(i, "", default_color(i)).hex)
        a.text_input(f"Class {i} name", key=f"new_class_name_{i}", disabled=i == 0)
        b.color_picker("Colour", key=f"new_class_color_{i}")
    st.button("Create project", type="primary", disabled=not name.strip(), on_click=_create)
