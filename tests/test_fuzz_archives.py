"""Fuzzed zip archives: each imports what is safe or is refused with a sentence, and nothing is
written outside the project: checked by listing every file under tmp_path, a sentinel folder beside the
workspace included, before and after."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from fuzzing import fuzz
from helpers import box_mask, photo, png_bytes
from seg_core.cli import main as cli
from seg_core.errors import SegError, UnsafeArchiveError
from seg_core.formats import archive, images
from seg_core.services import importing
from seg_core.store.workspace import new_project

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")   # zips named twice, on purpose
IMAGE = png_bytes(photo(8, 8, seed=1))
MASK = png_bytes(box_mask(8, 8, 1, (1, 1, 4, 4)))
CONTENTS = {"image": IMAGE, "mask": MASK, "junk": b"\x89PNG\r\n\x1a\n not really", "empty": b"",
            "json": b'{"images": [], "annotations": [], "categories": []}', "text": b"background\nleaf\n"}


def _zip(entries: list[tuple[str, bytes, bool]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """(name, bytes, is_symlink) entries; names are written as given (no normalisation by this helper)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data, link in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            if link:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def guarded(tmp_path, workspace):
    """A project in the workspace and a sentinel folder beside the workspace; yields a check that nothing outside
    the project's own folder changed."""
    sentinel = tmp_path / "sentinel"
    (sentinel / "inner").mkdir(parents=True)
    (sentinel / "inner" / "keep.txt").write_text("untouched")
    project = new_project(workspace / "p")
    before = {k: v for k, v in _files(tmp_path).items() if not k.startswith("workspace/p/")}

    def check() -> None:
        after = {k: v for k, v in _files(tmp_path).items() if not k.startswith("workspace/p/")}
        assert after == before

    yield project, check
    project.close()


def _import(project, data: bytes):
    """The report, or None when the whole zip was refused (then with a sentence, and nothing was added)."""
    n = project.count_images()
    try:
        report = importing.import_zip(project, data, infer_classes=True)
    except SegError as exc:
        assert len(str(exc)) > 20 and str(exc).rstrip()[-1] in ".)", str(exc)
        assert project.count_images() == n
        return None
    assert project.count_images() == n + len(report.added)
    for rec in project.list_images():
        assert "/" not in rec.filename and "\\" not in rec.filename and rec.filename not in (".", "..")
        assert project.image_path(rec).parent == project.layout.image("x").parent
    for name, why in report.refused:
        assert why and why.rstrip()[-1] in ".)'" or why, (name, why)
    return report


segment = st.one_of(st.sampled_from(["images", "masks", "..", ".", "", "a", "C:", "__MACOSX", ".hidden", "~",
                                     "x" * 120, "…", "تصویر", "con", "a b"]),
                    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8))
entry_name = st.builds(lambda lead, parts, sep, ext: lead + sep.join(parts) + ext,
                       st.sampled_from(["", "", "", "/", "\\", "C:\\", "./"]), st.lists(segment, min_size=1, max_size=5),
                       st.sampled_from(["/", "/", "\\"]), st.sampled_from([".png", ".png", ".jpg", ".json", ".txt", ""]))
entry = st.tuples(entry_name, st.sampled_from(sorted(CONTENTS)), st.integers(0, 19).map(lambda n: n == 0))


@fuzz(40)
@given(st.lists(entry, min_size=1, max_size=8))
def test_a_zip_of_odd_names_imports_what_is_safe_and_writes_only_inside_the_project(guarded, entries):
    project, check = guarded
    data = _zip([(name, CONTENTS[kind], link) for name, kind, link in entries])
    report = _import(project, data)
    check()
    unsafe = any(n.replace("\\", "/").startswith("/") or ".." in n.replace("\\", "/").split("/") or link
                 or (len(n) > 1 and n[1] == ":") for n, _, link in entries)
    if unsafe:
        assert report is None   # the whole zip is refused before anything is read


def _valid_zip() -> bytes:
    return _zip([(f"images/a{i}.png", png_bytes(photo(8, 8, seed=i)), False) for i in range(3)]
                + [(f"masks/a{i}.png", MASK, False) for i in range(3)])


@fuzz(40)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=10),
       st.one_of(st.none(), st.integers(0, 10**6)), st.booleans())
def test_a_damaged_zip_imports_its_readable_files_or_is_refused_with_a_sentence(guarded, flips, cut, stored):
    project, check = guarded
    data = bytearray(_zip([(n, d, False) for n, d, _ in _entries_of(_valid_zip())],
                          zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED))
    for pos, value in flips:
        data[pos % len(data)] = value
    _import(project, bytes(data[:cut % (len(data) + 1)] if cut is not None else data))
    check()


def _entries_of(data: bytes) -> list[tuple[str, bytes, bool]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i), False) for i in zf.infolist()]


@pytest.mark.parametrize("name", ["../evil.png", "images/../../evil.png", "/etc/evil.png", "..\\evil.png",
                                  "C:\\evil.png", "C:/evil.png", "images/..\\..\\evil.png"])
def test_a_path_out_of_the_archive_refuses_the_whole_zip(guarded, name):
    project, check = guarded
    with pytest.raises(UnsafeArchiveError, match="outside the archive's folder"):
        importing.import_zip(project, _zip([("images/ok.png", IMAGE, False), (name, IMAGE, False)]))
    check()
    assert project.count_images() == 0


def test_a_symbolic_link_refuses_the_whole_zip(guarded):
    project, check = guarded
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        importing.import_zip(project, _zip([("images/ok.png", IMAGE, False), ("images/l.png", b"/etc/passwd", True)]))
    check()


def test_a_file_named_twice_refuses_the_whole_zip(guarded):
    project, check = guarded
    data = _zip([("images/a.png", IMAGE, False), ("images/a.png", png_bytes(photo(8, 8, seed=2)), False)])
    with pytest.raises(UnsafeArchiveError, match="two files named 'images/a.png'"):
        importing.import_zip(project, data)
    check()


def test_deep_folders_import_like_shallow_ones(guarded):
    project, check = guarded
    deep = "/".join(["d"] * 60)
    report = importing.import_zip(project, _zip([(f"{deep}/images/a.png", IMAGE, False),
                                                 (f"{deep}/masks/a.png", MASK, False)]))
    check()
    assert len(report.added) == 1 and report.labeled == 1


def _claim_size(data: bytes, size: int) -> bytes:
    """Every entry's headers (local and central) claim `size` uncompressed bytes."""
    out = bytearray(data)
    at = 0
    while (at := out.find(b"PK\x03\x04", at)) >= 0:
        struct.pack_into("<I", out, at + 22, size)
        at += 4
    at = 0
    while (at := out.find(b"PK\x01\x02", at)) >= 0:
        struct.pack_into("<I", out, at + 24, size)
        at += 4
    return bytes(out)


def test_an_entry_claiming_gigabytes_is_refused_before_it_is_read(guarded):
    project, check = guarded
    data = _claim_size(_zip([("images/a.png", IMAGE, False)], zipfile.ZIP_STORED), 3 * 1024**3)
    with pytest.raises(UnsafeArchiveError, match="GB"):
        importing.import_zip(project, data)
    check()


def test_an_image_entry_claiming_more_than_the_file_limit_is_refused_unread(guarded):
    """A ratio below the bomb guard (400 KB stored, 300 MB claimed): refused by the image size limit, unread."""
    project, check = guarded
    big = bytes(range(256)) * 1600
    data = _claim_size(_zip([("images/a.png", big, False)], zipfile.ZIP_STORED), 300 * 2**20)
    report = importing.import_zip(project, data)
    check()
    assert report.refused and "300 MB; files up to 256 MB are accepted" in report.refused[0][1]


def test_a_zip_bomb_is_refused_with_a_sentence(guarded):
    project, check = guarded
    data = _zip([("images/a.png", bytes(20 * 2**20), False)])   # 20 MB of zeros: about 20 KB compressed
    assert len(data) < 100_000
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        importing.import_zip(project, data)
    check()


def test_a_file_whose_header_understates_its_size_is_refused_without_inflating_it(guarded):
    project, check = guarded
    data = _claim_size(_zip([("images/a.png", IMAGE, False)]), 10)
    report = importing.import_zip(project, data)
    check()
    # zipfile checks the CRC once the declared size is read: the file is refused as damaged, 11 bytes inflated
    assert report.refused and "in the zip is damaged (Bad CRC-32" in report.refused[0][1]


def test_the_upload_limit_holds_any_accepted_file():
    config = (Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text()
    upload_mb = int(next(line.split("=")[1] for line in config.splitlines() if line.startswith("maxUploadSize")))
    assert images.MAX_FILE_BYTES <= upload_mb * 2**20 <= archive.MAX_ARCHIVE_BYTES


def test_the_cli_refuses_an_unsafe_zip_with_a_sentence_and_leaves_no_project(tmp_path, workspace, capsys):
    path = tmp_path / "evil.zip"
    path.write_bytes(_zip([("images/ok.png", IMAGE, False), ("../../evil.png", IMAGE, False)]))
    assert cli(["import", "--project", "fresh", "--zip", str(path)]) == 2
    assert "points outside the archive's folder" in capsys.readouterr().err
    assert not (workspace / "fresh").exists() and not (tmp_path / "evil.png").exists()


def test_a_zip_of_more_entries_than_the_limit_is_refused_before_anything_is_read(guarded, monkeypatch):
    project, check = guarded
    monkeypatch.setattr(archive, "MAX_ARCHIVE_ENTRIES", 50)
    data = _zip([(f"images/a{i}.png", IMAGE, False) for i in range(51)], zipfile.ZIP_STORED)
    with pytest.raises(UnsafeArchiveError, match="holds 51 entries; at most 50 are accepted"):
        importing.import_zip(project, data)
    check()


def test_a_zip_claiming_more_than_the_total_limit_is_refused(guarded):
    project, check = guarded
    entries = [(f"images/a{i}.png", bytes(range(256)) * 4000, False) for i in range(5)]   # 1 MB each, stored
    data = _claim_size(_zip(entries, zipfile.ZIP_STORED), 900 * 2**20)                   # 4.4 GB claimed in all
    with pytest.raises(UnsafeArchiveError, match="would expand to more than 4.0 GB"):
        importing.import_zip(project, data)
    check()
