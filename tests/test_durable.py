"""seg_core/durable.py: durable writes."""

from __future__ import annotations

from seg_core import durable


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out" / "f.bin"
    durable.atomic_write(target, b"old")
    durable.atomic_write(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]
