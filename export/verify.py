"""Parity checks that decide whether an export succeeds.

* the ONNX step graph, run frame by frame with its state carried, against
  PyTorch run frame by frame (``max |Δ| <= tolerance`` over >= 500 frames);
* the ONNX sequence graph, in one call and in two calls with the state carried
  between them, against the ONNX step graph, with the same bound.

Any failure raises :class:`VerificationError`; nothing here only warns.
Inputs are true awareness stacks of a synthetic signal (tones, chirp, noise
bursts, silence) computed with the engine's own DSP, because the network may
rely on consecutive rows sharing frames (``encoder="encode_once"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepiso.realtime import dsp
from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.onnx_model import OUTPUT_NAMES

#: Frames of the verification sequences (the contract asks for at least 500).
MIN_FRAMES = 500
#: Largest allowed absolute difference between PyTorch and onnxruntime, and between the two graphs.
TOLERANCE = 1e-4


class VerificationError(Exception):
    """An exported graph that does not compute what the PyTorch model computes."""


def synthetic_signal(spec: FrameSpec, frames: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A test signal ``(channels, frames * hop)`` float32 at ``spec.sample_rate``.

    Harmonic tones with vibrato (voice-like), a chirp, white-noise bursts and
    a stretch of silence, at about -12 dBFS; every channel differs.
    """
    rng = np.random.default_rng(seed)
    n = frames * spec.hop
    t = np.arange(n) / spec.sample_rate
    out = np.zeros((channels, n), np.float64)
    nyquist = spec.sample_rate / 2
    for ch in range(channels):
        f0 = rng.uniform(110, 330)
        vib = f0 * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(vib) / spec.sample_rate
        for k in range(1, 8):
            if k * f0 * 1.05 < nyquist:
                out[ch] += np.sin(k * phase) / k
        out[ch] += 0.5 * np.sin(2 * np.pi * (50 + 0.45 * nyquist * t / t[-1]) * t)
        bursts = (np.sin(2 * np.pi * 1.3 * t + ch) > 0.6).astype(np.float64)
        out[ch] += 0.3 * bursts * rng.standard_normal(n)
        out[ch, n // 3 : n // 3 + n // 10] = 0.0  # silence: state must survive zeros
        out[ch] *= 0.25 / max(np.max(np.abs(out[ch])), 1e-9)
    return out.astype(np.float32)


def awareness_inputs(spec: FrameSpec, signal: np.ndarray) -> np.ndarray:
    """Model inputs ``(channels, frames, input_size)`` for a signal ``(channels, samples)``."""
    feats = dsp.features(dsp.stft(signal, spec))
    return np.ascontiguousarray(dsp.awareness(feats, spec.past_frames, spec.future_frames), dtype=np.float32)


def torch_steps(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """PyTorch reference: ``x`` ``(B, T, input_size)`` one frame per call, state carried → ``(B, T, out)``."""
    net = net.eval()
    state = None
    out = np.empty((x.shape[0], x.shape[1], net.spec.output_size), np.float32)
    xt = torch.from_numpy(x)
    threads = torch.get_num_threads()
    # One frame is too little work to share: extra threads only add synchronisation.
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for t in range(x.shape[1]):
                y, state = net(xt[:, t : t + 1], state)
                out[:, t] = y[:, 0].numpy()
    finally:
        torch.set_num_threads(threads)
    return out


def ort_steps(session: Any, x: np.ndarray, layers: int, hidden: int) -> np.ndarray:
    """onnxruntime step graph over ``x`` ``(B, T, input_size)``, one frame per call, state carried."""
    b = x.shape[0]
    h = np.zeros((layers, b, hidden), np.float32)
    c = np.zeros_like(h)
    frames = []
    for t in range(x.shape[1]):
        y, h, c = session.run(list(OUTPUT_NAMES), {"features": x[:, t], "h": h, "c": c})
        frames.append(y)
    return np.stack(frames, axis=1)


def ort_sequence(session: Any, x: np.ndarray, layers: int, hidden: int, split: int | None = None) -> np.ndarray:
    """onnxruntime sequence graph over ``x``, in one call or two (split at frame ``split``)."""
    b = x.shape[0]
    h = np.zeros((layers, b, hidden), np.float32)
    c = np.zeros_like(h)
    parts = [x] if split is None else [x[:, :split], x[:, split:]]
    outs = []
    for part in parts:
        y, h, c = session.run(list(OUTPUT_NAMES), {"features": np.ascontiguousarray(part), "h": h, "c": c})
        outs.append(y)
    return np.concatenate(outs, axis=1)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def check(name: str, diff: float, tolerance: float) -> None:
    """Raise :class:`VerificationError` when ``diff`` exceeds ``tolerance``."""
    if not diff <= tolerance:  # also catches NaN
        raise VerificationError(f"{name}: max |difference| {diff:.3g} exceeds the tolerance {tolerance:.3g}")


def verify_graphs(net: torch.nn.Module, step_session: Any, seq_session: Any, *, frames: int = MIN_FRAMES,
                  tolerance: float = TOLERANCE, seed: int = 0) -> dict[str, Any]:
    """Run both checks on a batch of two different channels; return the measured differences.

    Raises :class:`VerificationError` on the first check that fails, or when
    ``frames`` is below :data:`MIN_FRAMES`.
    """
    if frames < MIN_FRAMES:
        raise VerificationError(f"verification needs at least {MIN_FRAMES} frames, got {frames}")
    spec, cfg = net.spec, net.cfg
    x = awareness_inputs(spec, synthetic_signal(spec, frames, channels=2, seed=seed))
    reference = torch_steps(net, x)
    step = ort_steps(step_session, x, cfg.layers, cfg.hidden)
    step_diff = max_abs_diff(step, reference)
    check("onnxruntime step graph vs PyTorch, frame by frame", step_diff, tolerance)
    whole = ort_sequence(seq_session, x, cfg.layers, cfg.hidden)
    seq_diff = max_abs_diff(whole, step)
    check("sequence graph in one call vs step graph", seq_diff, tolerance)
    split = ort_sequence(seq_session, x, cfg.layers, cfg.hidden, split=frames // 3)
    split_diff = max_abs_diff(split, step)
    check("sequence graph in two calls (state carried) vs step graph", split_diff, tolerance)
    return {
        "frames": frames,
        "batch": int(x.shape[0]),
        "tolerance": tolerance,
        "step_vs_pytorch_max_abs_diff": step_diff,
        "sequence_vs_step_max_abs_diff": max(seq_diff, split_diff),
        "output_peak": float(np.max(np.abs(reference))),
        "input": "awareness stacks of a synthetic signal (tones, chirp, noise bursts, silence)",
    }
