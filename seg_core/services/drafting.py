"""One browser tab painting one image: the mask under its canvas, when its strokes become the image's draft, and
when another tab or a newer saved mask means they must not be written over silently.

The Annotate page keeps a View per tab; the rules of when strokes may be written live here, and the person's choices
once they may not in conflicts.py, all testable without a browser.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import numpy as np

from seg_core.assist.common import NO_SCRIBBLE
from seg_core.errors import DraftConflictError, MaskConflictError
from seg_core.services import editing, undo_history
from seg_core.services.undo_history import Edit
from seg_core.formats.masks import remap_ids
from seg_core.store import class_scheme
from seg_core.store.project import Project
from seg_core.store.records import ImageRecord

OTHER_TAB = "other_tab"      # another tab wrote this image's draft since this tab last saw it
STALE = "stale"              # the mask was saved again after this tab opened the version it shows
ASSISTS = ("smart fill", "box fill", "box click", "magic wand")   # edits that make a saved mask's source "assisted"


@dataclass
class LastBox:
    """A view's last Box -> object, which clicks correct while its result is what the view shows (boxing.py)."""

    box: tuple[int, int, int, int]    # (x0, y0, x1, y1) in image pixels, x1 and y1 exclusive
    cls_id: int
    before: np.ndarray                # the mask before the box
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)
    version: int = -1                 # the view's version its result was written at


@dataclass
class View:
    """What one tab shows of one image.

    Every stroke is folded into `base_ids` as soon as it arrives (and written as the draft, see folding.py). The
    canvas keeps its strokes, of any pens, until the person does something that changes the mask beyond them (Undo,
    a fill): emptying it then cannot cut a stroke short. Meanwhile they are drawn over `under`.
    """

    image_id: int
    key: str                            # the canvas this view belongs to
    base_ids: np.ndarray                # the mask this tab shows, with every stroke so far
    base_version: int                   # the saved mask version the person is looking at
    draft_rev: str                      # the draft this tab last saw or wrote ("" = none)
    source: str = "painted"             # where the mask shown came from: "painted", "prediction", "assisted"
    objects: tuple[str, ...] = ()       # the canvas's objects already folded in, as signatures
    picture: np.ndarray | None = None   # the canvas's picture (RGBA) as last folded in; None: empty
    clears: int = 0                     # bumped when the canvas must be emptied (its strokes are in base_ids)
    version: int = 0                    # bumped on every change of base_ids
    under: np.ndarray | None = None     # the mask tinted under the canvas (erased pixels already show the photo)
    conflict: str | None = None         # OTHER_TAB or STALE, until the person chooses
    mine: np.ndarray | None = None      # this tab's mask that could not be written (OTHER_TAB)
    undo: list[Edit] = field(default_factory=list)
    redo: list[Edit] = field(default_factory=list)
    scribbles: np.ndarray | None = None  # smart-fill strokes so far (NO_SCRIBBLE: none), at the image's size
    pending_scribbles: bool = False     # strokes drawn since the last smart fill (fill on a button press)
    scheme: int = 0                     # the class numbering base_ids is in (class_scheme)
    seen: np.ndarray | None = None      # the draft at draft_rev (with none, the saved mask): what this tab last read
    start: np.ndarray | None = None     # the saved mask at base_version, when known: what the draft is painted over
    edited_at: float = 0.0              # when this tab last changed what it shows (0: not since it opened)
    last_box: LastBox | None = None     # the last Box -> object, which clicks correct (boxing.py)
    serial: int = field(default_factory=itertools.count().__next__)   # tells two views apart, even on one canvas

    def __post_init__(self) -> None:
        if self.under is None:
            self.under = self.base_ids
        if self.seen is None:
            self.seen = self.base_ids

    @property
    def shown(self) -> np.ndarray:
        return self.base_ids

    @property
    def token(self) -> str:
        """Changes when the canvas must be emptied: the page passes it in the canvas's initial drawing."""
        return f"{self.serial}.{self.clears}"


def clear_canvas(view: View) -> None:
    """Empty the canvas (on Undo, a fill): what it held is in base_ids already."""
    view.clears += 1
    view.under = view.base_ids
    view.picture = None


def open_view(project: Project, image_id: int, key: str) -> View:
    """A fresh view: the image's draft if it has one (whoever painted it), else its saved mask."""
    scheme = project.class_scheme.current()   # first: a removal in between renumbers what is read after it
    rec = project.image(image_id)
    draft = project.drafts.get(rec.id)
    if draft is not None:
        view = View(rec.id, key, draft.ids, draft.base_version, draft.rev, draft.source, scheme=scheme)
        view.conflict = STALE if draft.base_version != rec.mask_version else None
        view.start = painted_over(project, rec, draft.base_version)
    else:
        view = View(rec.id, key, saved_or_empty(project, rec), rec.mask_version, "", scheme=scheme)
        view.start = view.base_ids
    view.undo, view.redo = undo_history.load(project, rec.id, _stamp(view))
    return view


def _stamp(view: View) -> dict:
    """What an undo history on disk must match to be this view's: its edits fit only these very pixels."""
    return {"rev": view.draft_rev, "base_version": view.base_version, "scheme": view.scheme}


def keep_history(project: Project, view: View) -> None:
    undo_history.store(project, view.image_id, _stamp(view), view.undo, view.redo)


def follow_classes(project: Project, view: View) -> list[class_scheme.Renumbering] | None:
    """Classes removed in another tab since this view opened: renumber what it shows, its undo history, and the
    mask version and draft it stands on, as the removal renumbered them on disk. Returns the removals followed
    ([] when none), or None when they are too many to follow (the page opens the image afresh)."""
    steps = project.class_scheme.since(view.scheme)
    if not steps:
        return steps
    for step in steps:
        def renumber(ids, m=step.mapping):
            return None if ids is None else remap_ids(ids, m)

        view.base_ids, view.under, view.mine = renumber(view.base_ids), renumber(view.under), renumber(view.mine)
        view.seen, view.start = renumber(view.seen), renumber(view.start)
        view.scribbles = renumber(view.scribbles)   # NO_SCRIBBLE is in no mapping: it stays
        for stack in (view.undo, view.redo):
            stack[:] = [replace(e, before=renumber(e.before), after=renumber(e.after),
                                scribbles=None if e.scribbles is None else tuple(map(renumber, e.scribbles)))
                        for e in stack]
        if step.versions.get(view.image_id) == view.base_version + 1:
            view.base_version += 1
        if view.draft_rev and step.revs.get(view.image_id, ("", ""))[0] == view.draft_rev:
            view.draft_rev = step.revs[view.image_id][1]
        view.scheme = step.scheme
    view.version += 1
    clear_canvas(view)   # its strokes are in base_ids, in the old colours
    # The draft on disk was renumbered under a new revision: so is its history.
    if (view.undo or view.redo) and not view.conflict and (project.drafts.rev(view.image_id) or "") == view.draft_rev:
        keep_history(project, view)
    return steps


def saved_or_empty(project: Project, rec: ImageRecord) -> np.ndarray:
    saved = project.masks.load(rec)
    return saved if saved is not None else np.zeros((rec.height, rec.width), np.uint8)


def painted_over(project: Project, rec: ImageRecord, version: int) -> np.ndarray | None:
    """The saved mask of this version, or None: older ones than the newest are nowhere on disk (0 is no mask)."""
    if version == rec.mask_version:
        return saved_or_empty(project, rec)
    return np.zeros((rec.height, rec.width), np.uint8) if version == 0 else None


def fill_from_scribbles(project: Project, view: View, fill, before: np.ndarray | None = None) -> str:
    """Run the smart fill on this view's scribbles, as one edit; Undo also takes back the strokes it used.
    `fill` returns None when it cannot fill yet (strokes of one class): the strokes alone are the edit."""
    if view.scribbles is None:
        return "unchanged"
    filled, what = fill(view.scribbles), "smart fill"
    if filled is None:
        filled, what = np.where(view.scribbles != NO_SCRIBBLE, view.scribbles, view.base_ids).astype(np.uint8), "stroke"
    outcome = change(project, view, filled, what,
                     scribbles=(before if before is not None else view.scribbles, view.scribbles))
    view.pending_scribbles = False
    view.under = view.base_ids
    return outcome


def change(project: Project, view: View, new_ids: np.ndarray, what: str, scribbles=None) -> str:
    """Make `new_ids` what this tab shows, as one edit Undo takes back whole, and keep it as the draft.
    scribbles: (before, after) smart-fill strokes that Undo and Redo restore with the mask."""
    edit = undo_history.make_edit(view.base_ids, new_ids, what)
    if edit is None:
        return "unchanged"
    if scribbles is not None:
        edit = replace(edit, scribbles=scribbles)
    if what in ASSISTS:
        view.source = "assisted" if view.source == "painted" else view.source
    undo_history.push(view.undo, edit)
    view.redo.clear()
    return write(project, view, new_ids)


def fill_holes(project: Project, view: View, cls: int) -> tuple[str, int, int]:
    """Background enclosed by class `cls` takes `cls` (editing.fill_holes), as one edit; returns the outcome and
    the number of holes and of pixels filled."""
    ids, holes, pixels = editing.fill_holes(view.base_ids, cls)
    outcome = change(project, view, ids, "fill of holes")
    clear_canvas(view)
    return outcome, holes, pixels


def undo(project: Project, view: View) -> str | None:
    """Take back this tab's last edit, whole. Returns the outcome, or None when there is nothing to undo."""
    return _step(project, view, view.undo, view.redo, lambda e: e.before)


def redo(project: Project, view: View) -> str | None:
    return _step(project, view, view.redo, view.undo, lambda e: e.after)


def _step(project: Project, view: View, source: list[Edit], target: list[Edit], patch) -> str | None:
    if not source:
        return None
    edit = source.pop()
    target.append(edit)
    if edit.scribbles is not None:
        view.scribbles = edit.scribbles[0 if source is view.undo else 1]
    y0, y1, x0, x1 = edit.box
    ids = view.base_ids.copy()
    ids[y0:y1, x0:x1] = patch(edit)
    outcome = write(project, view, ids)
    clear_canvas(view)
    return outcome


def write(project: Project, view: View, ids: np.ndarray) -> str:
    """Show `ids` and keep them as the draft, with the undo history beside it (or no draft: back to the mask)."""
    view.base_ids = ids
    view.version += 1
    view.edited_at = time.time()
    rec = project.image(view.image_id)
    try:
        if (view.source != "prediction" and view.base_version == rec.mask_version
                and np.array_equal(ids, saved_or_empty(project, rec))):
            project.drafts.discard(rec.id, expect_rev=view.draft_rev)
            view.draft_rev, outcome = "", "undone"
        else:
            view.draft_rev = project.drafts.save(rec.id, ids, view.base_version, view.source,
                                                 expect_rev=view.draft_rev)
            outcome = STALE if view.base_version != rec.mask_version else "drafted"
    except DraftConflictError:
        view.conflict, view.mine = OTHER_TAB, ids
        return OTHER_TAB
    view.seen = ids
    keep_history(project, view)
    if outcome == STALE:
        view.conflict = STALE
    return outcome


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
                                 source=mask_source(draft.source))
    except MaskConflictError:
        view.conflict = STALE
        raise
    try:
        project.drafts.discard(view.image_id, expect_rev=draft.rev)
        undo_history.forget(project, view.image_id)
    except DraftConflictError:
        pass  # another tab painted on in the meantime: its strokes stay its draft
    return new


def mask_source(draft_source: str) -> str:
    return {"prediction": "corrected", "assisted": "assisted"}.get(draft_source, "painted")


def carry_over(view: View, key: str) -> View:
    """The same tab on a new canvas (another zoom): everything it showed and its undo history stay."""
    view.key, view.objects = key, ()
    clear_canvas(view)
    return view


def outdated(project: Project, view: View) -> bool:
    """The draft or the mask changed elsewhere while this tab has changed nothing of its own: show the new one."""
    if view.edited_at or view.conflict is not None:
        return False
    rev = project.drafts.rev(view.image_id)
    if (rev or "") != view.draft_rev:
        return True
    return rev is None and project.image(view.image_id).mask_version != view.base_version
