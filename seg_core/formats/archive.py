"""Zip archives checked before anything is read: no absolute or '..' paths, links, encryption or bombs."""

from __future__ import annotations

import stat
import zipfile
from pathlib import PurePosixPath
from typing import Callable

from seg_core.errors import UnsafeArchiveError
from seg_core.formats.layouts import SKIP_DIRS, Source

MAX_ARCHIVE_BYTES = 4 * 1024**3          # uncompressed total of a zip
MAX_ARCHIVE_ENTRIES = 100_000
MAX_ENTRY_RATIO = 1000                   # uncompressed/compressed: real images stay far below


def zip_tree(archive: zipfile.ZipFile, max_bytes: int | None = None) -> dict[PurePosixPath, Source]:
    """Check every entry before anything is read: no absolute or '..' paths, links, or bombs."""
    max_bytes = MAX_ARCHIVE_BYTES if max_bytes is None else max_bytes
    infos = archive.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise UnsafeArchiveError(f"The zip holds {len(infos)} entries; at most {MAX_ARCHIVE_ENTRIES} are accepted.")
    total = 0
    tree: dict[PurePosixPath, Source] = {}
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
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"'{raw}' in the zip is encrypted; remove the password and try again.")
        total += info.file_size
        if total > max_bytes:
            raise UnsafeArchiveError(
                f"The zip would expand to more than {max_bytes / 1024**3:.1f} GB; split it into smaller archives."
            )
        if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_ENTRY_RATIO and info.file_size > 10 * 2**20:
            raise UnsafeArchiveError(f"'{raw}' in the zip expands {info.file_size // max(info.compress_size, 1)}x; "
                                     "that looks like a zip bomb, not an image.")
        if path.name.startswith(".") or any(part in SKIP_DIRS for part in path.parts):
            continue
        tree[path] = Source(path.name, _zip_reader(archive, info), name)
    return tree


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        # Read at most the declared size plus one byte: a lying header cannot make us inflate more.
        with archive.open(info) as f:
            data = f.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise UnsafeArchiveError(f"'{info.filename}' in the zip is larger than its header says.")
        return data
    return read
