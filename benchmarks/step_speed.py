"""Model cost per frame on one thread: the engine's IOBinding step vs a plain ``session.run``.

For each named configuration (random weights: speed does not depend on
training) exports fp32 and int8 graphs, loads them with
:func:`deepiso.realtime.onnx_model.load_model` (one intra-op thread, CPU) and
times, per frame, with batch 1:

* ``iobinding``: ``StepModel.step`` (preallocated buffers, no allocation);
* ``session_run``: ``session.run`` with numpy inputs and the state carried
  by hand (allocates its outputs every call);
* ``sequence``: the sequence graph over 1000-frame chunks, per frame (offline files).

Writes ``benchmarks/results/step_speed.json``.

    python -m benchmarks.step_speed [--frames 5000] [--configs seed default tiny-test]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from deepiso.export import export_model
from deepiso.export.verify import awareness_inputs, synthetic_signal
from deepiso.realtime.onnx_model import OUTPUT_NAMES, load_model
from deepiso.train.model import build_named

RESULTS = Path(__file__).resolve().parent / "results" / "step_speed.json"
WARMUP = 200


def summary(us: np.ndarray) -> dict:
    return {"median_us": round(float(np.median(us)), 2), "p99_us": round(float(np.percentile(us, 99)), 2),
            "mean_us": round(float(us.mean()), 2)}


def time_iobinding(model, x: np.ndarray, frames: int) -> np.ndarray:
    clock = time.perf_counter_ns
    n = x.shape[1]
    for i in range(WARMUP):
        model.step(x[:, i % n])
    times = np.empty(frames)
    for i in range(frames):
        frame = x[:, i % n]
        t0 = clock()
        model.step(frame)
        times[i] = clock() - t0
    return times / 1000.0


def time_session_run(model, x: np.ndarray, frames: int) -> np.ndarray:
    session, names = model.session, list(OUTPUT_NAMES)
    h = np.zeros((model.layers, 1, model.hidden), np.float32)
    c = np.zeros_like(h)
    clock = time.perf_counter_ns
    n = x.shape[1]
    for i in range(WARMUP):
        _, h, c = session.run(names, {"features": x[:, i % n], "h": h, "c": c})
    times = np.empty(frames)
    for i in range(frames):
        frame = x[:, i % n]
        t0 = clock()
        _, h, c = session.run(names, {"features": frame, "h": h, "c": c})
        times[i] = clock() - t0
    return times / 1000.0


def time_sequence(model, x: np.ndarray, chunk: int = 1000, repeats: int = 3) -> float:
    xs = np.ascontiguousarray(x[:, :chunk])
    model.run_sequence(xs)  # warm up (and load the sequence graph)
    best = float("inf")
    for _ in range(repeats):
        model.reset()
        t0 = time.perf_counter_ns()
        model.run_sequence(xs)
        best = min(best, (time.perf_counter_ns() - t0) / 1000.0 / xs.shape[1])
    return round(best, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--configs", nargs="+", default=["seed", "default", "tiny-test"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    torch.set_num_threads(1)

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="deepiso-bench-") as tmp:
        for name in args.configs:
            torch.manual_seed(0)
            net = build_named(name)
            spec = net.spec
            x = awareness_inputs(spec, synthetic_signal(spec, 1000, channels=1, seed=3))
            period = 1e6 * spec.hop / spec.sample_rate
            for precision in ("fp32", "int8"):
                path = Path(tmp) / f"{name}-{precision}.onnx"
                export_model(net, path, int8=precision == "int8")
                model = load_model(path, batch=1, providers=["CPUExecutionProvider"])
                bound = summary(time_iobinding(model, x, args.frames))
                plain = summary(time_session_run(model, x, args.frames))
                row = {
                    "config": name, "precision": precision, "parameters": net.num_parameters(),
                    "file_bytes": path.stat().st_size, "hop_period_us": round(period, 1),
                    "iobinding": bound, "session_run": plain,
                    "iobinding_speedup_median": round(plain["median_us"] / bound["median_us"], 2),
                    "sequence_us_per_frame": time_sequence(model, x),
                    "real_time_fraction_p99": round(bound["p99_us"] / period, 4),
                }
                rows.append(row)
                print(f"{name:9s} {precision}: step median {bound['median_us']:8.1f} µs p99 {bound['p99_us']:8.1f} µs"
                      f" | session.run median {plain['median_us']:8.1f} µs p99 {plain['p99_us']:8.1f} µs"
                      f" | x{row['iobinding_speedup_median']} | sequence {row['sequence_us_per_frame']:7.1f} µs/frame"
                      f" | hop period {period:.0f} µs")

    result = {
        "benchmark": "model step per frame, batch 1, one onnxruntime thread, CPU, random weights",
        "command": "python -m benchmarks.step_speed",
        "frames": args.frames,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_used": 1,
                    "python": platform.python_version(), "onnxruntime": ort.__version__,
                    "torch": torch.__version__,
                    # p99 is sensitive to other processes on the machine; medians much less so
                    "load_average_1min": {"before": load_before,
                                          "after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
