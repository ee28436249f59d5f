"""Maskloop's engine: projects, images, masks, import/export, training and inference.

Four layers, each a subpackage (docs/architecture.md): `store` (a project on disk), `formats` (image, mask and dataset
files), `ml` (networks, training, prediction, evaluation) and `services` (what the pages and the CLI call).
The names below are imported on first use, so `import seg_core` stays quick and loads no TensorFlow.
"""

import importlib
import os

# TensorFlow's C++ info lines mean nothing to a user; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from seg_core.errors import SegError  # noqa: E402

_MODULES = {
    "jobs": "seg_core.services.jobs", "planning": "seg_core.services.planning", "estimating": "seg_core.services.estimating",
    "review": "seg_core.services.review", "snapping": "seg_core.services.snapping",
    "editing": "seg_core.services.editing", "drafting": "seg_core.services.drafting", "gallery": "seg_core.services.gallery", "demo": "seg_core.services.demo",
    "importing": "seg_core.services.importing", "exporting": "seg_core.services.exporting",
    "conflicts": "seg_core.services.conflicts", "provenance": "seg_core.services.provenance",
    "keep_learning": "seg_core.services.keep_learning",
    "splits": "seg_core.store.splits", "viz": "seg_core.viz", "classes": "seg_core.classes",
    "images": "seg_core.formats.images", "masks": "seg_core.formats.masks",
}
_NAMES = {
    "Project": "seg_core.store.project", "is_project": "seg_core.store.project",
    "new_project": "seg_core.store.workspace", "list_projects": "seg_core.store.workspace",
    "project_entries": "seg_core.store.workspace", "delete_project": "seg_core.store.workspace", "resolve_project_path": "seg_core.store.workspace",
    "CLASSES_EXPLICIT": "seg_core.store.workspace", "remember_project": "seg_core.store.workspace",
    "last_project": "seg_core.store.workspace", "PROJECT_NAME_CHARS": "seg_core.store.names",
    "workspace_dir": "seg_core.store.layout", "SPLITS": "seg_core.store.records",
    "RunStatus": "seg_core.store.runs", "RunRecord": "seg_core.store.runs", "ImageRecord": "seg_core.store.records",
    "ImageStatus": "seg_core.store.records", "STATUSES": "seg_core.store.records",
    "ClassSpec": "seg_core.classes", "TrainConfig": "seg_core.ml.config", "Predictor": "seg_core.ml.inference",
}

__all__ = ["SegError", *_MODULES, *_NAMES]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'seg_core' has no attribute {name!r}")
