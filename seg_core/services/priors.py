"""The project's own model as a prior for the assists: its class probabilities on the image being annotated, and how
far to trust them, class by class, from the model's quality on validation images it did not learn from.

One rule for the trust: nothing below MIN_IOU (a model that poor would pull a box or a stroke towards its mistakes),
fully at FULL_IOU, in between in proportion. A model measured only on the images it learned from has no honest
figure and is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:   # the model's modules load TensorFlow: only when a prior is made, never for the page itself
    from seg_core.ml.inference import Predictor
    from seg_core.store.project import Project

MIN_IOU = 0.6    # a class's validation IoU below this: the model is left out for that class
FULL_IOU = 0.9   # ... at this or above it is trusted fully


@dataclass(frozen=True)
class ModelPrior:
    run_id: str
    probs: np.ndarray          # (H, W, C) class probabilities, in the project's class numbering
    trust: tuple[float, ...]   # per class, 0 (not used) .. 1
    quality: tuple[float | None, ...]   # per class validation IoU (None: not measured)
    run_name: str = ""         # as the pages name the run (RunRecord.when)

    def of(self, class_id: int) -> tuple[np.ndarray | None, float]:
        """(H, W) probability of `class_id` and its trust; (None, 0) when the model is not to be used for it."""
        if not 0 <= class_id < len(self.trust) or self.trust[class_id] <= 0:
            return None, 0.0
        return self.probs[..., class_id], self.trust[class_id]

    def helps(self, class_id: int) -> bool:
        return self.of(class_id)[0] is not None

    @property
    def weights(self) -> np.ndarray:
        """(C,) trust per class, for the assists that use every class at once."""
        return np.asarray(self.trust, np.float32)


def trust(iou: float | None) -> float:
    """How far the assists follow a model whose validation IoU for a class is `iou`."""
    if iou is None or not np.isfinite(iou):
        return 0.0
    return float(np.clip((iou - MIN_IOU) / (FULL_IOU - MIN_IOU), 0.0, 1.0))


def class_quality(project: Project, predictor: Predictor) -> tuple[float | None, ...]:
    """Per class validation IoU of the predictor's run on images it did not learn from (kept on disk per run and
    masks); all None when the project only has the images the run learned from."""
    from seg_core.services.review import validation_summary

    summary = validation_summary(project, predictor)
    n = len(project.classes)
    if summary.scope == "labeled":
        return (None,) * n
    by_id = {int(c["id"]): c for c in summary.per_class}
    return tuple(None if by_id.get(i) is None or not by_id[i].get("learned", True) else by_id[i]["iou"]
                 for i in range(n))


def model_prior(project: Project, predictor: Predictor, image: np.ndarray) -> ModelPrior:
    """The predictor's probabilities on `image` and the trust in each class."""
    from seg_core.ml.inference import for_project

    predictor = for_project(project, predictor)
    quality = class_quality(project, predictor)
    probs = predictor.probabilities([image])[0]
    return ModelPrior(predictor.run_id, probs, tuple(trust(q) for q in quality), quality,
                      project.runs.get(predictor.run_id).when)


def describe(prior: ModelPrior, class_ids, names) -> str:
    """What the model did for these classes, in a sentence for the page (names: the classes' names by id)."""
    run = prior.run_name or prior.run_id
    used = [names[c] for c in class_ids if prior.helps(c)]
    left = [(names[c], prior.quality[c]) for c in class_ids if not prior.helps(c) and 0 <= c < len(prior.trust)]
    parts = []
    if used:
        parts.append(f"Using the model from run {run} for {', '.join(used)}.")
    if left:
        why = "; ".join(f"{name}: " + ("not measured on images it did not learn from" if q is None
                                          else f"validation IoU {q:.2f}") for name, q in left)
        parts.append(f"The model from run {run} was left out for {', '.join(n for n, _ in left)} ({why}; it helps "
                     f"from {MIN_IOU:.1f}).")
    return " ".join(parts)
