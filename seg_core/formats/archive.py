"""Zip archives checked before anything is read: no absolute or '..' paths, links, encryption, bombs or damage."""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

from seg_core.errors import InvalidImageError, UnsafeArchiveError
from seg_core.formats import images
from seg_core.formats.layouts import SKIP_DIRS, Source

MAX_ARCHIVE_BYTES = 4 * 1024**3          # uncompressed total of a zip
MAX_ARCHIVE_ENTRIES = 100_000
MAX_ENTRY_BYTES = 1024**3                # one file of a zip (an image is at most images.MAX_FILE_BYTES)
MAX_ENTRY_RATIO = 1000                   # uncompressed/compressed: real images stay far below
# What zipfile and zlib raise on a damaged archive: a bad CRC, a bad header, an unknown compression method, ...
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
            IndexError, OverflowError)


def open_zip(archive: str | Path | bytes) -> zipfile.ZipFile:
    """A zip file from a path or bytes; a damaged one or one that is not a zip is refused with a sentence."""
    try:
        return zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, (bytes, bytearray)) else archive)
    except _DAMAGED as exc:
        raise UnsafeArchiveError(f"This is not a readable zip file ({exc}).") from None


def zip_tree(archive: zipfile.ZipFile, max_bytes: int | None = None) -> dict[PurePosixPath, Source]:
    """Check every entry before anything is read: no absolute or '..' paths, links, duplicates, or bombs."""
    max_bytes = MAX_ARCHIVE_BYTES if max_bytes is None else max_bytes
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise UnsafeArchiveError(f"The zip holds {len(infos)} entries; at most {MAX_ARCHIVE_ENTRIES} are accepted.")
    total = 0
    tree: dict[PurePosixPath, Source] = {}
    seen: set[str] = set()
    for info in infos:
        raw = info.filename
        name = raw.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in path.parts:
            raise UnsafeArchiveError(
                f"The zip contains the path '{raw}', which points outside the archive's folder. "
                "Nothing was imported; re-create the zip from the folder itself."
            )
        if any(ord(ch) < 32 for ch in name):
            raise UnsafeArchiveError(f"The zip contains an entry with control characters in its name ({raw!r}).")
        mode = (info.external_attr >> 16) & 0xFFFF
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"The zip contains a symbolic link ('{raw}'); links are not accepted.")
        if info.is_dir():
            continue
        if str(path) in seen:  # only a broken or crafted zip names a file twice: which one is meant?
            raise UnsafeArchiveError(f"The zip holds two files named '{raw}'. Nothing was imported; re-create the "
                                     "zip from the folder itself.")
        seen.add(str(path))
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"'{raw}' in the zip is encrypted; remove the password and try again.")
        total += info.file_size
        if total > max_bytes:
            raise UnsafeArchiveError(
                f"The zip would expand to more than {max_bytes / 1024**3:.1f} GB; split it into smaller archives."
            )
        if info.file_size > MAX_ENTRY_BYTES:
            raise UnsafeArchiveError(f"'{raw}' in the zip would expand to {info.file_size / 1024**3:.1f} GB; files "
                                     f"up to {MAX_ENTRY_BYTES // 1024**3} GB are accepted.")
        if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_ENTRY_RATIO and info.file_size > 10 * 2**20:
            raise UnsafeArchiveError(f"'{raw}' in the zip expands {info.file_size // max(info.compress_size, 1)}x; "
                                     "that looks like a zip bomb, not an image.")
        if path.name.startswith(".") or any(part in SKIP_DIRS for part in path.parts):
            continue
        tree[path] = Source(path.name, _zip_reader(archive, info), name)
    return tree


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        if images.is_image_name(info.filename) and info.file_size > images.MAX_FILE_BYTES:  # refused unread
            raise InvalidImageError(f"'{info.filename}' is {info.file_size / 2**20:.0f} MB; files up to "
                                    f"{images.MAX_FILE_BYTES // 2**20} MB are accepted.")
        try:
            # Read at most the declared size plus one byte: a lying header cannot make us inflate more.
            with archive.open(info) as f:
                data = f.read(info.file_size + 1)
        except _DAMAGED as exc:
            raise UnsafeArchiveError(f"'{info.filename}' in the zip is damaged ({exc}); re-create the zip.") from None
        if len(data) > info.file_size:
            raise UnsafeArchiveError(f"'{info.filename}' in the zip is larger than its header says.")
        return data
    return read
