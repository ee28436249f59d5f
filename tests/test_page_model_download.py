"""The model download on the Train page's run history and on Predict & review, through AppTest, on a real tiny run."""

from __future__ import annotations

import io
import json
import zipfile

from streamlit.testing.v1 import AppTest

from helpers import ROOT, open_app_page
from seg_core.ml.model_export import FORMATS


def open_page(project, page: str, monkeypatch) -> AppTest:
    monkeypatch.chdir(ROOT)
    return open_app_page(AppTest.from_file(str(ROOT / "app.py"), default_timeout=180), page, project)


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def zipped(at: AppTest, key: str) -> dict[str, bytes]:
    _, name, data = at.session_state[key]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_train_history_offers_the_model_as_a_zip_in_the_chosen_format(trained_project, monkeypatch):
    run = trained_project.runs.best()
    at = open_page(trained_project, "train", monkeypatch)
    fmt = at.selectbox(key="train_export_format")
    assert fmt.options == [f.label for f in FORMATS.values()] and fmt.value == "keras"
    assert not any(s.key == "train_export_run" for s in at.selectbox)   # one model: nothing to choose
    assert any(FORMATS["keras"].description in c.value for c in at.caption)
    assert not at.get("download_button")
    ok(fmt.set_value("onnx").run())
    assert any(FORMATS["onnx"].description in c.value for c in at.caption)
    ok(at.button(key="train_export_build").click().run())
    (button,) = at.get("download_button")
    folder = f"trained-{run.id}-onnx"
    files = zipped(at, "train_export_zip")
    size = len(at.session_state["train_export_zip"][2])
    assert size < 999_500 and button.proto.label == f"Download {folder}.zip ({size / 1e3:.0f} kB)"   # not "0.0 MB"
    assert set(files) == {f"{folder}/{n}" for n in ("model.onnx", "model.json", "predict_example.py", "README.md")}
    assert json.loads(files[f"{folder}/model.json"])["run"] == run.id
    ok(at.selectbox(key="train_export_format").set_value("tflite").run())
    assert not at.get("download_button")   # the zip made for ONNX is not offered as the TFLite one


def test_review_offers_the_chosen_model(trained_project, monkeypatch):
    run = trained_project.runs.best()
    at = open_page(trained_project, "review", monkeypatch)
    assert at.selectbox(key="review_export_format").value == "keras"
    ok(at.button(key="review_export_build").click().run())
    labels = [b.proto.label for b in at.get("download_button")]
    assert any(label.startswith(f"Download trained-{run.id}-keras.zip") for label in labels)
    assert f"trained-{run.id}-keras/model.keras" in zipped(at, "review_export_zip")
