"""The DSP benchmark runs and writes the numbers docs/frame-contract.md quotes."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dsp_benchmark_writes_json(tmp_path):
    out = tmp_path / "dsp.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.dsp", "--hops", "200", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    data = json.loads(out.read_text())
    rows = {(r["n_fft"], r["hop"], r["channels"]): r for r in data["rows"]}
    assert set(rows) == {(1024, 256, 1), (1024, 256, 2), (512, 128, 1), (512, 128, 2)}
    for r in rows.values():
        assert 0 < r["deepiso"]["median_us"] <= r["deepiso"]["p99_us"] <= r["deepiso"]["max_us"]
        assert r["numpy_step"]["median_us"] > 0
