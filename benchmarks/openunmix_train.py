"""Train Open-Unmix's architecture on our corpus, with our data and our budget, for the quality benchmark.

No pretrained Open-Unmix weights can be had here, and weights trained on
MUSDB18 would not answer the benchmark's question anyway. This trains the
upstream model class (``openunmix.model.OpenUnmix``, loaded by
:func:`peers.import_openunmix_model`) with upstream's recipe on exactly the
items our own training draws:

* data: the ``data`` section of a deepiso training configuration (by default
  ``train/configs/default.yaml``) through :func:`deepiso.train.loop.build_datasets`,
  so the voices, backgrounds, SNRs, levels, loopback and the train/valid split
  are ours, item for item (same seed, same epoch/index → same mixture);
* model: upstream's defaults (n_fft 4096, hop 1024, hidden 512, 3 LSTM
  layers, bidirectional, bandwidth 16 kHz), mono (our corpus is mono);
* recipe: upstream's ``train.py``: input mean/scale from the training
  mixtures' magnitudes, MSE on magnitude spectrograms, Adam (lr 1e-3, weight
  decay 1e-5), gradient clipping none;
* budget: ``--steps`` optimiser steps of ``optim.batch_size`` items of
  ``data.segment_seconds`` (the same unit as our training), with the CPU
  seconds spent recorded beside it.

Resumable: ``DIR/last.pt`` (weights, optimiser, step) is written atomically
every ``--checkpoint-every`` steps; running the same command again goes on
from there. The result is ``DIR/vocals.pth`` + ``DIR/vocals.json`` (upstream's
layout, read by ``quality.py --openunmix DIR``), with the budget, the data
summary and the validation loss in the JSON.

    python -m benchmarks.openunmix_train --set data.root=/work/data/corpus --out runs/umx --steps 2000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import peers

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "train" / "configs" / "default.yaml"

#: Upstream's defaults (open-unmix-pytorch scripts/train.py), mono.
UPSTREAM = {"nfft": 4096, "nhop": 1024, "hidden_size": 512, "nb_layers": 3, "bandwidth": 16_000.0,
            "lr": 1e-3, "weight_decay": 1e-5, "unidirectional": False}


def bandwidth_to_max_bin(rate: float, n_fft: int, bandwidth: float) -> int:
    """Upstream's ``utils.bandwidth_to_max_bin``: bins up to ``bandwidth`` Hz (inclusive)."""
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs <= bandwidth)[0])) + 1


class Spectrogram:
    """Magnitude STFT ``(B, 1, bins, frames)`` of ``(B, 1, samples)``, as upstream's encoder (torch STFT, hann)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        import torch

        self.n_fft, self.hop = n_fft, hop
        self.window = torch.hann_window(n_fft)

    def __call__(self, x):
        import torch

        b, c, n = x.shape
        spec = torch.stft(x.reshape(b * c, n), self.n_fft, self.hop, window=self.window, center=True,
                          normalized=False, onesided=True, pad_mode="reflect", return_complex=True)
        return spec.abs().reshape(b, c, spec.shape[-2], spec.shape[-1])


def _batches(dataset, indices: list[int]):
    import torch

    items = [dataset[i] for i in indices]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def input_statistics(dataset, spectrogram: Spectrogram, items: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard deviation of the training mixtures' magnitudes (upstream's ``get_statistics``)."""
    total = total_sq = None
    frames = 0
    for start in range(0, items, 8):
        batch = _batches(dataset, list(range(start, min(items, start + 8))))
        mag = spectrogram(batch["mixture"].mean(1, keepdim=True)).double()  # (B, 1, bins, T)
        s = mag.sum(dim=(0, 1, 3)).numpy()
        s2 = (mag**2).sum(dim=(0, 1, 3)).numpy()
        total = s if total is None else total + s
        total_sq = s2 if total_sq is None else total_sq + s2
        frames += mag.shape[0] * mag.shape[-1]
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-4).astype(np.float32)


def _save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from deepiso.train.config import TrainConfig
    from deepiso.train.loop import build_datasets, derive_seed, resolve_model

    torch.set_num_threads(args.threads)
    cfg = TrainConfig.load(args.config).with_overrides(args.overrides)
    spec, _ = resolve_model(cfg)  # the sample rate and segment length of our training
    train_ds, valid_ds, summary = build_datasets(cfg, spec)
    rate = spec.sample_rate
    umx = peers.import_openunmix_model()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spectrogram = Spectrogram(args.nfft, args.nhop)
    max_bin = bandwidth_to_max_bin(rate, args.nfft, args.bandwidth)
    batch_size = cfg.optim.batch_size

    last = out / "last.pt"
    torch.manual_seed(derive_seed(cfg.seed, "openunmix-init"))
    if last.exists():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        mean, std = ckpt["input_mean"], ckpt["input_std"]
    else:
        ckpt = None
        train_ds.set_epoch(10_000)  # statistics from items the training itself does not start with
        mean, std = input_statistics(train_ds, spectrogram, args.stat_items)
    unmix = umx.OpenUnmix(nb_bins=args.nfft // 2 + 1, nb_channels=1, hidden_size=args.hidden,
                          nb_layers=args.layers, unidirectional=args.unidirectional,
                          input_mean=mean, input_scale=std, max_bin=max_bin)
    optimizer = torch.optim.Adam(unmix.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    step, cpu_spent, history = 0, 0.0, []
    if ckpt is not None:
        unmix.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, cpu_spent, history = ckpt["step"], ckpt["cpu_seconds"], ckpt["history"]
        print(f"resuming {last} at step {step}", file=sys.stderr)

    steps_per_epoch = max(1, len(train_ds) // batch_size)

    def save() -> None:
        _save_atomic({"state_dict": unmix.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                      "cpu_seconds": cpu_spent, "history": history, "input_mean": mean, "input_std": std}, last)

    @torch.no_grad()
    def validate() -> float:
        unmix.eval()
        losses = []
        for start in range(0, len(valid_ds), batch_size):
            b = _batches(valid_ds, list(range(start, min(len(valid_ds), start + batch_size))))
            x = spectrogram(b["mixture"].mean(1, keepdim=True))
            y = spectrogram(b["vocals"].mean(1, keepdim=True))
            losses.append(float(torch.nn.functional.mse_loss(unmix(x), y)))
        unmix.train()
        return float(np.mean(losses))

    def export() -> dict[str, Any]:
        """``vocals.pth`` + ``vocals.json`` of the weights now, with the budget spent so far."""
        budget = {"steps": step, "batch_size": batch_size, "segment_seconds": cfg.data.segment_seconds,
                  "audio_hours": step * batch_size * cfg.data.segment_seconds / 3600,
                  "cpu_seconds": round(cpu_spent, 1), "threads": args.threads}
        extra = {"trained_by": "benchmarks/openunmix_train.py", "recipe": "upstream train.py defaults, mono; MSE on "
                 "magnitudes", "budget": budget, "data": summary, "config": str(args.config),
                 "overrides": args.overrides, "history": history, "bandwidth": args.bandwidth}
        was_training = unmix.training
        unmix.eval()
        peers.save_openunmix(out, unmix, nfft=args.nfft, nhop=args.nhop, sample_rate=rate, extra=extra)
        unmix.train(was_training)
        return budget

    unmix.train()
    t_cpu = time.process_time()
    while step < args.steps:
        epoch, index = divmod(step, steps_per_epoch)
        train_ds.set_epoch(epoch)
        torch.manual_seed(derive_seed(cfg.seed, "openunmix", epoch, index))
        b = _batches(train_ds, list(range(index * batch_size, (index + 1) * batch_size)))
        x = spectrogram(b["mixture"].mean(1, keepdim=True))
        y = spectrogram(b["vocals"].mean(1, keepdim=True))
        loss = torch.nn.functional.mse_loss(unmix(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"Open-Unmix loss became {loss_value} at step {step}")
        step += 1
        if step % args.checkpoint_every == 0 or step == args.steps:
            now = time.process_time()
            cpu_spent += now - t_cpu
            t_cpu = now
            history.append({"step": step, "train_loss": loss_value, "val_loss": validate() if
                            (step % args.validate_every == 0 or step == args.steps) else None})
            save()
            if history[-1]["val_loss"] is not None:
                export()  # a run stopped early still leaves a usable model with its budget
            print(f"step {step}/{args.steps}: loss {loss_value:.6f}"
                  + (f", validation {history[-1]['val_loss']:.6f}" if history[-1]["val_loss"] is not None
                     else ""), file=sys.stderr)
    budget = export()
    return {"out": str(out), **budget}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="deepiso training configuration (data)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value (e.g. data.root=DIR)")
    p.add_argument("--out", type=Path, required=True, help="output folder (vocals.pth, vocals.json, last.pt)")
    p.add_argument("--steps", type=int, required=True, help="optimiser steps (the budget)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--validate-every", type=int, default=200)
    p.add_argument("--stat-items", type=int, default=64, help="training items for the input statistics")
    p.add_argument("--nfft", type=int, default=UPSTREAM["nfft"])
    p.add_argument("--nhop", type=int, default=UPSTREAM["nhop"])
    p.add_argument("--hidden", type=int, default=UPSTREAM["hidden_size"])
    p.add_argument("--layers", type=int, default=UPSTREAM["nb_layers"])
    p.add_argument("--bandwidth", type=float, default=UPSTREAM["bandwidth"])
    p.add_argument("--unidirectional", action="store_true", help="the causal variant (upstream's default is not)")
    p.add_argument("--lr", type=float, default=UPSTREAM["lr"])
    p.add_argument("--weight-decay", type=float, default=UPSTREAM["weight_decay"])
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if args.steps < 1 or args.checkpoint_every < 1 or args.validate_every < 1:
        raise SystemExit("--steps, --checkpoint-every and --validate-every must be >= 1")
    result = train(args)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
