"""Which of the project's classes a trained model's outputs stand for now, after classes were added or removed.

Adding a class appends an id, so a model keeps meaning its ids; it just never predicts the new class. Removing one
renumbers the masks (store/class_scheme.py); a run records the numbering it trained in, and the same renumbering
takes its outputs there too: the removed class's output goes where its pixels went.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from seg_core.classes import IGNORE_ID
from seg_core.errors import TrainingError
from seg_core.store import class_scheme

if TYPE_CHECKING:
    from seg_core.store.project import Project

TRAIN_AGAIN = "train a new model on the Train page"


@dataclass(frozen=True)
class ClassMap:
    to_project: tuple[int, ...]   # the model's output channel -> the project's class id now
    names: tuple[str, ...]        # the project's classes now

    @property
    def identity(self) -> bool:
        return self.to_project == tuple(range(len(self.names)))

    @property
    def predicted(self) -> int:
        """How many of the project's classes the model can answer."""
        return len(set(self.to_project))

    @property
    def unlearned(self) -> list[str]:
        return [name for i, name in enumerate(self.names) if i not in self.to_project]

    def learned(self, class_id: int) -> bool:
        return class_id in self.to_project

    @property
    def note(self) -> str | None:
        """The sentence for a person, when the model has not learned every class of the project."""
        names = self.unlearned
        if not names:
            return None
        which = (f"the class '{names[0]}'" if len(names) == 1
                 else "the classes " + ", ".join(f"'{n}'" for n in names[:-1]) + f" and '{names[-1]}'")
        return (f"This model has not learned {which} yet (added after it was trained), so it never predicts "
                f"{'it' if len(names) == 1 else 'them'}. Train again to include {'it' if len(names) == 1 else 'them'}.")

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """(..., model classes) probabilities -> (..., project classes): 0 for a class the model never learned; the
        outputs of classes merged by a removal add up."""
        if self.identity:
            return probs
        out = np.zeros(probs.shape[:-1] + (len(self.names),), probs.dtype)
        for channel, class_id in enumerate(self.to_project):
            out[..., class_id] += probs[..., channel]
        return out


def class_map(project: "Project", run_id: str, config: dict) -> ClassMap:
    """How run `run_id` (its config.json as `config`) maps onto the project's classes now; a TrainingError with a
    plain sentence when it cannot."""
    names = tuple(c.name for c in project.classes)
    count = int(config["num_classes"])
    scheme = config.get("class_scheme")
    if scheme is None:   # a run from before runs recorded their numbering
        learned = [c["name"] for c in config.get("classes", [])]
        if project.class_scheme.current() != 0 and list(names[:count]) != learned:
            raise TrainingError(f"Run {run_id} was trained before a class was removed, so which of the project's "
                                f"classes its answers stand for is not known; {TRAIN_AGAIN}.")
        to_project = list(range(count))
    else:
        steps = project.class_scheme.since(int(scheme))
        if steps is None:
            raise TrainingError(f"Run {run_id} was trained before many classes were removed, so which of the "
                                f"project's classes its answers stand for is no longer known; {TRAIN_AGAIN}.")
        to_project = _follow(list(range(count)), steps, run_id, config)
    if any(i >= len(names) for i in to_project):
        raise TrainingError(f"Run {run_id} was trained with {count} classes, which the project's {len(names)} "
                            f"classes now do not match; {TRAIN_AGAIN}.")
    if len(set(to_project)) < 2:
        raise TrainingError(f"Every class run {run_id} learned apart from the background was removed since; "
                            f"{TRAIN_AGAIN}.")
    return ClassMap(tuple(to_project), names)


def _follow(ids: list[int], steps: Sequence[class_scheme.Renumbering], run_id: str, config: dict) -> list[int]:
    for step in steps:
        for channel, class_id in enumerate(ids):
            ids[channel] = step.mapping.get(class_id, class_id)
            if ids[channel] == IGNORE_ID:
                learned = [c["name"] for c in config.get("classes", [])]
                name = learned[channel] if channel < len(learned) else step.removed
                raise TrainingError(f"Run {run_id} learned the class '{name}', which was removed since and its "
                                    f"pixels made 'ignore'; {TRAIN_AGAIN}.")
    return ids
