"""The `maskloop` command: subcommands that mirror seg_core functions (cli/data.py, cli/model.py)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, Sequence

from seg_core import environment
from seg_core.cli import access
from seg_core.cli.data import (cmd_check, cmd_delete, cmd_demo, cmd_export, cmd_import, cmd_info, cmd_init,
                               cmd_projects, cmd_split, project_arg)
from seg_core.cli.model import (cmd_evaluate, cmd_export_model, cmd_predict, cmd_runs, cmd_train, cmd_weights_add,
                                cmd_weights_list, cmd_weights_remove)
from seg_core.errors import SegError, storage_error
from seg_core.formats.masks import MASK_KINDS
from seg_core.ml.config import LOSS_CHOICES, MODEL_NAMES, PRESET_NOTES, PRESETS
from seg_core.ml.model_export import FORMATS as EXPORT_FORMATS
from seg_core.ml.precision import AUTO_RULE
from seg_core.services import exporting, importing
from seg_core.store.splits import SPLITS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskloop", description="Maskloop: image segmentation projects from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create an empty project")
    project_arg(p)
    p.add_argument("--classes", nargs="+", metavar="NAME[:#RRGGBB]",
                   help="class names (and colours); 'background' is added first if missing")
    p.add_argument("--name", help="display name (default: the folder name)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("import", help="import images and masks (creates the project if missing)")
    project_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images")
    src.add_argument("--zip", help="zip archive in any supported layout")
    src.add_argument("--keras-seg", help="folder with images_prepped_train/ and annotations_prepped_train/")
    src.add_argument("--folder", help="folder in any supported layout (detected)")
    p.add_argument("--masks", help="folder of masks matching --images by base name")
    p.add_argument("--mask-format", choices=MASK_KINDS, default="auto", help="how to read the masks (default: detect; nonzero: any value but 0 is the object)")
    p.add_argument("--trimap-border", default="ignore",
                   help="for Oxford-pets trimaps: where border pixels go: ignore, object, background or a class id")
    p.add_argument("--classes", nargs="+", metavar="NAME[:#RRGGBB]", help="classes for a new project (default: inferred from masks)")
    p.add_argument("--split", choices=SPLITS, help="put the added images in this split")
    p.add_argument("--map", metavar="VALUE=CLASS,...",
                   help="what mask values mean when they are not class ids, e.g. 1=1,2=pet,255=ignore "
                        "(a class id, a class name or ignore)")
    p.add_argument("--existing-masks", choices=importing.EXISTING_MASKS, default="skip",
                   help="a mask for an image that already has a different one: skip it (default; listed in the "
                        "report) or replace the image's mask")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("delete", help="delete a project and everything in it (asks first)")
    project_arg(p)
    p.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("export", help="export images and masks as a zip: Maskloop's own, COCO, Pascal VOC or class ids")
    project_arg(p)
    p.add_argument("--out", required=True, help="zip file to write")
    p.add_argument("--format", choices=list(exporting.EXPORT_FORMATS), default="seg",
                   help="; ".join(f"{k}: {v}" for k, v in exporting.EXPORT_FORMATS.items()) + " (default: seg)")
    p.add_argument("--run", help="export only what this run learned from: its images, its masks as they were then "
                                 "and its train/validation split (run ids: maskloop runs)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("check", help="check that a project holds together: every image and mask file whole and "
                                     "matching its record, checkpoints loading, the database sound")
    project_arg(p)
    p.add_argument("--no-models", action="store_true", help="do not load the runs' checkpoints (no TensorFlow)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("info", help="counts by status, split and class")
    project_arg(p)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("split", help="reproducible train/val split")
    project_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val-fraction", type=float, default=None, help="fraction for validation (default 0.2)")
    g.add_argument("--val-count", type=int, default=None, help="exact number of validation images")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same split (default 0)")
    p.add_argument("--include-unlabeled", action="store_true", help="split unlabeled images too")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("demo", help="create the built-in demo project (no download)")
    p.add_argument("--project", help="where (default: <workspace>/demo)")
    p.add_argument("--multiclass", action="store_true", help="3 classes (background, blob, block) instead of binary")
    p.add_argument("--count", type=int, default=60, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="the same seed draws the same pictures (default 0)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("projects", help="list the projects in the workspace")
    p.add_argument("--workspace", help="workspace folder (default: $MASKLOOP_WORKSPACE or ./workspace)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_projects)

    p = sub.add_parser("train", help="train a model in a background worker and follow it (Ctrl-C stops it)")
    project_arg(p)
    p.add_argument("--preset", choices=list(PRESETS), default="fast",
                   help="starting settings: " + "; ".join(f"{k}: {v.rstrip('.')}" for k, v in PRESET_NOTES.items())
                        + " (default: fast)")
    p.add_argument("--epochs", type=int, help="passes over the training images, at most (default: the preset's)")
    p.add_argument("--minutes", type=float, help="time budget: stop after this many minutes")
    p.add_argument("--size", type=int, help="input size in pixels (square)")
    p.add_argument("--filters", type=int, help="base filters of the U-Net")
    p.add_argument("--depth", type=int, help="number of down-sampling levels")
    p.add_argument("--batch", type=int, help="images per step on each CPU process or GPU; on GPUs it is grown to "
                                             "the device's memory unless --fixed-batch")
    p.add_argument("--fixed-batch", action="store_true", help="on GPUs too, train with exactly --batch per GPU")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--loss", choices=LOSS_CHOICES,
                   help="what training lowers (default auto: cross-entropy + dice, binary for two classes)")
    p.add_argument("--model", help=", ".join(MODEL_NAMES) + " (default: the preset's)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--pretrained", action="store_true",
                       help="lite0-unet, mobilenetv2-unet, densenet121-unet: start the encoder from ImageNet weights "
                            "(Lite0's come with Maskloop; the others' see 'weights')")
    start.add_argument("--scratch", action="store_true",
                       help="start every layer from random weights, also where the preset starts from ImageNet's")
    p.add_argument("--seed", type=int, help="the same seed and settings give the same run (default 0)")
    p.add_argument("--val-fraction", type=float,
                   help="share of labeled images set aside to check the model on when the project has no "
                        "validation split (default 0.2)")
    p.add_argument("--steps", type=int, help="batches per epoch (default: one pass over the training images)")
    p.add_argument("--no-augment", action="store_true",
                   help="train on the images as they are, without the preset's random flips, turns and colour "
                        "changes")
    xla = p.add_mutually_exclusive_group()
    xla.add_argument("--xla", action="store_true", dest="xla",
                     help="compile the training step with XLA (default where it is the faster step: CPUs without "
                          "AVX-512)")
    xla.add_argument("--no-xla", action="store_true",
                     help="train with TensorFlow's own kernels, without XLA (default on AVX-512 CPUs, where they are "
                          "faster; also for a model XLA cannot compile)")
    p.add_argument("--precision", metavar="float32|bfloat16|auto",
                   help="what training computes in; the loss and the output layer stay float32. auto (default): "
                        + AUTO_RULE)
    p.add_argument("--resume", metavar="RUN", help="continue a stopped or failed run from its last epoch")
    p.add_argument("--cluster", metavar="HOST:PORT,...",
                   help="train on several machines (MultiWorkerMirroredStrategy); the same list on each, the first "
                        "is the chief; the project folder must be on a path every machine sees")
    p.add_argument("--task", type=int, help="with --cluster: this machine's place in it (0 = chief, 1, 2...)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list training runs")
    project_arg(p)
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("predict", help="predict masks for a folder of images")
    project_arg(p)
    p.add_argument("--run", help="run id (default: the best run)")
    p.add_argument("--images", required=True, help="folder of images to predict masks for")
    p.add_argument("--out", required=True,
                   help="folder to write into (made if missing): NAME.png, the mask (pixel value = class id, in "
                        "the class colours), and NAME_overlay.png, the mask over the image")
    p.add_argument("--threshold", type=float, default=0.5, help="binary models: probability threshold")
    p.add_argument("--flip", action="store_true",
                   help="average with the prediction on the mirror image (twice the time; on the demo no gain)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a run on images with masks")
    project_arg(p)
    p.add_argument("--run", help="run id (default: the best run)")
    p.add_argument("--images", required=True, help="folder of images to score the model on")
    p.add_argument("--masks", required=True, help="folder of their true masks, matched to --images by base name")
    p.add_argument("--mask-format", choices=MASK_KINDS, default="auto",
                   help="how to read the masks (default: detect; as for import)")
    p.add_argument("--threshold", type=float, default=0.5, help="binary models: probability threshold (default 0.5)")
    p.add_argument("--flip", action="store_true", help="test-time flip: as for predict")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export-model", help="export a run's model (keras, savedmodel, onnx, tflite) with README.md, "
                                            "model.json and predict_example.py")
    project_arg(p)
    p.add_argument("--run", help="run id (default: the best run, as predict uses)")
    p.add_argument("--format", required=True, choices=list(EXPORT_FORMATS),
                   help=" ".join(f"{f.name}: {f.description}" for f in EXPORT_FORMATS.values()))
    p.add_argument("--out", required=True, help="folder to create (refused if it exists and is not empty)")
    p.add_argument("--replace", action="store_true", help="replace what is in --out")
    p.set_defaults(func=cmd_export_model)

    p = sub.add_parser("weights", help="ImageNet weights for the pretrained encoders (never downloaded)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    w = actions.add_parser("add", help="check a MobileNetV2 or DenseNet121 ImageNet weights file (.h5) and keep "
                                       "it in the workspace (EfficientNet-Lite0's come with Maskloop)")
    w.add_argument("file", help="e.g. mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
    w.add_argument("--replace", action="store_true", help="replace the file already kept for that encoder")
    w.set_defaults(func=cmd_weights_add)
    w = actions.add_parser("list", help="which encoders have ImageNet weights on this machine")
    w.add_argument("--json", action="store_true", help="print the list as JSON")
    w.set_defaults(func=cmd_weights_list)
    w = actions.add_parser("remove", help="delete the weights added for an encoder")
    w.add_argument("name", help="mobilenetv2 or densenet121")
    w.set_defaults(func=cmd_weights_remove)

    access.add_parser(sub)
    return parser


@contextlib.contextmanager
def native_logs_silenced():
    """TensorFlow's C++ libraries write log lines (oneDNN, cudart_stub, cuInit...) straight to file descriptor 2,
    before any Python setting can reach them. Point that descriptor at /dev/null while a command runs; our own
    messages go to the real standard error through a copy of it. MASKLOOP_DEBUG=1 shows everything."""
    if environment.get(environment.DEBUG):
        yield
        return
    sys.stderr.flush()
    try:
        ours = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        ours = False  # e.g. a test's captured stderr: nothing of ours goes to descriptor 2
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    python_stderr = sys.stderr
    if ours:
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace")
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        if ours:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    with native_logs_silenced():
        return _run(func, args)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except SegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # no traceback reaches the user unless they ask for it
        storage = storage_error(exc, "the command stopped there")
        if storage is not None:   # a full or read-only disk reached past the functions that say what stopped
            print(f"error: {storage}", file=sys.stderr)
            return 2
        if environment.get(environment.DEBUG):
            raise
        print(f"error: unexpected failure ({type(exc).__name__}: {exc}). "
              "Run again with MASKLOOP_DEBUG=1 to see the details.", file=sys.stderr)
        return 1
