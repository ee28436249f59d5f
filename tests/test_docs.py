"""The docs: the site builds strictly (a broken link, anchor or page fails it), the command-line page lists every
command the parser has, the README stays a short front page, and relative links in the Markdown lead to files."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

README_MAX_LINES = 150
# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}\n{result.stdout}"
    return out


def subcommand_names(parser: argparse.ArgumentParser) -> list[str]:
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                names.append(name)
                names += [f"{name} {child}" for child in subcommand_names(sub)]
    return names


def test_the_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "performance" / "index.html").is_file()


def test_the_command_line_page_lists_every_subcommand(site):
    from seg_core.cli import build_parser

    parser = build_parser()
    names = subcommand_names(parser)
    assert names, "build_parser() has no subcommands"
    page = (site / "cli" / "index.html").read_text()
    missing = [name for name in names if f"{parser.prog} {name}" not in page]
    assert missing == []


def test_the_readme_is_a_short_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(path: Path):
    text = CODE.sub("", path.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor on the same page
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            broken.append(target)
    assert broken == []
