"""Onsets from silence: does the live engine isolate a signal that starts at any sample?

A live input often starts from digital silence: a muted microphone, a paused player, the start of a
call. It starts at an arbitrary sample, so at an arbitrary phase of the engine's hop grid, while a
training segment always starts at the same phase. For each item this benchmark plays digital silence,
then the item, with the onset moved over ``--phases`` evenly spaced offsets within one hop, through the
engine's host with the ``deepiso live`` chain (isolator plugin on the step graph, mix, meters; blocks of
``--block``), and scores the vocals from the onset on:

* ``si_sdri``: SI-SDR of the vocals minus that of the mixture, dB;
* a *lock-in* is an onset whose SI-SDRi falls more than ``--margin`` dB under the median of the same
  item over all its phases: the network started from its zero state on that onset and stayed in a
  state where its mask no longer follows the input (seen as a constant mask that passes the music).

Items: the bundled demo clip at 0 dB, the same clip through a 44.1 -> 48 -> 44.1 kHz round trip (a
48 kHz audio server's resampler rings a few samples ahead of the onset; this is what ``deepiso demo``
hears), and ``--items`` items spread evenly over a saved set (``quality.py --save-set``), if given.

Writes ``benchmarks/results/onset.json`` (``--out``).

    python -m benchmarks.onset --model default --model OTHER.onnx [--set DIR --items 12] [--phases 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from deepiso.realtime.audio_io import resample
from deepiso.realtime.demo import load_clip
from deepiso.realtime.host import Host
from deepiso.realtime.live import build_chain
from deepiso.realtime.metrics import si_sdr

from . import evalset
from .peers import downmix

RESULTS = Path(__file__).resolve().parent / "results" / "onset.json"
SERVER_RATE = 48000


class Engine:
    """The live chain of one model on an offline host: ``onset(mixture, truth, phase)`` -> SI-SDRi."""

    def __init__(self, model: str, block: int, lead_s: float = 0.25) -> None:
        chain, isolator, _, _ = build_chain(model, "vocals", channels=1)
        self.rate = isolator.spec.sample_rate
        self.hop = isolator.spec.hop
        self.host = Host(chain, self.rate, 1, block_size=block)
        self.block = block
        self.lead = int(round(lead_s * self.rate))
        self.card = getattr(isolator.model, "card", {})

    def play(self, x: np.ndarray) -> np.ndarray:
        """``x`` (n,) from a fresh stream; the output lined up with it (the host's latency removed)."""
        self.host.reset()
        return self.host.run_offline(x[:, None], self.block, flush=True)[:, 0]

    def onset(self, mixture: np.ndarray, truth: np.ndarray, phase: int, round_trip: bool = False) -> float:
        start = self.lead + phase
        x = np.zeros(start + mixture.size, np.float32)
        x[start:] = mixture
        if round_trip:
            x = through_server_rate(x, self.rate)
        y = self.play(x)[start:]
        return si_sdr(y, truth) - si_sdr(x[start:], truth)


def through_server_rate(x: np.ndarray, rate: int) -> np.ndarray:
    """``x`` resampled to the audio server's 48 kHz and back, the same length."""
    there = resample(x[:, None], rate, SERVER_RATE)
    back = resample(np.ascontiguousarray(there), SERVER_RATE, rate)[:, 0]
    out = np.zeros_like(x)
    out[: min(x.size, back.size)] = back[: x.size]
    return out


def set_items(set_dir: str, rate: int, count: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, mixture, vocals)`` of a saved set, mono at ``rate``: ``count`` items spread over it, or all."""
    loaded = evalset.load_set(set_dir)
    if count is not None:
        loaded = loaded[:: max(1, len(loaded) // max(count, 1))][:count]
    out = []
    for it in loaded:
        mix, voc = downmix(it.mixture), downmix(it.vocals)
        if it.rate != rate:
            mix = resample(mix[:, None], it.rate, rate)[:, 0]
            voc = resample(voc[:, None], it.rate, rate)[:, 0]
        out.append((it.name, mix.astype(np.float32), voc.astype(np.float32)))
    return out


def phases_of(hop: int, count: int) -> list[int]:
    count = max(1, min(count, hop))
    return sorted({int(k * hop // count) for k in range(count)})


def scan(engine: Engine, mixture: np.ndarray, truth: np.ndarray, phases: list[int], margin: float,
         round_trip: bool = False) -> dict:
    scores = np.array([engine.onset(mixture, truth, p, round_trip) for p in phases])
    med = float(np.median(scores))
    locked = [p for p, s in zip(phases, scores, strict=True) if s < med - margin]
    return {"median_db": round(med, 2), "min_db": round(float(scores.min()), 2),
            "onsets": len(phases), "lock_ins": len(locked), "lock_in_phases": locked,
            "si_sdri_db": [round(float(s), 2) for s in scores]}


def run(models: list[str], set_dir: str | None, items: int, phases: int, set_phases: int, margin: float,
        block: int, log=print) -> dict:
    systems = []
    for model in models:
        t0 = time.process_time()
        engine = Engine(model, block)
        hop_phases = phases_of(engine.hop, phases)
        mixture, truth = load_clip(engine.rate, 0.0)
        mixture, truth = mixture.astype(np.float32), truth.astype(np.float32)
        rows = {
            "demo clip": scan(engine, mixture, truth, hop_phases, margin),
            "demo clip via 48 kHz": scan(engine, mixture, truth, hop_phases, margin, round_trip=True),
        }
        if set_dir:
            per_item = []
            for name, mix, voc in set_items(set_dir, engine.rate, items):
                row = scan(engine, mix, voc, phases_of(engine.hop, set_phases), margin)
                per_item.append({"item": name, **row})
            onsets = sum(r["onsets"] for r in per_item)
            rows["set items"] = {
                "items": len(per_item), "onsets": onsets, "lock_ins": sum(r["lock_ins"] for r in per_item),
                "median_db": round(float(np.median([s for r in per_item for s in r["si_sdri_db"]])), 2),
                "items_with_lock_ins": sum(1 for r in per_item if r["lock_ins"]), "per_item": per_item,
            }
        total = sum(r["onsets"] for r in rows.values())
        locks = sum(r["lock_ins"] for r in rows.values())
        version = engine.card.get("model_version") or engine.card.get("version")
        systems.append({"model": model, "model_version": version, "onsets": total, "lock_ins": locks,
                        "lock_in_share": round(locks / total, 4), "cpu_s": round(time.process_time() - t0, 1),
                        "rows": rows})
        log(f"{model} ({version}): {locks} lock-ins in {total} onsets; "
            + "; ".join(f"{k}: {r['lock_ins']}/{r['onsets']}, median {r['median_db']:+.2f} dB"
                        for k, r in rows.items()))
    return {"benchmark": "onsets from digital silence at every phase of the hop grid, live chain offline",
            "command": "python -m benchmarks.onset " + " ".join(sys.argv[1:]),
            "margin_db": margin, "block": block, "phases_per_hop": phases, "set": set_dir,
            "set_phases_per_hop": set_phases if set_dir else None,
            "machine": {"cpu": platform.machine(), "python": platform.python_version()},
            "systems": systems}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help="model name or .onnx path (repeat; default: default)")
    p.add_argument("--set", help="a saved evaluation set (quality.py --save-set) for more items")
    p.add_argument("--items", type=int, default=12, help="items of --set to use, spread over it (default 12)")
    p.add_argument("--phases", type=int, default=64, help="onset phases per hop for the demo clip (default 64)")
    p.add_argument("--set-phases", type=int, default=16, help="onset phases per hop for set items (default 16)")
    p.add_argument("--margin", type=float, default=3.0, help="dB under the item's median that is a lock-in")
    p.add_argument("--block", type=int, default=256, help="host block size (default 256, as deepiso live)")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    if a.items < 0 or a.phases < 1 or a.set_phases < 1 or a.block < 1 or a.margin <= 0:
        p.error("--items must be >= 0; --phases, --set-phases and --block >= 1; --margin > 0")
    return write_result("onset.py", lambda: run(a.model or ["default"], a.set, a.items, a.phases, a.set_phases,
                                                a.margin, a.block, log=lambda m: print(m, file=sys.stderr)), a.out)


def write_result(prog: str, compute, out: str) -> int:
    """``compute()``'s result as JSON in ``out``: 0; a missing or bad set or model told on stderr: 2."""
    try:
        result = compute()
    except (evalset.EvalSetError, FileNotFoundError, ValueError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
