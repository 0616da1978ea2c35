"""One way to split a signal into vocals and instrumental: analysis → model → synthesis → stems.

:class:`Separator` is what ``deepiso separate``, the demo's offline reference, the
exporter's int8 check and the benchmarks call. It runs the frame contract
(``deepiso.realtime.frame``) exactly as the live engine does, in two ways that
give the same output:

* :meth:`Separator.separate` — for files and arrays: the model's *sequence
  graph* (many frames per call, the LSTM state carried between calls) over
  chunks of frames, so a long file costs little memory and no Python loop per
  frame;
* :meth:`Separator.stream` — the live engine itself: the
  :class:`~deepiso.realtime.plugins.isolator.Isolator` plugin in a
  :class:`~deepiso.realtime.host.Host`, block by block through the model's
  *step graph* (one frame per call), its latency removed afterwards.

The rules both follow: a frame whose whole awareness context is below the
silence floor gives no voice, and the model starts afresh from its initial
state when the signal returns; the signal is kept to its last sample (the
analysis runs on past the end until the last sample is synthesised).

Stereo and multichannel input is separated once, from the mid signal (the mean
of the channels), and the estimate is applied to every channel as a complex
gain per bin: the stems keep the input's stereo image at the cost of one
model run, where a run per channel would cost one per channel and hear each
channel's share of the band on its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from . import dsp, windows
from .frame import FrameSpec
from .plugins.isolator import SILENCE_DBFS, check_floor, silent_contexts, with_synthesis

#: Frames per call of the sequence graph: 0.74 s at 44.1 kHz with a 256-sample hop, 2.6 MB of model input
#: that stays in the cache (one minute of stereo: 0.55 s of CPU in chunks of 128, 0.73 s in chunks of 1024).
CHUNK_FRAMES = 128

Progress = Callable[[int, int], None]


class SequenceModel(Protocol):
    """What the separator runs: a frame spec, and frames in, frames out, with state carried between calls."""

    spec: FrameSpec

    def reset(self) -> None:
        """Return to the initial state, the state every run of voiced frames starts from."""

    def run_sequence(self, x: np.ndarray) -> np.ndarray:
        """``x`` float32 ``(1, T, input_size)`` → ``(1, T, output_size)``, continuing from the current state."""


@dataclass
class Stems:
    """What :meth:`Separator.separate` returns; every array is float32 ``(samples, channels)`` at ``rate``."""

    vocals: np.ndarray
    instrumental: np.ndarray
    rate: int
    nonfinite: int  # input samples that were NaN or infinite, separated as silence


class Separator:
    """Split audio into vocals and instrumental with one model.

    ``model``: a shipped model name (``"default"``), an ``.onnx`` path (loaded
    through :func:`~deepiso.realtime.onnx_model.load_model`: onnxruntime on the
    CPU, one thread), or a loaded :class:`SequenceModel`. ``floor_dbfs`` and
    ``synthesis_length`` mean what they mean for the
    :class:`~deepiso.realtime.plugins.isolator.Isolator` plugin.
    Raises :class:`~deepiso.realtime.chain.PluginError` for a model that cannot be loaded
    and a floor or synthesis it cannot take.
    """

    def __init__(self, model: str | os.PathLike | SequenceModel = "default", *, floor_dbfs: float = SILENCE_DBFS,
                 synthesis_length: int | None = None, chunk_frames: int = CHUNK_FRAMES) -> None:
        self.floor_dbfs = check_floor(floor_dbfs)
        if isinstance(model, str | os.PathLike):
            from .plugins.isolator import _default_loader

            self.source: str | os.PathLike | None = model
            self.model = _default_loader(model, batch=1)
        else:
            self.source = None
            self.model = model
        spec = self.model.spec
        if synthesis_length is not None and synthesis_length != spec.synthesis_length:
            spec = with_synthesis(spec, synthesis_length)
        self.spec: FrameSpec = spec
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
        self.chunk_frames = int(chunk_frames)

    @property
    def rate(self) -> int:
        """The rate the model runs at; :meth:`separate` resamples other rates to it and back."""
        return self.spec.sample_rate

    @property
    def min_samples(self) -> int:
        """The shortest input, in samples at the model's rate, that fills one analysis frame."""
        return self.spec.n_fft

    # ------------------------------------------------------------ files and arrays: the sequence graph
    def separate(self, x: np.ndarray, rate: int | None = None, progress: Progress | None = None) -> Stems:
        """Separate ``x`` ``(samples, channels)`` (or ``(samples,)``) at ``rate`` (default: the model's).

        Returns stems of the input's length and rate, time-aligned with it: no delay, nothing cut.
        Non-finite samples are separated as silence and counted in :attr:`Stems.nonfinite`.
        ``progress(done, total)`` is called after every chunk of frames.
        """
        x, rate, bad = self._prepare(x, rate)
        from .audio_io import resample

        y = resample(x, rate, self.rate) if rate != self.rate else x
        vocals = self.vocals(np.ascontiguousarray(y.T), progress).T
        if rate != self.rate:
            vocals = _fit(resample(np.ascontiguousarray(vocals), self.rate, rate), x.shape[0])
        vocals = np.ascontiguousarray(vocals, np.float32)
        return Stems(vocals=vocals, instrumental=x - vocals, rate=rate, nonfinite=bad)

    def vocals(self, x: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """The voice in ``x`` float32 ``(channels, samples)`` or ``(samples,)`` at the model's rate, same shape.

        Mono is the engine's path exactly; more channels are separated from their mean and the
        estimate applied to each (see the module's notes).
        """
        x = np.asarray(x, np.float32)
        if x.ndim == 1:
            return self.vocals(x[None], progress)[0]
        spec = self.spec
        hop, n_fft, past, future = spec.hop, spec.n_fft, spec.past_frames, spec.future_frames
        channels, n = x.shape
        # n_fft zeros run the analysis on past the end, so the last samples come out of the synthesis;
        # frames before the first and after the last are zeros, as the awareness context sees them.
        total = (n + n_fft) // hop
        padded = np.zeros((channels, (n_fft - hop) + total * hop), np.float32)
        padded[:, n_fft - hop : n_fft - hop + n] = x
        window = windows.analysis_window(spec.window, n_fft)
        parts = -(-n_fft // hop)
        acc = np.zeros((channels, (total + parts - 1) * hop), np.float32)
        silent_before = True
        for a in range(0, total, self.chunk_frames):
            b = min(total, a + self.chunk_frames)
            frames = _frames(padded, a - past, b + future, total, hop, window)  # (C, past + L + future, bins)
            mid = frames[0] if channels == 1 else frames.mean(axis=0)
            y, silent_before = self._model_frames(mid, silent_before)
            centre = frames[:, past : past + b - a]
            acc[:, a * hop : (b + parts - 1) * hop] += dsp.overlap_add(self._apply(y, mid[past : past + b - a],
                                                                                    centre), spec)
            if progress is not None:
                progress(b, total)
        skip = n_fft - spec.synthesis_span
        return dsp.align(acc[:, skip : skip + total * hop], spec.synthesis_delay, n)

    def _model_frames(self, feats_frames: np.ndarray, silent_before: bool) -> tuple[np.ndarray, bool]:
        """Model output ``(L, output_size)`` for the centre rows of ``feats_frames`` ``(past + L + future, bins)``."""
        spec = self.spec
        ctx_len = spec.past_frames + 1 + spec.future_frames
        feats = dsp.features(feats_frames)
        length = feats.shape[0] - ctx_len + 1
        win = np.lib.stride_tricks.sliding_window_view(feats, ctx_len, axis=0)  # (L, F, ctx)
        ctx = np.ascontiguousarray(np.swapaxes(win, 1, 2).reshape(1, length, spec.input_size), np.float32)
        silent = silent_contexts(ctx, spec, self.floor_dbfs)
        y = np.zeros((length, spec.output_size), np.float32)
        edges = np.flatnonzero(np.diff(np.concatenate([[True], silent, [True]]).astype(np.int8)))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):  # runs of frames that are not silent
            if start > 0 or silent_before:
                self.model.reset()
            y[start:stop] = self.model.run_sequence(ctx[:, start:stop])[0]
        bad = ~np.isfinite(y).all(axis=1)
        if bad.any():  # as the engine: a frame the model gets wrong is silence, and the model starts afresh
            y[bad] = 0.0
            self.model.reset()
        return y, bool(silent[-1]) if length else silent_before

    def _apply(self, y: np.ndarray, mid: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Vocal frames ``(C, L, bins)`` of ``frames`` from the model output ``y`` for their mid ``mid``."""
        kind = self.spec.output
        if kind == "ratio_mask":
            return frames * y
        if kind == "complex_mask":
            return frames * dsp.from_features(y)
        voice = dsp.from_features(y)
        if frames.shape[0] == 1:
            return voice[None]
        # A vocal spectrum becomes the gain that takes the mid to it, V M* / |M|^2, applied to each channel.
        # Its size is kept at most 1 (the voice no louder than the mix): V M* / (|M| max(|M|, |V|)).
        size = np.abs(mid)
        denominator = np.maximum(size * np.maximum(size, np.abs(voice)), np.float32(1e-30))
        return frames * (voice * mid.conj() / denominator)

    # ------------------------------------------------------------ streams: the step graph through the engine
    def stream(self, x: np.ndarray, rate: int | None = None, block: int = 256) -> Stems:
        """:meth:`separate` through the live engine: ``Host`` → ``Isolator`` in blocks of ``block`` samples.

        The engine runs each channel on its own (a live stream has one channel, the microphone), so a
        mono ``x`` gives what :meth:`separate` gives, to within float rounding of the two graphs.
        """
        from .host import Host
        from .plugins.isolator import Isolator

        x, rate, bad = self._prepare(x, rate)
        channels = x.shape[1]
        iso = Isolator(self.source if self.source is not None else self.model, channels=channels,
                       floor_dbfs=self.floor_dbfs, synthesis_length=self.spec.synthesis_length)
        host = Host([iso], rate, channels, max_block=block, block_size=block)
        vocals = host.run_offline(x, block, flush=True)
        return Stems(vocals=vocals, instrumental=x - vocals, rate=rate, nonfinite=bad)

    def _prepare(self, x: np.ndarray, rate: int | None) -> tuple[np.ndarray, int, int]:
        rate = self.rate if rate is None else int(rate)
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] < 1:
            raise ValueError(f"audio must be (samples, channels), got shape {x.shape}")
        x = np.array(x, np.float32)  # a copy: the caller's array is never changed
        finite = np.isfinite(x)
        bad = int(x.size - np.count_nonzero(finite))
        if bad:
            x[~finite] = 0.0
        return x, rate, bad

    def __repr__(self) -> str:
        card: dict[str, Any] = getattr(self.model, "card", {}) or {}
        return f"Separator({card.get('name', self.source)!r} {card.get('version', '')}, {self.spec.output})"


def _frames(padded: np.ndarray, lo: int, hi: int, total: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Spectrum frames ``lo .. hi - 1`` of ``padded`` ``(C, samples)``; frames outside ``0 .. total - 1`` are zero."""
    channels, n_fft = padded.shape[0], window.size
    first, last = max(lo, 0), min(hi, total)
    out = np.zeros((channels, hi - lo, n_fft // 2 + 1), np.complex64)
    if last > first:
        seg = padded[:, first * hop : (last - 1) * hop + n_fft]
        frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft, axis=-1)[:, ::hop][:, : last - first]
        # In double precision: numpy's float64 transform is faster than its float32 one.
        out[:, first - lo : last - lo] = np.fft.rfft(frames * window.astype(np.float64), axis=-1)
    return out


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` ``(m, C)`` cut or zero-padded to ``n`` rows."""
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros((n - x.shape[0], x.shape[1]), x.dtype)])
