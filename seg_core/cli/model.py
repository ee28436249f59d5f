"""`maskloop` subcommands about models: train, runs, predict, evaluate, export-model, weights."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from seg_core.cli.data import project_arg
from seg_core.errors import SegError
from seg_core.formats.masks import MASK_KINDS
from seg_core.ml import model_export
from seg_core.ml.config import LOSS_CHOICES, MODEL_NAMES, PRESET_NOTES, PRESETS, run_config
from seg_core.ml.precision import AUTO_RULE
from seg_core.store.project import Project
from seg_core.store.runs import RunStatus
from seg_core.store.workspace import resolve_project_path


def _train_config(args: argparse.Namespace, project: Project):
    from seg_core.ml.augment import AugmentConfig
    from seg_core.ml.config import BOUNDS, preset

    overrides = {k: v for k, v in {
        "epochs": args.epochs, "time_budget_minutes": args.minutes, "image_size": args.size,
        "base_filters": args.filters, "depth": args.depth, "batch_size": args.batch, "learning_rate": args.lr,
        "loss": args.loss, "model": args.model, "seed": args.seed, "val_fraction": args.val_fraction,
        "steps_per_epoch": args.steps}.items() if v is not None}
    if args.no_augment:
        overrides["augment"] = AugmentConfig.none()
    if args.no_xla or args.xla:
        overrides["xla"] = bool(args.xla)
    if args.precision is not None:
        from seg_core.ml.precision import from_cli

        overrides["precision"] = from_cli(args.precision)
    if args.fixed_batch:
        overrides["batch_to_memory"] = False
    if args.pretrained:
        overrides["pretrained"] = True
    if args.scratch:
        overrides |= {"pretrained": False, "freeze_encoder_epochs": 0}   # nothing to protect in a random encoder
    if args.minutes is not None and args.epochs is None:
        # "--minutes 5" means five minutes of training: the budget, not the preset's epoch count, ends it.
        overrides["epochs"] = BOUNDS["epochs"].high
        overrides.setdefault("early_stopping_patience", 0)
    # As on the Train page: a project of RGB photos gets the preset's photo variant.
    stats = project.stats()
    photos, num_classes = stats["channels"] == 3, stats["num_classes"]
    config = preset(args.preset, photos, num_classes, **overrides)
    if args.pretrained:
        _check_pretrained(config.model)
    elif config.pretrained and (missing := _missing_weights(config.model)):
        # The preset's own start, not asked for: as on the Train page, the run starts from scratch and says why.
        print(f"note: this run starts from scratch. {missing}", file=sys.stderr)
        config = preset(args.preset, photos, num_classes, **overrides, pretrained=False,
                        freeze_encoder_epochs=0)
    return config


def _missing_weights(model: str) -> str | None:
    """Why `model` cannot start from ImageNet weights on this machine; None when it can or has no encoder."""
    from seg_core.ml import weights

    encoder = weights.encoder_for_model(model)
    return weights.missing_message(encoder) if encoder and weights.imagenet_weights(encoder) is None else None


def _check_pretrained(model: str) -> None:
    """Refuse --pretrained before a worker starts: on a model without an encoder, or with no weights here."""
    from seg_core.ml import weights

    if weights.encoder_for_model(model) is None:
        raise SegError(f"--pretrained needs a model with a pretrained encoder "
                       f"({', '.join(weights.pretrained_models())}); '{model}' has none.")
    missing = _missing_weights(model)
    if missing:
        raise SegError(missing)


def _fmt_epoch(m: dict) -> str:
    def f(key):
        v = m.get(key)
        return "   -  " if v is None else f"{v:.4f}"
    return (f"epoch {m['epoch'] + 1:>3}  loss {f('loss')}  dice {f('dice')}  val_loss {f('val_loss')}  "
            f"val_dice {f('val_dice')}  val_iou {f('val_iou')}  {m.get('images_per_s', 0):5.1f} img/s  "
            f"{m.get('elapsed_s', 0):6.0f} s")


def _cluster(args: argparse.Namespace):
    """--cluster and --task, checked (a sentence for a bad host:port or a task outside the cluster)."""
    if args.cluster is None:
        if args.task is not None:
            raise SegError("--task is a worker's place in --cluster; give --cluster too.")
        return None
    from seg_core.ml.distribute import parse_cluster

    return parse_cluster(args.cluster, args.task)


def add_train(sub) -> None:
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


def cmd_train(args: argparse.Namespace) -> int:
    import time

    from seg_core.services import jobs

    cluster = _cluster(args)
    project = Project(resolve_project_path(args.project))
    if cluster is not None and not cluster.chief:
        from seg_core.ml.worker import run_peer

        return run_peer(str(project.path), cluster)
    if args.resume:
        if cluster is not None:   # the same run may go on with other machines
            config = project.runs.get(args.resume).config
            project.runs.update(args.resume, config={**config, "cluster": cluster.spec})
        run = jobs.resume(project, args.resume)
        print(f"resuming run {run.id}")
    else:
        config = _train_config(args, project)
        config.cluster = cluster.spec if cluster is not None else None
        run = jobs.start(project, config)
        print(f"started run {run.id} ({args.preset} preset); Ctrl-C stops it cleanly")
        if cluster is not None:
            print(f"chief of {cluster.spec}: start the other workers with the same --cluster and --task 1...",
                  flush=True)
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


def add_runs(sub) -> None:
    p = sub.add_parser("runs", help="list training runs")
    project_arg(p)
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    from seg_core.services import jobs, provenance

    project = Project(resolve_project_path(args.project))
    runs = jobs.refresh(project)
    rows = []
    for r in runs:
        epochs = project.runs.epoch_metrics(r.id)
        since, config = provenance.changes(project, r), run_config(r)
        rows.append({"id": r.id, "status": r.status.value, "preset": config.preset, "model": config.model,
                     "image_size": config.image_size, "epochs_done": len(epochs),
                     "epochs": config.epochs, "best_val_dice": r.best_score,
                     "best_epoch": None if r.best_epoch is None else r.best_epoch + 1,
                     "duration_s": (epochs[-1]["elapsed_s"] if epochs else None), "devices": r.devices,
                     "masks_changed_since": None if since is None else since.count, "error": r.error})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no runs yet")
    for r in rows:
        dice = "-" if r["best_val_dice"] is None else f"{r['best_val_dice']:.4f}"
        print(f"{r['id']}  {r['status']:<9} {str(r['preset'] or ''):<9} {r['model']:<6} {r['image_size']:>4}px  "
              f"epochs {r['epochs_done']}/{r['epochs']}  best val dice {dice}  on {r['devices'] or '-'}"
              + ("" if r["masks_changed_since"] is None else f"  {r['masks_changed_since']} masks changed since")
              + (f"  error: {r['error']}" if r["error"] else ""))
    return 0


def add_predict(sub) -> None:
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


def cmd_predict(args: argparse.Namespace) -> int:
    from seg_core import viz
    from seg_core.durable import atomic_write, storage_guard
    from seg_core.formats import images, masks
    from seg_core.ml.inference import Predictor, for_project

    project = Project(resolve_project_path(args.project))
    predictor = for_project(project, Predictor.from_run(project, args.run))
    predictor.flip = args.flip
    _class_note(predictor)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = project.classes
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
        with storage_guard(f"the mask of {p.name} was not written to {out}"):   # each file whole or not at all
            atomic_write(out / f"{p.stem}.png", masks.encode_png(pred.ids, classes))
            overlay = viz.overlay(arr, pred.ids, classes, 0.5, outline=True)
            atomic_write(out / f"{p.stem}_overlay.png", viz.png_bytes(overlay))
        print(f"{p.name}: uncertainty {pred.uncertainty:.3f}")
    print(f"wrote {len(files) - failed} masks and overlays to {out} (run {predictor.run_id})")
    return 0 if not failed else 3


def add_evaluate(sub) -> None:
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from seg_core.ml.evaluation import evaluate, folder_pairs
    from seg_core.ml.inference import Predictor, for_project

    project = Project(resolve_project_path(args.project))
    predictor = for_project(project, Predictor.from_run(project, args.run))
    predictor.flip = args.flip
    _class_note(predictor)
    classes = project.classes
    result = evaluate(predictor, folder_pairs(Path(args.images), Path(args.masks), classes, args.mask_format),
                      classes, args.threshold)
    if not result.images:
        raise SegError(f"No image in {args.images} has a mask in {args.masks} (matched by base name).")
    name, value = result.headline()
    if args.json:
        print(json.dumps({**result.to_dict(), "headline": {"name": name, "value": value}}, indent=2))
        return 0
    print(f"run {result.run_id}: {result.images} images, {name} {_fig(value)} (background IoU "
          f"{_fig(result.background_iou)}, mean IoU of every class {_fig(result.mean_iou)}), "
          f"pixel accuracy {_fig(result.pixel_accuracy)}")
    for c in result.per_class:
        learned = "" if c.get("learned", True) else "  (not learned yet)"
        print(f"  {c['id']:>3} {c['name']:<20} IoU {_fig(c['iou'])}  dice {_fig(c['dice'])}{learned}")
    return 0


def _fig(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _class_note(predictor) -> None:
    if predictor.class_note:
        print(predictor.class_note, file=sys.stderr)


def add_export_model(sub) -> None:
    p = sub.add_parser("export-model", help="export a run's model (keras, savedmodel, onnx, tflite) with README.md, "
                                            "model.json and predict_example.py")
    project_arg(p)
    p.add_argument("--run", help="run id (default: the best run, as predict uses)")
    p.add_argument("--format", required=True, choices=list(model_export.FORMATS),
                   help=" ".join(f"{f.name}: {f.description}" for f in model_export.FORMATS.values()))
    p.add_argument("--out", required=True, help="folder to create (refused if it exists and is not empty)")
    p.add_argument("--replace", action="store_true", help="replace what is in --out")
    p.set_defaults(func=cmd_export_model)


def cmd_export_model(args: argparse.Namespace) -> int:
    from seg_core.ml import model_export

    project = Project(resolve_project_path(args.project))
    done = model_export.export_model(project, args.format, args.out, args.run, replace=args.replace)
    print(f"exported run {done.run_id} ({done.checkpoint}) as {model_export.FORMATS[done.format].label} to "
          f"{done.folder}: {done.size_bytes / 1e6:.1f} MB in {done.seconds:.1f} s")
    print(f"  {done.model_path.name}, {model_export.CARD_NAME} (classes, input, preprocessing, scores), "
          f"{model_export.EXAMPLE_NAME}")
    print(f"try it: python {done.folder / model_export.EXAMPLE_NAME} photo.jpg mask.png")
    return 0


def add_weights(sub) -> None:
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


def cmd_weights_add(args: argparse.Namespace) -> int:
    from seg_core.ml import weights

    info = weights.add_weights(args.file, replace=args.replace)
    verb = {"added": "added", "replaced": "replaced the old file with", "unchanged": "already had"}[info.outcome]
    print(f"{verb} {info.label} ImageNet weights: {info.path}")
    print(f"{info.encoder}-unet can now start from them (Train page: Advanced settings; "
          f"maskloop train --model {info.encoder}-unet --pretrained)")
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from seg_core.ml import weights

    found = weights.available(packaged=True)
    if args.json:
        print(json.dumps({name: (info.to_dict() if info else None) for name, info in found.items()}, indent=2))
        return 0
    for name, info in found.items():
        if info is None:
            how = (weights.missing_message(name) if name == weights.LITE0
                   else f"maskloop weights add FILE ({weights.ENCODERS[name].keras_file})")
        print(f"{name:<12} " + (info.summary() if info else f"none: {how}"))
    return 0


def cmd_weights_remove(args: argparse.Namespace) -> int:
    from seg_core.ml import weights

    info = weights.remove_weights(args.name)
    print(f"removed {info.label} weights {info.path}")
    left = weights.imagenet_weights(info.encoder)
    if left is not None:
        print(f"{info.encoder}-unet still finds ImageNet weights: {left.summary()}")
    return 0
