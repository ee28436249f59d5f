"""Annotate page: Box -> object follows the project's model where it is good, says so, and can be told not to."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from app_pages.annotate_tools import TAGS
from helpers import ROOT, png_bytes
from seg_core.classes import default_classes
from seg_core.ml.config import TrainConfig
from seg_core.services import pens, priors
from seg_core.store.runs import RunStatus
from seg_core.store.workspace import new_project
from test_assist import disc_with_patch
from test_page_annotate import drawing
from test_priors import boxed, sure

CLASSES = default_classes(["background", "object"])


def _page_with_a_model(workspace, monkeypatch, quality: float):
    """A project of one photo (a disc with a blue patch against it) and a finished run whose model (stood in for:
    its probabilities are the disc's) has `quality` as validation IoU for the object."""
    from app_pages import widgets

    image, disc, patch = disc_with_patch()
    p = new_project(workspace / "prior", CLASSES)
    p.add_image(png_bytes(image), "disc.png")
    run = p.runs.create(TrainConfig(image_size=32, base_filters=4, depth=2, epochs=1).to_dict())
    p.runs.update(run.id, status=RunStatus.COMPLETED, best_score=quality)
    p.layout.run(run.id).checkpoint("best").write_bytes(b"stands in for the model")
    asked = []

    def stand_in(project_path, run_id, image_sha, class_names, _image):
        asked.append(run_id)
        return priors.ModelPrior(run_id, np.stack([sure(~disc), sure(disc)], axis=2).astype(np.float32),
                                 (1.0, priors.trust(quality)), (0.97, quality), run.when)

    monkeypatch.setattr(widgets, "cached_prior", stand_in)
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["project_path"] = str(p.path)
    at.switch_page("app_pages/annotate.py").run()
    at.sidebar.radio(key="annotate_class").set_value(1).run()
    at.sidebar.radio(key="annotate_tool").set_value("Box → object").run()
    assert not at.exception, at.exception
    return p, at, run, disc, patch, asked


def _box(at, p, disc, patch) -> np.ndarray:
    from seg_core.services.editing import view_for

    v = view_for(disc.shape[1], disc.shape[0])
    sx, sy = v.canvas_w / disc.shape[1], v.canvas_h / disc.shape[0]
    x0, y0, x1, y1 = boxed(disc, patch)
    rect = {"type": "rect", "left": x0 * sx, "top": y0 * sy, "width": (x1 - x0) * sx, "height": (y1 - y0) * sy,
            "stroke": pens.colour(CLASSES[1], 1.0, TAGS["Box → object"])}
    strokes = np.zeros((v.canvas_h, v.canvas_w, 4), np.uint8)
    at.session_state[at.session_state["annotate_canvas_key"]] = drawing(strokes, [rect])
    at.run()
    assert not at.exception, at.exception
    return p.drafts.get(1).ids == 1


def _said(at) -> str:
    return " ".join(t.value for t in at.markdown)


def test_a_box_follows_a_good_model_and_the_page_names_its_run(workspace, monkeypatch):
    p, at, run, disc, patch, asked = _page_with_a_model(workspace, monkeypatch, quality=0.95)
    toggle = at.sidebar.toggle(key="annotate_use_model")
    assert toggle.value and toggle.label == f"Use the model from run {run.when}"
    assert asked == []                                   # nothing asks the model before a box needs it
    found = _box(at, p, disc, patch)
    assert asked == [run.id]
    assert (found & patch).sum() < 0.1 * patch.sum() and (found & disc).sum() > 0.9 * disc.sum()
    assert f"Using the model from run {run.when} for object." in _said(at)


def test_with_the_model_turned_off_the_box_follows_the_photo_alone(workspace, monkeypatch):
    p, at, run, disc, patch, asked = _page_with_a_model(workspace, monkeypatch, quality=0.95)
    at.sidebar.toggle(key="annotate_use_model").set_value(False).run()
    found = _box(at, p, disc, patch)
    assert asked == [] and (found & patch).sum() > 0.8 * patch.sum()
    assert "Using the model" not in _said(at)


def test_a_poor_model_is_left_out_and_the_page_says_why(workspace, monkeypatch):
    p, at, run, disc, patch, asked = _page_with_a_model(workspace, monkeypatch, quality=0.4)
    found = _box(at, p, disc, patch)
    assert asked == [run.id] and (found & patch).sum() > 0.8 * patch.sum()
    assert "was left out for object (object: validation IoU 0.40" in _said(at)
