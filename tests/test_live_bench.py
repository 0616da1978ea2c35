"""The live benchmark's delay reading, on signals whose delay is known."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.live import RATE, delays

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, inp: np.ndarray, out: np.ndarray) -> Path:
    np.stack([inp, out], axis=1).astype(np.float32).tofile(path)
    return path


def test_delays_reads_the_lag_window_by_window(tmp_path):
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(6 * RATE)
    lag = [1488] * 3 + [2400] * 3  # 31 ms, then 50 ms: a delay that grew
    y = np.zeros_like(x)
    for k in range(6):
        a, b = k * RATE, (k + 1) * RATE
        y[a:b] = np.roll(x, lag[k])[a:b]
    got = delays(_write(tmp_path / "r.raw", x, y))
    assert got[:2] == [31.0, 31.0] and got[-2:] == [50.0, 50.0]


def test_silent_windows_have_no_delay(tmp_path):
    x = np.zeros(4 * RATE)
    assert set(delays(_write(tmp_path / "s.raw", x, x))) == {None}


@pytest.mark.parametrize("args, message", [
    (["--servers", "jack"], "unknown server 'jack'"),
    (["--soak-seconds", "-1"], "must be >= 0"),
    (["--stops", "-1"], "must be >= 0"),
])
def test_bad_arguments_are_refused(args, message):
    r = subprocess.run([sys.executable, "-m", "benchmarks.live", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and message in r.stderr
