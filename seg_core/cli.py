"""The `segstudio` command: subcommands that mirror seg_core functions."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from seg_core.classes import parse_class_args
from seg_core.errors import SegError
from seg_core.formats.masks import MASK_KINDS
from seg_core.ml.config import LOSS_CHOICES, PRESETS
from seg_core.services import exporting, importing
from seg_core.store import splits
from seg_core.store.layout import workspace_dir
from seg_core.store.project import Project, is_project
from seg_core.store.runs import RunStatus
from seg_core.store.splits import SPLITS
from seg_core.store.workspace import CLASSES_EXPLICIT, list_projects, new_project, resolve_project_path

def _project_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--project", required=required,
                        help="project folder; a bare name means <workspace>/<name> (workspace: $SEG_WORKSPACE or ./workspace)")


def create_project(path: Path, classes: Sequence[str] | None, name: str | None = None) -> Project:
    return new_project(path, parse_class_args(classes) if classes else None, name)


def cmd_init(args: argparse.Namespace) -> int:
    path = resolve_project_path(args.project)
    project = create_project(path, args.classes, args.name)
    print(f"created project '{project.name}' at {project.path}")
    print("classes: " + ", ".join(f"{c.id} {c.name} {c.hex}" for c in project.classes))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = resolve_project_path(args.project)
    if is_project(path):
        project = Project(path)
        if args.classes:
            raise SegError("--classes is only for a new project; this one exists. Edit classes on the Data page.")
    else:
        project = create_project(path, args.classes)
        print(f"created project '{project.name}' at {project.path}")
    infer = not project.setting(CLASSES_EXPLICIT, False)
    opts = dict(mask_kind=args.mask_format, trimap_border=args.trimap_border, infer_classes=infer, split=args.split,
                existing_masks=args.existing_masks)
    if args.zip:
        report = importing.import_zip(project, Path(args.zip), **opts)
    elif args.keras_seg:
        report = importing.import_tree(project, Path(args.keras_seg), **opts)
    elif args.folder:
        report = importing.import_tree(project, Path(args.folder), **opts)
    else:
        report = importing.import_folder(project, Path(args.images), Path(args.masks) if args.masks else None, **opts)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 3


def cmd_export(args: argparse.Namespace) -> int:
    project = Project(resolve_project_path(args.project))
    out = exporting.export_zip(project, Path(args.out))
    s = project.stats()
    print(f"exported {s['images']} images ({s['labeled']} with masks) and {s['num_classes']} classes to {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    s = Project(resolve_project_path(args.project)).stats()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"project {s['name']} ({s['kind']}) at {s['path']}")
    print(f"images: {s['images']}  labeled: {s['labeled']}  unlabeled: {s['unlabeled']}")
    print("splits: " + "  ".join(f"{k}: {v}" for k, v in s["by_split"].items()))
    print("classes:")
    for c in s["classes"]:
        print(f"  {c['id']:>3} {c['name']:<20} {c['color']}  in {c['images']} image(s), {100 * c['pixel_fraction']:.1f}% of labeled pixels")
    if s["ignore_pixels"]:
        print(f"  ignore pixels: {s['ignore_pixels']}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    project = Project(resolve_project_path(args.project))
    counts = splits.assign(project, val_fraction=args.val_fraction, val_count=args.val_count, seed=args.seed,
                                   labeled_only=not args.include_unlabeled)
    print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from seg_core.services import demo

    path = resolve_project_path(args.project or (demo.DEMO_MULTICLASS if args.multiclass else demo.DEMO_NAME))
    project = demo.create_demo_project(path, multiclass=args.multiclass, count=args.count, seed=args.seed)
    s = project.stats()
    print(f"demo project '{s['name']}' at {project.path}: {s['images']} images, {s['labeled']} labeled, "
          f"{s['unlabeled']} left for you to annotate; classes: " + ", ".join(c["name"] for c in s["classes"]))
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    rows = list_projects(args.workspace or workspace_dir())
    if args.json:
        print(json.dumps([{"name": r.name, "path": str(r.path), "kind": r.kind, "images": r.images,
                           "labeled": r.labeled, "error": r.error} for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no projects in {args.workspace or workspace_dir()}")
    for r in rows:
        print(f"{r.name:<24} {r.kind:<10} {r.images:>6} images {r.labeled:>6} labeled  {r.path}" + (f"  ({r.error})" if r.error else ""))
    return 0


def _train_config(args: argparse.Namespace):
    from seg_core.ml.augment import AugmentConfig
    from seg_core.ml.config import preset

    overrides = {k: v for k, v in {
        "epochs": args.epochs, "time_budget_minutes": args.minutes, "image_size": args.size,
        "base_filters": args.filters, "depth": args.depth, "batch_size": args.batch, "learning_rate": args.lr,
        "loss": args.loss, "model": args.model, "seed": args.seed, "val_fraction": args.val_fraction,
        "steps_per_epoch": args.steps}.items() if v is not None}
    if args.no_augment:
        overrides["augment"] = AugmentConfig.none()
    if args.minutes is not None and args.epochs is None:
        # "--minutes 5" means five minutes of training: the budget, not the preset's epoch count, ends it.
        overrides["epochs"] = 10_000
        overrides.setdefault("early_stopping_patience", 0)
    return preset(args.preset, **overrides)


def _fmt_epoch(m: dict) -> str:
    def f(key):
        v = m.get(key)
        return "   -  " if v is None else f"{v:.4f}"
    return (f"epoch {m['epoch'] + 1:>3}  loss {f('loss')}  dice {f('dice')}  val_loss {f('val_loss')}  "
            f"val_dice {f('val_dice')}  val_iou {f('val_iou')}  {m.get('images_per_s', 0):5.1f} img/s  "
            f"{m.get('elapsed_s', 0):6.0f} s")


def cmd_train(args: argparse.Namespace) -> int:
    import time

    from seg_core.services import jobs

    project = Project(resolve_project_path(args.project))
    if args.resume:
        run = jobs.resume(project, args.resume)
        print(f"resuming run {run.id}")
    else:
        run = jobs.start(project, _train_config(args))
        print(f"started run {run.id} ({args.preset} preset); Ctrl-C stops it cleanly")
    shown = len(project.runs.epoch_metrics(run.id)) if args.resume else 0
    try:
        while True:
            time.sleep(1.0)
            rows = project.runs.epoch_metrics(run.id)
            for m in rows[shown:]:
                print(_fmt_epoch(m), flush=True)
            shown = len(rows)
            run = jobs.refresh_run(project, run.id)
            if not run.active:
                break
    except KeyboardInterrupt:
        print("stopping after the current batch...", file=sys.stderr)
        run = jobs.stop(project, run.id, wait_s=60)
    for m in project.runs.epoch_metrics(run.id)[shown:]:
        print(_fmt_epoch(m))
    if run.status == RunStatus.FAILED:
        print(f"error: run {run.id} failed: {run.error}", file=sys.stderr)
        print(jobs.worker_log(project, run.id, 1500), file=sys.stderr)
        return 1
    best = f", best val dice {run.best_score:.4f} at epoch {run.best_epoch + 1}" if run.best_score is not None else ""
    print(f"run {run.id} {run.status}{best}")
    print(run.id)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from seg_core.services import jobs

    project = Project(resolve_project_path(args.project))
    runs = jobs.refresh(project)
    rows = []
    for r in runs:
        epochs = project.runs.epoch_metrics(r.id)
        rows.append({"id": r.id, "status": r.status.value, "preset": r.config.preset, "model": r.config.model,
                     "image_size": r.config.image_size, "epochs_done": len(epochs),
                     "epochs": r.config.epochs, "best_val_dice": r.best_score,
                     "best_epoch": None if r.best_epoch is None else r.best_epoch + 1,
                     "duration_s": (epochs[-1]["elapsed_s"] if epochs else None), "error": r.error})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no runs yet")
    for r in rows:
        dice = "-" if r["best_val_dice"] is None else f"{r['best_val_dice']:.4f}"
        print(f"{r['id']}  {r['status']:<9} {str(r['preset'] or ''):<9} {r['model']:<6} {r['image_size']:>4}px  "
              f"epochs {r['epochs_done']}/{r['epochs']}  best val dice {dice}" + (f"  error: {r['error']}" if r["error"] else ""))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from PIL import Image as PILImage

    from seg_core import viz
    from seg_core.formats import images, masks
    from seg_core.ml.inference import Predictor

    project = Project(resolve_project_path(args.project))
    predictor = Predictor.from_run(project, args.run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = predictor.classes or project.classes
    files = [p for p in sorted(Path(args.images).iterdir()) if p.is_file() and images.is_image_name(p.name)]
    if not files:
        raise SegError(f"No images in {args.images}.")
    failed = 0
    for p in files:
        try:
            _, img = images.decode(p.read_bytes(), p.name)
        except SegError as exc:
            print(f"skipped {p.name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        arr = np.asarray(img)
        pred = predictor.predict_one(arr, args.threshold)
        (out / f"{p.stem}.png").write_bytes(masks.encode_png(pred.ids, classes))
        PILImage.fromarray(viz.overlay(arr, pred.ids, classes, 0.5)).save(out / f"{p.stem}_overlay.png")
        print(f"{p.name}: uncertainty {pred.uncertainty:.3f}")
    print(f"wrote {len(files) - failed} masks and overlays to {out} (run {predictor.run_id})")
    return 0 if not failed else 3


def cmd_evaluate(args: argparse.Namespace) -> int:
    from seg_core.ml.evaluation import evaluate, folder_pairs
    from seg_core.ml.inference import Predictor, check_classes

    project = Project(resolve_project_path(args.project))
    predictor = Predictor.from_run(project, args.run)
    check_classes(project, predictor)
    classes = project.classes
    result = evaluate(predictor, folder_pairs(Path(args.images), Path(args.masks), classes, args.mask_format),
                      classes, args.threshold)
    if not result.images:
        raise SegError(f"No image in {args.images} has a mask in {args.masks} (matched by base name).")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    mean_iou = "-" if result.mean_iou is None else f"{result.mean_iou:.4f}"
    print(f"run {result.run_id}: {result.images} images, mean IoU {mean_iou}, "
          f"pixel accuracy {result.pixel_accuracy:.4f}")
    for c in result.per_class:
        iou = "-" if c["iou"] is None else f"{c['iou']:.4f}"
        dice = "-" if c["dice"] is None else f"{c['dice']:.4f}"
        print(f"  {c['id']:>3} {c['name']:<20} IoU {iou}  dice {dice}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segstudio", description="Seg Studio: image segmentation projects from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create an empty project")
    _project_arg(p)
    p.add_argument("--classes", nargs="+", metavar="NAME[:#RRGGBB]",
                   help="class names (and colours); 'background' is added first if missing")
    p.add_argument("--name", help="display name (default: the folder name)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("import", help="import images and masks (creates the project if missing)")
    _project_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images")
    src.add_argument("--zip", help="zip archive in any supported layout")
    src.add_argument("--keras-seg", help="folder with images_prepped_train/ and annotations_prepped_train/")
    src.add_argument("--folder", help="folder in any supported layout (detected)")
    p.add_argument("--masks", help="folder of masks matching --images by base name")
    p.add_argument("--mask-format", choices=MASK_KINDS, default="auto", help="how to read the masks (default: detect)")
    p.add_argument("--trimap-border", default="ignore",
                   help="for Oxford-pets trimaps: where border pixels go: ignore, object, background or a class id")
    p.add_argument("--classes", nargs="+", metavar="NAME[:#RRGGBB]", help="classes for a new project (default: inferred from masks)")
    p.add_argument("--split", choices=SPLITS, help="put the added images in this split")
    p.add_argument("--existing-masks", choices=importing.EXISTING_MASKS, default="skip",
                   help="a mask for an image that already has a different one: skip it (default; listed in the "
                        "report) or replace the image's mask")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="export images, palette-PNG masks and classes.json as a zip")
    _project_arg(p)
    p.add_argument("--out", required=True, help="zip file to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="counts by status, split and class")
    _project_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("split", help="reproducible train/val split")
    _project_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val-fraction", type=float, default=None, help="fraction for validation (default 0.2)")
    g.add_argument("--val-count", type=int, default=None, help="exact number of validation images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--include-unlabeled", action="store_true", help="split unlabeled images too")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("demo", help="create the built-in demo project (no download)")
    p.add_argument("--project", help="where (default: <workspace>/demo)")
    p.add_argument("--multiclass", action="store_true", help="3 classes (background, blob, block) instead of binary")
    p.add_argument("--count", type=int, default=60, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("projects", help="list the projects in the workspace")
    p.add_argument("--workspace", help="workspace folder (default: $SEG_WORKSPACE or ./workspace)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_projects)

    p = sub.add_parser("train", help="train a model in a background worker and follow it (Ctrl-C stops it)")
    _project_arg(p)
    p.add_argument("--preset", choices=list(PRESETS), default="fast")
    p.add_argument("--epochs", type=int)
    p.add_argument("--minutes", type=float, help="time budget: stop after this many minutes")
    p.add_argument("--size", type=int, help="input size in pixels (square)")
    p.add_argument("--filters", type=int, help="base filters of the U-Net")
    p.add_argument("--depth", type=int, help="number of down-sampling levels")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--loss", choices=LOSS_CHOICES)
    p.add_argument("--model", help="unet, fcn, mobilenetv2-unet, densenet121-unet")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--steps", type=int, help="batches per epoch (default: one pass over the training images)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped or failed run from its last epoch")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list training runs")
    _project_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("predict", help="predict masks for a folder of images")
    _project_arg(p)
    p.add_argument("--run", help="run id (default: the best run)")
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float, default=0.5, help="binary models: probability threshold")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score a run on images with masks")
    _project_arg(p)
    p.add_argument("--run", help="run id (default: the best run)")
    p.add_argument("--images", required=True)
    p.add_argument("--masks", required=True)
    p.add_argument("--mask-format", choices=MASK_KINDS, default="auto")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)
    return parser


@contextlib.contextmanager
def native_logs_silenced():
    """TensorFlow's C++ libraries write log lines (oneDNN, cudart_stub, cuInit...) straight to file descriptor 2,
    before any Python setting can reach them. Point that descriptor at /dev/null while a command runs; our own
    messages go to the real standard error through a copy of it. SEGSTUDIO_DEBUG=1 shows everything."""
    if os.environ.get("SEGSTUDIO_DEBUG"):
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
        if os.environ.get("SEGSTUDIO_DEBUG"):
            raise
        print(f"error: unexpected failure ({type(exc).__name__}: {exc}). "
              "Run again with SEGSTUDIO_DEBUG=1 to see the details.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
