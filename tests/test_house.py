"""House rules that keep the code easy to change: short modules, a small Project, the layers (seg_core free of
streamlit), and the modules a page needs at once load without TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

SEG_CORE = ROOT / "seg_core"
MAX_MODULE_LINES = 450
MAX_PROJECT_CLASS_LINES = 300


def test_no_module_is_longer_than_450_lines():
    modules = [*SEG_CORE.rglob("*.py"), *(ROOT / "app_pages").glob("*.py"), ROOT / "app.py"]
    long = {str(p.relative_to(ROOT)): n for p in modules
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_the_project_class_stays_small():
    tree = ast.parse((SEG_CORE / "store" / "project.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Project")
    assert cls.end_lineno - cls.lineno + 1 < MAX_PROJECT_CLASS_LINES


def test_the_layers_contract_holds():
    """pyproject.toml [tool.importlinter]: formats < store < ml < services < pages and cli; seg_core never imports
    streamlit or the pages."""
    out = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_what_the_pages_load_first_needs_no_tensorflow():
    code = ("import sys, seg_core\n"
            "from seg_core import Project, project_entries, jobs, planning, gallery, importing, exporting, splits, demo\n"
            "from seg_core.ml.config import PRESETS\n"
            "from seg_core.services import boxing, folding, pens, priors\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_the_assists_load_their_libraries_only_when_used():
    code = ("import sys\n"
            "from seg_core import assist\n"
            "print(*(m in sys.modules for m in ('cv2', 'sklearn', 'skimage', 'tensorflow')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"] * 4
