"""Quality benchmark: how much better is deepiso than what a user would use otherwise?

Every system runs on the same items in one run and is scored on its vocal
estimate against the vocal truth (mono downmix of both, at the item's rate):

* SI-SDR (dB; zero-mean, scale-invariant) and SI-SDR improvement over the
  unprocessed mixture (SI-SDRi);
* SDR (BSSEval v4 through ``museval``: 1 s windows, median over windows, then
  median over items, as MUSDB18 results are reported; the accompaniment
  estimate is ``mixture - vocal estimate``). ``--sdr fast`` uses
  ``fast_bss_eval`` (512-tap distortion filter) on the same 1 s windows;
* voice-free leakage (``residual_db``): energy of the estimate over energy of
  the mixture in the 20 ms frames where the vocal truth is 60 dB below its
  loudest frame (one frame of margin either side), dB; only when at least
  0.2 s of such stretches exist; printed beside SI-SDRi;
* items with no voice at all (``--no-voice``: ringtones, whistles, synth
  leads, solo instruments, sine tones, sweeps from ``no_voice.py``), where
  the right output is silence: the estimate's level against the input over
  the whole item (``level_db``, dB; 0 = passed through), in a table of their
  own per category; they have no SI-SDR and stay out of its medians;
* for speech items: wide-band PESQ and STOI at 16 kHz (``pesq``, ``pystoi``);
* speed: CPU seconds (process time, all threads) of the system's own call per
  minute of audio, with one thread where the system lets us set it; the soxr
  resampling to and from a peer's native rate is done outside the timed call.

Systems: our models (``--model NAME_OR_PATH``, repeatable: a shipped model
name or ``.onnx`` file through ``deepiso.realtime.onnx_model.load_model``, or a
training checkpoint ``.pt``), the report's ICA baseline (``deepiso.train``),
the peers in ``peers.py`` (noisereduce, RNNoise, DeepFilterNet3, Open-Unmix's
architecture with ``--openunmix CKPT``), the oracle ideal ratio and binary
masks (upper bounds), and the unprocessed mixture (reference, SI-SDRi 0).

Writes ``benchmarks/results/quality.json``, prints a markdown table and draws
``quality_sisdri.png`` (box plots) and ``quality_clip_*.png`` (the report's
Table 2 view: waveforms of source, predictions and truth, with spectrograms).
A release's results go to ``benchmarks/results/<version>/`` (``--out``). The
PNGs are not kept in git: ``python -m benchmarks.plots`` redraws the box plots
from the JSON files.

    python -m benchmarks.quality --corpus /work/data/corpus --split valid --per-cell 4 \\
        --model default --save-set /tmp/evalset
    python -m benchmarks.quality --set /tmp/evalset --model my.onnx --openunmix umx/
    python -m benchmarks.quality --synthetic --per-cell 2            # no corpus: generated set
    python -m benchmarks.quality --no-voice --model default --peers rnnoise,deepfilternet3 --no-ica --no-oracle
"""

from __future__ import annotations

import os

# One thread for every numeric library, set before numpy loads them: the
# speed column compares systems on one core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from deepiso.realtime import dsp  # noqa: E402
from deepiso.realtime.audio_io import resample  # noqa: E402
from deepiso.realtime.frame import FrameSpec  # noqa: E402
from deepiso.realtime.metrics import EPS as METRIC_EPS  # noqa: E402
from deepiso.realtime.metrics import bss_sdr, level_db, si_sdr, voice_free_leakage  # noqa: E402
from deepiso.realtime.plugins.isolator import (  # noqa: E402
    SILENCE_DBFS,
    check_floor,
)
from deepiso.realtime.separator import Separator  # noqa: E402

from . import evalset, no_voice, peers  # noqa: E402
from .peers import PeerUnavailable, System, downmix  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EPS = 1e-12


# ----------------------------------------------------------------------------
# Metrics (mono float arrays (n,) at one rate)


def speech_scores(estimate: np.ndarray, vocals: np.ndarray, rate: int) -> dict[str, float | None]:
    """Wide-band PESQ and STOI at 16 kHz; a score is None when its package is missing or refuses the clip."""
    out: dict[str, float | None] = {"pesq": None, "stoi": None}
    est16 = resample(estimate[:, None].astype(np.float32), rate, 16_000)[:, 0]
    ref16 = resample(vocals[:, None].astype(np.float32), rate, 16_000)[:, 0]
    try:
        from pesq import pesq

        out["pesq"] = float(pesq(16_000, ref16, est16, "wb"))
    except Exception:  # ImportError, or PESQ finding no utterance in the clip
        pass
    try:
        from pystoi import stoi

        out["stoi"] = float(stoi(ref16, est16, 16_000, extended=False))
    except Exception:
        pass
    return out


def is_voice_free(item: evalset.Item) -> bool:
    """True when the item's vocal truth is silent (a no-voice item): SI-SDR has no reference there."""
    voc = downmix(item.vocals).astype(np.float64)
    voc = voc - voc.mean() if voc.size else voc
    return float(np.dot(voc, voc)) <= METRIC_EPS


def score(estimate: np.ndarray, item: evalset.Item, sdr_method: str | None) -> dict[str, Any]:
    """All metrics of one mono estimate ``(n,)`` at the item's rate.

    An item with no voice (silent vocal truth) is scored by the estimate's level against the input
    (``level_db``; ``None`` if the input is silent too), with ``no_voice`` set and no SI-SDR.
    """
    mix, voc = downmix(item.mixture), downmix(item.vocals)
    if is_voice_free(item):
        level = level_db(estimate, mix) if np.any(mix) else None
        return {"no_voice": True, "variant": item.meta.get("variant"), "level_db": level, "si_sdr": None,
                "si_sdri": None, "residual_db": None}
    s = si_sdr(estimate, voc)
    row: dict[str, Any] = {"si_sdr": s, "si_sdri": s - si_sdr(mix, voc),
                           "residual_db": voice_free_leakage(estimate, mix, voc, item.rate)}
    if sdr_method:
        row["sdr"] = bss_sdr(estimate, voc, mix, item.rate, sdr_method)
    if item.meta.get("voice") == "speech":
        row.update(speech_scores(estimate, voc, item.rate))
    return row


# ----------------------------------------------------------------------------
# Our models, the ICA baseline, the oracles


def spectral_apply(x: np.ndarray, spec: FrameSpec, frame_fn) -> np.ndarray:
    """Offline analysis → ``frame_fn(frames (T, bins) complex) -> vocal frames`` → synthesis, delay removed.

    ``x``: mono float32 ``(n,)``. Returns ``(n,)`` aligned with ``x``.
    """
    n = x.shape[0]
    padded = np.concatenate([x, np.zeros(spec.n_fft, np.float32)])  # so the last samples are synthesised
    frames = dsp.stft(padded, spec)
    y = dsp.istft(frame_fn(frames), spec)
    return dsp.align(y, spec.synthesis_delay, n)


class ModelSystem(System):
    """One of our models: a shipped name or ``.onnx`` file (onnxruntime, one thread), or a ``.pt`` checkpoint.

    Runs the mono downmix through :class:`deepiso.realtime.separator.Separator`, the path ``deepiso
    separate`` takes: STFT → real+imag features → awareness → model → vocal spectrum → overlap-add,
    with the engine's silence rule and its delay removed.
    """

    kind = "ours"

    def __init__(self, name_or_path: str, label: str | None = None, floor_dbfs: float = SILENCE_DBFS,
                 synthesis_length: int | None = None) -> None:
        self.source = name_or_path
        self.floor_dbfs = check_floor(floor_dbfs)
        self.synthesis_length = synthesis_length
        self.name = f"deepiso:{Path(name_or_path).stem if name_or_path.endswith(('.onnx', '.pt')) else name_or_path}"
        if self.floor_dbfs != SILENCE_DBFS:
            self.name += f"@floor{self.floor_dbfs:g}"
        if synthesis_length is not None:
            self.name += f"@synthesis{synthesis_length}"
        self.label = label or f"deepiso {name_or_path}"

    def load(self) -> None:
        if self.source.endswith(".pt"):
            try:
                import torch

                from deepiso.train.checkpoint import load_checkpoint
                from deepiso.train.model import TorchSequence
            except ImportError as exc:
                raise PeerUnavailable(f"{self.source}: loading a checkpoint needs the train extra ({exc})") from None
            net, _info = load_checkpoint(self.source)
            torch.set_num_threads(1)
            model = TorchSequence(net)
            self.note = f"checkpoint {self.source} (PyTorch, 1 thread)"
        else:
            from deepiso.realtime.onnx_model import load_model

            model = load_model(self.source, batch=1, providers=["CPUExecutionProvider"], threads=1)
            card = model.card
            trained = bool(card.get("validation") or card.get("metrics") or card.get("training"))
            self.note = f"{card.get('name')} {card.get('version')} ({model.path.name}), onnxruntime CPU 1 thread"
            if card.get("name") == "tiny-test" or not trained:
                self.note += "; UNTRAINED (random weights): shows the plumbing only"
                self.label += " (untrained)"
        # As the engine's isolator runs it with --floor and --synthesis-length (PluginError: a value it cannot take).
        self.separator = Separator(model, floor_dbfs=self.floor_dbfs, synthesis_length=self.synthesis_length)
        self.spec = self.separator.spec
        self.rate = self.spec.sample_rate
        self.causal = self.spec.causal

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        return self.separator.vocals(downmix(mixture))

    def info(self) -> dict[str, Any]:
        return {**super().info(), "source": self.source, "floor_dbfs": self.floor_dbfs,
                "synthesis_length": self.synthesis_length,
                "frame_spec": self.spec.to_dict(),
                "latency_ms": round(self.spec.latency_ms(self.spec.hop), 2)}


#: Where the report's ICA baseline may live in the training package (module, function).
class ICASystem(System):
    """The report's baseline: ICA on the stereo mixture (from ``deepiso.train``).

    ICA returns its components in no particular order or scale; we keep the
    component that correlates best with the vocal truth (the most favourable
    choice for the baseline; SI-SDR ignores the scale).
    """

    name = "ica"
    label = "ICA on the stereo mix (report's baseline)"
    kind = "baseline"
    needs_truth = True

    def load(self) -> None:
        try:
            from deepiso.train.ica import ica_baseline
        except ImportError as exc:  # the training extra is not installed
            raise PeerUnavailable(f"the ICA baseline needs deepiso's training extra ({exc})") from None
        self._ica = ica_baseline
        self.note = "deepiso.train.ica.ica_baseline; component chosen by correlation with the truth"

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        # mixture (channels, samples); ICA needs (samples, 2)
        stereo = np.asarray(mixture, np.float64)
        if stereo.ndim == 1 or stereo.shape[0] == 1:
            stereo = np.repeat(stereo.reshape(1, -1), 2, axis=0)
        return self._ica(stereo[:2].T, reference=downmix(truth[0])).astype(np.float32)


class OracleMask(System):
    """Ideal ratio mask (``|V|^2 / (|V|^2 + |B|^2)``) or ideal binary mask (``|V| > |B|``) from the truth.

    STFT 2048/512 Hann at the item's rate, applied to the mono mixture: the
    best any single-channel mask of this resolution can do (an upper bound).
    """

    kind = "oracle"
    needs_truth = True

    def __init__(self, binary: bool) -> None:
        self.binary = binary
        self.name = "oracle_ibm" if binary else "oracle_irm"
        self.label = f"oracle ideal {'binary' if binary else 'ratio'} mask (upper bound)"
        self.note = "STFT 2048/512 Hann; mask from the true vocals and background"

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        spec = FrameSpec(sample_rate=rate, n_fft=2048, hop=512, past_frames=0, future_frames=0)
        pad = np.zeros(spec.n_fft, np.float32)
        v = dsp.stft(np.concatenate([downmix(truth[0]), pad]), spec)
        b = dsp.stft(np.concatenate([downmix(truth[1]), pad]), spec)
        if self.binary:
            mask = (np.abs(v) > np.abs(b)).astype(np.float32)
        else:
            pv, pb = np.abs(v) ** 2, np.abs(b) ** 2
            mask = pv / (pv + pb + EPS)
        return spectral_apply(downmix(mixture), spec, lambda frames: frames * mask)


class MixtureSystem(System):
    """The unprocessed mixture as the estimate: the reference row (SI-SDRi 0 by definition)."""

    name = "mixture"
    label = "unprocessed mixture (reference)"
    kind = "reference"

    def separate(self, mixture: np.ndarray, rate: int,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        return downmix(mixture).copy()


# ----------------------------------------------------------------------------
# Running


def lead_in(item: evalset.Item, seconds: float, level_db: float, seed: int = 0) -> np.ndarray:
    """``(channels, n)`` of white noise at ``level_db`` dBFS RMS to play before ``item`` (a quiet room, a
    muted microphone's hiss); the same noise for every system, drawn from the item's name."""
    n = int(round(seconds * item.rate))
    if n <= 0:
        return np.zeros((item.mixture.shape[0], 0), np.float32)
    rng = np.random.default_rng([seed, *item.name.encode()])
    return (rng.standard_normal((item.mixture.shape[0], n)) * 10 ** (level_db / 20)).astype(np.float32)


def run_system(system: System, item: evalset.Item,
               lead: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """``(estimate (n,) at the item's rate, cpu_seconds, wall_seconds)`` of one system on one item.

    ``lead`` (``(channels, m)`` at the item's rate, no voice in it) is played before the item; the
    system runs on both, and the estimate is the part that lines up with the item.
    """
    rate = system.rate or item.rate
    mix, voc = item.mixture, item.vocals
    skip = 0
    if lead is not None and lead.shape[-1]:
        skip = lead.shape[-1]
        mix = np.concatenate([lead.astype(mix.dtype), mix], axis=-1)
        voc = np.concatenate([np.zeros_like(lead, dtype=voc.dtype), voc], axis=-1)
    if rate != item.rate:
        mix = resample(mix.T, item.rate, rate).T
        voc = resample(voc.T, item.rate, rate).T
    truth = (voc, mix - voc) if system.needs_truth else None
    mix = np.ascontiguousarray(mix, np.float32)
    c0, w0 = time.process_time(), time.perf_counter()
    est = system.separate(mix, rate, truth)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    est = np.asarray(est, np.float32).reshape(-1)
    if rate != item.rate:
        est = resample(est[:, None], rate, item.rate)[:, 0]
    n = item.mixture.shape[-1]
    est = est[skip:]
    est = np.pad(est[:n], (0, max(0, n - est.shape[0])))
    if not np.isfinite(est).all():
        raise RuntimeError(f"{system.name} returned NaN/Inf on {item.name}")
    return est, cpu, wall


def check_delays(systems: list[System]) -> dict[str, dict[str, int]]:
    """Measure each streaming peer's raw delay on a speech-like signal; warn when it is not the stated one."""
    out = {}
    for s in systems:
        if not isinstance(s, peers.FrameStreamPeer):
            continue
        rng = np.random.default_rng(7)
        x = evalset._formant_voice(rng, s.rate, 2.0, sung=False)
        measured = peers.measure_delay(s.raw, x, max_delay=4 * s.delay + s.frame)
        out[s.name] = {"stated": s.delay, "measured": measured}
        if abs(measured - s.delay) > s.frame // 4:
            print(f"warning: {s.name} output delay measured {measured} samples, stated {s.delay}", file=sys.stderr)
    return out


def _median(values: list) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return float(np.median(v)) if v else None


def summarize(rows: list[dict[str, Any]], systems: list[System], items: list[evalset.Item]) -> dict[str, Any]:
    """Medians per system: overall, per category, per SNR, and the speed.

    The SI-SDR, SDR, leakage, PESQ and STOI medians are over the items with a voice; the items with
    none go to ``no_voice``: the median level of the estimate against the input, overall and per
    category. The speed is over all items.
    """
    voiced = [it for it in items if not is_voice_free(it)]
    cats = sorted({it.category for it in voiced}, key=lambda c: list(evalset.CATEGORIES).index(c)
                  if c in evalset.CATEGORIES else 99)
    free = {it.category for it in items if is_voice_free(it)}
    free_cats = [c for c in no_voice.CATEGORIES if c in free] + sorted(free - set(no_voice.CATEGORIES))
    snrs = sorted({it.meta.get("snr_db") for it in voiced if it.meta.get("snr_db") is not None})
    out = {}
    for s in systems:
        everything = [r for r in rows if r["system"] == s.name]
        if not everything:
            continue
        mine = [r for r in everything if not r.get("no_voice")]
        summ: dict[str, Any] = {}
        for metric in ("si_sdr", "si_sdri", "sdr", "residual_db", "pesq", "stoi"):
            summ[metric] = _median([r.get(metric) for r in mine])
        summ["si_sdri_by_category"] = {c: _median([r["si_sdri"] for r in mine if r["category"] == c]) for c in cats}
        sources = sorted({r.get("voice_source") for r in mine if r.get("voice_source")})
        summ["by_voice_source"] = {
            src: {"items": sum(r.get("voice_source") == src for r in mine),
                  "si_sdri": _median([r["si_sdri"] for r in mine if r.get("voice_source") == src]),
                  "residual_db": _median([r.get("residual_db") for r in mine if r.get("voice_source") == src])}
            for src in sources}
        summ["si_sdri_by_snr"] = {f"{snr:g}": _median([r["si_sdri"] for r in mine if r.get("snr_db") == snr])
                                  for snr in snrs}
        seconds = sum(r["seconds"] for r in everything)
        summ["cpu_s_per_min"] = 60.0 * sum(r["cpu_s"] for r in everything) / seconds
        summ["wall_s_per_min"] = 60.0 * sum(r["wall_s"] for r in everything) / seconds
        summ["items"] = len(mine)
        quiet = [r for r in everything if r.get("no_voice")]
        if quiet:
            summ["no_voice"] = {
                "level_db": _median([r["level_db"] for r in quiet]),
                "level_db_by_category": {c: _median([r["level_db"] for r in quiet if r["category"] == c])
                                         for c in free_cats},
                "level_db_by_variant": {f"{c}/{v}": _median([r["level_db"] for r in quiet
                                                              if r["category"] == c and r.get("variant") == v])
                                        for c in free_cats
                                        for v in dict.fromkeys(r.get("variant") for r in quiet if r["category"] == c)},
                "items": len(quiet)}
        out[s.name] = summ
    return out


def voice_source(item: evalset.Item) -> str | None:
    """The corpus source of most of an item's voice (its clips' seconds), or None (no voice, not drawn
    from a corpus)."""
    seconds: dict[str, float] = {}
    for clip in item.meta.get("voice_clips") or ():
        seconds[clip["source"]] = seconds.get(clip["source"], 0.0) + float(clip.get("seconds", 0.0))
    return max(seconds, key=seconds.__getitem__) if seconds else None


def source_table(summary: dict[str, Any], systems: list[System]) -> str:
    """Median SI-SDRi (and voice-free leakage) per voice source, a column per system; empty when the items
    were not drawn from a corpus."""
    shown = [s for s in systems if summary.get(s.name, {}).get("by_voice_source") and s.kind != "reference"]
    if not shown:
        return ""
    sources = list(summary[shown[0].name]["by_voice_source"])
    head = ["voice source", "items"] + [f"{s.label} SI-SDRi (leakage)" for s in shown]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for src in sources:
        first = summary[shown[0].name]["by_voice_source"][src]
        cells = [src, str(first["items"])]
        for s in shown:
            m = summary[s.name]["by_voice_source"].get(src, {})
            cells.append(f"{_fmt(m.get('si_sdri'))} ({_fmt(m.get('residual_db'))})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def markdown_table(summary: dict[str, Any], systems: list[System]) -> str:
    """The quality table of docs/quality.md: medians per system over the items with a voice (dB unless stated).

    The voice-free leakage (``residual_db``) stands beside SI-SDRi. Empty when no item has a voice.
    """
    cats = []
    for s in summary.values():
        cats = list(s["si_sdri_by_category"])
        break
    head = ["system", "SI-SDRi all", "voice-free leakage (dB)"] + \
        [f"SI-SDRi {c.replace('_', ' ')}" for c in cats] + ["SI-SDR", "SDR (v4)", "PESQ", "STOI", "CPU s / min"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for s in systems:
        m = summary.get(s.name)
        if m is None or not m["items"]:
            continue
        cpu = "—" if s.kind in ("oracle", "reference") else _fmt(m["cpu_s_per_min"], 2)
        cells = [s.label, _fmt(m["si_sdri"]), _fmt(m["residual_db"])] + \
            [_fmt(m["si_sdri_by_category"][c]) for c in cats] + \
            [_fmt(m["si_sdr"]), _fmt(m.get("sdr")), _fmt(m["pesq"], 2), _fmt(m["stoi"], 2), cpu]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def no_voice_table(summary: dict[str, Any], systems: list[System]) -> str:
    """Items with no voice: median level of the estimate against the input per system, overall and per
    category (dB; lower is better, 0 dB = passed through). Empty when there are no such items."""
    cats: list[str] = []
    for m in summary.values():
        if "no_voice" in m:
            cats = list(m["no_voice"]["level_db_by_category"])
            break
    if not cats:
        return ""
    head = ["system", "level vs input, all (dB)"] + [c.replace("_", " ") for c in cats]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for s in systems:
        m = summary.get(s.name)
        if m is None or "no_voice" not in m:
            continue
        nv = m["no_voice"]
        cells = [s.label, _fmt(nv["level_db"])] + [_fmt(nv["level_db_by_category"][c]) for c in cats]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Pictures


#: What :func:`plot_boxes` can draw: metric -> (y label, title).
BOX_METRICS = {
    "si_sdri": ("SI-SDR improvement over the mixture (dB)", "Vocal estimate quality per system (each point one item)"),
    "level_db": ("level of the output against the input (dB)",
                 "Items with no voice: what passes (each point one item; lower is better)"),
}


def plot_boxes(rows: list[dict[str, Any]], systems: list[System], path: Path, metric: str = "si_sdri") -> Path:
    """Box plot of ``metric`` per system (one box per system, items as points): SI-SDRi over the items with a
    voice, or ``level_db`` over the items with none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ylabel, title = BOX_METRICS[metric]
    rows = [r for r in rows if r.get(metric) is not None]
    names = [s for s in systems if any(r["system"] == s.name for r in rows) and s.kind != "reference"]
    data = [[r[metric] for r in rows if r["system"] == s.name] for s in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names)), 4.5))
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, 1):
        ax.plot(i + 0.08 * rng.standard_normal(len(d)), d, ".", alpha=0.5, color="tab:blue")
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(1, len(names) + 1), [s.label.replace(" (", "\n(") for s in names], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_clip(item: evalset.Item, estimates: dict[str, np.ndarray], labels: dict[str, str], path: Path) -> Path:
    """The report's Table 2 view for one item: waveform and spectrogram of source, each prediction, truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("Source (mixture)", downmix(item.mixture))] + \
        [(f"Predicted: {labels[k]}", v) for k, v in estimates.items()] + [("True vocals", downmix(item.vocals))]
    fig, axes = plt.subplots(len(rows), 2, figsize=(12, 1.6 * len(rows)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1]})
    t = np.arange(item.mixture.shape[-1]) / item.rate
    peak = float(np.abs(downmix(item.mixture)).max()) or 1.0
    for (title, x), (wax, sax) in zip(rows, axes, strict=True):
        wax.plot(t, x, lw=0.4)
        wax.set_ylim(-peak, peak)
        wax.set_xlim(0, t[-1])
        wax.set_title(title, fontsize=8, loc="left")
        wax.tick_params(labelsize=6)
        with np.errstate(divide="ignore"):
            sax.specgram(x, NFFT=1024, noverlap=768, Fs=item.rate, cmap="magma", vmin=-120,
                         vmax=-20)
        sax.set_ylim(0, min(item.rate / 2, 11_000))
        sax.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel("time (s)", fontsize=7)
    axes[-1, 1].set_xlabel("time (s)", fontsize=7)
    fig.suptitle(f"{item.name}  ({item.meta.get('snr_db', '')} dB SNR)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------
# Command line


def build_systems(args: argparse.Namespace) -> list[System]:
    systems: list[System] = [MixtureSystem()]
    systems += [ModelSystem(m) for m in args.model]
    for floor in args.floor:
        systems += [ModelSystem(m, label=f"deepiso {m}, floor {floor:g} dBFS", floor_dbfs=floor) for m in args.model]
    for length in args.synthesis_length:
        systems += [ModelSystem(m, label=f"deepiso {m}, synthesis {length}", synthesis_length=length)
                    for m in args.model]
    if not args.no_ica:
        systems.append(ICASystem())
    if args.peers != "none":
        names = None if args.peers == "all" else [p.strip() for p in args.peers.split(",") if p.strip()]
        systems += peers.available_peers(names, args.openunmix)
    elif args.openunmix:
        systems.append(peers.OpenUnmixPeer(args.openunmix))
    if not args.no_oracle:
        systems += [OracleMask(binary=False), OracleMask(binary=True)]
    return unique_names(systems)


def unique_names(systems: list[System]) -> list[System]:
    """Results are keyed by system name: two files of the same stem (``a/default.onnx`` and the shipped
    ``default``) get their parent folder added, then a counter."""
    seen: dict[str, int] = {}
    for s in systems:
        if s.name in seen and isinstance(s, ModelSystem):
            parent = Path(s.source).parent.name
            candidate = f"{s.name}@{parent}" if parent and parent != "." else s.name
            k = 2
            while candidate in seen:
                candidate = f"{s.name}#{k}"
                k += 1
            s.name = candidate
        seen[s.name] = 1
    return systems


def load_items(args: argparse.Namespace) -> tuple[list[evalset.Item], dict[str, Any]]:
    if args.set and Path(args.set).is_dir() and not args.corpus and not args.synthetic:
        return evalset.load_set(args.set), {"from": "saved set", "folder": str(args.set)}
    if args.synthetic:
        corpus = Path(args.synthetic_dir)
        evalset.make_synthetic_corpus(corpus, splits=(args.split,), files_per_kind=4, seconds=12.0,
                                      seed=args.seed)
        how = {"from": "generated corpus", "corpus": str(corpus),
               "note": "espeak-ng speech, formant-synthesised singing, synthetic music and noise"}
    elif args.corpus:
        corpus = Path(args.corpus)
        how = {"from": "corpus manifest", "corpus": str(corpus)}
    elif args.set:
        raise SystemExit(f"error: {args.set}: no such evaluation set folder")
    else:
        if not args.musdb and not args.no_voice:
            raise SystemExit("error: give --set FOLDER, --corpus DIR, --synthetic, --musdb ROOT or --no-voice")
        return [], {"from": "musdb only" if args.musdb else "no-voice set only"}
    voices = tuple(args.voice_source) if args.voice_source else None
    without = tuple(args.without_voice_source or ())
    items = evalset.build_set(corpus, split=args.split, per_cell=args.per_cell, seconds=args.seconds,
                              seed=args.seed, voice_sources=voices, without_voice_sources=without)
    how.update({"split": args.split, "per_cell": args.per_cell, "seconds": args.seconds, "seed": args.seed})
    if voices:
        how["voice_sources"] = list(voices)
    if without:
        how["without_voice_sources"] = list(without)
    save_to = args.save_set or args.set
    if save_to:
        evalset.save_set(items, save_to)
        how["saved_to"] = str(save_to)
    return items, how


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_argument_group("evaluation set")
    src.add_argument("--set", type=Path, help="a saved set folder (read it; with --corpus/--synthetic: write it)")
    src.add_argument("--corpus", type=Path, help="corpus folder with manifest.jsonl (deepiso corpus build)")
    src.add_argument("--synthetic", action="store_true", help="generate a small corpus and draw the set from it")
    src.add_argument("--synthetic-dir", type=Path, default=Path("/tmp/deepiso-quality-corpus"))
    src.add_argument("--split", default="valid", choices=["valid", "test"])
    src.add_argument("--voice-source", action="append", default=None, metavar="SOURCE",
                     help="with --corpus: draw voices only from this corpus source (repeatable), "
                          "e.g. kokoro for natural speech only")
    src.add_argument("--without-voice-source", action="append", default=None, metavar="SOURCE",
                     help="with --corpus: draw no voice from this corpus source (repeatable), e.g. "
                          "sung-speech for the set drawn before it joined the corpus")
    src.add_argument("--per-cell", type=int, default=4, help="items per category x SNR")
    src.add_argument("--seconds", type=float, default=8.0)
    src.add_argument("--seed", type=int, default=0)
    src.add_argument("--save-set", type=Path, help="materialise the drawn set to this folder")
    src.add_argument("--musdb", type=Path, help="MUSDB18 root: add its test tracks")
    src.add_argument("--musdb-seconds", type=float, default=None, help="keep only the first S seconds of each track")
    src.add_argument("--no-voice", action="store_true",
                     help="add the no-voice set (ringtones, whistles, synth leads, solo instruments, sine tones, "
                          "sweeps; the right output is silence), scored by the output's level against the input; "
                          "alone it writes results/quality_no_voice.json")
    src.add_argument("--no-voice-per-category", type=int, default=5, metavar="N",
                     help="no-voice items per category (the variants of a category in turn)")
    src.add_argument("--no-voice-seconds", type=float, default=4.0, metavar="S", help="length of a no-voice item")
    src.add_argument("--no-voice-rate", type=int, default=None, metavar="HZ",
                     help="rate of the no-voice items (default: the other items' rate, else 44100)")
    src.add_argument("--lead-in", type=float, default=0.0, metavar="SECONDS",
                     help="play this much quiet noise before every item (scored: the item only)")
    src.add_argument("--lead-in-db", type=float, default=-70.0, metavar="DBFS",
                     help="level of the lead-in noise, dBFS RMS")
    sy = parser.add_argument_group("systems")
    sy.add_argument("--model", action="append", default=[], help="our model: shipped name, .onnx or .pt (repeat)")
    sy.add_argument("--floor", type=float, action="append", default=[], metavar="DBFS",
                    help="also run each --model with this isolator input floor (repeat)")
    sy.add_argument("--synthesis-length", type=int, action="append", default=[], metavar="N",
                    help="also run each --model with this synthesis length, as deepiso live "
                         "--synthesis-length does (repeat; 0 = the full window)")
    sy.add_argument("--openunmix", type=Path, help="Open-Unmix checkpoint (folder with vocals.json + vocals.pth)")
    sy.add_argument("--peers", default="all", help="all | none | comma list of peer names")
    sy.add_argument("--no-ica", action="store_true")
    sy.add_argument("--no-oracle", action="store_true")
    out = parser.add_argument_group("output")
    out.add_argument("--sdr", default="museval", choices=["museval", "fast", "none"])
    out.add_argument("--out", type=Path, default=None,
                     help="result JSON (default results/quality.json; results/quality_no_voice.json for "
                          "--no-voice alone)")
    out.add_argument("--plots", type=Path, default=None, help="folder for PNGs (default: beside --out)")
    out.add_argument("--clips", type=int, default=3, help="items drawn in the Table 2 view")
    args = parser.parse_args(argv)

    try:
        items, how = load_items(args)
    except evalset.EvalSetError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.musdb:
        items += evalset.musdb_items(args.musdb, "test", args.musdb_seconds)
        how["musdb"] = str(args.musdb)
    if args.out is None:
        args.out = RESULTS / ("quality_no_voice.json" if args.no_voice and not items else "quality.json")
    if args.no_voice:
        rate = args.no_voice_rate or (items[0].rate if items else 44_100)
        try:
            extra, skipped = no_voice.build_no_voice_set(args.no_voice_per_category, args.no_voice_seconds, rate,
                                                         args.seed)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        for name, why in skipped.items():
            print(f"no-voice item not made: {name}: {why}", file=sys.stderr)
        items += extra
        how["no_voice"] = {"per_category": args.no_voice_per_category, "seconds": args.no_voice_seconds,
                           "rate": rate, "seed": args.seed, "items": len(extra),
                           "categories": {c: sorted({it.meta["variant"] for it in extra if it.category == c})
                                          for c in no_voice.CATEGORIES},
                           "not_made": skipped}
    if not items:
        raise SystemExit("error: the evaluation set is empty")
    sdr_method = None if args.sdr == "none" else args.sdr
    if sdr_method == "museval":
        try:
            import museval  # noqa: F401
        except ImportError:
            print("museval not installed: SDR through fast_bss_eval", file=sys.stderr)
            sdr_method = "fast"

    systems, unavailable = [], {}
    for s in build_systems(args):
        try:
            s.load()
            systems.append(s)
        except PeerUnavailable as exc:
            unavailable[s.name] = str(exc)
            print(f"not run: {s.name}: {exc}", file=sys.stderr)
    delays = check_delays(systems)

    clip_items = _clip_choice(items, args.clips)
    kept: dict[str, dict[str, np.ndarray]] = {it.name: {} for it in clip_items}
    rows = []
    truthless = {}  # systems that pick their output from the vocal truth have nothing to go on without a voice
    for i, it in enumerate(items):
        lead = lead_in(it, args.lead_in, args.lead_in_db, args.seed)
        free = is_voice_free(it)
        mine = []
        for s in systems:
            if free and s.needs_truth:
                truthless[s.name] = "not run on items with no voice: it chooses its output from the vocal truth"
                continue
            est, cpu, wall = run_system(s, it, lead)
            row = {"item": it.name, "system": s.name, "category": it.category, "snr_db": it.meta.get("snr_db"),
                   "voice_source": voice_source(it), "seconds": it.seconds + args.lead_in, "cpu_s": cpu,
                   "wall_s": wall, **score(est, it, sdr_method)}
            mine.append(row)
            if it.name in kept and s.kind != "reference":
                kept[it.name][s.name] = est
        rows += mine
        print(f"[{i + 1}/{len(items)}] {it.name}: " + ", ".join(
            f"{r['system']} " + (f"level {_fmt(r['level_db'])} dB" if free else f"{r['si_sdri']:+.1f}")
            for r in mine), file=sys.stderr)

    summary = summarize(rows, systems, items)
    table = markdown_table(summary, systems)
    quiet_table = no_voice_table(summary, systems)
    by_source = source_table(summary, systems)
    if table:
        print(table)
    if by_source:
        print("\nMedian SI-SDRi (voice-free leakage) by voice source, dB\n")
        print(by_source)
    if quiet_table:
        print(("\n" if table else "") + "Items with no voice: median level of the output against the input (dB)\n")
        print(quiet_table)
    plots = args.plots or args.out.parent
    stem = args.out.stem
    pictures = []
    if any(r.get("si_sdri") is not None for r in rows):
        pictures.append(str(plot_boxes(rows, systems, plots / f"{stem}_sisdri.png")))
    if any(r.get("level_db") is not None for r in rows):
        pictures.append(str(plot_boxes(rows, systems, plots / f"{stem}_level.png", "level_db")))
    labels = {s.name: s.label for s in systems}
    for it in clip_items:
        pictures.append(str(plot_clip(it, kept[it.name], labels, plots / f"{stem}_clip_{it.name}.png")))

    result = {
        "benchmark": "quality of the vocal estimate: deepiso vs peers, baseline and oracles on the same items",
        "command": "python -m benchmarks.quality " + " ".join(sys.argv[1:] if argv is None else argv),
        "set": {**how, "items": len(items), "lead_in": {"seconds": args.lead_in, "level_dbfs": args.lead_in_db},
                "categories": sorted({it.category for it in items}),
                "rate": sorted({it.rate for it in items})},
        "metrics": {
            "si_sdr": "dB, zero-mean scale-invariant SDR of the mono vocal estimate",
            "si_sdri": "dB, SI-SDR minus the mixture's SI-SDR",
            "sdr": f"dB, BSSEval v4 vocal SDR via {sdr_method}: median over 1 s windows, median over items",
            "residual_db": "voice-free leakage, dB: estimate energy / mixture energy where the vocal truth is "
                           "60 dB under its peak (items with a voice)",
            "level_db": "items with no voice: dB, estimate energy / input energy over the whole item (0 = passed "
                        "through; lower is better); these items have no SI-SDR and are left out of its medians",
            "pesq": "wide-band PESQ at 16 kHz (speech items)", "stoi": "STOI at 16 kHz (speech items)",
            "cpu_s_per_min": "CPU seconds (process time) of the system's call per minute of audio, 1 thread",
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "threads": os.environ.get("OMP_NUM_THREADS")},
        "systems": [s.info() for s in systems],
        "not_run": unavailable,
        "not_run_on_no_voice": truthless,
        "streaming_delays": delays,
        "summary": summary,
        "markdown": table,
        "markdown_no_voice": quiet_table,
        "markdown_by_voice_source": by_source,
        "pictures": pictures,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return result


def _clip_choice(items: list[evalset.Item], count: int) -> list[evalset.Item]:
    """One item per category (the 0 dB one when there is one), up to ``count``."""
    chosen: dict[str, evalset.Item] = {}
    for it in items:
        cur = chosen.get(it.category)
        if cur is None or (it.meta.get("snr_db") == 0.0 and cur.meta.get("snr_db") != 0.0):
            chosen[it.category] = it
    return list(chosen.values())[:count]


if __name__ == "__main__":
    main()
