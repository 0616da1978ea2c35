"""scripts/setup.sh runs pip only when what it installs from has changed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tree(tmp_path: Path) -> Path:
    """A copy of the files setup.sh reads, with a .venv whose python only logs its arguments."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", repo / "scripts" / "setup.sh")
    for name in ("setup.cfg", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, repo / name)
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{repo}/calls.log"\n')
    fake.chmod(0o755)
    (bin_dir / "deepiso").write_text("#!/bin/sh\n")
    (bin_dir / "deepiso").chmod(0o755)
    return repo


def _pip_calls(repo: Path) -> list[str]:
    log = repo / "calls.log"
    calls = [c for c in log.read_text().splitlines() if "pip install" in c] if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def _setup(repo: Path) -> None:
    env = {**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.run(["bash", "scripts/setup.sh", "engine"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_setup_skips_pip_until_a_dependency_file_changes(tmp_path: Path) -> None:
    repo = _tree(tmp_path)
    _setup(repo)
    first = _pip_calls(repo)
    assert any("-c constraints.txt -e .[pyaudio,plot]" in c for c in first), first

    _setup(repo)
    assert _pip_calls(repo) == []  # nothing changed: no pip

    with (repo / "constraints.txt").open("a") as f:
        f.write("# changed\n")
    _setup(repo)
    assert any("-e .[pyaudio,plot]" in c for c in _pip_calls(repo))

    (repo / ".venv" / "bin" / "deepiso").unlink()  # a half-made environment installs again
    _setup(repo)
    assert _pip_calls(repo)
