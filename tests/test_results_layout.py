"""Benchmark results are data: one current file per benchmark, one folder per release, pictures made from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import plots

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def test_results_are_current_files_or_release_folders() -> None:
    for path in RESULTS.iterdir():
        if path.is_dir():
            assert VERSION.match(path.name), f"{path.name}: a results folder is named by a release version"
            names = [p.name for p in path.iterdir() if p.suffix != ".png"]
            assert names and all(n.endswith(".json") and not re.search(r"\d+\.\d+\.\d+", n) for n in names), names
        elif path.suffix != ".png":  # pictures are drawn locally and ignored by git
            assert path.suffix == ".json" and not re.search(r"_\d+\.\d+\.\d+", path.name), path.name
    for path in RESULTS.rglob("*.json"):
        json.loads(path.read_text())  # every result parses


def test_plots_draws_a_box_plot_from_a_result(tmp_path: Path) -> None:
    source = RESULTS / "0.8.0" / "quality.json"
    written = plots.main([str(source), "--out-dir", str(tmp_path)])
    assert written == [tmp_path / "quality_sisdri.png"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.quality_results(RESULTS)[0].parent == RESULTS  # current files first, then releases


def test_plots_refuses_a_file_that_is_not_a_quality_result(tmp_path: Path) -> None:
    other = tmp_path / "dsp.json"
    other.write_text(json.dumps({"benchmark": "dsp", "rows": []}))
    with pytest.raises(SystemExit, match="not a quality benchmark result"):
        plots.main([str(other), "--out-dir", str(tmp_path)])
