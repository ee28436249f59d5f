"""Model export: a finished run's model as a folder another program can use (Keras, SavedModel, ONNX or TFLite),
with its card (model.json), a README.md for a person and a standalone predict_example.py; and the same folder as a
zip for a download."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from seg_core import __version__
from seg_core.classes import IGNORE_COLOR, IGNORE_ID, ClassSpec, color_to_hex
from seg_core.errors import ModelExportError
from seg_core.durable import atomic_write, commit_dir
from seg_core.ml.model_readme import readme
from seg_core.store.project import Project
from seg_core.store.runs import RunRecord

CARD_NAME = "model.json"
EXAMPLE_NAME = "predict_example.py"
README_NAME = "README.md"
# The script's template, package data rather than a module: the script may not import seg_core. Runnable as it is;
# each export keeps only its own runtime's block of it.
_EXAMPLE_TEMPLATE = resources.files("seg_core.ml") / "templates" / "predict_example.py.txt"
_THRESHOLD = 0.5   # Predictor's default for a binary model


@dataclass(frozen=True)
class ExportFormat:
    name: str
    label: str
    model_file: str        # in the export folder (a folder itself for a SavedModel)
    package: str           # what predict_example.py imports to run it
    install: str
    description: str       # one line, plain words: where this format is used
    needs: tuple[str, ...] = ()   # modules the conversion itself needs, beyond TensorFlow


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("keras", "Keras (.keras)", "model.keras", "keras", "pip install tensorflow numpy pillow",
                 "For Python programs with Keras 3: predict with it, or fine-tune it in your own code."),
    ExportFormat("savedmodel", "TensorFlow SavedModel", "saved_model", "tensorflow",
                 "pip install tensorflow numpy pillow",
                 "For TensorFlow programs and servers (TensorFlow Serving, TensorFlow.js converter)."),
    ExportFormat("onnx", "ONNX (.onnx)", "model.onnx", "onnxruntime", "pip install onnxruntime numpy pillow",
                 "For almost any language or device through ONNX Runtime (Python, C++, C#, Java, JavaScript).",
                 needs=("tf2onnx", "onnx")),
    ExportFormat("tflite", "TensorFlow Lite / LiteRT (.tflite)", "model.tflite", "ai-edge-litert",
                 "pip install ai-edge-litert numpy pillow",
                 "For phones and small boards (Android, iOS, Raspberry Pi): one image at a time, at the training "
                 "size."),
)}


@dataclass(frozen=True)
class ExportedModel:
    folder: Path
    format: str
    run_id: str
    checkpoint: str        # best.keras or last.keras
    size_bytes: int        # of the whole folder
    seconds: float

    @property
    def model_path(self) -> Path:
        return self.folder / FORMATS[self.format].model_file


def export_model(project: Project, fmt: str, out: str | Path, run_id: str | None = None,
                 replace: bool = False) -> ExportedModel:
    """Write run `run_id`'s model (default: the project's best run) to the folder `out` as `fmt`, with model.json,
    README.md and predict_example.py. The folder is built beside `out` and renamed into place: an interrupted export leaves
    nothing half-written. An existing non-empty `out` is refused unless `replace`."""
    from seg_core.ml.inference import run_checkpoint

    spec = _format(fmt)
    run, checkpoint = run_checkpoint(project, run_id)
    if run.active:
        raise ModelExportError(f"Run {run.id} is still training; export its model once it has finished "
                               "(or stop it on the Train page).")
    missing = [m for m in spec.needs if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelExportError(f"Exporting as {spec.label} needs the Python package(s) {', '.join(missing)}, which "
                               f"are not installed here (pip install {' '.join(missing)}); or choose another format.")
    out = Path(out).expanduser().resolve()
    _check_target(out, replace)
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".exporting", dir=out.parent))
    try:
        config = json.loads(project.layout.run(run.id).config.read_text())
        _write_model(checkpoint, config, spec, staging / spec.model_file)
        card = model_card(project, run, config, spec.name, checkpoint.name)
        atomic_write(staging / CARD_NAME, (json.dumps(card, indent=2) + "\n").encode())
        atomic_write(staging / EXAMPLE_NAME, example_script(spec.name).encode())
        atomic_write(staging / README_NAME, readme(card, spec.label, EXAMPLE_NAME).encode())
        _check_target(out, replace)   # something may have appeared there meanwhile
        commit_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ExportedModel(out, spec.name, run.id, checkpoint.name, size, time.monotonic() - started)


def model_zip(project: Project, fmt: str, run_id: str | None = None) -> tuple[str, bytes]:
    """The export folder of export_model as a zip for a download: (file name, bytes); the zip holds one folder."""
    from seg_core.ml.inference import run_checkpoint

    run, _ = run_checkpoint(project, run_id)
    name = f"{project.path.name}-{run.id}-{_format(fmt).name}"
    with tempfile.TemporaryDirectory(prefix="maskloop-model-") as tmp:
        exported = export_model(project, fmt, Path(tmp) / name, run.id)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(exported.folder.rglob("*")):
                if path.is_file():
                    zf.write(path, f"{name}/{path.relative_to(exported.folder).as_posix()}")
    return f"{name}.zip", buf.getvalue()


def example_template() -> str:
    """predict_example.py with every runtime's block in it."""
    return _EXAMPLE_TEMPLATE.read_text(encoding="utf-8")


def example_script(fmt: str) -> str:
    """predict_example.py for one format: the template with the other runtimes' blocks left out."""
    kept, keep = [], True
    for line in example_template().splitlines(keepends=True):
        if line.startswith("# runtime: "):
            keep = line.strip() == f"# runtime: {fmt}"
        elif line.startswith("# end of runtimes"):
            keep = True
        elif keep:
            kept.append(line)
    return "".join(kept)


def _format(fmt: str) -> ExportFormat:
    if fmt not in FORMATS:
        raise ModelExportError(f"'{fmt}' is not a model format Maskloop exports; choose one of "
                               f"{', '.join(FORMATS)}.")
    return FORMATS[fmt]


def _check_target(out: Path, replace: bool) -> None:
    if out.is_file() or out.is_symlink():
        raise ModelExportError(f"{out} is a file; give the name of a folder to export the model into.")
    if out.is_dir() and any(out.iterdir()) and not replace:
        raise ModelExportError(f"The folder {out} already exists and is not empty; choose another folder, or "
                               "replace it (--replace) to overwrite what is there.")


def _write_model(checkpoint: Path, config: dict, spec: ExportFormat, path: Path) -> None:
    import keras
    import numpy as np

    from seg_core.ml.models import load_saved, plain_keras

    size, channels = int(config["image_size"]), int(config["channels"])
    model = plain_keras(load_saved(checkpoint))
    model(np.zeros((1, size, size, channels), np.float32), training=False)   # the ONNX exporter wants a called model
    if spec.name == "keras":
        model.save(path)
    elif spec.name == "savedmodel":
        model.export(str(path), format="tf_saved_model", verbose=False)
    elif spec.name == "onnx":
        model.export(str(path), format="onnx", verbose=False)
    else:
        # A fixed input (one image at the training size): phone runtimes and their GPU delegates want static shapes.
        model.export(str(path), format="litert", verbose=False,
                     input_signature=[keras.InputSpec(shape=(1, size, size, channels), dtype="float32")])


def model_card(project: Project, run: RunRecord, config: dict, fmt: str, checkpoint: str) -> dict:
    """model.json: what the model predicts, what it expects and how its answer becomes a mask, in Maskloop's
    own terms (ml/inference.py Predictor, ml/dataset.py resize_image and content_box, ml/losses.py hard_labels)."""
    spec = FORMATS[fmt]
    size, channels, num_classes = int(config["image_size"]), int(config["channels"]), int(config["num_classes"])
    resize = config.get("resize", "squash")   # runs saved before letterboxing squashed
    classes = [ClassSpec.from_dict(c).to_dict() for c in config.get("classes", [])] or \
        [c.to_dict() for c in project.classes]
    binary = num_classes == 2
    out_channels = 1 if binary else num_classes
    batch = 1 if fmt == "tflite" else "batch"
    return {
        "format": fmt, "model_file": spec.model_file,
        "runtime": {"package": spec.package, "install": spec.install},
        "exported_by": f"Maskloop {__version__}", "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "project": project.name, "run": run.id, "checkpoint": checkpoint,
        "classes": classes,
        "ignore": {"id": IGNORE_ID, "color": color_to_hex(IGNORE_COLOR),
                   "meaning": f"In Maskloop's masks {IGNORE_ID} marks pixels labelled as no class (e.g. the border "
                              "of a trimap); they counted for nothing in training and scoring. The model never "
                              f"predicts {IGNORE_ID}."},
        "input": {"size": [size, size], "channels": channels, "color": "rgb" if channels == 3 else "grey",
                  "shape": [batch, size, size, channels], "layout": "NHWC", "dtype": "float32", "range": [0.0, 1.0],
                  "note": _input_note(fmt, config, size)},
        "preprocessing": {
            "resize": resize, "interpolation": "bilinear (Pillow Image.BILINEAR, antialiased, on uint8 pixels)",
            "padding": "mirror (numpy.pad mode='symmetric')" if resize == "letterbox" else None,
            "scale": "float32 pixel / 255, no mean or standard deviation",
            "steps": _preprocessing_steps(resize, size, channels)},
        "output": {"shape": [batch, size, size, out_channels], "activation": "sigmoid" if binary else "softmax",
                   "meaning": (f"the probability of class 1 ('{classes[1]['name']}') at each pixel; class 0 is "
                               "1 minus it" if binary else
                               f"the probability of each of the {num_classes} classes at each pixel, in class-id "
                               "order; they add up to 1")},
        "postprocessing": {
            "rule": "threshold" if binary else "argmax", "threshold": _THRESHOLD if binary else None,
            "resize": "bilinear with half-pixel centres, no antialiasing (tf.image.resize), on the probabilities",
            "steps": _postprocessing_steps(resize, binary)},
        "training": {"status": run.status.value, "settings": {k: v for k, v in config.items()
                                                              if k not in ("classes", "summary")},
                     "model_summary": config.get("summary"),
                     "epochs_done": len(project.runs.epoch_metrics(run.id))},
        "validation": _validation(project, run, config, checkpoint),
    }


def _input_note(fmt: str, config: dict, size: int) -> str:
    if fmt == "tflite":
        return f"A fixed input: one image of {size} x {size}."
    depth = config.get("depth", 4)
    return (f"The model learned at {size} x {size}; give it that size, as below. (The network itself takes any "
            f"height and width divisible by {2 ** depth} for a U-Net, but its answers are best at the training size.)")


def _preprocessing_steps(resize: str, size: int, channels: int) -> list[str]:
    colour = ("Colour: grey, one channel. An RGB image becomes the mean of its R, G and B values, rounded."
              if channels == 1 else
              "Colour: RGB, three channels. A grey image is repeated into R, G and B.")
    fit = (f"Resize (letterbox): scale = min({size} / height, {size} / width); resize the image to "
           f"round(height x scale) x round(width x scale) (at least 1, at most {size}) with Pillow's bilinear filter; "
           f"place it at top = ({size} - new height) // 2, left = ({size} - new width) // 2 in the {size} x {size} "
           "square and fill the rest with the image's mirror image (numpy.pad mode 'symmetric'), not a flat colour."
           if resize == "letterbox" else
           f"Resize (squash): stretch the whole image to {size} x {size} with Pillow's bilinear filter, whatever "
           "its aspect ratio.")
    return [
        "Read the image upright (its EXIF orientation applied). 16-bit images are scaled to 0..255 by the range "
        "they use; transparent areas are laid on white.",
        colour, fit,
        "Scale: float32 = uint8 pixel / 255 (0..1); no mean subtraction.",
        f"Shape: (1, {size}, {size}, {channels}), channels last.",
    ]


def _postprocessing_steps(resize: str, binary: bool) -> list[str]:
    crop = ("Crop the output to the content box: the rows and columns where the image was placed (the mirrored "
            "bands are dropped)." if resize == "letterbox" else "The whole output is the image (nothing to crop).")
    rule = (f"Class ids: 1 where the probability is >= {_THRESHOLD}, else 0 (a lower threshold finds more of "
            "class 1, a higher one only the pixels the model is sure about)." if binary else
            "Class ids: at each pixel the class with the highest probability (the lowest id on a tie).")
    return [crop,
            "Resize the cropped probabilities to the image's own height x width, bilinear with half-pixel centres "
            "(tf.image.resize).",
            rule,
            f"Write the ids as an 8-bit palette PNG: pixel value = class id, palette = the class colours ({IGNORE_ID} "
            "= ignore, grey)."]


def _validation(project: Project, run: RunRecord, config: dict, checkpoint: str) -> dict:
    epochs = project.runs.epoch_metrics(run.id)
    best = next((m for m in epochs if m["epoch"] == run.best_epoch), None)
    from_best = checkpoint == project.layout.run(run.id).checkpoint("best").name
    exported = run.best_epoch if from_best and run.best_epoch is not None else len(epochs) - 1
    return {
        "model_from_epoch": exported + 1 if epochs else None,
        "images": len(run.split.val_ids) if run.split else config.get("val_images"),
        "split": run.split.note if run.split else None,
        "best_epoch": None if run.best_epoch is None else run.best_epoch + 1,
        "best_dice": run.best_score,
        "at_best_epoch": {k: v for k, v in (best or {}).items() if k.startswith("val_")},
        "at_last_epoch": {k: v for k, v in (epochs[-1] if epochs else {}).items() if k.startswith("val_")},
        "dice_means": "mean overlap of the model's and the masks' foreground classes over the validation images "
                      "(1 = perfect); iou likewise, as intersection over union",
    }
