"""The Annotate page's tools: the sidebar that picks one, and what each does with what is drawn on the canvas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from seg_core import drafting, editing
from seg_core.text import md_name

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
    "Box → object": "Drag a box around one object: the object inside it gets the class. Smart fill strokes "
                    "made before (of this class, or of background) guide it.",
    "Magic wand": "Click a region: the connected area of similar colour gets the class. Tolerance sets how "
                  "similar. For a shaded or textured object, Box → object works better.",
}
ASSIST_TOOLS = ("Smart fill", "Box → object", "Magic wand")
STROKE_OPACITY = 0.6
ERASE_OPACITY = 0.25   # a light veil: the photo shows through where the background class erases
LEARN_FROM = 4         # saved masks Smart fill may also learn from
# The canvas's own toolbar (undo history of its strokes, moving them, sending by hand) does not apply here: every
# stroke lands in the mask at once, and the page's Undo takes back whole strokes, shapes and fills.
HIDE_CANVAS_TOOLBAR = """<script>
(() => {
  if (window.segstudioCanvasToolbar) return;
  window.segstudioCanvasToolbar = true;
  const hide = () => document.querySelectorAll('[class*="st-key-annotate_canvas"] *').forEach((el) => {
    const root = el.shadowRoot;
    if (root && !root.querySelector('style[data-segstudio]')) {
      const style = document.createElement('style');
      style.dataset.segstudio = '1';
      style.textContent = '.dc-toolbar { display: none !important; }';
      root.appendChild(style);
    }
  });
  // A custom element may attach its shadow root after it entered the page, which no observer of the page sees:
  // the poll catches it.
  new MutationObserver(hide).observe(document.body, {childList: true, subtree: true});
  hide();
  setInterval(hide, 250);
})();
</script>"""


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

    @property
    def mode(self) -> str:
        return TOOLS[self.tool]

    @property
    def key(self) -> tuple[int, str]:
        return self.cls_id, self.tool


def opacity(cls_id: int) -> float:
    return ERASE_OPACITY if cls_id == 0 else STROKE_OPACITY


def tool_panel(classes, labeled_elsewhere: int) -> Pen:
    """The class and tool choice in the sidebar, with each tool's settings and a hint in plain words."""
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
        pen.learn = st.toggle(f"Also learn from saved masks ({min(LEARN_FROM, labeled_elsewhere)})", False,
                              key="annotate_smart_learn", disabled=labeled_elsewhere == 0,
                              help="Learns from a sample of the project's saved masks too: an image gets a "
                                   "proposal from its first stroke, or from none (Fill now).")
        pen.fill_now = st.button("Fill now", key="annotate_fill_now", width="stretch")
    if tool == "Magic wand":
        pen.tolerance = st.slider("Tolerance", 0.0, 1.0, 0.2, 0.05, key="annotate_tolerance",
                                  help="How different a colour may be from the clicked one and still join.")
    pen.fill_holes = st.button(f"Fill holes in {md_name(classes[cls_id].name)}" if cls_id else "Fill holes (pick a class)",
                               disabled=cls_id == 0, key="annotate_fill_holes", width="stretch",
                               help="Background pixels completely surrounded by this class take this class "
                                    "(gaps left by an outline). Other classes inside stay.")
    return pen


def apply(project, view: drafting.View, drawing: dict, pen: Pen, drawn_with: int, image: np.ndarray, classes,
          cview: editing.CanvasView, learn_from) -> tuple[str, str | None]:
    """What the canvas's new drawing does with this tool: (the outcome, a note for the person or None)."""
    from seg_core import assist

    name = md_name(classes[pen.cls_id].name)   # the notes are Markdown
    if pen.tool == "Fill":
        outcome, n = drafting.apply_clicks(project, view, drawing.get("raw"), pen.cls_id, cview)
        share = n / view.base_ids.size
        return outcome, (f"Filled {n:,} pixels with {name}." + (
            f" That is {share:.0%} of the image: if the outline had a gap, Undo takes it back." if share > 0.4
            else "")) if n else None
    if pen.tool == "Magic wand":
        outcome, n = drafting.apply_marks(
            project, view, drawing.get("raw"), cview,
            lambda ids, point: np.where(assist.wand(image, point, pen.tolerance), pen.cls_id, ids).astype(np.uint8),
            "magic wand")
        return outcome, f"The wand gave {n:,} pixels to {name}; Undo takes them back." if n else None
    if pen.tool == "Box → object":
        def box(ids, rect):
            hint = None
            if view.scribbles is not None:
                hint = np.where(view.scribbles == pen.cls_id, 1, np.where(view.scribbles == 255, 255, 0))
            return np.where(assist.box_fill(image, rect, hint=hint), pen.cls_id, ids).astype(np.uint8)

        outcome, n = drafting.apply_marks(project, view, drawing.get("raw"), cview, box, "box fill")
        return outcome, f"The object in the box is {name} now ({n:,} pixels); Undo takes it back." if n else None
    strokes = editing.canvas_strokes(drawing.get("data"))
    objects = drafting.canvas_objects(drawing.get("raw"))
    if pen.tool == "Smart fill":
        note = []

        def fill(scribbles):
            if len(set(np.unique(scribbles).tolist()) - {255}) < 2 and not pen.learn:
                note.append("Smart fill starts once there are strokes of two classes: now one of another class "
                            "(for example background, for what is not the object).")
                return None
            return assist.scribble_fill(image, scribbles, len(classes), learn_from() if pen.learn else None)

        outcome = drafting.apply_scribbles(project, view, strokes, objects, classes, cview, opacity(drawn_with),
                                           fill, live=pen.live)
        if pen.fill_now:
            if view.scribbles is None:
                view.scribbles = np.full(view.base_ids.shape, 255, np.uint8)
            outcome = drafting.fill_from_scribbles(project, view, fill)
        return outcome, note[0] if note else None
    return drafting.apply_canvas(project, view, strokes, objects, classes, cview, opacity(drawn_with)), None


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
        st.session_state["annotate_pen"] = (pen, st.session_state.get("annotate_tool", "Brush"))
    if lost:   # drawn in a colour no class has now: it cannot be told what it was meant to be
        view.objects = drafting.canvas_objects(((st.session_state.get(view.key) or {}).get("drawing") or {})
                                               .get("raw")) or view.objects
    return " ".join(notes) + " What you painted here was renumbered with it" + (
        "; the stroke you drew with the removed class was not kept." if lost else ".")

