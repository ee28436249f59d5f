"""Model export: each format loads in its own runtime and agrees with Predictor; predict_example.py runs alone in a
fresh folder; model.json says what Predictor does; refusals; the zip; `maskloop export-model`.

The tiny trained runs are conftest's session template (binary and 3 classes); each (project, format) is exported
once for the whole module and only read afterwards.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg_core.cli import main
from seg_core.errors import ModelExportError, NotFoundError, TrainingError
from seg_core.formats.images import load_image
from seg_core.ml import model_export
from seg_core.ml.inference import Predictor
from seg_core.store.project import Project
from seg_core.store.workspace import new_project

FORMATS = tuple(model_export.FORMATS)
KINDS = ("binary", "multiclass")
AGREEMENT = 0.999


@pytest.fixture(scope="module")
def projects(_trained_template):
    opened = {kind: Project(_trained_template[kind]) for kind in KINDS}
    yield opened
    for p in opened.values():
        p.close()


@pytest.fixture(scope="module")
def predictors(projects):
    return {kind: Predictor.from_run(p) for kind, p in projects.items()}


@pytest.fixture(scope="module")
def exported(projects, tmp_path_factory):
    """exported(kind, fmt): that project's best run exported as fmt, made on first use."""
    root, made = tmp_path_factory.mktemp("exports"), {}

    def get(kind: str, fmt: str) -> model_export.ExportedModel:
        if (kind, fmt) not in made:
            made[kind, fmt] = model_export.export_model(projects[kind], fmt, root / f"{kind}-{fmt}")
        return made[kind, fmt]
    return get


def sample_images(project: Project) -> list[np.ndarray]:
    """Two of the project's photos (4:3 and square), a wide crop of one and a tall grey one: letterbox both ways."""
    photos = [project.load_image(r) for r in project.list_images()[:5]]
    shapes = {p.shape[:2] for p in photos}
    assert len(shapes) > 1, "the demo should have both 4:3 and square images"
    wide = photos[0][40:81, 10:150]
    tall = np.asarray(Image.fromarray(photos[1]).convert("L").resize((33, 90)))
    return [photos[0], next(p for p in photos if p.shape[0] == p.shape[1]), wide, tall]


def runtime_forward(exported: model_export.ExportedModel):
    """The exported file in its own runtime, no Maskloop code: batch (1, S, S, C) float32 -> probabilities."""
    path = exported.model_path
    if exported.format == "keras":
        import keras

        model = keras.saving.load_model(path, compile=False)
        return lambda x: np.asarray(model(x, training=False))
    if exported.format == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return lambda x: loaded.serve(tf.constant(x)).numpy()
    if exported.format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def run(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])
    return run


def with_forward(reference: Predictor, forward) -> Predictor:
    """Maskloop's Predictor (its resizing, cropping and class rule) around another forward pass."""
    import tensorflow as tf

    p = Predictor(reference.model, reference.config, reference.run_id)
    p._forward = lambda x: tf.constant(np.concatenate([forward(np.ascontiguousarray(b[None])) for b in x.numpy()]))
    return p


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert [x.shape for x in a] == [y.shape for y in b]
    return sum(int((x == y).sum()) for x, y in zip(a, b)) / sum(x.size for x in a)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_loads_in_its_runtime_and_agrees_with_predictor(fmt, kind, projects, predictors, exported):
    done = exported(kind, fmt)
    assert done.model_path.exists() and done.run_id == projects[kind].runs.best().id
    reference = predictors[kind]
    images = sample_images(projects[kind])
    ours = reference.predict(images)
    theirs = with_forward(reference, runtime_forward(done)).predict(images)
    assert [t.ids.shape for t in theirs] == [im.shape[:2] for im in images]
    assert agreement([o.ids for o in ours], [t.ids for t in theirs]) >= AGREEMENT
    assert max(float(np.abs(o.probabilities - t.probabilities).max()) for o, t in zip(ours, theirs)) < 1e-4
    if kind == "multiclass":
        assert any(len(np.unique(o.ids)) > 1 for o in ours)   # a model that answers one class would prove little


def test_the_keras_file_needs_no_seg_studio_layers(exported):
    with zipfile.ZipFile(exported("binary", "keras").model_path) as zf:
        config = zf.read("config.json").decode()
    assert "segstudio" not in config and "FusedBatchNorm" not in config and "BatchNormalization" in config


def _write(path: Path, pixels: np.ndarray, mode: str | None = None, **save) -> Path:
    Image.fromarray(pixels, mode).save(path, **save)
    return path


# Each format's example on another kind of file. keras, onnx and tflite run in a fresh Python process (the keras one
# shows the .keras file loads without Maskloop); savedmodel's runs in this process, sparing a second TensorFlow start.
EXAMPLE_CASES = [("keras", "binary", "wide.png", True), ("savedmodel", "multiclass", "wide.jpg", False),
                 ("onnx", "binary", "transparent.png", True), ("tflite", "multiclass", "grey16.png", True)]


def example_input(name: str, photo: np.ndarray, folder: Path) -> Path:
    wide = np.ascontiguousarray(photo[30:120, 0:300])
    if name == "wide.png":
        return _write(folder / name, wide)
    if name == "wide.jpg":
        return _write(folder / name, wide, quality=90)
    if name == "transparent.png":
        alpha = np.full(wide.shape[:2], 255, np.uint8)
        alpha[:, :60] = 0
        return _write(folder / name, np.dstack([wide, alpha]), "RGBA")
    grey = (wide.mean(axis=2) * 16).astype(np.uint16)   # 12-bit microscopy style: scaled by its range
    return _write(folder / name, grey)


def load_example(folder: Path):
    spec = importlib.util.spec_from_file_location("exported_example", folder / model_export.EXAMPLE_NAME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fmt,kind,name,fresh", EXAMPLE_CASES)
def test_predict_example_runs_alone_in_a_fresh_folder(fmt, kind, name, fresh, projects, predictors, exported,
                                                      tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(exported(kind, fmt).folder, elsewhere / "model")
    image = example_input(name, projects[kind].load_image(projects[kind].list_images()[0]), elsewhere)
    if fresh:
        out = subprocess.run([sys.executable, "model/predict_example.py", image.name, "mask.png"], cwd=elsewhere,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        printed = out.stdout
    else:
        monkeypatch.chdir(elsewhere)
        assert load_example(elsewhere / "model").main([image.name, "mask.png"]) == 0
        printed = capsys.readouterr().out
    assert printed.startswith("wrote mask.png (300x90)")
    with Image.open(elsewhere / "mask.png") as mask:
        assert mask.mode == "P" and mask.size == (300, 90)
        ids = np.asarray(mask)
        palette = mask.getpalette()
    expected = predictors[kind].predict_one(load_image(image)).ids
    assert agreement([expected], [ids]) >= AGREEMENT
    for c in predictors[kind].classes:
        assert tuple(palette[3 * c.id: 3 * c.id + 3]) == c.color


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_example_imports_only_its_runtime_numpy_and_pillow(fmt):
    tree = ast.parse(model_export.example_script(fmt))
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    runtime = {"keras": {"keras"}, "savedmodel": {"tensorflow"}, "onnx": {"onnxruntime"},
               "tflite": {"ai_edge_litert", "tensorflow"}}[fmt]
    assert roots == {"json", "sys", "pathlib", "numpy", "PIL"} | runtime
    loaders = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("load_")]
    assert loaders == [f"load_{fmt}"]


def test_tflite_example_falls_back_to_tensorflows_interpreter(exported, monkeypatch):
    done = exported("multiclass", "tflite")
    example = load_example(done.folder)
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    litert = example.load_tflite(done.model_path)(x)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)   # as if the package were not installed
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    np.testing.assert_allclose(example.load_tflite(done.model_path)(x), litert, atol=1e-6)


def test_example_without_its_runtime_says_how_to_install_it(exported, monkeypatch, capsys):
    example = load_example(exported("binary", "onnx").folder)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert example.main(["photo.png", "mask.png"]) == 2
    err = capsys.readouterr().err
    assert "This model needs onnxruntime" in err and "install it with: pip install onnxruntime numpy pillow" in err


@pytest.mark.parametrize("kind", KINDS)
def test_model_json_says_what_predictor_does(kind, projects, exported):
    done = exported(kind, "onnx")
    card = json.loads((done.folder / "model.json").read_text())
    run = projects[kind].runs.get(done.run_id)
    config = json.loads(projects[kind].layout.run(run.id).config.read_text())
    assert card["format"] == "onnx" and card["model_file"] == "model.onnx" and card["run"] == run.id
    assert card["classes"] == config["classes"] and card["ignore"]["id"] == 255
    assert card["input"]["size"] == [32, 32] and card["input"]["channels"] == 3 and card["input"]["range"] == [0, 1]
    assert card["preprocessing"]["resize"] == "letterbox" and "symmetric" in card["preprocessing"]["padding"]
    binary = kind == "binary"
    assert card["postprocessing"]["rule"] == ("threshold" if binary else "argmax")
    assert card["postprocessing"]["threshold"] == (0.5 if binary else None)
    assert card["output"]["activation"] == ("sigmoid" if binary else "softmax")
    assert card["output"]["shape"][-1] == (1 if binary else 3)
    assert card["training"]["settings"]["base_filters"] == 4 and card["training"]["epochs_done"] == 2
    v = card["validation"]
    assert v["best_dice"] == run.best_score and v["best_epoch"] == run.best_epoch + 1
    assert v["model_from_epoch"] == v["best_epoch"] and card["checkpoint"] == "best.keras"
    assert {"val_dice", "val_iou", "val_loss"} <= set(v["at_best_epoch"]) and v["images"] == len(run.split.val_ids)
    assert card["validation"]["at_best_epoch"]["val_dice"] == pytest.approx(run.best_score)


def test_tflite_has_a_fixed_input_of_the_training_size(exported):
    card = json.loads((exported("binary", "tflite").folder / "model.json").read_text())
    assert card["input"]["shape"] == [1, 32, 32, 3]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(exported("binary", "tflite").model_path))
    assert interpreter.get_input_details()[0]["shape"].tolist() == [1, 32, 32, 3]


def test_an_existing_folder_is_refused_unless_replaced(trained_project, tmp_path):
    dest = tmp_path / "exports"
    out = dest / "model"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ModelExportError, match="already exists and is not empty"):
        model_export.export_model(trained_project, "keras", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    done = model_export.export_model(trained_project, "keras", out, replace=True)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model.json", "model.keras", "predict_example.py"]
    assert done.size_bytes == sum(p.stat().st_size for p in out.iterdir())
    assert [p.name for p in dest.iterdir()] == ["model"]   # no staging or old folder left beside it
    (dest / "empty").mkdir()
    model_export.export_model(trained_project, "keras", dest / "empty")   # an empty folder is fine
    (dest / "file").write_text("x")
    with pytest.raises(ModelExportError, match="is a file"):
        model_export.export_model(trained_project, "keras", dest / "file")


def test_an_export_that_fails_halfway_leaves_nothing(trained_project, tmp_path, monkeypatch):
    def broken(checkpoint, config, spec, path):
        path.write_bytes(b"half a model")
        raise OSError("disk full")

    dest = tmp_path / "exports"
    monkeypatch.setattr(model_export, "_write_model", broken)
    with pytest.raises(OSError, match="disk full"):
        model_export.export_model(trained_project, "onnx", dest / "model")
    assert list(dest.iterdir()) == []


def test_clear_refusals(trained_project, workspace, tmp_path, monkeypatch):
    dest = tmp_path / "exports"
    with pytest.raises(ModelExportError, match="not a model format.*keras, savedmodel, onnx, tflite"):
        model_export.export_model(trained_project, "pytorch", dest / "a")
    with pytest.raises(NotFoundError, match="no trained model yet"):
        model_export.export_model(new_project(workspace / "empty"), "keras", dest / "b")
    best = trained_project.runs.best()
    early = trained_project.runs.create(best.config)   # stopped before its first epoch: nothing saved
    trained_project.runs.update(early.id, status="stopped")
    with pytest.raises(TrainingError, match=f"Run {early.id} has no saved model"):
        model_export.export_model(trained_project, "keras", dest / "c", early.id)
    files = trained_project.layout.run(early.id)
    shutil.copy(trained_project.layout.run(best.id).checkpoint("best"), files.checkpoint("last"))
    trained_project.runs.update(early.id, status="running")   # its first epochs saved, still going
    with pytest.raises(ModelExportError, match="still training"):
        model_export.export_model(trained_project, "keras", dest / "d", early.id)
    monkeypatch.setitem(model_export.FORMATS, "onnx", replace(model_export.FORMATS["onnx"], needs=("tf2onnx",)))
    monkeypatch.setitem(sys.modules, "tf2onnx", None)   # as if it were not installed
    with pytest.raises(ModelExportError, match=r"needs the Python package\(s\) tf2onnx.*pip install tf2onnx"):
        model_export.export_model(trained_project, "onnx", dest / "e", best.id)
    assert not dest.exists() or not any(dest.iterdir())


def test_the_zip_holds_one_folder_with_the_model_card_and_example(trained_project):
    name, data = model_export.model_zip(trained_project, "keras")
    run = trained_project.runs.best()
    assert name == f"trained-{run.id}-keras.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(zf.namelist())
        card = json.loads(zf.read(f"trained-{run.id}-keras/model.json"))
    assert names == [f"trained-{run.id}-keras/{f}"
                     for f in ("README.md", "model.json", "model.keras", "predict_example.py")]
    assert card["run"] == run.id


@pytest.mark.parametrize("kind", KINDS)
def test_the_readme_says_in_words_what_the_run_recorded(kind, projects, exported):
    done = exported(kind, "onnx")
    project = projects[kind]
    run = project.runs.get(done.run_id)
    config = json.loads(project.layout.run(run.id).config.read_text())
    text = (done.folder / "README.md").read_text()
    assert text.startswith(f"# {project.name}: segmentation model from run {run.id}\n")
    for c in project.classes:          # each class with its id and its colour in the mask
        assert f"| {c.id} | {c.name} | `{c.hex}` |" in text
    if kind == "binary":
        assert f"It finds **{project.classes[1].name}** in an image" in text
    else:
        assert f"It gives each pixel of an image one of {len(project.classes)} classes" in text
    assert "Each image is resized to 32 x 32 pixels" in text and "mirror image" in text    # letterbox
    assert "pip install onnxruntime numpy pillow\npython predict_example.py photo.jpg mask.png" in text
    val = len(run.split.val_ids)
    assert f"Scores on {val} validation image{'s' if val != 1 else ''} the model did not learn from" in text
    assert f"dice {run.best_score:.3f} (best, after epoch {run.best_epoch + 1})" in text
    iou = [m for m in project.runs.epoch_metrics(run.id) if m["epoch"] == run.best_epoch][0]["val_iou"]
    assert f"IoU {iou:.3f}" in text and f"after epoch {run.best_epoch + 1}." in text
    assert f"{len(project.runs.epoch_metrics(run.id))} of {config['epochs']} epochs" in text
    assert f"It {run.split.note}." in text and str(config["train_images"]) in run.split.note
    # The folder with its README still runs alone: the example in a fresh folder is tested above for every format.
    assert (done.folder / "model.onnx").is_file()


def test_cli_export_model(capsys, trained_project, tmp_path):
    out = tmp_path / "exported"
    code = main(["export-model", "--project", "trained", "--format", "keras", "--out", str(out)])
    text = capsys.readouterr().out
    run = trained_project.runs.best()
    assert code == 0 and f"exported run {run.id} (best.keras) as Keras (.keras)" in text
    assert "predict_example.py photo.jpg mask.png" in text and (out / "model.keras").is_file()
    code = main(["export-model", "--project", "trained", "--format", "keras", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "already exists and is not empty" in err and "Traceback" not in err
    code = main(["export-model", "--project", "trained", "--run", run.id, "--format", "keras", "--out", str(out),
                 "--replace"])
    assert code == 0, capsys.readouterr().err


def load_template(folder: Path):
    """The example script's template (every runtime's block) as a module."""
    (folder / model_export.EXAMPLE_NAME).write_text(model_export.example_template())
    return load_example(folder)


def test_the_examples_resizing_is_seg_studios_to_the_bit(tmp_path):
    """predict_example.py keeps its own copies (it may not import seg_core): they must not drift from ml/dataset.py
    and tf.image.resize."""
    import tensorflow as tf

    from seg_core.ml.dataset import content_box, resize_image

    example = load_template(tmp_path)
    rng = np.random.default_rng(1)
    for h, w in ((240, 320), (41, 140), (90, 33), (32, 32), (7, 500), (20, 24)):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
        for resize in ("letterbox", "squash"):
            assert example.content_box(h, w, 32, resize) == content_box((h, w), (32, 32), resize)
            for image, channels in ((rgb, 3), (grey, 3), (rgb, 1), (grey, 1)):
                ours = resize_image(image, (32, 32), channels, resize).astype(np.float32) / 255.0
                np.testing.assert_array_equal(example.prepare(image, 32, channels, resize)[0], ours)
        probs = rng.random((h % 32 + 5, w % 32 + 3, 3), dtype=np.float32)
        np.testing.assert_array_equal(example.resize_bilinear(probs, h, w),
                                      tf.image.resize(probs, (h, w), method="bilinear").numpy())


def test_the_example_reads_every_kind_of_image_as_seg_studio_does(tmp_path):
    example = load_template(tmp_path)
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    files = {"rgb.png": Image.fromarray(rgb), "grey.png": Image.fromarray(rgb[..., 0]),
             "rgba.png": Image.fromarray(np.dstack([rgb, alpha]), "RGBA"),
             "la.png": Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA"),
             "palette.png": Image.fromarray(rgb).quantize(16),
             "grey16.png": Image.fromarray((rgb[..., 0].astype(np.uint16) * 16)),
             "bilevel.png": Image.fromarray(rgb[..., 0] > 128),
             "photo.jpg": Image.fromarray(rgb)}
    for name, im in files.items():
        im.save(tmp_path / name)
        np.testing.assert_array_equal(example.read_image(str(tmp_path / name)), load_image(tmp_path / name), name)
    turned = Image.fromarray(rgb)
    exif = turned.getexif()
    exif[0x0112] = 6   # EXIF orientation: rotate 90 degrees to show upright
    turned.save(tmp_path / "turned.jpg", exif=exif)
    upright = example.read_image(str(tmp_path / "turned.jpg"))
    assert upright.shape == (30, 20, 3)
    np.testing.assert_array_equal(upright, load_image(tmp_path / "turned.jpg"))
