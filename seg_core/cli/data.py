"""`maskloop` subcommands about projects and data: init, import, delete, export, info, split, demo, projects, check."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from seg_core.classes import parse_class_args
from seg_core.errors import SegError, StorageError
from seg_core.formats import masks
from seg_core.services import exporting, importing, provenance
from seg_core.store import workspace
from seg_core.store.layout import workspace_dir
from seg_core.store.project import Project, is_project
from seg_core.store.records import SPLITS
from seg_core.store.workspace import CLASSES_EXPLICIT, list_projects, new_project, resolve_project_path


def project_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--project", required=required,
                        help="project folder; a bare name means <workspace>/<name> (workspace: $MASKLOOP_WORKSPACE or "
                             "./workspace)")


def create_project(path: Path, classes: Sequence[str] | None, name: str | None = None) -> Project:
    return new_project(path, parse_class_args(classes) if classes else None, name)


def add_init(sub) -> None:
    p = sub.add_parser("init", help="create an empty project")
    project_arg(p)
    p.add_argument("--classes", nargs="+", metavar="NAME[:#RRGGBB]",
                   help="class names (and colours); 'background' is added first if missing")
    p.add_argument("--name", help="display name (default: the folder name)")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    path = resolve_project_path(args.project)
    project = create_project(path, args.classes, args.name)
    print(f"created project '{project.name}' at {project.path}")
    print("classes: " + ", ".join(f"{c.id} {c.name} {c.hex}" for c in project.classes))
    return 0


def add_import(sub) -> None:
    p = sub.add_parser("import", help="import images and masks (creates the project if missing)")
    project_arg(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images")
    src.add_argument("--zip", help="zip archive in any supported layout")
    src.add_argument("--keras-seg", help="folder with images_prepped_train/ and annotations_prepped_train/")
    src.add_argument("--folder", help="folder in any supported layout (detected)")
    p.add_argument("--masks", help="folder of masks matching --images by base name")
    p.add_argument("--mask-format", choices=masks.MASK_KINDS, default="auto",
                   help="how to read the masks (default: detect; nonzero: any value but 0 is the object)")
    p.add_argument("--trimap-border", default="ignore",
                   help="for Oxford-pets trimaps: where border pixels go: ignore, object, background or a class id")
    p.add_argument("--classes", nargs="+", metavar="NAME[:#RRGGBB]",
                   help="classes for a new project (default: inferred from masks)")
    p.add_argument("--split", choices=SPLITS, help="put the added images in this split")
    p.add_argument("--map", metavar="VALUE=CLASS,...",
                   help="what mask values mean when they are not class ids, e.g. 1=1,2=pet,255=ignore "
                        "(a class id, a class name or ignore)")
    p.add_argument("--existing-masks", choices=importing.EXISTING_MASKS, default="skip",
                   help="a mask for an image that already has a different one: skip it (default; listed in the "
                        "report) or replace the image's mask")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    path = resolve_project_path(args.project)
    if args.keras_seg:
        importing.tree_layout(args.keras_seg, expect="keras_segmentation")  # refused before a project is made
    created = not is_project(path)
    if not created:
        project = Project(path)
        if args.classes:
            raise SegError("--classes is only for a new project; this one exists. Edit classes on the Data page.")
    else:
        project = create_project(path, args.classes)
    try:
        infer = not project.setting(CLASSES_EXPLICIT, False)
        value_map = masks.parse_value_map(args.map, project.classes) if args.map else None
        opts = dict(mask_kind=args.mask_format, trimap_border=args.trimap_border, infer_classes=infer,
                    split=args.split, existing_masks=args.existing_masks, value_map=value_map)
        if args.zip:
            report = importing.import_zip(project, Path(args.zip), **opts)
        elif args.keras_seg or args.folder:
            report = importing.import_tree(project, Path(args.keras_seg or args.folder), **opts)
        else:
            report = importing.import_folder(project, Path(args.images), Path(args.masks) if args.masks else None,
                                             **opts)
    except SegError as exc:
        # A refused import leaves no empty project behind; one stopped by a full disk keeps what it imported.
        if created and not isinstance(exc, StorageError):
            workspace.delete_project(project.path)
        raise
    if created:
        print(f"created project '{project.name}' at {project.path}")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 3


def add_delete(sub) -> None:
    p = sub.add_parser("delete", help="delete a project and everything in it (asks first)")
    project_arg(p)
    p.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    p.set_defaults(func=cmd_delete)


def cmd_delete(args: argparse.Namespace) -> int:
    path = resolve_project_path(args.project)
    project = Project(path)
    name, count = project.name, project.count_images()
    if not args.yes:
        if not sys.stdin.isatty():
            raise SegError(f"Deleting '{name}' removes its {count} images, masks and runs for good; add --yes to "
                           "confirm.")
        typed = input(f"Delete '{name}' with its {count} images, masks and runs for good? Type its name: ")
        if typed.strip() != name:
            print("not deleted")
            return 1
    workspace.delete_project(path)
    print(f"deleted project '{name}' ({count} images) at {path}")
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="export images and masks as a zip: Maskloop's own, COCO, Pascal VOC or class ids")
    project_arg(p)
    p.add_argument("--out", required=True, help="zip file to write")
    p.add_argument("--format", choices=list(exporting.EXPORT_FORMATS), default="seg",
                   help="; ".join(f"{k}: {v}" for k, v in exporting.EXPORT_FORMATS.items()) + " (default: seg)")
    p.add_argument("--run", help="export only what this run learned from: its images, its masks as they were then "
                                 "and its train/validation split (run ids: maskloop runs)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    project = Project(resolve_project_path(args.project))
    what = exporting.EXPORT_FORMATS[args.format].split(":")[0]
    if args.run:
        data = provenance.run_data(project, args.run)
        out = exporting.export_zip(project, Path(args.out), fmt=args.format, run_id=args.run)
        val = sum(r.split == "val" for r in data.records)
        print(f"exported the {len(data.records)} images run {args.run} learned from ({len(data.records) - val} "
              f"training, {val} validation), with their masks as the run saw them, as {what} to {out}")
        if data.deleted:
            print(f"{data.deleted} more images it used were deleted from the project since; they are not in the zip")
        return 0
    out = exporting.export_zip(project, Path(args.out), fmt=args.format)
    s = project.stats()
    print(f"exported {s['images']} images ({s['labeled']} with masks) and {s['num_classes']} classes as {what} "
          f"to {out}")
    return 0


def add_info(sub) -> None:
    p = sub.add_parser("info", help="counts by status, split and class")
    project_arg(p)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(func=cmd_info)


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
        print(f"  {c['id']:>3} {c['name']:<20} {c['color']}  in {c['images']} image(s), "
              f"{100 * c['pixel_fraction']:.1f}% of labeled pixels")
    if s["ignore_pixels"]:
        print(f"  ignore pixels: {s['ignore_pixels']}")
    return 0


def add_split(sub) -> None:
    p = sub.add_parser("split", help="reproducible train/val split")
    project_arg(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--val-fraction", type=float, default=None, help="fraction for validation (default 0.2)")
    g.add_argument("--val-count", type=int, default=None, help="exact number of validation images")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same split (default 0)")
    p.add_argument("--include-unlabeled", action="store_true", help="split unlabeled images too")
    p.set_defaults(func=cmd_split)


def cmd_split(args: argparse.Namespace) -> int:
    project = Project(resolve_project_path(args.project))
    counts = project.splits.assign(val_fraction=args.val_fraction, val_count=args.val_count, seed=args.seed,
                                   labeled_only=not args.include_unlabeled)
    print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    return 0


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="create the built-in demo project (no download)")
    p.add_argument("--project", help="where (default: <workspace>/demo)")
    p.add_argument("--multiclass", action="store_true", help="3 classes (background, blob, block) instead of binary")
    p.add_argument("--count", type=int, default=60, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="the same seed draws the same pictures (default 0)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from seg_core.services import demo

    path = resolve_project_path(args.project or (demo.DEMO_MULTICLASS if args.multiclass else demo.DEMO_NAME))
    project = demo.create_demo_project(path, multiclass=args.multiclass, count=args.count, seed=args.seed)
    s = project.stats()
    print(f"demo project '{s['name']}' at {project.path}: {s['images']} images, {s['labeled']} labeled, "
          f"{s['unlabeled']} left for you to annotate; classes: " + ", ".join(c["name"] for c in s["classes"]))
    return 0


def add_projects(sub) -> None:
    p = sub.add_parser("projects", help="list the projects in the workspace")
    p.add_argument("--workspace", help="workspace folder (default: $MASKLOOP_WORKSPACE or ./workspace)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_projects)


def cmd_projects(args: argparse.Namespace) -> int:
    rows = list_projects(args.workspace or workspace_dir())
    if args.json:
        print(json.dumps([{"name": r.name, "path": str(r.path), "kind": r.kind, "images": r.images,
                           "labeled": r.labeled, "error": r.error} for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no projects in {args.workspace or workspace_dir()}")
    for r in rows:
        print(f"{r.name:<24} {r.kind:<10} {r.images:>6} images {r.labeled:>6} labeled  {r.path}"
              + (f"  ({r.error})" if r.error else ""))
    return 0


def add_check(sub) -> None:
    p = sub.add_parser("check", help="check that a project holds together: every image and mask file whole and "
                                     "matching its record, checkpoints loading, the database sound")
    project_arg(p)
    p.add_argument("--no-models", action="store_true", help="do not load the runs' checkpoints (no TensorFlow)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from seg_core.services.integrity import check_project

    path = resolve_project_path(args.project)
    if not is_project(path):
        raise SegError(f"There is no project at {path}.")
    problems = check_project(path, models=not args.no_models)
    for problem in problems:
        print(problem)
    print("ok" if not problems else f"{len(problems)} problem(s) in {path}")
    return 0 if not problems else 4
