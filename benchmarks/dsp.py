"""Streaming DSP cost per hop: analysis + synthesis, on one core.

Measures ``SpectralStream.process`` with one hop per call and the identity
frame function (so the number is pure DSP: FIFOs, window, FFT, awareness
ring, inverse FFT, overlap-add), against a plain-numpy step doing the same
work, in the same run. Writes ``benchmarks/results/dsp.json``.

    python -m benchmarks.dsp [--hops 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from deepiso.realtime import dsp, windows
from deepiso.realtime.frame import FrameSpec

RESULTS = Path(__file__).resolve().parent / "results" / "dsp.json"


class NumpyStep:
    """The same hop as SpectralStream, written the obvious way in numpy (the reference peer)."""

    def __init__(self, spec: FrameSpec, channels: int) -> None:
        self.spec = spec
        self.win = windows.analysis_window(spec.window, spec.n_fft)
        self.swin = windows.synthesis_window(spec.window, spec.n_fft, spec.hop)
        self.inbuf = np.zeros((channels, spec.n_fft), np.float32)
        self.ctx = np.zeros((channels, spec.context, spec.feature_size), np.float32)
        self.acc = np.zeros((channels, spec.n_fft), np.float32)

    def process(self, block: np.ndarray, out: np.ndarray) -> None:
        hop, bins = self.spec.hop, self.spec.n_bins
        self.inbuf = np.roll(self.inbuf, -hop, axis=1)
        self.inbuf[:, -hop:] = block.T
        spec = np.fft.rfft(self.inbuf * self.win, axis=1)
        self.ctx = np.roll(self.ctx, -1, axis=1)
        self.ctx[:, -1, :bins] = spec.real
        self.ctx[:, -1, bins:] = spec.imag
        centre = self.ctx[:, self.spec.past_frames]
        frame = np.fft.irfft(centre[:, :bins] + 1j * centre[:, bins:], n=self.spec.n_fft, axis=1)
        self.acc += frame * self.swin
        out[:] = self.acc[:, :hop].T
        self.acc = np.roll(self.acc, -hop, axis=1)
        self.acc[:, -hop:] = 0.0


def time_hops(proc, spec: FrameSpec, channels: int, hops: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((hops + 200, spec.hop, channels))).astype(np.float32)
    out = np.zeros((spec.hop, channels), np.float32)
    for i in range(200):  # warm up (JIT, caches)
        proc.process(x[i], out)
    times = np.empty(hops)
    clock = time.perf_counter_ns
    for i in range(hops):
        t0 = clock()
        proc.process(x[200 + i], out)
        times[i] = clock() - t0
    return times / 1000.0  # µs


def summary(us: np.ndarray, hop_period_us: float) -> dict:
    return {
        "median_us": round(float(np.median(us)), 2),
        "p99_us": round(float(np.percentile(us, 99)), 2),
        "max_us": round(float(us.max()), 2),
        "mean_us": round(float(us.mean()), 2),
        "fraction_of_hop_period_p99": round(float(np.percentile(us, 99)) / hop_period_us, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    rows = []
    for n_fft, hop in [(1024, 256), (512, 128)]:
        for channels in (1, 2):
            spec = FrameSpec(sample_rate=44_100, n_fft=n_fft, hop=hop, past_frames=4, future_frames=0)
            period = 1e6 * hop / spec.sample_rate
            ours = summary(time_hops(dsp.SpectralStream(spec, channels, block_size=hop), spec, channels, args.hops),
                           period)
            peer = summary(time_hops(NumpyStep(spec, channels), spec, channels, args.hops // 4), period)
            rows.append({
                "n_fft": n_fft, "hop": hop, "channels": channels, "hop_period_us": round(period, 1),
                "deepiso": ours, "numpy_step": peer,
                "speedup_median": round(peer["median_us"] / ours["median_us"], 2),
            })
            print(f"n_fft {n_fft:5d} hop {hop:4d} ch {channels}: deepiso median {ours['median_us']:7.2f} µs "
                  f"p99 {ours['p99_us']:7.2f} µs | numpy step median {peer['median_us']:7.2f} µs "
                  f"p99 {peer['p99_us']:7.2f} µs | x{rows[-1]['speedup_median']}")

    result = {
        "benchmark": "dsp: analysis + synthesis per hop (identity frame), one core",
        "command": "python -m benchmarks.dsp",
        "hops": args.hops,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_used": 1,
                    "python": platform.python_version(), "numpy": np.__version__},
        "target": "<= 30 µs median per hop at 1024/256 (mono)",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
