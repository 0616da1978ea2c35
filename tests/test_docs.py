"""The documents a newcomer reads: the README stays short, the site builds, no link is dead."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# The README's only set-up commands: one sets up and runs the main job, one sets up and tests.
SETUP_COMMANDS = ["bash scripts/run.sh", "bash scripts/test.sh"]
# A line that installs or sets something up, wherever it appears in the README.
SETUP_LIKE = re.compile(r"\b(scripts/(run|test|setup)\.sh|pip3? install|apt(-get)? install|python3? -m venv)\b")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _code_lines(text: str) -> list[str]:
    """The lines inside fenced code blocks, stripped, comments cut off."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line.split("#", 1)[0].strip())
    return [ln for ln in lines if ln]


def _relative_links(path: Path) -> list[str]:
    """Targets of markdown links in ``path`` that are neither URLs nor in-page anchors."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code is not linked
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target)
    return targets


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_has_exactly_the_two_setup_commands() -> None:
    text = README.read_text()
    setup_in_code = [ln for ln in _code_lines(text) if SETUP_LIKE.search(ln)]
    assert setup_in_code == SETUP_COMMANDS
    # Nowhere else (prose, inline code) does the README name another way to set up.
    others = {m.group(0) for m in SETUP_LIKE.finditer(text)} - {"scripts/run.sh", "scripts/test.sh"}
    assert not others, others


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_point_to_files(page: Path) -> None:
    assert page.exists()
    missing = []
    for target in _relative_links(page):
        file_part = target.split("#", 1)[0]
        if file_part and not (page.parent / file_part).resolve().exists():
            missing.append(target)
    assert not missing, f"{page.relative_to(ROOT)}: dead links {missing}"


def test_link_check_sees_a_dead_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("[a](missing.md) [b](https://example.org) [c](#here) `[d](nope.md)`\n")
    assert _relative_links(page) == ["missing.md"]


def test_docs_build_strict(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "glossary" / "index.html").exists()


def test_every_docs_page_is_in_the_site_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(p.name for p in DOCS.glob("*.md"))
    assert pages and all(f" {p}" in nav for p in pages), [p for p in pages if f" {p}" not in nav]


def test_every_result_file_the_documents_name_exists() -> None:
    pages = [README, ROOT / "realtime" / "models" / "README.md", *sorted(DOCS.glob("*.md"))]
    named = {m for p in pages for m in re.findall(r"benchmarks/results/[\w./-]+\.json", p.read_text())}
    assert named, "the documents name no result file"
    assert not [n for n in sorted(named) if not (ROOT / n).exists()]
