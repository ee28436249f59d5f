"""Shared fixtures: an isolated workspace per test and the real data in ../shared/data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import SHARED_DATA, require  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("SEG_WORKSPACE", str(ws))
    return ws


@pytest.fixture
def shared_data() -> Path:
    require((SHARED_DATA / "membrane").is_dir() and (SHARED_DATA / "camvid-mini").is_dir(),
            f"the real data sets are not at {SHARED_DATA} (a clone without ../shared/data)")
    return SHARED_DATA
