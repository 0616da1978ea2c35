"""The engine installs and imports without PyTorch; the code is lint-clean; the CLI answers."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = """
import sys, importlib, pkgutil
sys.modules['torch'] = None  # any 'import torch' now raises ImportError
import deepiso.realtime as rt
names = [m.name for m in pkgutil.walk_packages(rt.__path__, 'deepiso.realtime.')]
for name in names:
    importlib.import_module(name)
assert 'torch' not in sys.modules or sys.modules['torch'] is None
print('imported', len(names) + 1, 'modules')
"""


def test_realtime_imports_without_torch():
    out = subprocess.run([sys.executable, "-c", BLOCK_TORCH], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stdout


def test_blocking_torch_really_blocks_it():
    # guards the test above: the same trick must make a torch import fail
    out = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None; import torch"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "import of torch halted" in out.stderr


def test_ruff_is_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cli_version_and_latency():
    out = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("deepiso ")
    out = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "latency", "--blocksize", "256"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "768 samples" in out.stdout
    out = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "latency", "--hop", "4096"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "larger than n_fft" in out.stderr
