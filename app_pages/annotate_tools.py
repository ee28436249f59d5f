"""The Annotate page's tools: the sidebar that picks one, and what each does with what is drawn on the canvas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from seg_core import drafting, editing
from seg_core.services import boxing, folding, pens, priors
from seg_core.markdown import md_name

TOOLS = {"Brush": "freedraw", "Rectangle": "rect", "Polygon": "polygon", "Ellipse": "circle", "Line": "line",
         "Fill": "point", "Smart fill": "freedraw", "Box → object": "rect", "Magic wand": "point"}
HINTS = {
    "Brush": "Drag to paint. Paint with background to erase: the photo shows again where you erased.",
    "Rectangle": "Drag from one corner to the other: the box is filled with the class.",
    "Polygon": "Click the corners; click the first corner again to close the polygon.",
    "Ellipse": "Drag from the edge outwards: the ellipse is filled with the class.",
    "Line": "Drag a straight line as wide as the brush.",
    "Fill": "Click inside an area you outlined: it fills up to the outline, like a paint bucket.",
    "Smart fill": "Draw a short stroke on the object and one on the background (pick each class first): the rest "
                  "of the image is filled from them. More strokes where it is wrong.",
    "Box → object": "Drag a box around one object: the object inside it gets the class. Then click where it "
                    "is wrong: a click on a part left out adds it, a click on a part taken in wrongly takes it "
                    "away. Smart fill strokes made before (of this class, or of background) guide it.",
    "Magic wand": "Click a region: the connected area of similar colour gets the class. Tolerance sets how "
                  "similar. For a shaded or textured object, Box → object works better.",
}
TAGS = {tool: i for i, tool in enumerate(TOOLS)}   # written into the colour each tool draws with (pens.py)
TOOL_OF_TAG = list(TOOLS)
ASSIST_TOOLS = ("Smart fill", "Box → object", "Magic wand")
MODEL_TOOLS = ("Smart fill", "Box → object")   # the assists that can follow the project's model
# Tools whose clicks or boxes act beyond what they draw: once folded in, the canvas is emptied of their dots and
# frames (the page holds a stroke started meanwhile until the canvas is ready for it).
EMPTIES_CANVAS = ("Fill", "Magic wand", "Box → object")
STROKE_OPACITY = 0.6
ERASE_OPACITY = 0.25   # a light veil: the photo shows through where the background class erases
LEARN_FROM = 4         # saved masks Smart fill may also learn from
# The page's scripts for the canvas: its own toolbar hidden, strokes held while the page catches up (see the file).
CANVAS_SCRIPTS = "<script>\n" + (Path(__file__).with_name("annotate_canvas.js").read_text()
                                .replace("__EMPTIES_CANVAS__", json.dumps(list(EMPTIES_CANVAS)))) + "</script>"


def pen_marker(pen: "Pen", classes) -> str:
    """Written beside the canvas, after it: the page's scripts know the canvas has the pen the radios show."""
    position = [c.id for c in classes].index(pen.cls_id)
    return f'<span hidden data-maskloop-pen="{TAGS[pen.tool]}|{position}"></span>'


@dataclass
class Pen:
    cls_id: int
    tool: str
    brush: int
    live: bool = True              # Smart fill after each stroke, else on "Fill now"
    learn: bool = False            # Smart fill also learns from saved masks
    tolerance: float = 0.2         # Magic wand
    fill_holes: bool = False       # "Fill holes" pressed this run
    fill_now: bool = False         # "Fill now" pressed this run
    use_model: bool = False        # Box -> object and Smart fill follow the project's model where it is good

    @property
    def mode(self) -> str:
        return TOOLS[self.tool]


def opacity(cls_id: int) -> float:
    return ERASE_OPACITY if cls_id == 0 else STROKE_OPACITY


def tool_panel(classes, labeled_elsewhere: int, model_run: str | None = None) -> Pen:
    """The class and tool choice in the sidebar, with each tool's settings and a hint in plain words; model_run:
    the name of the run whose model the assists may follow (None: the project has none)."""
    st.markdown("**Paint with**")
    st.markdown(editing.legend_html(classes), unsafe_allow_html=True)
    cls_id = st.radio("Paint with", [c.id for c in classes], key="annotate_class", label_visibility="collapsed",
                      format_func=lambda i: md_name(classes[i].name) + ("  (erases)" if i == 0 else ""),
                      index=min(1, len(classes) - 1))
    tool = st.radio("Tool", list(TOOLS), horizontal=True, key="annotate_tool")
    st.caption(HINTS[tool])
    pen = Pen(cls_id, tool, st.slider("Brush size (screen pixels)", 1, 100, 20, key="annotate_brush",
                                      disabled=TOOLS[tool] not in ("freedraw", "line")))
    if tool == "Smart fill":
        pen.live = st.toggle("Fill after each stroke", True, key="annotate_smart_live",
                             help="Off: draw several strokes, then press Fill now.")
        n = min(LEARN_FROM, labeled_elsewhere)
        pen.learn = st.toggle(f"Also learn from {n} saved mask{'s' if n != 1 else ''} of other images", False,
                              key="annotate_smart_learn", disabled=labeled_elsewhere == 0,
                              help=f"Learns from the last {LEARN_FROM} images with a saved mask too (of "
                                   f"{labeled_elsewhere} saved): an image gets a proposal from its first stroke, or "
                                   "from none (Fill now).")
        pen.fill_now = st.button("Fill now", key="annotate_fill_now", width="stretch")
    if tool in MODEL_TOOLS and model_run is not None:
        pen.use_model = st.toggle(f"Use the model from run {model_run}", True, key="annotate_use_model",
                                  help="The project's best model guides the fill, class by class as far as its "
                                       f"validation IoU allows: fully from {priors.FULL_IOU}, not at all below "
                                       f"{priors.MIN_IOU} (a poor model would pull the fill towards its mistakes). "
                                       "Off: the fill follows the photo alone.")
    if tool == "Magic wand":
        pen.tolerance = st.slider("Tolerance", 0.0, 1.0, 0.2, 0.05, key="annotate_tolerance",
                                  help="How different a colour may be from the clicked one and still join.")
    pen.fill_holes = st.button(f"Fill holes in {md_name(classes[cls_id].name)}" if cls_id else "Fill holes (pick a class)",
                               disabled=cls_id == 0, key="annotate_fill_holes", width="stretch",
                               help="Background pixels completely surrounded by this class take this class "
                                    "(gaps left by an outline). Other classes inside stay.")
    return pen


def ink(pen: Pen, classes) -> pens.Ink:
    """The page's current pen, as the canvas draws with it."""
    return pens.Ink(pen.cls_id, TAGS[pen.tool], pen_alpha(pen), tuple(classes[pen.cls_id].color))


def pen_alpha(pen: Pen) -> float:
    return 1.0 if pen.tool == "Box → object" else opacity(pen.cls_id)


def canvas_colours(pen: Pen, classes) -> tuple[str, str]:
    """(stroke, fill) colours for the canvas: each carries the pen, so every object says what drew it."""
    stroke = pens.colour(classes[pen.cls_id], pen_alpha(pen), TAGS[pen.tool])
    return stroke, ("rgba(0, 0, 0, 0)" if pen.tool == "Box → object" else stroke)


def apply(project, view: drafting.View, drawing: dict, pen: Pen, image: np.ndarray, classes,
          cview: editing.CanvasView, learn_from, model_prior=lambda: None) -> tuple[str, str | None]:
    """What the canvas's new objects do, each with the pen that drew it (it may be the one before the pen the page
    shows now): (the outcome, a note for the person or None). model_prior: called when an assist can use it, gives
    the project model's ModelPrior for this image or None."""
    if not pen.use_model:
        model_prior = lambda: None   # noqa: E731
    outcome, notes, emptied = "unchanged", [], False
    try:
        for batch in folding.new_batches(view, drawing, classes, ink(pen, classes)):
            if batch.ink.cls_id is None or batch.ink.tag is None or batch.ink.tag >= len(TOOL_OF_TAG):
                notes.append("A stroke drawn with a colour that no class has now (a class was removed or "
                             "recoloured meanwhile) was not kept.")
                continue
            tool, cls_id = TOOL_OF_TAG[batch.ink.tag], batch.ink.cls_id
            if tool in EMPTIES_CANVAS:
                emptied = True
                result, note = _marks(project, view, batch, tool, cls_id, pen, image, classes, cview, model_prior)
            elif tool == "Smart fill":
                result, note = _smart(project, view, batch.hit, cls_id, pen, image, classes, cview, learn_from,
                                      model_prior)
            else:
                result, note = folding.paint(project, view, batch.hit, cls_id, cview), None
            outcome = result if result != "unchanged" else outcome
            notes += [note] if note else []
        if pen.tool == "Smart fill" and pen.fill_now:
            result, note = _smart(project, view, None, pen.cls_id, pen, image, classes, cview, learn_from,
                                  model_prior, now=True)
            outcome = result if result != "unchanged" else outcome
            notes += [note] if note else []
    finally:
        # The dots and frames those tools draw are done with, also when one was refused: the result shows under
        # the canvas (and the page's scripts hold the next stroke until the canvas is empty).
        if emptied:
            drafting.clear_canvas(view)
    return outcome, " ".join(notes) or None


def _marks(project, view, batch, tool: str, cls_id: int, pen: Pen, image, classes, cview,
           model_prior) -> tuple[str, str | None]:
    from seg_core import assist

    name = md_name(classes[cls_id].name)   # the notes are Markdown
    if tool == "Fill":
        outcome, n = folding.fill_clicks(project, view, batch.objects, cls_id, cview)
        share = n / view.base_ids.size
        return outcome, (f"Filled {n:,} pixels with {name}." + (
            f" That is {share:.0%} of the image: if the outline had a gap, Undo takes it back." if share > 0.4
            else "")) if n else None
    if tool == "Magic wand":
        outcome, n = folding.marks(
            project, view, batch.objects, cview,
            lambda ids, point: editing.paint_where(ids, assist.wand(image, point, pen.tolerance), cls_id),
            "magic wand")
        return outcome, f"The wand gave {n:,} pixels to {name}; Undo takes them back." if n else None

    used = []

    def fill(rect, clicks):
        prior = model_prior()
        p, trust = prior.of(cls_id) if prior is not None else (None, 0.0)
        used[:] = [prior] if prior is not None else []
        return assist.box_fill(image, rect, hint=folding.scribble_hint(view, cls_id), clicks=clicks, prior=p,
                               trust=trust)

    done = boxing.apply(project, view, batch.objects, cls_id, cview, fill)
    model = f" {priors.describe(used[0], [cls_id], _names(classes))}" if used else ""
    if done.orphan_clicks and not (done.boxes or done.clicks):
        return done.result, (f"A click corrects the last box of {name} right after it: draw a box around the "
                             "object first.")
    if done.clicks and not done.boxes:
        return done.result, (f"Corrected with {len(view.last_box.clicks)} click"
                             f"{'s' if len(view.last_box.clicks) > 1 else ''}: {done.changed:,} pixels changed. "
                             f"Click again where it is still wrong; Undo takes a click back.{model}")
    return done.result, (f"The object in the box is {name} now ({done.changed:,} pixels changed). Not right? Click "
                         "where it is wrong: on a part left out to add it, on a part taken in wrongly to take it "
                         f"away. Undo takes it back.{model}")


def _smart(project, view, hit, cls_id: int, pen: Pen, image, classes, cview, learn_from, model_prior,
           now: bool = False) -> tuple[str, str | None]:
    from seg_core import assist

    note = []

    def fill(scribbles):
        stroked = sorted(set(np.unique(scribbles).tolist()) - {assist.NO_SCRIBBLE})
        if len(stroked) < 2 and not pen.learn:
            note.append("Smart fill starts once there are strokes of two classes: now one of another class "
                        "(for example background, for what is not the object).")
            return None
        prior = model_prior()
        if prior is not None:
            note.append(priors.describe(prior, stroked, _names(classes)))
        return assist.scribble_fill(image, scribbles, len(classes), learn_from() if pen.learn else None,
                                    prior=None if prior is None else prior.probs,
                                    trust=None if prior is None else prior.weights)

    if now:
        if view.scribbles is None:
            view.scribbles = np.full(view.base_ids.shape, assist.NO_SCRIBBLE, np.uint8)
        outcome = drafting.fill_from_scribbles(project, view, fill)
    else:
        outcome = folding.scribble(project, view, hit, cls_id, cview, fill, live=pen.live)
    return outcome, " ".join(note) or None


def _names(classes) -> list[str]:
    return [md_name(c.name) for c in classes]


def follow_classes(project, view: drafting.View) -> str | None:
    """Classes removed in another tab while this one shows the image: what it shows, its undo and its pen are
    renumbered as the masks on disk were. Returns a note for the person (None: nothing happened)."""
    steps = drafting.follow_classes(project, view)
    if steps is None:
        st.session_state.pop("annotate_view", None)
        return "Classes were removed in another tab meanwhile: the image shows what is on disk now."
    if not steps:
        return None
    lost, pen, notes = False, st.session_state.get("annotate_class"), []
    for step in steps:
        if pen is not None:
            lost, pen = lost or pen == step.removed_id, step.mapping.get(pen, pen)
        notes.append(f"{md_name(step.by or 'someone')} removed the class {md_name(step.removed)} (its pixels are "
                     f"{md_name(step.into)} now).")
    if pen is not None:
        st.session_state["annotate_class"] = pen
    if lost:   # drawn in a colour no class has now: it cannot be told what it was meant to be
        view.objects = folding.canvas_objects(((st.session_state.get(view.key) or {}).get("drawing") or {})
                                               .get("raw")) or view.objects
    return " ".join(notes) + " What you painted here was renumbered with it" + (
        "; the stroke you drew with the removed class was not kept." if lost else ".")

