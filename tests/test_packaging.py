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
    out = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "latency", "--blocksize", "256",
                          "--synthesis-length", "512", "--future", "1"], capture_output=True, text=True)
    assert out.returncode == 0 and "512 samples = 11.61 ms" in out.stdout
    out = subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "latency", "--hop", "4096"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "larger than n_fft" in out.stderr


def test_wheel_carries_the_models_cards_assets_and_recipes(tmp_path):
    import shutil
    import zipfile

    # the wheel a plain `pip install .` builds: everything `deepiso demo` and `deepiso train` read must be in it
    # (built from a copy, so setuptools' build/ folder never lands in the working tree)
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", ".ruff_cache", "runs"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = tmp_path.glob("deepiso-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("deepiso/realtime/models/default.onnx", "deepiso/realtime/models/default.seq.onnx",
                   "deepiso/realtime/models/registry.json", "deepiso/realtime/models/README.md",
                   "deepiso/realtime/assets/demo_voice.ogg", "deepiso/realtime/assets/demo_background.ogg",
                   "deepiso/realtime/assets/DEMO_SOURCES.md", "deepiso/train/configs/default.yaml",
                   "deepiso/train/configs/seed.yaml", "deepiso/export/__init__.py",
                   "deepiso/testing/pulse_server.py"):
        assert needed in names, needed
