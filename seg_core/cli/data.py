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
from seg_core.store import splits, workspace
from seg_core.store.layout import workspace_dir
from seg_core.store.project import Project, is_project
from seg_core.store.workspace import CLASSES_EXPLICIT, list_projects, new_project, resolve_project_path


def project_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--project", required=required,
                        help="project folder; a bare name means <workspace>/<name> (workspace: $MASKLOOP_WORKSPACE or ./workspace)")


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
    print(f"exported {s['images']} images ({s['labeled']} with masks) and {s['num_classes']} classes as {what} to {out}")
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
