"""One browser tab painting one image: the mask under its canvas, when its strokes become the image's draft, and
when another tab or a newer saved mask means they must not be written over silently.

The Annotate page keeps a View per tab; every rule about whose strokes win lives here, testable without a browser.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np

from seg_core.errors import DraftConflictError, MaskConflictError
from seg_core.services import editing
from seg_core.store.annotations import ANY
from seg_core.store.project import Project
from seg_core.store.records import ImageRecord

OTHER_TAB = "other_tab"      # another tab wrote this image's draft since this tab last saw it
STALE = "stale"              # the mask was saved again after this tab opened the version it shows


@dataclass
class View:
    """What one tab shows of one image."""

    image_id: int
    key: str                            # the canvas this view belongs to
    base_ids: np.ndarray                # the mask the canvas shows; the canvas's strokes go on top of it
    base_version: int                   # the saved mask version the person is looking at
    draft_rev: str                      # the draft this tab last saw or wrote ("" = none)
    source: str = "painted"             # where the strokes shown came from: "painted" or "prediction"
    objects: tuple[str, ...] = ()       # the canvas objects (strokes, shapes) already applied, as signatures
    working: np.ndarray | None = None   # base_ids with the canvas's strokes, as last applied
    conflict: str | None = None         # OTHER_TAB or STALE, until the person chooses
    mine: np.ndarray | None = None      # this tab's mask that could not be written (OTHER_TAB)

    @property
    def shown(self) -> np.ndarray:
        return self.working if self.working is not None else self.base_ids


def open_view(project: Project, image_id: int, key: str) -> View:
    """A fresh view: the image's draft if it has one (whoever painted it), else its saved mask."""
    rec = project.image(image_id)
    draft = project.drafts.get(rec.id)
    if draft is not None:
        view = View(rec.id, key, draft.ids, draft.base_version, draft.rev, draft.source)
        view.conflict = STALE if draft.base_version != rec.mask_version else None
        return view
    saved = project.masks.load(rec)
    ids = saved if saved is not None else np.zeros((rec.height, rec.width), np.uint8)
    return View(rec.id, key, ids, rec.mask_version, "")


def _saved_or_empty(project: Project, rec: ImageRecord) -> np.ndarray:
    saved = project.masks.load(rec)
    return saved if saved is not None else np.zeros((rec.height, rec.width), np.uint8)


def canvas_objects(json_data: dict | None) -> tuple[str, ...] | None:
    """One signature per object on the canvas (its Fabric JSON), to tell new strokes and undo from a lost canvas."""
    if not json_data:
        return None
    return tuple(hashlib.sha1(json.dumps(o, sort_keys=True).encode()).hexdigest()[:16]
                 for o in json_data.get("objects", []))


def apply_canvas(project: Project, view: View, strokes: np.ndarray | None, objects: tuple[str, ...] | None,
                 classes, canvas_view: editing.CanvasView, stroke_opacity: float) -> str:
    """Apply the canvas's strokes (all of them since the canvas was mounted) and keep the result as the draft.

    Returns what happened: "unchanged", "drafted", "undone" (back to the saved mask: no draft), "reset" (the canvas
    came back without strokes it had: nothing is taken away, the page remounts it over the draft), OTHER_TAB or
    STALE (the strokes are kept, the page asks the person what to do).
    """
    if strokes is None:
        return "unchanged"
    objects = view.objects if objects is None else tuple(objects)
    n = min(len(objects), len(view.objects))
    if objects[:n] != view.objects[:n]:
        # Neither new strokes after the old ones nor an undo of the last ones: the canvas forgot strokes that are
        # already in the draft. Nothing is taken away; the page remounts the canvas over what was shown.
        view.base_ids, view.working, view.objects = view.shown, None, ()
        return "reset"
    painted = editing.paint(view.base_ids, strokes, classes, canvas_view, stroke_opacity)
    view.objects = objects
    if np.array_equal(painted, view.shown):
        return "unchanged"
    view.working = painted
    rec = project.image(view.image_id)
    try:
        if (view.source == "painted" and view.base_version == rec.mask_version
                and np.array_equal(painted, _saved_or_empty(project, rec))):
            project.drafts.discard(rec.id, expect_rev=view.draft_rev)
            view.draft_rev = ""
            return "undone"
        view.draft_rev = project.drafts.save(rec.id, painted, view.base_version, view.source,
                                             expect_rev=view.draft_rev)
    except DraftConflictError:
        view.conflict, view.mine = OTHER_TAB, painted
        return OTHER_TAB
    if view.base_version != rec.mask_version:
        view.conflict = STALE
        return STALE
    return "drafted"


def save(project: Project, view: View, author: str = "user") -> ImageRecord:
    """Save this tab's draft as the image's mask: refused (DraftConflictError, MaskConflictError) when another tab
    changed the draft, or the mask was saved again, since this tab showed them."""
    draft = project.drafts.get(view.image_id)
    if draft is None or draft.rev != view.draft_rev:
        view.conflict = OTHER_TAB
        if view.mine is None:
            view.mine = view.shown
        raise DraftConflictError("Another tab changed or saved the unsaved strokes of this image since this tab "
                                 "showed them; nothing was saved.")
    try:
        new = project.masks.save(view.image_id, draft.ids, draft.base_version, author=author,
                                 source="corrected" if draft.source == "prediction" else "painted")
    except MaskConflictError:
        view.conflict = STALE
        raise
    try:
        project.drafts.discard(view.image_id, expect_rev=draft.rev)
    except DraftConflictError:
        pass  # another tab painted on in the meantime: its strokes stay its draft
    return new


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
        view.conflict, view.mine = (STALE if view.base_version != rec.mask_version else None), None
        return None
    draft = project.drafts.get(rec.id)
    ids = draft.ids if draft is not None else view.shown
    new = project.masks.save(rec.id, ids, rec.mask_version, author=author,
                             source="corrected" if view.source == "prediction" else "painted")
    project.drafts.discard(rec.id)
    view.conflict = None
    return new


def theirs(project: Project, view: View) -> np.ndarray:
    """What the other side has: the draft on disk (OTHER_TAB) or the newer saved mask (STALE)."""
    rec = project.image(view.image_id)
    if view.conflict == OTHER_TAB:
        draft = project.drafts.get(rec.id)
        if draft is not None:
            return draft.ids
    return _saved_or_empty(project, rec)


def carry_over(view: View, key: str) -> View:
    """The same tab on a new canvas (another zoom, or a canvas that lost its strokes): what it showed is the base."""
    return View(view.image_id, key, view.shown, view.base_version, view.draft_rev, view.source,
                conflict=view.conflict, mine=view.mine)


def outdated(project: Project, view: View) -> bool:
    """The draft or the mask changed elsewhere while this tab has painted nothing of its own: show the new one."""
    if view.working is not None or view.objects or view.conflict is not None:
        return False
    rev = project.drafts.rev(view.image_id)
    if (rev or "") != view.draft_rev:
        return True
    return rev is None and project.image(view.image_id).mask_version != view.base_version


def stale_message(project: Project, view: View) -> str:
    rec = project.image(view.image_id)
    who = rec.mask_updated_by or "someone"
    when = time.strftime("%H:%M:%S", time.localtime(rec.mask_updated_at or 0))
    return (f"The mask of '{rec.filename}' was saved again by {who} at {when} (version {rec.mask_version}) after "
            f"you opened version {view.base_version}. Your strokes are kept as unsaved: keep theirs, save yours over "
            "it, or look at both first.")
