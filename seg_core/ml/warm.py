"""A run that starts from an earlier run's trained model instead of from scratch (keep learning's fine-tuning)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Sequence

from seg_core.errors import TrainingError
from seg_core.ml import models

if TYPE_CHECKING:
    import keras

    from seg_core.store.project import Project

HEAD = ("final_logits", "probabilities")   # the layers that answer per class (ml/models.py names them)


def start_from(model: "keras.Model", project: "Project", run_id: str, class_names: Sequence[str]) -> int:
    """Copy run `run_id`'s best weights into `model`, built with the same settings; returns the layers copied.

    Where the project's classes are no longer those the run learned (one added or removed since), the layers that
    answer per class start fresh: their outputs would mean other classes. Layers are matched in order, as the two
    networks are built alike; names are not compared, as Keras numbers unnamed layers per process.
    """
    files = project.layout.run(run_id)
    path = files.checkpoint("best")
    if not path.exists():
        raise TrainingError(f"Run {run_id} has no trained model to start from any more; start a new run instead.")
    source = models.load_saved(path, compile=False)
    try:
        learned = [c["name"] for c in json.loads(files.config.read_text()).get("classes", [])]
    except (OSError, ValueError):
        learned = []
    same_classes = learned == list(class_names)
    mine, theirs = [layer for layer in model.layers if layer.weights], [layer for layer in source.layers if layer.weights]
    if len(mine) != len(theirs):
        raise TrainingError(f"Run {run_id}'s network is built differently from these settings, so this run cannot "
                            "start from it; start a new run instead.")
    copied = 0
    for layer, src in zip(mine, theirs):
        if layer.name in HEAD and not same_classes:
            continue
        if [tuple(w.shape) for w in layer.weights] != [tuple(w.shape) for w in src.weights]:
            raise TrainingError(f"Run {run_id}'s layer {src.name} does not fit these settings, so this run cannot "
                                "start from it; start a new run instead.")
        layer.set_weights(src.get_weights())
        copied += 1
    return copied
