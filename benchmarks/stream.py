"""Long streams: does the live engine isolate as well minutes into a stream as from a fresh start?

A benchmark item is short and starts from the network's zero state; live, the state is as old as the
stream: a call, a set of songs, an hour of microphone. This benchmark plays the items of a saved set
(``quality.py --save-set``) back to back, in a seeded random order split into ``--streams`` streams,
through the engine's host with the ``deepiso live`` chain (isolator plugin on the step graph, mix,
meters; blocks of ``--block``), the state carried from item to item, and scores each item's stretch of
the stream. The same items, each played alone from the zero state (as ``quality.py`` plays them), are
the reference. Items follow each other without a gap: a gap of digital silence would restart the
state (the engine's silence rule), which is not what is measured. Each change of item changes voice,
background and level at once, as a change of song or of talker does.

* ``fresh``: SI-SDRi of each item played alone, dB (SI-SDR of the vocals minus that of the mixture);
* ``streamed``: the same item's stretch of the stream;
* ``loss``: fresh minus streamed per item (positive: the aged state isolates worse), its median and
  mean overall and by the time the item starts in its stream (0-30 s, 30-120 s, later).

Without ``--set`` the bundled demo clip at 0 dB is the item, repeated ``--repeats`` times at random
rotations and gains of -6..+6 dB.

Writes ``benchmarks/results/stream.json`` (``--out``).

    python -m benchmarks.stream --model default --model OTHER.onnx [--set DIR] [--streams 2]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from deepiso.realtime.demo import load_clip
from deepiso.realtime.metrics import si_sdr

from .onset import Engine, set_items, write_result

RESULTS = Path(__file__).resolve().parent / "results" / "stream.json"
AGE_BINS_S = (0.0, 30.0, 120.0)


def demo_items(rate: int, repeats: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The demo clip ``repeats`` times, each rotated to a random start and at a random gain of -6..+6 dB."""
    mixture, voice = load_clip(rate, 0.0)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(repeats):
        shift, gain = int(rng.integers(mixture.size)), float(10 ** (rng.uniform(-6, 6) / 20))
        out.append((f"demo_{k:02d}", np.roll(mixture, shift) * gain, np.roll(voice, shift) * gain))
    return out


def improvement(y: np.ndarray, mixture: np.ndarray, voice: np.ndarray) -> float:
    return si_sdr(y, voice) - si_sdr(mixture, voice)


def streams_of(count: int, streams: int, seed: int) -> list[list[int]]:
    """Item indices in a seeded random order, split into ``streams`` streams of (nearly) equal counts."""
    order = np.random.default_rng(seed).permutation(count)
    return [list(map(int, part)) for part in np.array_split(order, max(1, min(streams, count)))]


def summarize(rows: list[dict], bins: tuple[float, ...]) -> dict:
    loss = np.array([r["fresh_db"] - r["streamed_db"] for r in rows])
    out = {"items": len(rows),
           "fresh_median_db": round(float(np.median([r["fresh_db"] for r in rows])), 2),
           "streamed_median_db": round(float(np.median([r["streamed_db"] for r in rows])), 2),
           "fresh_mean_db": round(float(np.mean([r["fresh_db"] for r in rows])), 2),
           "streamed_mean_db": round(float(np.mean([r["streamed_db"] for r in rows])), 2),
           "loss_median_db": round(float(np.median(loss)), 2), "loss_mean_db": round(float(loss.mean()), 2),
           "items_worse_by_1db": int((loss > 1.0).sum()), "by_age": []}
    edges = [*bins, np.inf]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = np.array([lo <= r["starts_s"] < hi for r in rows])
        if sel.any():
            out["by_age"].append({"from_s": lo, "to_s": None if np.isinf(hi) else hi, "items": int(sel.sum()),
                                  "loss_median_db": round(float(np.median(loss[sel])), 2),
                                  "loss_mean_db": round(float(loss[sel].mean()), 2)})
    return out


def run_model(model: str, set_dir: str | None, streams: int, repeats: int, seed: int, block: int,
              bins: tuple[float, ...]) -> dict:
    t0 = time.process_time()
    engine = Engine(model, block)
    items = set_items(set_dir, engine.rate) if set_dir else demo_items(engine.rate, repeats, seed)
    fresh = [improvement(engine.play(mix), mix, voc) for _, mix, voc in items]
    orders = streams_of(len(items), streams, seed)
    rows = []
    for s, order in enumerate(orders):
        mix = np.concatenate([items[i][1] for i in order])
        voc = np.concatenate([items[i][2] for i in order])
        y = engine.play(mix)
        start = 0
        for i in order:
            n = items[i][1].size
            sl = slice(start, start + n)
            rows.append({"item": items[i][0], "stream": s, "starts_s": round(start / engine.rate, 3),
                         "fresh_db": round(fresh[i], 2), "streamed_db": round(improvement(y[sl], mix[sl], voc[sl]), 2)})
            start += n
    version = engine.card.get("model_version") or engine.card.get("version")
    return {"model": model, "model_version": version, **summarize(rows, bins),
            "stream_s": [round(sum(items[i][1].size for i in o) / engine.rate, 1) for o in orders],
            "cpu_s": round(time.process_time() - t0, 1), "per_item": rows}


def run(models: list[str], set_dir: str | None, streams: int, repeats: int, seed: int, block: int,
        bins: tuple[float, ...] = AGE_BINS_S, log=print) -> dict:
    systems = []
    for model in models:
        row = run_model(model, set_dir, streams, repeats, seed, block, bins)
        systems.append(row)
        log(f"{model} ({row['model_version']}): {row['items']} items, fresh median {row['fresh_median_db']:+.2f}"
            f" dB, streamed {row['streamed_median_db']:+.2f}; loss median {row['loss_median_db']:+.2f}, mean "
            f"{row['loss_mean_db']:+.2f} dB; " + ", ".join(f"from {b['from_s']:.0f} s {b['loss_mean_db']:+.2f}"
                                                        for b in row["by_age"]))
    return {"benchmark": "items back to back in long streams against each item alone, live chain offline",
            "command": "python -m benchmarks.stream " + " ".join(sys.argv[1:]),
            "set": set_dir, "streams": streams, "repeats": None if set_dir else repeats, "seed": seed,
            "block": block, "age_bins_s": list(bins),
            "machine": {"cpu": platform.machine(), "python": platform.python_version()},
            "systems": systems}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help="model name or .onnx path (repeat; default: default)")
    p.add_argument("--set", help="a saved evaluation set (quality.py --save-set); default: the demo clip")
    p.add_argument("--streams", type=int, default=2, help="streams the items are split into (default 2)")
    p.add_argument("--repeats", type=int, default=20, help="demo clip items without --set (default 20)")
    p.add_argument("--seed", type=int, default=0, help="order of the items (and the demo clip's rotations)")
    p.add_argument("--block", type=int, default=256, help="host block size (default 256, as deepiso live)")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    if a.streams < 1 or a.repeats < 1 or a.block < 1:
        p.error("--streams, --repeats and --block must be >= 1")
    return write_result("stream.py", lambda: run(a.model or ["default"], a.set, a.streams, a.repeats, a.seed,
                                                 a.block, log=lambda m: print(m, file=sys.stderr)), a.out)


if __name__ == "__main__":
    sys.exit(main())
