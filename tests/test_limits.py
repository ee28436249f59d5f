"""Maskloop at its limits, small versions of bench/limits.py: each limit is met with a sentence and
memory stays bounded. No test asserts on time; memory is measured in a child process, with generous bounds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, jpeg_claiming, photo, png_bytes, zip_bytes
from seg_core.classes import MAX_CLASSES, numbered_classes
from seg_core.errors import ClassSpecError, InvalidImageError, SegError
from seg_core.formats import images
from seg_core.services import importing
from seg_core.store.workspace import new_project


def _peak_rss_mb(code: str, tmp_path) -> float:
    """Peak RSS of a fresh Python running `code`: its VmHWM, which belongs to the process's own memory map. (Its
    ru_maxrss would not do: a child started with vfork, as subprocess does, begins with the parent's peak.)"""
    script = tmp_path / f"child_{abs(hash(code))}.py"
    script.write_text("import sys\nsys.path.insert(0, %r)\n" % str(ROOT) + textwrap.dedent(code) + PRINT_PEAK)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split()[-1])


PRINT_PEAK = """
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024)
"""


_BASE = """
    from seg_core.errors import SegError
    from seg_core.formats import images
    from seg_core.services import importing
"""


pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from /proc (Linux)")


def test_a_20000x20000_image_is_refused_without_being_decoded(tmp_path):
    (tmp_path / "huge.jpg").write_bytes(jpeg_claiming(20000, 20000))
    base = _peak_rss_mb(_BASE, tmp_path)
    peak = _peak_rss_mb(_BASE + """
    try:
        images.prepare_upload(open("huge.jpg", "rb").read(), "huge.jpg")
        raise SystemExit("accepted")
    except SegError as exc:
        assert "20000x20000 pixels (400 megapixels); the limit is 50 megapixels" in str(exc), exc
    """, tmp_path)
    assert peak - base < 100   # decoding it would take 1,200 MB


def test_an_accepted_large_image_is_held_about_once(tmp_path):
    """A 12-megapixel photo (36 MB of pixels) is added with less than twice its pixels in memory: the check
    decodes it once, without the copy an EXIF transpose of an upright image used to make."""
    w, h = 4000, 3000
    yy, xx = np.mgrid[0:h, 0:w]
    Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)).save(
        tmp_path / "big.jpg", quality=90)
    code = _BASE + """
    from seg_core.store.workspace import new_project
    p = new_project("proj")
    r = p.add_image(open("big.jpg", "rb").read(), "big.jpg")
    assert r.status == "added" and (r.image.width, r.image.height) == (4000, 3000)
    """
    base = _peak_rss_mb(_BASE + "    from seg_core.store.workspace import new_project\n", tmp_path)
    assert _peak_rss_mb(code, tmp_path) - base < 2 * w * h * 3 / 2**20


def test_the_pixel_limit_takes_an_image_at_it_and_refuses_one_past_it():
    data = png_bytes(photo(100, 100))
    assert images.prepare_upload(data, "a.png", limit=10_000).width == 100
    with pytest.raises(InvalidImageError, match=r"100x100 pixels \(10,000 pixels\); the limit is 9,999 pixels"):
        images.prepare_upload(data, "a.png", limit=9_999)


def test_the_pixel_limit_can_be_raised_for_a_workstation(monkeypatch):
    monkeypatch.setenv("MASKLOOP_MAX_PIXELS", "60000000")
    assert images.max_pixels() == 60_000_000
    monkeypatch.setenv("MASKLOOP_MAX_PIXELS", "lots")
    assert images.max_pixels() == images.DEFAULT_MAX_PIXELS


def test_an_upload_over_the_file_size_limit_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 2**20)
    with pytest.raises(InvalidImageError, match="is 2 MB; files up to 1 MB are accepted"):
        images.prepare_upload(bytes(2 * 2**20), "big.png")


@pytest.mark.parametrize("how", ["uploads", "zip"])
def test_many_files_in_one_import_are_all_added(workspace, how):
    project = new_project(workspace / "many")
    files = [(f"img_{i:04d}.png", png_bytes(photo(8, 8, seed=i))) for i in range(300)]
    if how == "zip":
        report = importing.import_zip(project, zip_bytes({f"images/{n}": d for n, d in files}))
    else:
        report = importing.import_uploads(project, files)
    assert len(report.added) == 300 and not report.refused and project.count_images() == 300


def _mask_with_256_values() -> bytes:
    ids = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)
    return png_bytes(ids, "L")


def test_a_mask_with_256_values_makes_255_classes_and_ignore_in_a_new_project(workspace):
    project = new_project(workspace / "p")
    report = importing.import_uploads(project, [("a.png", png_bytes(photo(32, 32)))],
                                      [("a.png", _mask_with_256_values())], infer_classes=True)
    assert report.labeled == 1 and len(project.classes) == MAX_CLASSES == 255
    assert "value 255 is read as 'ignore'" in report.classes


def test_a_mask_with_256_values_is_refused_with_a_sentence_by_a_two_class_project(workspace):
    project = new_project(workspace / "p")
    report = importing.import_uploads(project, [("a.png", png_bytes(photo(32, 32)))],
                                      [("a.png", _mask_with_256_values())])
    assert not report.added and "that are not class ids 0..1" in report.refused[0][1]
    assert project.count_images() == 0


def test_a_project_has_at_most_255_classes(workspace):
    with pytest.raises(ClassSpecError, match="at most 255 classes; got 256"):
        new_project(workspace / "a", numbered_classes(256))
    project = new_project(workspace / "b", numbered_classes(255))
    with pytest.raises(SegError, match="at most 255 classes"):
        project.add_class("one more")
    assert len(project.classes) == 255
