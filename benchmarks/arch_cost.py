"""Cost of each network architecture: weights, multiply-adds, the engine's step per hop, training throughput.

For the network each named training configuration trains (``train/configs/NAME.yaml``: ``default`` and
``bandfilter`` unless told otherwise; random weights, since cost does not depend on training):

* ``parameters``;
* multiply-adds (MACs) per frame, counted with forward hooks over the Linear / GRU / LSTM / Conv layers
  (rows × inputs × outputs; per recurrent step and layer, gates × (inputs + hidden) × hidden), on a one-frame
  call (what the engine's step graph runs each hop) and on a sequence (what training and files run), plus
  the matrix products outside those layers counted analytically (band pooling and spreading, the gains on
  the centre frame, the deep filter); element-wise operations and activations are not counted;
* frames per second of audio (rate / hop) and MACs per second of audio;
* the engine's streaming analysis and synthesis per hop (``deepiso.realtime.dsp``: windowed real FFT of
  ``n_fft``, the awareness ring, inverse FFT and overlap-add; one channel);
* the engine's cost per hop: the exported fp32 and int8 step graphs through
  ``deepiso.realtime.onnx_model.load_model(...).step`` (IOBinding, batch 1, one onnxruntime thread, the
  process pinned to one core), median and p99 in µs and as a share of the hop's duration;
* training throughput: forward, backward and Adam steps (the configuration's loss, batch size and segment
  length, random signals) with ``torch.set_num_threads(2)`` and again with one thread (what each of the
  recipes' two processes runs with), a fixed number of steps after warm-up, in hours of mixtures per
  CPU-hour (process CPU time) and per hour on the wall clock. Two threads on two shared cores wait for each
  other whenever another process holds a core: that measurement moves with the machine's load (recorded).

Writes ``benchmarks/results/arch_cost.json``.

    python -m benchmarks.arch_cost [--configs default bandfilter] [--frames 3000] [--train-steps 6]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from deepiso.export import export_model
from deepiso.export.verify import awareness_inputs, synthetic_signal
from deepiso.realtime import dsp
from deepiso.realtime.onnx_model import load_model
from deepiso.train.config import TrainConfig
from deepiso.train.features import Frontend
from deepiso.train.loop import resolve_model, run_batch
from deepiso.train.losses import LossWeights
from deepiso.train.model import architecture_of, build_model

from .step_speed import summary, time_iobinding

ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = ROOT / "train" / "configs"
RESULTS = Path(__file__).resolve().parent / "results" / "arch_cost.json"
SEQUENCE_FRAMES = 200
#: Torch threads of the training measurement: two (both cores), and one (each of the recipes' two processes)
TRAIN_THREADS = (2, 1)


# ----------------------------------------------------------------------------
# Multiply-adds


def layer_macs(net: nn.Module, x: torch.Tensor) -> int:
    """MACs of ``net``'s Linear, GRU, LSTM, RNN and Conv layers in ``net(x)``, counted with forward hooks."""
    total = 0

    def linear(m: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += inputs[0].numel() // m.in_features * m.in_features * m.out_features

    def recurrent(m: nn.RNNBase, inputs: tuple, output: Any) -> None:
        nonlocal total
        x = inputs[0]
        steps = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
        gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
        dirs = 2 if m.bidirectional else 1
        for layer in range(m.num_layers):
            width = m.input_size if layer == 0 else m.hidden_size * dirs
            total += steps * dirs * gates * (width + m.hidden_size) * m.hidden_size

    def conv(m: nn.modules.conv._ConvNd, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)

    hooks = []
    for m in net.modules():
        if isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        elif isinstance(m, nn.RNNBase):
            hooks.append(m.register_forward_hook(recurrent))
        elif isinstance(m, nn.modules.conv._ConvNd):
            hooks.append(m.register_forward_hook(conv))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return total


def fixed_macs(net: nn.Module) -> int:
    """MACs per frame of the matrix products in the graph outside weight layers."""
    own = getattr(net, "fixed_macs_per_frame", None)
    if own is not None:
        return int(own())
    spec, cfg = net.spec, net.cfg  # an IsolatorNet
    n, k = spec.n_bins, spec.context
    macs = k * n * cfg.bands if cfg.bands else 0  # band pooling of every context frame
    if cfg.deep_filter:
        macs += 2 * n + 4 * k * cfg.deep_filter  # the mask on the centre frame, the complex filter
    return macs


def macs_per_frame(net: nn.Module) -> dict[str, Any]:
    spec = net.spec
    x = torch.from_numpy(awareness_inputs(spec, synthetic_signal(spec, SEQUENCE_FRAMES, channels=1, seed=1)))
    step = layer_macs(net, x[:, :1])
    sequence = layer_macs(net, x) / x.shape[1]
    fixed = fixed_macs(net)
    return {"step": int(step + fixed), "sequence": round(sequence + fixed), "layers_step": int(step),
            "layers_sequence": round(sequence), "outside_layers": fixed}


# ----------------------------------------------------------------------------
# The engine's step


def step_costs(net: nn.Module, frames: int, tmp: Path, label: str) -> dict[str, Any]:
    spec = net.spec
    hop_us = 1e6 * spec.hop / spec.sample_rate
    x = awareness_inputs(spec, synthetic_signal(spec, 1000, channels=1, seed=3))
    out: dict[str, Any] = {}
    for precision in ("fp32", "int8"):
        path = tmp / f"{label}-{precision}.onnx"
        export_model(net, path, int8=precision == "int8")  # verified, or it raises
        model = load_model(path, batch=1, providers=["CPUExecutionProvider"])
        affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if affinity:
            os.sched_setaffinity(0, {sorted(affinity)[0]})  # one core, as the audio thread has
        try:
            t = summary(time_iobinding(model, x, frames))
        finally:
            if affinity:
                os.sched_setaffinity(0, affinity)
        out[precision] = {**t, "file_bytes": path.stat().st_size,
                          "share_of_hop_median": round(t["median_us"] / hop_us, 5),
                          "share_of_hop_p99": round(t["p99_us"] / hop_us, 5)}
    return out


def dsp_costs(spec: Any, frames: int) -> dict[str, Any]:
    """The engine's own work per hop around the model, one channel: streaming analysis (window, real FFT of
    ``n_fft``, the awareness ring) and synthesis (inverse FFT, overlap-add), median and p99 in µs."""
    analyzer, synthesizer = dsp.StreamAnalyzer(spec, 1), dsp.StreamSynthesizer(spec, 1)
    signal = synthetic_signal(spec, 200, channels=1, seed=4).T.copy()  # (samples, 1)
    fifo = np.zeros((1, 2 * spec.n_fft), np.float32)
    clock = time.perf_counter_ns
    pos, times = 0, []
    while len(times) < frames + 100:
        need = analyzer.need()
        if pos + need > signal.shape[0]:
            pos = 0
        t0 = clock()
        if analyzer.write(signal, pos, need):
            synthesizer.synthesize(analyzer.center_features(), fifo, 0)
            times.append(clock() - t0)
        pos += need
    us = np.asarray(times[100:]) / 1000.0  # the first calls compile and fill caches
    return {"median_us": round(float(np.median(us)), 2), "p99_us": round(float(np.percentile(us, 99)), 2)}


# ----------------------------------------------------------------------------
# Training throughput


def training_throughput(net: nn.Module, cfg: TrainConfig, steps: int, warmup: int, threads: int) -> dict[str, Any]:
    spec = net.spec
    net = net.train()
    frontend = Frontend(spec)
    weights = LossWeights(**vars(cfg.loss))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr)
    batch, seconds = cfg.optim.batch_size, cfg.data.segment_seconds
    n = int(round(seconds * spec.sample_rate))
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(2):
        voc = 0.1 * torch.randn(batch, cfg.data.channels, n, generator=gen)
        acc = 0.1 * torch.randn(batch, cfg.data.channels, n, generator=gen)
        batches.append({"mixture": voc + acc, "vocals": voc})

    def step(i: int) -> float:
        out = run_batch(net, net, frontend, batches[i % len(batches)], weights, need_waves=False)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip)
        opt.step()
        return float(out.loss.detach())

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for i in range(warmup):
            step(i)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        losses = [step(i) for i in range(steps)]
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        torch.set_num_threads(before)
    audio_h = steps * batch * cfg.data.channels * seconds / 3600.0
    return {"threads": threads, "batch": batch, "segment_seconds": seconds,
            "frames_per_item": n // spec.hop, "warmup_steps": warmup, "steps": steps,
            "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "seconds_per_step": round(wall / steps, 3),
            "mixture_hours_per_cpu_hour": round(audio_h / (cpu / 3600.0), 2),
            "mixture_hours_per_wall_hour": round(audio_h / (wall / 3600.0), 2),
            "loss": {k: v for k, v in vars(cfg.loss).items() if v}, "finite": all(map(math.isfinite, losses)),
            "load_average_1min_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


# ----------------------------------------------------------------------------


def measure(name: str, frames: int, train_steps: int, warmup: int, tmp: Path) -> dict[str, Any]:
    path = CONFIGS_DIR / f"{name}.yaml"
    cfg = TrainConfig.load(path)
    spec, mcfg = resolve_model(cfg)
    torch.manual_seed(0)
    net = build_model(spec, mcfg).eval()
    df = getattr(net, "df_head", None)
    if df is not None:  # random weights everywhere: a filter at its initial zeros would cost nothing in int8
        with torch.no_grad():
            nn.init.normal_(df.weight, std=0.02)
    fps = spec.sample_rate / spec.hop
    macs = macs_per_frame(net)
    row: dict[str, Any] = {
        "name": name, "config_file": str(path.relative_to(ROOT)), "architecture": architecture_of(mcfg),
        "frame": {"sample_rate": spec.sample_rate, "n_fft": spec.n_fft, "hop": spec.hop,
                  "hop_ms": round(1000 * spec.hop / spec.sample_rate, 3), "context": spec.context,
                  "latency_ms": round(spec.latency_ms(spec.hop), 2), "output": spec.output},
        "parameters": net.num_parameters(),
        "macs_per_frame": macs,
        "frames_per_second": round(fps, 3),
        "macs_per_second": {"step": round(macs["step"] * fps), "sequence": round(macs["sequence"] * fps)},
        "hop_us": round(1e6 * spec.hop / spec.sample_rate, 1),
    }
    row["engine_dsp"] = dsp_costs(spec, frames)
    row["engine_step"] = step_costs(net, frames, tmp, name)
    row["training"] = [training_throughput(build_model(spec, mcfg), cfg, train_steps, warmup, threads)
                       for threads in TRAIN_THREADS]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["default", "bandfilter"],
                        help="training configurations in train/configs (without .yaml)")
    parser.add_argument("--frames", type=int, default=3000, help="timed step calls per graph")
    parser.add_argument("--train-steps", type=int, default=6, help="timed training steps per network")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="deepiso-arch-") as tmp:
        for name in args.configs:
            row = measure(name, args.frames, args.train_steps, args.warmup_steps, Path(tmp))
            rows.append(row)
            s, t = row["engine_step"], row["training"][0]
            print(f"{name:11s} {row['parameters']:>9,d} params  {row['macs_per_frame']['step'] / 1e6:6.2f} MMAC/frame "
                  f"(sequence {row['macs_per_frame']['sequence'] / 1e6:.2f})  "
                  f"{row['macs_per_second']['step'] / 1e9:.3f} GMAC/s  step fp32 {s['fp32']['median_us']:.0f} µs "
                  f"(p99 {s['fp32']['p99_us']:.0f}), int8 {s['int8']['median_us']:.0f} µs "
                  f"(p99 {s['int8']['p99_us']:.0f}) of {row['hop_us']:.0f} µs  "
                  f"train {t['mixture_hours_per_cpu_hour']:.2f} h/CPU-h ({t['threads']} threads), "
                  f"{row['training'][1]['mixture_hours_per_cpu_hour']:.2f} ({row['training'][1]['threads']})")
    result = {
        "benchmark": "architecture cost: parameters, MACs, engine step per hop, training throughput; random weights",
        "command": "python -m benchmarks.arch_cost " + " ".join(
            [f"--configs {' '.join(args.configs)}", f"--frames {args.frames}",
             f"--train-steps {args.train_steps}", f"--warmup-steps {args.warmup_steps}"]),
        "macs_method": "forward hooks over Linear/GRU/LSTM/Conv layers on a one-frame call ('step', the engine's "
                       f"step graph per hop) and on a {SEQUENCE_FRAMES}-frame sequence ('sequence', per frame); "
                       "plus matrix products outside those layers counted analytically ('outside_layers': band "
                       "pooling and spreading, the gains on the centre frame, the deep filter); element-wise "
                       "operations not counted",
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version(), "onnxruntime": ort.__version__, "torch": torch.__version__,
                    "load_average_1min": {"before": load_before,
                                          "after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}},
        "networks": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
