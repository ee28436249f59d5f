"""The review queue: a model's proposals for the unlabeled images, least sure first, each accepted as the mask,
opened to fix, or skipped; and the share a person accepts as they are, per model (the plainest measure of trust)."""

from __future__ import annotations

from typing import Sequence

from seg_core.errors import DraftConflictError, MaskConflictError, NotFoundError
from seg_core.services import keep_learning, review
from seg_core.store.outcomes import Tally
from seg_core.store.project import Project
from seg_core.store.records import ImageRecord, ImageStatus


def queue(project: Project, run_id: str, skipped: Sequence[int] = ()) -> list[review.Ranked]:
    """The unlabeled images with a proposal of this run, least sure first; those skipped in this session go to
    the end, in the order they were skipped."""
    ranked = review.annotate_next(project, run_id)
    later = {image_id: i for i, image_id in enumerate(skipped)}
    return sorted(ranked, key=lambda r: (r.image_id in later, later.get(r.image_id, 0)))


def accept(project: Project, run_id: str, image_id: int, author: str = "user") -> tuple[ImageRecord, str | None]:
    """The run's proposal becomes the image's mask, saved as "accepted"; returns the record and, where keep
    learning started a run on this save, its sentence. Refused with a sentence (nothing changes) where the image
    was labeled meanwhile, has unsaved strokes on the Annotate page, or its proposal is gone or another model's."""
    rec = project.image(image_id)
    if rec.status == ImageStatus.LABELED:
        raise MaskConflictError(f"'{rec.filename}' was labeled by {rec.mask_updated_by or 'someone'} since this queue "
                                "showed it; its mask was kept, and it left the queue.")
    if project.drafts.get(image_id) is not None:
        raise DraftConflictError(f"'{rec.filename}' has unsaved strokes on the Annotate page; accepting would replace "
                                 "them. Use Fix to see them beside the proposal.")
    stored = project.predictions.get(image_id)
    if stored is None or stored.run_id != run_id:
        raise NotFoundError(f"The proposal for '{rec.filename}' is gone or was replaced by another model's; predict "
                            "the unlabeled images again.")
    new = project.masks.save(image_id, stored.ids, rec.mask_version, author=author, source="accepted")
    project.outcomes.add(run_id, image_id, "accepted")
    return new, keep_learning.after_save(project)


def fixed(project: Project, run_id: str, image_id: int) -> None:
    """The person opened this proposal to fix it: it was not good enough as it was."""
    project.outcomes.add(run_id, image_id, "fixed")


def skip(project: Project, run_id: str, image_id: int) -> None:
    project.outcomes.add(run_id, image_id, "skipped")


def acceptance(project: Project, run_id: str) -> tuple[Tally, str]:
    """This model's tally and the sentence for it."""
    tally = project.outcomes.tally(run_id)
    if tally.rate is None:
        return tally, "No proposal of this model has been accepted or fixed yet."
    return tally, (f"This model's proposals accepted as they were: {tally.accepted} of {tally.decided} "
                   f"({tally.rate:.0%}); {tally.fixed} opened to fix.")
