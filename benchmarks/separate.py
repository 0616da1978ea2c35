"""What ``deepiso separate`` costs and gives on stereo files: one estimate from the mid, or one per channel.

Three ways to run one model over a stereo mixture, each timed in CPU seconds
(process time, one thread for every library) per minute of stereo audio:

* ``mid`` — what ``deepiso separate`` does: the sequence graph once, over the
  mean of the channels; the estimate applied to each channel as a gain per bin
  (:class:`deepiso.realtime.separator.Separator`);
* ``per_channel`` — the sequence graph once per channel, each channel on its own;
* ``engine_per_channel`` — the live engine (``Host`` → ``Isolator``, the step
  graph, blocks of 4096), each channel on its own: how ``separate`` ran before
  the sequence graph.

Quality, on a stereo evaluation set (``--set`` saved by ``benchmarks.quality``,
or ``--corpus``; without either, a generated one): the median over items of
each channel's SI-SDR improvement and voice-free leakage against that channel's
true vocals (:mod:`deepiso.realtime.metrics`).

Writes ``benchmarks/results/separate.json``.

    python -m benchmarks.separate                      # generated stereo set, the default model
    python -m benchmarks.separate --set /tmp/evalset --model default --minutes 2
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import evalset  # noqa: E402
from deepiso.realtime.audio_io import resample  # noqa: E402
from deepiso.realtime.metrics import si_sdr_improvement, voice_free_leakage  # noqa: E402
from deepiso.realtime.separator import Separator  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "separate.json"
WAYS = ("mid", "per_channel", "engine_per_channel")


def run_way(separator: Separator, way: str, x: np.ndarray, rate: int) -> np.ndarray:
    """Vocals ``(samples, channels)`` of ``x`` ``(samples, channels)`` at ``rate``, the ``way`` asked."""
    if way == "mid":
        return separator.separate(x, rate).vocals
    if way == "per_channel":
        return np.stack([separator.separate(x[:, c], rate).vocals[:, 0] for c in range(x.shape[1])], axis=1)
    if way == "engine_per_channel":
        return separator.stream(x, rate, block=4096).vocals
    raise ValueError(f"unknown way {way!r}; choose one of {WAYS}")


def cpu_per_minute(separator: Separator, way: str, x: np.ndarray, rate: int, repeats: int) -> dict[str, float]:
    """CPU seconds of ``run_way`` per minute of ``x``: median and spread over ``repeats`` runs."""
    run_way(separator, way, x[: rate * 2], rate)  # first calls: sessions, kernels
    minutes = x.shape[0] / rate / 60
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        run_way(separator, way, x, rate)
        times.append((time.process_time() - t0) / minutes)
    return {"median_s": round(float(np.median(times)), 3), "min_s": round(float(np.min(times)), 3),
            "max_s": round(float(np.max(times)), 3)}


def score(separator: Separator, way: str, items: list[evalset.Item]) -> dict[str, Any]:
    """Median per-channel SI-SDR improvement and voice-free leakage of ``way`` over ``items``."""
    gains, leaks = [], []
    for item in items:
        x = np.ascontiguousarray(item.mixture.T)
        vocals = run_way(separator, way, x, item.rate)
        for c in range(x.shape[1]):
            gains.append(si_sdr_improvement(vocals[:, c], x[:, c], item.vocals[c]))
            leak = voice_free_leakage(vocals[:, c], x[:, c], item.vocals[c], item.rate)
            if leak is not None:
                leaks.append(leak)
    return {"si_sdri_db": round(float(np.median(gains)), 2),
            "voice_free_leakage_db": round(float(np.median(leaks)), 2) if leaks else None,
            "channels_scored": len(gains)}


def generated_items(rate: int, folder: Path, per_cell: int) -> list[evalset.Item]:
    evalset.make_synthetic_corpus(folder, splits=("valid",), files_per_kind=3, seconds=8.0, rate=rate, seed=7)
    return evalset.build_set(folder, split="valid", per_cell=per_cell, seconds=6.0, rate=rate, seed=11)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="shipped model name or .onnx file")
    p.add_argument("--set", default=None, help="evaluation set saved by benchmarks.quality --save-set")
    p.add_argument("--corpus", default=None, help="corpus to draw a stereo set from (its valid split)")
    p.add_argument("--per-cell", type=int, default=1, help="items per category and SNR of a drawn set")
    p.add_argument("--minutes", type=float, default=1.0, help="length of the timed stereo signal")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per way")
    p.add_argument("--out", default=str(RESULTS), help="result file")
    args = p.parse_args(argv)

    separator = Separator(args.model)
    rate = separator.rate
    with tempfile.TemporaryDirectory(prefix="deepiso-separate-") as tmp:
        if args.set:
            items = evalset.load_set(args.set)
        elif args.corpus:
            items = evalset.build_set(args.corpus, split="valid", per_cell=args.per_cell, seconds=8.0, rate=rate)
        else:
            items = generated_items(rate, Path(tmp), args.per_cell)
    items = [i for i in items if i.mixture.shape[0] == 2]
    for item in items:
        if item.rate != rate:
            item.mixture = resample(np.ascontiguousarray(item.mixture.T), item.rate, rate).T
            item.vocals = resample(np.ascontiguousarray(item.vocals.T), item.rate, rate).T
            item.rate = rate
    if not items:
        p.error("the set has no stereo items")
    # The timed signal: the set's mixtures end to end, repeated to the length asked.
    joined = np.concatenate([i.mixture.T for i in items])
    n = int(args.minutes * 60 * rate)
    timed = np.ascontiguousarray(np.resize(joined, (n, 2)), np.float32)

    rows = {}
    for way in WAYS:
        rows[way] = {"cpu_s_per_minute": cpu_per_minute(separator, way, timed, rate, args.repeats),
                     **score(separator, way, items)}
        print(f"{way:20s} {rows[way]['cpu_s_per_minute']['median_s']:6.2f} s CPU per minute of stereo   "
              f"SI-SDRi {rows[way]['si_sdri_db']:+.2f} dB   leakage {rows[way]['voice_free_leakage_db']} dB")
    result = {
        "benchmark": "separate",
        "model": repr(separator),
        "rate": rate,
        "set": args.set or args.corpus or "generated (benchmarks.evalset.make_synthetic_corpus, seed 7)",
        "items": len(items),
        "timed_minutes": args.minutes,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "units": {"cpu_s_per_minute": "CPU seconds (process time, one thread) per minute of stereo audio",
                  "si_sdri_db": "median over items and channels, dB",
                  "voice_free_leakage_db": "median over items and channels, dB (lower is better)"},
        "ways": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
