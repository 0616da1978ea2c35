"""Training speed: optimiser steps per second and hours of audio per training hour.

For the report's ``seed`` configuration and the ``default`` one, times full
training steps (torch STFT features → model → contrastive loss [+ SI-SDR
through the iSTFT] → backward → Adam) on synthetic batches held in memory,
so the number is the model's cost, not the disk's. The batch is the
configured one after the report's AWGN (clean + 1 profile × 2 levels = 3×).
Writes ``benchmarks/results/train_speed.json``.

    python -m benchmarks.train_speed [--seconds 20] [--batch 8] [--segment 4] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from deepiso.train.augment import AWGN
from deepiso.train.features import Frontend
from deepiso.train.loop import run_batch
from deepiso.train.losses import LossWeights
from deepiso.train.model import build_model, get_config

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.json"


def measure(name: str, seconds: float, batch: int, segment: float, device: torch.device,
            weights: LossWeights) -> dict:
    spec, cfg = get_config(name)
    torch.manual_seed(0)
    net = build_model(spec, cfg).to(device).train()
    frontend = Frontend(spec).to(device)
    awgn = AWGN(1, [20.0, 10.0]).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    n = int(segment * spec.sample_rate)
    gen = torch.Generator(device=device).manual_seed(0)
    voc = 0.1 * torch.randn(batch, 1, n, device=device, generator=gen)
    acc = 0.1 * torch.randn(batch, 1, n, device=device, generator=gen)
    data = {"mixture": voc + acc, "vocals": voc}

    def step() -> None:
        b = awgn(data, gen)
        out = run_batch(net, net, frontend, b, weights, need_waves=False)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    step()  # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 3:
        step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    steps_per_s = steps / elapsed
    audio_per_step = batch * segment  # seconds of source audio (before AWGN copies)
    return {"config": name, "parameters": net.num_parameters(), "batch": batch, "segment_seconds": segment,
            "awgn_copies": awgn.copies, "frames_per_step": batch * awgn.copies * (n // spec.hop),
            "steps": steps, "seconds": round(elapsed, 2), "steps_per_second": round(steps_per_s, 3),
            "audio_hours_per_training_hour": round(steps_per_s * audio_per_step, 2),
            "loss": {"contrastive": weights.contrastive, "si_sdr": weights.si_sdr}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per configuration")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--segment", type=float, default=4.0, help="seconds of audio per item")
    p.add_argument("--device", default="auto")
    p.add_argument("--configs", nargs="+", default=["seed", "default"])
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for name in args.configs:
        for w in (LossWeights(), LossWeights(si_sdr=0.1)):
            row = measure(name, args.seconds, args.batch, args.segment, device, w)
            rows.append(row)
            print(f"{name:8s} si_sdr={w.si_sdr:<4} {row['steps_per_second']:7.3f} steps/s  "
                  f"{row['audio_hours_per_training_hour']:8.2f} h of audio per training hour")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    result = {"benchmark": "train_speed", "device": str(device), "device_name": device_name,
              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
              "results": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
