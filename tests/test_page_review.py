"""Predict & review page through AppTest, on demo projects with a real tiny trained run."""

from __future__ import annotations

import io
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from helpers import ROOT, photo, png_bytes
from seg_core.services import demo, review, snapping
from seg_core import viz
from seg_core.ml import losses as L
from seg_core.ml.config import TrainConfig
from seg_core.ml.inference import Predictor, ids_from_probabilities

LOOK, FIX, QUALITY = ("Look at an image", "What to fix next", "How good is the model")


@pytest.fixture
def media(monkeypatch):
    """The bytes behind st.image URLs: AppTest keeps them in a memory store made afresh on every run."""
    stores = []
    init = MemoryMediaFileStorage.__init__

    def keep(self, *args, **kwargs):
        init(self, *args, **kwargs)
        stores.append(self)

    monkeypatch.setattr(MemoryMediaFileStorage, "__init__", keep)

    def read(url: str) -> np.ndarray:
        data = stores[-1].get_file(url.rsplit("/", 1)[-1]).content
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    return read


def open_review(project, monkeypatch, **state) -> AppTest:
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["project_path"] = str(project.path)
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("app_pages/review.py")
    at.run()
    assert not at.exception, at.exception
    return at


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def image_by_caption(at: AppTest, start: str):
    return next(im for im in at.get("image") if im.captions and im.captions[0].startswith(start))


def predicted_pixels(at: AppTest, name: str) -> int:
    caption = next(c.value for c in at.caption if c.value.startswith("Predicted:"))
    return int(re.search(rf"{name} [\d.]+% \(([\d,]+) px\)", caption).group(1).replace(",", ""))


def test_without_a_trained_run_the_page_says_so_and_links_to_train(workspace, monkeypatch):
    project = demo.create_demo_project(workspace / "fresh", count=6, unlabeled=1)
    at = open_review(project, monkeypatch)
    assert "no trained model in this project yet" in at.info[0].value
    assert [p.proto.page for p in at.page_link] == ["train"]
    assert not any(s.key == "review_run" for s in at.selectbox) and not at.get("image")
    run = project.runs.create(TrainConfig(preset="fast").to_dict())
    project.runs.update(run.id, status="running")
    ok(at.run())
    assert "A model is training now" in at.info[0].value and not at.get("image")


def test_the_best_run_is_preselected_and_another_can_be_chosen(trained_project, monkeypatch):
    best = trained_project.runs.best()
    newer = trained_project.runs.create(best.config)   # newer but weaker: listed, not preselected
    shutil.copy(trained_project.layout.runs_dir / best.id / "best.keras", trained_project.layout.runs_dir / newer.id / "best.keras")
    shutil.copy(trained_project.layout.runs_dir / best.id / "config.json", trained_project.layout.runs_dir / newer.id / "config.json")
    trained_project.runs.update(newer.id, status="completed", best_score=best.best_score / 2)
    at = open_review(trained_project, monkeypatch)
    run = at.selectbox(key="review_run")
    assert run.value == best.id and run.options[0].endswith(f"({best.id})") and len(run.options) == 2
    assert f"validation dice {best.best_score:.3f}" in run.options[0]
    ok(run.set_value(newer.id).run())
    assert at.selectbox(key="review_run").value == newer.id and image_by_caption(at, "scene_000.png")


def test_an_image_shows_its_overlay_and_a_heat_map_with_a_colour_bar(trained_project, monkeypatch, media):
    at = open_review(trained_project, monkeypatch)
    rec = trained_project.image(at.selectbox(key="review_image_id").value)
    image = trained_project.load_image(rec)
    probs = Predictor.from_run(trained_project).probabilities([image])[0]
    expected = viz.overlay(image, ids_from_probabilities(probs, 0.5), trained_project.classes, 0.5)
    shown = media(image_by_caption(at, f"{rec.filename}: the model's mask").value[0])
    assert shown.shape == expected.shape
    assert np.abs(shown.astype(int) - expected).mean() < 4            # JPEG on the way, nothing more
    heat = media(image_by_caption(at, "How sure the model is").value[0])
    top, bottom = (np.array(v) * 255 for v in (viz_colour(1.0), viz_colour(0.0)))
    bar = heat[:, int(heat.shape[1] * 0.8):].astype(int)
    assert (np.abs(bar - top).sum(-1) < 15).any() and (np.abs(bar - bottom).sum(-1) < 15).any()
    assert {d.label for d in at.get("download_button")} == {"Mask (PNG)", "Overlay (PNG)"}


def viz_colour(v: float):
    from matplotlib import colormaps

    return colormaps[viz.HEATMAP_CMAP](v)[:3]


def test_the_threshold_slider_re_thresholds_the_shown_mask(trained_project, monkeypatch):
    at = open_review(trained_project, monkeypatch)
    rec = trained_project.image(at.selectbox(key="review_image_id").value)
    fg = Predictor.from_run(trained_project).probabilities([trained_project.load_image(rec)])[0][..., 1]
    counts = {}
    for t in (0.05, 0.5, 0.95):
        ok(at.slider(key="review_threshold").set_value(t).run())
        counts[t] = predicted_pixels(at, "object")
        assert counts[t] == pytest.approx(int((fg >= t).sum()), abs=fg.size // 1000)
    assert counts[0.05] > counts[0.95]
    # "Correct in Annotate" takes the mask as shown, at this threshold.
    ok(at.slider(key="review_threshold").set_value(0.05).run())
    at.button(key="review_fix_shown").click().run()
    draft = trained_project.drafts.get(rec.id)
    assert draft.source == "prediction" and abs(int((draft.ids == 1).sum()) - counts[0.05]) <= fg.size // 1000


def test_a_labeled_image_is_compared_with_its_mask(trained_project, monkeypatch):
    labeled = trained_project.image_ids(status="labeled")
    at = open_review(trained_project, monkeypatch)
    ok(at.selectbox(key="review_status").set_value("labeled").run())
    ok(at.selectbox(key="review_image_id").set_value(labeled[2]).run())
    rec = trained_project.image(labeled[2])
    pred = Predictor.from_run(trained_project).predict_one(trained_project.load_image(rec))
    score = review.image_score(trained_project.masks.load(rec), pred.ids, 2)
    line = next(m.value for m in at.markdown if m.value.startswith("**Compared with your mask**"))
    assert f"dice {score.dice:.3f}" in line and f"IoU {score.iou:.3f}" in line
    captions = [im.captions[0] for im in at.get("image") if im.captions]
    assert captions[-4:] == ["Photo", "Your mask", "The model's mask", "Where they differ (magenta)"]
    run = trained_project.runs.best()
    optimistic = any("learned from this image, so this is optimistic" in c.value for c in at.caption)
    assert optimistic == (rec.id in run.split.train_ids)
    other = next(i for i in labeled if (i in run.split.train_ids) != (rec.id in run.split.train_ids))
    ok(at.selectbox(key="review_image_id").set_value(other).run())
    assert any("so this is optimistic" in c.value for c in at.caption) == (not optimistic)
    unlabeled = trained_project.image_ids(status="unlabeled")[0]
    ok(at.selectbox(key="review_status").set_value("all").run())
    ok(at.selectbox(key="review_image_id").set_value(unlabeled).run())
    assert not any(m.value.startswith("**Compared with your mask**") for m in at.markdown)


def test_predict_all_then_both_ranked_lists_and_correct_in_annotate(trained_project, monkeypatch):
    run = trained_project.runs.best().id
    unlabeled = trained_project.image_ids(status="unlabeled")
    at = open_review(trained_project, monkeypatch, review_section=FIX)
    assert "Press 'Predict all unlabeled images'" in " ".join(c.value for c in at.caption)
    ok(at.button(key="review_predict_unlabeled").click().run())
    assert trained_project.predictions.image_ids() == set(unlabeled)
    assert all(trained_project.predictions.get(i).run_id == run for i in unlabeled)
    assert "Predicted 2 unlabeled images" in at.success[0].value
    order = sorted(unlabeled, key=lambda i: -trained_project.predictions.get(i).uncertainty)   # most uncertain first
    fix_buttons = [b.key for b in at.button if b.key and b.key.startswith("review_fix_")]
    assert fix_buttons == [f"review_fix_{i}" for i in order] and sorted(order) == unlabeled

    ok(at.button(key="review_predict_labeled").click().run())
    worst = [r.image_id for r in review.review_worst_first(trained_project, run)]
    assert sorted(worst) == trained_project.image_ids(status="labeled")
    ious = [review.image_score(trained_project.masks.load(i), trained_project.predictions.get(i).ids, 2).iou for i in worst]
    assert ious == sorted(ious)   # least overlap with the mask first
    fix_buttons = [b.key for b in at.button if b.key and b.key.startswith("review_fix_")]
    assert fix_buttons == [f"review_fix_{i}" for i in order + worst]
    assert any("disagreement" in m.value for m in at.markdown)

    target = order[0]
    at.button(key=f"review_fix_{target}").click().run()
    ok(at)
    draft = trained_project.drafts.get(target)
    assert draft is not None and draft.source == "prediction"
    assert np.array_equal(draft.ids, trained_project.predictions.get(target).ids)
    assert at.session_state["annotate_image_id"] == target
    assert at.title[0].value == "Annotate" and any("Loaded the prediction" in t.value for t in at.markdown)


def test_view_opens_a_ranked_image_in_the_viewer(trained_project, monkeypatch):
    run = trained_project.runs.best().id
    snapping.predict_unlabeled(trained_project, Predictor.from_run(trained_project))
    target = review.annotate_next(trained_project, run)[-1].image_id
    at = open_review(trained_project, monkeypatch, review_section=FIX)
    ok(at.button(key=f"review_view_{target}").click().run())
    assert at.radio(key="review_section").value == LOOK
    assert at.selectbox(key="review_image_id").value == target
    assert image_by_caption(at, f"{trained_project.image(target).filename}: the model's mask")


def test_validation_summary_leads_with_the_object_iou_and_names_the_few_images(trained_project, monkeypatch, media):
    predictor = Predictor.from_run(trained_project)
    cm = np.zeros((2, 2), np.int64)
    val = trained_project.image_ids(status="labeled", split="val")
    assert 0 < len(val) < review.FEW_IMAGES
    for i in val:
        pred = predictor.predict_one(trained_project.load_image(i))
        cm += L.confusion_matrix(trained_project.masks.load(i), pred.ids, 2)
    at = open_review(trained_project, monkeypatch, review_section=QUALITY)
    metrics = {m.label: m.value for m in at.metric}
    iou = L.per_class_iou(cm)
    assert list(metrics)[0] == "IoU of 'object'" and metrics["IoU of 'object'"] == f"{iou[1]:.3f}"
    assert metrics["Background IoU"] == f"{iou[0]:.3f}" and "Mean IoU" not in metrics
    assert metrics["Pixel accuracy"] == f"{L.pixel_accuracy(cm):.3f}"
    names = [trained_project.image(i).filename for i in val]
    warning = next(w.value for w in at.warning if "Only " in w.value)
    assert warning.startswith(f"Only {len(val)} image") and all(n in warning for n in names)
    assert at.expander[0].label == f"The {len(val)} image{'' if len(val) == 1 else 's'} measured"
    assert list(at.dataframe[0].value["image"]) == names
    table = at.dataframe[1].value
    assert list(table["class"]) == ["background", "object"]
    assert table["IoU"].tolist() == pytest.approx(L.per_class_iou(cm).tolist())
    figure = media(image_by_caption(at, "Confusion matrix").value[0])
    assert figure.shape[0] > 200
    assert list((trained_project.path / "cache" / "review").glob(f"validation-{predictor.run_id}-*.json"))
    assert "validation split" in at.caption[0].value


def test_upload_predicts_without_adding_to_the_project(trained_project, monkeypatch):
    before = trained_project.count_images()
    at = open_review(trained_project, monkeypatch)
    ok(at.radio(key="review_source").set_value("Upload new images").run())
    mine = png_bytes(photo(40, 50, seed=3))
    at.file_uploader(key="review_uploads").set_value([("mine.png", mine, "image/png"),
                                                      ("broken.png", b"not a png", "image/png")]).run()
    ok(at)
    # The page shows the model's own mask of the upload: its object pixels are the run's at the page's threshold.
    probs = Predictor.from_run(trained_project).probabilities([review.read_upload(mine, "mine.png")])[0]
    expected = int(np.count_nonzero(ids_from_probabilities(probs, 0.5) == 1))
    assert image_by_caption(at, "mine.png: the model's mask") and predicted_pixels(at, "object") == expected
    assert trained_project.count_images() == before and not any(b.key == "review_fix_shown" for b in at.button)
    ok(at.selectbox(key="review_upload_pick").set_value(1).run())
    assert "'broken.png'" in at.error[0].value


def test_multiclass_heat_map_choice_and_class_toggles(trained_multiclass_project, monkeypatch, media):
    project = trained_multiclass_project
    at = open_review(project, monkeypatch)
    assert not any(s.key == "review_threshold" for s in at.slider)      # no threshold: the likeliest class wins
    heat = at.selectbox(key="review_heat_class")
    assert heat.options == ["the model's confidence", *[c.name for c in project.classes]]
    ok(heat.set_value(2).run())
    rec = project.image(at.selectbox(key="review_image_id").value)
    image = project.load_image(rec)
    for c in project.classes[1:]:
        ok(at.checkbox(key=f"review_show_{c.id}").uncheck().run())
    shown = media(image_by_caption(at, f"{rec.filename}: the model's mask").value[0])
    assert np.abs(shown.astype(int) - image).mean() < 4      # every class hidden: the photo itself


def test_after_adding_a_class_the_model_still_predicts_and_says_the_class_is_not_learned(trained_project, monkeypatch):
    trained_project.add_class("extra")
    at = open_review(trained_project, monkeypatch)
    assert not at.error and "not learned the class 'extra' yet" in at.info[0].value
    rec = trained_project.image(at.selectbox(key="review_image_id").value)
    assert image_by_caption(at, f"{rec.filename}: the model's mask") and predicted_pixels(at, "extra") == 0
    ok(at.radio(key="review_section").set_value(QUALITY).run())
    assert list(at.dataframe[1].value["class"]) == ["background", "object", "extra (not learned yet)"]
    assert list(m.label for m in at.metric)[0] == "IoU of 'object'"


def test_the_image_named_in_the_address_opens(trained_project, monkeypatch):
    target = trained_project.image_ids()[-1]
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["project_path"] = str(trained_project.path)
    at.query_params["image"] = str(target)
    at.switch_page("app_pages/review.py")
    ok(at.run())
    assert at.selectbox(key="review_image_id").value == target
    assert image_by_caption(at, f"{trained_project.image(target).filename}: the model's mask")


def _queue_head(at: AppTest) -> str:
    [caption] = [c for img in at.get("image") for c in img.captions if c.endswith(": the model's proposal")]
    return caption.rsplit(":", 1)[0]


def test_the_review_queue_accepts_skips_and_fixes_one_proposal_at_a_time(trained_project, monkeypatch):
    run = trained_project.runs.best().id
    snapping.predict_unlabeled(trained_project, Predictor.from_run(trained_project))
    order = [r.image_id for r in review.annotate_next(trained_project, run)]
    names = [trained_project.image(i).filename for i in order]
    at = open_review(trained_project, monkeypatch, review_section=FIX)
    assert _queue_head(at) == names[0] and "2 in the queue" in " ".join(m.value for m in at.markdown)
    assert "No proposal of this model has been accepted or fixed yet." in [c.value for c in at.caption]
    snapped = snapping.kept_verdict(trained_project, run)
    assert snapped is not None and snapped.sentence in [c.value for c in at.caption], "whether edges were snapped"

    ok(at.button(key="review_queue_skip").click().run())
    assert _queue_head(at) == names[1], "skipped: the next one at once"
    ok(at.button(key="review_queue_back").click().run())
    assert _queue_head(at) == names[0], "Previous shows the skipped one again"
    ok(at.button(key="review_queue_accept").click().run())
    rec = trained_project.image(order[0])
    assert (rec.status, rec.mask_source) == ("labeled", "accepted")
    assert np.array_equal(trained_project.masks.load(rec), trained_project.predictions.get(rec.id).ids)
    assert f"Accepted the proposal as the mask of {names[0]} (version 1)." in [s.value for s in at.success]
    assert _queue_head(at) == names[1] and "1 in the queue" in " ".join(m.value for m in at.markdown)
    assert "This model's proposals accepted as they were: 1 of 1 (100%); 0 opened to fix." in \
        [c.value for c in at.caption]

    ok(at.button(key="review_queue_fix").click().run())
    assert at.title[0].value == "Annotate" and at.session_state["annotate_image_id"] == order[1]
    assert trained_project.drafts.get(order[1]).source == "prediction"
    tally = trained_project.outcomes.tally(run)
    assert (tally.accepted, tally.fixed, tally.skipped) == (1, 1, 1)


def test_accepting_an_image_another_tab_labeled_keeps_theirs_and_says_so(trained_project, monkeypatch):
    run = trained_project.runs.best().id
    snapping.predict_unlabeled(trained_project, Predictor.from_run(trained_project))
    head = review.annotate_next(trained_project, run)[0].image_id
    at = open_review(trained_project, monkeypatch, review_section=FIX)
    rec = trained_project.image(head)
    theirs = np.zeros((rec.height, rec.width), np.uint8)
    trained_project.masks.save(head, theirs, 0, author="bob")   # in another tab, after this one drew the queue
    ok(at.button(key="review_queue_accept").click().run())
    assert any("was labeled by bob since this queue showed it" in e.value for e in at.error)
    assert np.array_equal(trained_project.masks.load(head), theirs)
    assert trained_project.image(head).mask_source == "painted"
    assert _queue_head(at) != rec.filename
