"""Errors a person can cause, each with a sentence a non-expert understands."""

import errno
import os
import sqlite3


class SegError(Exception):
    """Base of every error that is the user's input, not a bug: pages show it with st.error."""


class InvalidImageError(SegError):
    """The file is not an image Maskloop can use."""


class InvalidMaskError(SegError):
    """The mask cannot be read, has the wrong size, or holds colours/values that are not classes."""


class UnknownMaskValuesError(InvalidMaskError):
    """A mask holds values that are not class ids; `values` says which, so a mapping can be offered."""

    def __init__(self, message: str, values: tuple[int, ...]):
        super().__init__(message)
        self.values = values


class AssistError(SegError):
    """An annotation assist cannot run on this input: no strokes, a box outside the image, a tiny image."""


class MaskConflictError(SegError):
    """Someone saved this mask after it was loaded; saving now would overwrite their work."""


class DraftConflictError(SegError):
    """Another tab changed this image's unsaved strokes since this one last saw them."""


class UnsafeArchiveError(SegError):
    """A zip archive that could write outside its folder or expand to an unreasonable size."""


class DatasetFormatError(SegError):
    """Another tool's annotation file (COCO JSON, labelmap.txt, a class-names file) that is malformed or does not
    match the images and masks beside it; the whole import is refused before anything is written."""


class ProjectError(SegError):
    """A project that does not exist, already exists, or is in an unusable state."""


class NotFoundError(SegError):
    """An image, run or class that is not (or no longer) in the project."""


class ClassSpecError(SegError):
    """A class definition that is invalid: bad colour, duplicate name, reserved id."""


class RunBusyError(SegError):
    """A training run is already going in this project."""


class TrainingError(SegError):
    """Training cannot start or go on: too few labeled images, a bad setting, a missing checkpoint."""


class ModelExportError(SegError):
    """A model cannot be exported as asked: an unknown format, a folder in the way, a converter not installed."""


class StorageError(SegError):
    """The disk is full or the workspace may not be written: what was being done did not happen, and nothing was
    left half-written. `reason` is the first half of the sentence, for a caller that says more about what stopped."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


_FULL = "The disk is full"
_READ_ONLY = "The workspace is on a read-only disk"
_DENIED = "Maskloop is not allowed to write in the workspace"
_REASONS = {errno.ENOSPC: _FULL, errno.EDQUOT: "The disk quota is used up", errno.EROFS: _READ_ONLY,
            errno.EACCES: _DENIED, errno.EPERM: _DENIED}
_SQLITE_REASONS = {"disk is full": _FULL, "readonly database": _READ_ONLY, "read-only file system": _READ_ONLY}


def storage_error(exc: BaseException, undone: str) -> StorageError | None:
    """The StorageError for an OSError or SQLite error of a full or unwritable disk, else None.

    `undone` says what did not happen, as the end of a sentence: "the mask of 'a.png' was not saved; the
    previous one is kept"."""
    if isinstance(exc, StorageError):
        return exc
    reason = None
    if isinstance(exc, OSError):
        reason = _REASONS.get(exc.errno)
        where = f" (writing in {os.path.dirname(os.fsdecode(exc.filename))})" if exc.filename else ""
    elif isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        reason = next((r for key, r in _SQLITE_REASONS.items() if key in text), None)
        where = ""
    if reason is None:
        return None
    hint = " Free some space and try again." if reason == _FULL else " Make the workspace writable and try again."
    return StorageError(f"{reason}{where}: {undone}.{hint}", reason)
