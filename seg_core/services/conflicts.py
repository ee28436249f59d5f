"""Two sides at odds over one image's unsaved strokes: another tab wrote the draft (OTHER_TAB), or the mask was saved
again after this tab opened it (STALE). What the other side has, and the person's choice: keep theirs, use or save
mine, or combine both. Nothing is written over without that choice (drafting.py finds the conflicts).
"""

from __future__ import annotations

import time

import numpy as np

from seg_core.errors import DraftConflictError
from seg_core.services import undo_history
from seg_core.services.drafting import (OTHER_TAB, STALE, View, clear_canvas, keep_history, mask_source,
                                        painted_over, saved_or_empty, write)
from seg_core.store.annotations import ANY
from seg_core.store.project import Project
from seg_core.store.records import ImageRecord


def keep_theirs(project: Project, view: View) -> None:
    """Drop this tab's strokes for what is on disk: for a stale view its draft is set aside (Undo discard)."""
    if view.conflict == STALE and view.draft_rev:
        try:
            project.drafts.discard(view.image_id, expect_rev=view.draft_rev, keep=True)
        except DraftConflictError:
            pass
    view.conflict, view.mine = None, None


def save_mine(project: Project, view: View, author: str = "user") -> ImageRecord | None:
    """This tab's strokes win: over another tab's draft (they become the draft), or over a newer saved mask
    (they are saved as the mask). Returns the new mask record when a mask was saved."""
    rec = project.image(view.image_id)
    if view.conflict == OTHER_TAB:
        mine = view.mine if view.mine is not None else view.shown
        view.draft_rev = project.drafts.save(rec.id, mine, view.base_version, view.source, expect_rev=ANY)
        view.conflict = STALE if view.base_version != rec.mask_version else None
        view.mine, view.seen = None, mine
        keep_history(project, view)
        return None
    draft = project.drafts.get(rec.id)
    ids = draft.ids if draft is not None else view.shown
    new = project.masks.save(rec.id, ids, rec.mask_version, author=author,
                             source=mask_source(view.source))
    project.drafts.discard(rec.id)
    undo_history.forget(project, rec.id)
    view.conflict = None
    return new


def combine(project: Project, view: View) -> str:
    """Both sides' strokes: each side's changes to the mask this tab started from, the earlier side's first and the
    later side's on top where both changed a pixel. The result becomes the draft (for STALE, painted over the newly
    saved mask), saved as any other. One Undo goes back to their side as it was, a second to this tab's own.

    Returns the outcome as `drafting.change` does: OTHER_TAB again when yet another write came in meanwhile.
    """
    if view.conflict is None:   # a second press, after the first resolved it
        return "unchanged"
    rec = project.image(view.image_id)
    draft = project.drafts.get(rec.id) if view.conflict == OTHER_TAB else None
    if draft is not None:   # another tab's draft: both painted over what this tab last read
        theirs, their_at, base = draft.ids, draft.saved_at, view.seen
        view.base_version, view.draft_rev, view.seen = draft.base_version, draft.rev, draft.ids
        view.source = draft.source if view.source == "painted" else view.source
    else:   # the newer saved mask: this tab's draft and it both changed the mask the draft is painted over
        theirs, their_at = saved_or_empty(project, rec), rec.mask_updated_at or 0.0
        base = view.seen if view.conflict == OTHER_TAB else view.start
        if base is None:   # that mask is gone (the draft was already behind when opened): labelled pixels count
            base = np.zeros_like(theirs)
        view.base_version, view.draft_rev = rec.mask_version, view.draft_rev if view.conflict == STALE else ""
    mine = view.base_ids
    earlier, later = (theirs, mine) if view.edited_at >= their_at else (mine, theirs)
    merged = np.where(later != base, later, earlier).astype(np.uint8)
    view.start = painted_over(project, rec, view.base_version)
    for edit in (undo_history.make_edit(mine, theirs, "change to theirs"),
                 undo_history.make_edit(theirs, merged, "combination")):
        if edit is not None:
            undo_history.push(view.undo, edit)
    view.redo.clear()
    view.conflict, view.mine = None, None
    outcome = write(project, view, merged)
    clear_canvas(view)
    return outcome


def theirs(project: Project, view: View) -> np.ndarray:
    """What the other side has: the draft on disk (OTHER_TAB) or the newer saved mask (STALE)."""
    rec = project.image(view.image_id)
    if view.conflict == OTHER_TAB:
        draft = project.drafts.get(rec.id)
        if draft is not None:
            return draft.ids
    return saved_or_empty(project, rec)


def stale_message(project: Project, view: View) -> str:
    rec = project.image(view.image_id)
    who = rec.mask_updated_by or "someone"
    when = time.strftime("%H:%M:%S", time.localtime(rec.mask_updated_at or 0))
    return (f"The mask of '{rec.filename}' was saved again by {who} at {when} (version {rec.mask_version}) after "
            f"you opened version {view.base_version}. Your strokes are kept as unsaved: keep theirs, save yours over "
            "it, or look at both first.")
