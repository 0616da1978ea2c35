"""Render the quality benchmark's pictures from its JSON results.

Pictures are made, not committed: each quality result
(``benchmarks/results/quality*.json`` and ``benchmarks/results/<version>/quality*.json``)
holds one row per item and system, and this draws its box plot of SI-SDR
improvement per system beside it, as ``<name>_sisdri.png`` (and, for items
with no voice, of the output's level against the input, ``<name>_level.png``). The per-clip
waveform view needs the audio, so only a run of ``benchmarks/quality.py``
draws it (``--clips N``).

    python -m benchmarks.plots                      # every quality result
    python -m benchmarks.plots benchmarks/results/0.8.0/quality.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

RESULTS = Path(__file__).resolve().parent / "results"


def quality_results(root: Path = RESULTS) -> list[Path]:
    """Every quality result under ``root``: the current files, then each release's."""
    return sorted(root.glob("quality*.json")) + sorted(root.glob("*/quality*.json"))


def render(path: Path, out_dir: Path | None = None) -> list[Path]:
    """Draw ``path``'s box plots; returns the PNGs' paths (beside the JSON unless ``out_dir``)."""
    from benchmarks.quality import plot_boxes

    result = json.loads(path.read_text())
    if "rows" not in result or "systems" not in result:
        raise ValueError(f"{path}: not a quality benchmark result (no rows or systems)")
    systems = [SimpleNamespace(name=s["name"], label=s.get("label") or s["name"], kind=s.get("kind", ""))
               for s in result["systems"]]
    rows, folder = result["rows"], out_dir or path.parent
    drawn = []
    if any(r.get("si_sdri") is not None for r in rows) or not any(r.get("level_db") is not None for r in rows):
        drawn.append(plot_boxes(rows, systems, folder / f"{path.stem}_sisdri.png"))
    if any(r.get("level_db") is not None for r in rows):
        drawn.append(plot_boxes(rows, systems, folder / f"{path.stem}_level.png", "level_db"))
    return drawn


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("results", nargs="*", type=Path,
                        help="quality result files (default: every one under benchmarks/results)")
    parser.add_argument("--out-dir", type=Path, default=None, help="write the PNGs here instead of beside each JSON")
    args = parser.parse_args(argv)
    paths = args.results or quality_results()
    if not paths:
        raise SystemExit("error: no quality results found")
    written = []
    for p in paths:
        try:
            drawn = render(p, args.out_dir)
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"error: {exc}") from None
        for picture in drawn:
            print(f"wrote {picture}")
        written += drawn
    return written


if __name__ == "__main__":
    main()
