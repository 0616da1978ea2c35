"""STFT analysis and overlap-add synthesis, offline and streaming, sharing one
frame convention.

Frame convention (both paths): the signal is preceded by ``n_fft - hop`` zeros;
frame ``t`` is the windowed FFT of padded samples ``[t*hop, t*hop + n_fft)``,
so it *ends* with input sample ``(t+1)*hop - 1`` and exists as soon as that
sample has arrived. A signal of ``N`` samples has ``N // hop`` frames.

Synthesis is weighted overlap-add with the synthesis window that makes
analysis followed by synthesis the identity
(:func:`~deepiso.realtime.windows.synthesis_window`). After
frame ``t`` the synthesiser emits ``hop`` finished samples; the emitted stream
``s`` satisfies ``s[i] = x[i - (n_fft - hop)]`` for the identity, or
``s[i] = x[i - (synthesis_length - hop)]`` with a low-delay synthesis.

Layouts: offline functions take ``(..., samples)`` and return
``(..., frames, bins)``; streaming blocks are ``(samples, channels)`` like the
buffers an audio callback receives; streaming state is ``(channels, ...)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np
from rocket_fft import c2r, r2c

from .frame import FrameSpec
from .windows import analysis_window, synthesis_window

# ----------------------------------------------------------------------------
# Windows


def spec_synthesis_window(spec: FrameSpec) -> np.ndarray:
    """:func:`~deepiso.realtime.windows.synthesis_window` of ``spec`` (its window, frame, hop and synthesis length)."""
    return synthesis_window(spec.window, spec.n_fft, spec.hop, spec.synthesis_length)


# ----------------------------------------------------------------------------
# Offline (whole signal at once)


def stft(x: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """Spectrum frames of ``x``.

    ``x``: ``(..., samples)`` real. Returns complex64 ``(..., samples // hop, n_bins)``.
    """
    x = np.asarray(x, dtype=np.float32)
    n_frames = x.shape[-1] // spec.hop
    pad = [(0, 0)] * (x.ndim - 1) + [(spec.n_fft - spec.hop, 0)]
    padded = np.pad(x[..., : n_frames * spec.hop], pad)
    frames = np.lib.stride_tricks.sliding_window_view(padded, spec.n_fft, axis=-1)[..., :: spec.hop, :]
    frames = frames[..., :n_frames, :] * analysis_window(spec.window, spec.n_fft)
    return np.fft.rfft(frames, axis=-1).astype(np.complex64, copy=False)


def istft(frames: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """Overlap-add synthesis in the streaming convention.

    ``frames``: complex ``(..., T, n_bins)``. Returns float32 ``(..., T * hop)``:
    exactly what the streaming synthesiser emits for those frames, i.e. the
    signal delayed by ``spec.synthesis_span - hop`` samples (``n_fft - hop``
    unless the synthesis is low-delay; see :func:`align`).
    """
    n_frames = np.shape(frames)[-2]
    skip = spec.n_fft - spec.synthesis_span  # the oldest samples of a frame that no synthesis window covers
    return overlap_add(frames, spec)[..., skip : skip + n_frames * spec.hop]


def overlap_add(frames: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """Every sample that ``frames`` ``(..., T, n_bins)`` synthesise, frame ``t`` starting at sample ``t * hop``.

    Returns float32 ``(..., (T + ceil(n_fft / hop) - 1) * hop)``: :func:`istft` before it drops the
    samples no synthesis window covers and the tail of the last frames. Summing the results of
    consecutive runs of frames, each at ``hop`` times its first frame, gives the result of all of them.
    """
    frames = np.asarray(frames)
    n_frames = frames.shape[-2]
    n_fft, hop = spec.n_fft, spec.hop
    parts = -(-n_fft // hop)
    time = np.fft.irfft(frames, n=n_fft, axis=-1).astype(np.float32, copy=False)
    time = time * spec_synthesis_window(spec)
    if parts * hop != n_fft:
        time = np.concatenate(
            [time, np.zeros(time.shape[:-1] + (parts * hop - n_fft,), np.float32)], axis=-1
        )
    lead = frames.shape[:-2]
    out = np.zeros(lead + ((n_frames + parts - 1) * hop,), np.float32)
    for r in range(parts):
        seg = time[..., r * hop : (r + 1) * hop]
        view = out[..., r * hop : r * hop + n_frames * hop].reshape(lead + (n_frames, hop))
        view += seg
    return out


def align(stream: np.ndarray, delay: int, length: int) -> np.ndarray:
    """Undo a streaming delay: ``stream[..., delay : delay + length]``, zero-padded at the end."""
    out = stream[..., delay : delay + length]
    if out.shape[-1] < length:
        pad = [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])]
        out = np.pad(out, pad)
    return out


def features(frames: np.ndarray) -> np.ndarray:
    """The report's real+imag doubling: complex ``(..., bins)`` → float32 ``(..., 2*bins)``."""
    return np.concatenate([frames.real, frames.imag], axis=-1).astype(np.float32, copy=False)


def from_features(ri: np.ndarray) -> np.ndarray:
    """Inverse of :func:`features`: float ``(..., 2*bins)`` → complex64 ``(..., bins)``."""
    bins = ri.shape[-1] // 2
    return (ri[..., :bins] + 1j * ri[..., bins:]).astype(np.complex64, copy=False)


def awareness(feats: np.ndarray, past: int, future: int) -> np.ndarray:
    """Stack each frame with its context, oldest first, zeros outside the signal.

    ``feats``: ``(..., T, F)`` → ``(..., T, (past + 1 + future) * F)``; row ``t``
    holds frames ``t - past .. t + future``.
    """
    pad = [(0, 0)] * (feats.ndim - 2) + [(past, future), (0, 0)]
    padded = np.pad(feats, pad)
    n_frames, width = feats.shape[-2], feats.shape[-1]
    ctx = past + 1 + future
    win = np.lib.stride_tricks.sliding_window_view(padded, ctx, axis=-2)  # (..., T, F, ctx)
    win = np.swapaxes(win[..., :n_frames, :, :], -1, -2)  # (..., T, ctx, F)
    return win.reshape(feats.shape[:-2] + (n_frames, ctx * width))


# ----------------------------------------------------------------------------
# Streaming kernels (numba; all buffers owned and preallocated by the caller)


@numba.njit(cache=True, nogil=True)
def _ingest(block, start, count, inbuf, fill):  # pragma: no cover - compiled
    # block (n, C) any float dtype → inbuf (C, n_fft) float32 at [fill, fill+count)
    for c in range(inbuf.shape[0]):
        for i in range(count):
            inbuf[c, fill + i] = block[start + i, c]


@numba.njit(cache=True, nogil=True)
def _analyze(inbuf, window, hop, scratch, spectrum, axes, ctx):  # pragma: no cover - compiled
    # inbuf (C, n_fft) full → spectrum (C, bins); ctx (C, K, 2*bins) shifted one
    # frame older, newest real+imag written last; inbuf shifted left by hop.
    n_ch, n_fft = inbuf.shape
    bins = spectrum.shape[1]
    k = ctx.shape[1]
    for c in range(n_ch):
        for i in range(n_fft):
            scratch[i] = inbuf[c, i] * window[i]
        r2c(scratch, spectrum[c], axes, True, 1.0, 1)
        for j in range(k - 1):
            for i in range(2 * bins):
                ctx[c, j, i] = ctx[c, j + 1, i]
        for i in range(bins):
            ctx[c, k - 1, i] = spectrum[c, i].real
            ctx[c, k - 1, bins + i] = spectrum[c, i].imag
        for i in range(n_fft - hop):
            inbuf[c, i] = inbuf[c, i + hop]


@numba.njit(cache=True, nogil=True)
def _synthesize(ri, synth_window, hop, skip, spectrum, scratch, axes, acc, fifo, level):  # pragma: no cover
    # ri (C, 2*bins) real+imag → irfft * synth window, overlap-added into acc
    # (C, n_fft); the hop finished samples from acc[skip] on (skip: the frame's
    # oldest samples no synthesis window covers) are appended to fifo (C, cap) at level.
    n_ch, n_fft = acc.shape
    bins = spectrum.shape[1]
    scale = 1.0 / n_fft
    for c in range(n_ch):
        for i in range(bins):
            spectrum[c, i] = complex(ri[c, i], ri[c, bins + i])
        c2r(spectrum[c], scratch, axes, False, scale, 1)
        for i in range(n_fft):
            acc[c, i] += scratch[i] * synth_window[i]
        for i in range(hop):
            fifo[c, level + i] = acc[c, skip + i]
        for i in range(n_fft - hop):
            acc[c, i] = acc[c, i + hop]
        for i in range(n_fft - hop, n_fft):
            acc[c, i] = 0.0


@numba.njit(cache=True, nogil=True)
def _pop(fifo, level, out, start, count):  # pragma: no cover - compiled
    # First min(count, level) samples of fifo (C, cap) → out (n, C) at start;
    # any shortfall is written as zeros. Returns the shortfall.
    n_ch = fifo.shape[0]
    have = min(count, level)
    for c in range(n_ch):
        for i in range(have):
            out[start + i, c] = fifo[c, i]
        for i in range(have, count):
            out[start + i, c] = 0.0
        for i in range(level - have):
            fifo[c, i] = fifo[c, i + have]
    return count - have


# ----------------------------------------------------------------------------
# Streaming objects


class StreamAnalyzer:
    """Samples in, spectrum frames and the awareness context out.

    State (allocated once, zeroed by :meth:`reset`):

    * ``inbuf``    ``(C, n_fft)`` float32 — the last ``n_fft`` input samples;
      ``fill`` of them are valid (starts at ``n_fft - hop``: the zero padding);
    * ``spectrum`` ``(C, n_bins)`` complex64 — the newest frame;
    * ``context``  ``(C, past + 1 + future, 2 * n_bins)`` float32 — the awareness
      ring, oldest frame first, newest last; row ``past`` is the frame the
      model's output belongs to.
    """

    def __init__(self, spec: FrameSpec, channels: int) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.spec = spec
        self.channels = channels
        self.window = analysis_window(spec.window, spec.n_fft)
        self.inbuf = np.zeros((channels, spec.n_fft), np.float32)
        self.spectrum = np.zeros((channels, spec.n_bins), np.complex64)
        self.context = np.zeros((channels, spec.context, spec.feature_size), np.float32)
        self._scratch = np.zeros(spec.n_fft, np.float32)
        self._axes = np.zeros(1, np.int64)
        self.fill = spec.n_fft - spec.hop

    def reset(self) -> None:
        self.inbuf.fill(0.0)
        self.spectrum.fill(0.0)
        self.context.fill(0.0)
        self.fill = self.spec.n_fft - self.spec.hop

    def need(self) -> int:
        """Samples still missing before the next frame."""
        return self.spec.n_fft - self.fill

    def write(self, block: np.ndarray, start: int, count: int) -> bool:
        """Take ``block[start:start+count]`` (``(n, C)``); True when a frame was analysed.

        ``count`` must not exceed :meth:`need`.
        """
        _ingest(block, start, count, self.inbuf, self.fill)
        self.fill += count
        if self.fill < self.spec.n_fft:
            return False
        _analyze(self.inbuf, self.window, self.spec.hop, self._scratch, self.spectrum, self._axes, self.context)
        self.fill = self.spec.n_fft - self.spec.hop
        return True

    def center_features(self) -> np.ndarray:
        """Real+imag of the frame the current output belongs to: ``(C, 2*n_bins)`` view."""
        return self.context[:, self.spec.past_frames, :]


class StreamSynthesizer:
    """Real+imag spectrum frames in, samples out (weighted overlap-add).

    State: ``acc`` ``(C, n_fft)`` float32, the overlap-add accumulator.
    """

    def __init__(self, spec: FrameSpec, channels: int) -> None:
        self.spec = spec
        self.channels = channels
        self.synth_window = spec_synthesis_window(spec)
        self._skip = spec.n_fft - spec.synthesis_span
        self.acc = np.zeros((channels, spec.n_fft), np.float32)
        self._spectrum = np.zeros((channels, spec.n_bins), np.complex64)
        self._scratch = np.zeros(spec.n_fft, np.float32)
        self._axes = np.zeros(1, np.int64)

    def reset(self) -> None:
        self.acc.fill(0.0)

    def synthesize(self, ri: np.ndarray, fifo: np.ndarray, level: int) -> None:
        """Overlap-add ``ri`` (``(C, 2*n_bins)`` float32) and append ``hop`` samples to ``fifo`` at ``level``."""
        _synthesize(ri, self.synth_window, self.spec.hop, self._skip, self._spectrum, self._scratch, self._axes,
                    self.acc, fifo, level)


#: ``fn(context, out_ri)``: read the awareness context ``(C, K, 2*bins)`` and
#: write the output frame's real+imag spectrum into ``out_ri`` ``(C, 2*bins)``.
FrameFn = Callable[[np.ndarray, np.ndarray], None]


def identity_frame(spec: FrameSpec) -> FrameFn:
    """A frame function that passes the centre frame through unchanged."""
    row = spec.past_frames

    def fn(context: np.ndarray, out_ri: np.ndarray) -> None:
        out_ri[...] = context[:, row, :]

    return fn


class SpectralStream:
    """Blocks of any size in, blocks of the same size out, with a fixed delay.

    ``process(inp, out)`` runs analysis, ``frame_fn`` and synthesis for every
    completed hop. ``inp`` and ``out`` are ``(n, C)``; ``out`` may be ``inp``.
    The output is the processed signal delayed by :attr:`latency_samples`,
    which is ``spec.latency_samples(block_size)``: exact and constant as long
    as every block is a multiple of ``gcd(block_size, hop)``; ``None`` allows
    any size. A block that breaks this rule costs an underrun: the missing
    samples are emitted as zeros and the same number of late samples is
    dropped when they arrive, so the delay stays constant (``underruns``
    counts these events).
    """

    def __init__(self, spec: FrameSpec, channels: int, frame_fn: FrameFn | None = None,
                 block_size: int | None = None) -> None:
        self.spec = spec
        self.channels = channels
        self.analyzer = StreamAnalyzer(spec, channels)
        self.synthesizer = StreamSynthesizer(spec, channels)
        self.frame_fn = frame_fn if frame_fn is not None else identity_frame(spec)
        self.block_size = block_size
        g = 1 if block_size is None else math.gcd(block_size, spec.hop)
        self._prefill = spec.hop - g
        self._out_ri = np.zeros((channels, spec.feature_size), np.float32)
        self.fifo = np.zeros((channels, self._prefill + spec.hop), np.float32)
        self._discard = np.zeros((spec.hop, channels), np.float32)
        self.underruns = 0
        self.level = self._prefill
        self._debt = 0  # late samples still to drop after an underrun

    @property
    def latency_samples(self) -> int:
        return self.spec.latency_samples(self.block_size)

    def reset(self) -> None:
        """Zero all state and return to the nominal latency."""
        self.analyzer.reset()
        self.synthesizer.reset()
        self.fifo.fill(0.0)
        self._out_ri.fill(0.0)
        self.level = self._prefill
        self._debt = 0

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        n = inp.shape[0]
        analyzer, hop = self.analyzer, self.spec.hop
        i = 0
        while i < n:
            take = min(n - i, analyzer.need())
            if analyzer.write(inp, i, take):
                self.frame_fn(analyzer.context, self._out_ri)
                self.synthesizer.synthesize(self._out_ri, self.fifo, self.level)
                self.level += hop
                if self._debt:
                    drop = min(self._debt, self.level)
                    _pop(self.fifo, self.level, self._discard, 0, drop)
                    self.level -= drop
                    self._debt -= drop
            short = _pop(self.fifo, self.level, out, i, take)
            self.level -= take - short
            if short:
                self.underruns += 1
                self._debt += short
            i += take
