"""Losses for the pauses, a tiny check of direction: does each new loss term empty the voice-free gaps,
and what does it cost in SI-SDR?

This is a tiny-model, tiny-corpus check of direction, NOT the measurement a real run must make on the corpus's
speaker-disjoint split. It trains the ``bandfilter`` network (or ``--model``; the ``tiny-test`` LSTM does not
learn the task in so few steps) for a few hundred steps on a generated manifest corpus
(:func:`deepiso.train.testing.make_manifest_corpus`: gated harmonic tones with vibrato as the voices, filtered
noise and a bass tone as the backgrounds, one voice and one background held out for validation), once per loss
variant, all from the same initial weights and the same training items:

* ``default``: today's recipe, magnitude + 0.1 x SI-SDR;
* ``+compressed``: + ``loss.compressed`` (DeepFilterNet's compressed spectral loss over every frame);
* ``+mrstft``: + ``loss.mrstft`` (multi-resolution STFT loss on compressed magnitudes);
* ``+voice_guard``: + ``loss.voice_guard`` (the one-sided penalty on removing voice);
* ``+all``: the three together.

The weights (:data:`WEIGHTS`) put each new term on the magnitude term's footing: on the unprocessed
mixture the compressed term's value is about the magnitude term's (weight 1), the multi-resolution term's
about 50 times it (weight 0.02); muting the voice costs the guard 1, so at 0.1 it costs about three times
what the magnitude term charges for the whole mixture, more than the pause terms can gain by it. The JSON
records the terms' values on the first validation batch (``scales``) so the choice can be checked.

For each variant it reports the validation SI-SDR improvement as training computes it
(``val_si_sdri``, dB), and, through :class:`deepiso.realtime.separator.Separator` running
``TorchSequence(net)`` on each validation item as the engine does: the SI-SDR improvement
(``sep_si_sdri``), the voice-free leakage (:func:`deepiso.realtime.metrics.voice_free_leakage`, dB
against the mixture, lower is emptier; mean and median over the items that have 0.2 s of gaps) and the
level of the estimate against the voice where there is voice (``voiced_level_db``; below 0 dB the voice
comes out quieter than it went in).

    python -m benchmarks.loss_terms [--steps 300] [--model bandfilter] [--seed 0]

Writes ``benchmarks/results/loss_terms.json``. About a minute per variant on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "loss_terms.json"

#: Today's recipe (train/configs/default.yaml's loss).
BASE = {"contrastive": 0.0, "magnitude": 1.0, "si_sdr": 0.1}
#: The new terms at the weights the module docstring justifies.
WEIGHTS = {"compressed": 1.0, "mrstft": 0.02, "voice_guard": 0.1}
VARIANTS = {
    "default": {},
    "+compressed": {"compressed": WEIGHTS["compressed"]},
    "+mrstft": {"mrstft": WEIGHTS["mrstft"]},
    "+voice_guard": {"voice_guard": WEIGHTS["voice_guard"]},
    "+all": dict(WEIGHTS),
}


def _config(corpus: Path, out: Path, model: str, steps: int, batch: int, seed: int, loss: dict):
    from deepiso.train.config import TrainConfig

    return TrainConfig.from_dict({
        "model": model,
        "data": {"kind": "manifest", "root": str(corpus), "segment_seconds": 1.0, "channels": 1,
                 "train_items": steps * batch, "valid_items": 24, "snr_db": [-8.0, 12.0],
                 "level_db": [-35.0, -12.0], "voice_fill": [0.4, 1.0]},
        "augment": {"loopback": 0.1, "awgn_profiles": 0, "channel_swap": 0.0},
        "loss": {**BASE, **loss},
        "optim": {"batch_size": batch, "epochs": 1, "lr": 0.003, "grad_clip": 5.0},
        "out_dir": str(out), "seed": seed, "threads": 1, "progress": False, "tensorboard": False,
    })


def _scales(trainer) -> dict[str, dict[str, float]]:
    """Each term's value on the first validation batch for the mixture, half of it, silence and the voice."""
    from deepiso.train.features import features
    from deepiso.train.losses import (
        compressed_spectral_loss,
        magnitude_loss,
        multi_resolution_stft_loss,
        voice_guard_loss,
    )

    batch = next(iter(trainer.valid_loader))
    fe = trainer.frontend
    mix = batch["mixture"].reshape(-1, batch["mixture"].shape[-1])
    voc = batch["vocals"].reshape(-1, batch["vocals"].shape[-1])
    V, M = features(fe.stft(voc)), features(fe.stft(mix))
    out = {}
    for name, k in (("mixture", 1.0), ("half the mixture", 0.5), ("silence", 0.0), ("the voice", None)):
        est, wave = (V, voc) if k is None else (k * M, k * mix)
        out[name] = {"magnitude": round(float(magnitude_loss(est, V)), 4),
                     "compressed": round(float(compressed_spectral_loss(est, V)), 4),
                     "mrstft": round(float(multi_resolution_stft_loss(wave, voc, mix)), 4),
                     "voice_guard": round(float(voice_guard_loss(est, V)), 4)}
    return out


def _separate_scores(net, valid_ds, rate: int) -> dict[str, float | int]:
    from deepiso.realtime import metrics
    from deepiso.realtime.separator import Separator
    from deepiso.train.model import TorchSequence

    sep = Separator(TorchSequence(net))
    leak, sdri, voiced_level = [], [], []
    for i in range(len(valid_ds)):
        item = valid_ds[i]
        mix = item["mixture"].numpy()[0].astype(np.float32)
        voc = item["vocals"].numpy()[0].astype(np.float32)
        sep.model.reset()
        est = sep.vocals(mix)
        gap = metrics.voice_free_mask(voc, rate)
        if float(np.dot(voc, voc)) > 1e-9:
            sdri.append(metrics.si_sdr_improvement(est, mix, voc))
            e_voc = float(np.sum(np.square(voc[~gap], dtype=np.float64)))
            if e_voc > 0:
                e_est = float(np.sum(np.square(est[~gap], dtype=np.float64)))
                voiced_level.append(10 * np.log10(max(e_est, 1e-20) / e_voc))
        leaked = metrics.voice_free_leakage(est, mix, voc, rate)
        if leaked is not None:
            leak.append(leaked)
    return {"sep_si_sdri": round(float(np.mean(sdri)), 2),
            "leakage_mean_db": round(float(np.mean(leak)), 2) if leak else None,
            "leakage_median_db": round(float(np.median(leak)), 2) if leak else None,
            "leakage_items": len(leak),
            "voiced_level_db": round(float(np.mean(voiced_level)), 2) if voiced_level else None}


def run(steps: int, model: str, seed: int, batch: int, variants: list[str]) -> dict:
    from deepiso.train import testing
    from deepiso.train.loop import Trainer

    torch.set_num_threads(1)
    rows, scales = [], None
    with tempfile.TemporaryDirectory() as tmp:
        corpus = testing.make_manifest_corpus(Path(tmp) / "corpus", seconds=2.0)
        for name in variants:
            cfg = _config(corpus, Path(tmp) / name, model, steps, batch, seed, VARIANTS[name])
            t0, c0 = time.perf_counter(), time.process_time()
            trainer = Trainer(cfg, restart=True)
            if scales is None:
                scales = _scales(trainer)
            summary = trainer.run()
            last = summary["history"][-1]
            row = {"variant": name, "loss": {k: v for k, v in {**BASE, **VARIANTS[name]}.items() if v},
                   "val_si_sdri": round(last["val_si_sdri"], 2), "val_loss": round(last["val_loss"], 4),
                   **_separate_scores(trainer.net, trainer.valid_ds, trainer.spec.sample_rate),
                   "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - c0, 1)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return {"benchmark": "loss_terms",
            "note": "a tiny-model, tiny-corpus check of direction (generated tones over filtered noise), not the "
                    "measurement on the corpus's speaker-disjoint split that a real run must make",
            "model": model, "steps": steps, "batch": batch, "segment_seconds": 1.0, "seed": seed,
            "weights": {"base": BASE, "new": WEIGHTS}, "scales": scales, "results": rows,
            "torch": torch.__version__, "machine": platform.machine(), "threads": 1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--model", default="bandfilter")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = run(args.steps, args.model, args.seed, args.batch, args.variants)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
