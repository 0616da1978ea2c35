"""Training speed: optimiser steps per second and hours of audio per training hour.

For the report's ``seed`` configuration and the ``default`` one, times full
training steps (torch STFT features → model → contrastive loss [+ SI-SDR
through the iSTFT] → backward → Adam) on synthetic batches held in memory,
so the number is the model's cost, not the disk's. The batch is the
configured one after the report's AWGN (clean + 1 profile × 2 levels = 3×).
Writes ``benchmarks/results/train_speed.json``.

With ``--data`` it also measures what feeds those steps: training items per
second read from a corpus (``--corpus DIR``, or one generated: 16-bit FLAC
files as ``deepiso corpus build`` writes them) through the FLAC files and
through the corpus decoded once (``deepiso corpus cache``,
:mod:`deepiso.train.pcm_cache`), each with the files in the page cache (warm)
and, as root, after dropping it (cold).

    python -m benchmarks.train_speed [--seconds 20] [--batch 8] [--segment 4] [--device auto]
    python -m benchmarks.train_speed --data [--corpus /data/corpus] --configs
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


def _drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only); False when not allowed."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def _generated_corpus(folder: Path, minutes: float, rate: int) -> Path:
    """Voice and background FLAC files (16-bit, ``minutes`` of each in 20 s files) and their manifest."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    records = []
    for kind in ("voice", "background"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(max(1, int(minutes * 3))):
            path = folder / kind / f"{kind}_{i:03d}.flac"
            t = np.arange(20 * rate) / rate
            x = 0.1 * np.sin(2 * np.pi * (150 + 40 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t))
            x += 0.02 * rng.standard_normal(t.size)
            sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
            records.append({"path": str(path.relative_to(folder)), "kind": kind, "duration": 20.0, "split": "train",
                            "category": "speech" if kind == "voice" else "music", "source": f"generated-{kind}",
                            "license": "CC0"})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def measure_data(corpus: Path | None, seconds: float, segment: float, rate: int, minutes: float) -> dict:
    """Training items per second from the FLAC files and from the decoded corpus, warm and cold."""
    import tempfile

    from deepiso.train import datasets as ds
    from deepiso.train.pcm_cache import PcmCache, build_cache

    with tempfile.TemporaryDirectory(prefix="deepiso-data-speed-") as tmp:
        root = corpus or _generated_corpus(Path(tmp) / "corpus", minutes, rate)
        files = [f for f in ds.manifest_sources(root) if f.split == "train"]
        t0 = time.perf_counter()
        folder = build_cache([f.path for f in files], root, rate, 1, Path(tmp) / "cache")
        build_s = time.perf_counter() - t0
        pcm = PcmCache(folder, root)
        rows = {}
        for way, cache in (("flac", None), ("pcm_cache", pcm)):
            for temperature in ("warm", "cold"):
                if temperature == "cold" and not _drop_page_cache():
                    rows[f"{way}_{temperature}"] = {"skipped": "dropping the page cache needs root"}
                    continue
                mixer = ds.SourceMixDataset(files, rate=rate, samples=int(segment * rate), items=10**6, seed=1,
                                            pcm=cache)
                if temperature == "warm":
                    for i in range(20):
                        mixer[i]
                items, t0 = 0, time.perf_counter()
                cpu0 = time.process_time()
                while time.perf_counter() - t0 < seconds:
                    mixer[1000 + items]
                    items += 1
                wall = time.perf_counter() - t0
                rows[f"{way}_{temperature}"] = {"items_per_second": round(items / wall, 1),
                                                "cpu_share": round((time.process_time() - cpu0) / wall, 2)}
        hours = sum(f.duration for f in files) / 3600
        return {"corpus": str(corpus) if corpus else f"generated: {minutes:g} min of voice and of background",
                "hours": round(hours, 2), "rate": rate, "segment_seconds": segment, "timed_seconds": seconds,
                "cache_build_seconds": round(build_s, 1),
                "cache_bytes": (folder / "pcm16.bin").stat().st_size, "ways": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per configuration")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--segment", type=float, default=4.0, help="seconds of audio per item")
    p.add_argument("--device", default="auto")
    p.add_argument("--configs", nargs="*", default=["seed", "default"], help="networks whose steps to time")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--data", action="store_true", help="also time reading training items: FLAC vs the PCM cache")
    p.add_argument("--corpus", default=None, help="corpus to read for --data (default: a generated one)")
    p.add_argument("--corpus-minutes", type=float, default=20.0, help="minutes of each kind in a generated corpus")
    p.add_argument("--rate", type=int, default=44_100, help="mixing rate for --data")
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
    if args.data:
        data = measure_data(Path(args.corpus) if args.corpus else None, args.seconds, args.segment, args.rate,
                            args.corpus_minutes)
        result["data"] = data
        for way, row in data["ways"].items():
            print(f"{way:16s} " + (f"{row['items_per_second']:8.1f} items/s, CPU {row['cpu_share']:.2f}"
                                   if "items_per_second" in row else row["skipped"]))
    earlier = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    if not rows and earlier.get("results"):  # data only: the steps of the earlier run stay
        result.update({k: earlier[k] for k in ("device", "device_name", "threads", "torch", "results") if k in earlier})
    if not args.data and "data" in earlier:  # steps only: the data measurement of the earlier run stays
        result["data"] = earlier["data"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
