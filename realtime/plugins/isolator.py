"""The isolator plugin: the exported model's step graph run frame by frame.

Streaming state, all allocated in :meth:`Isolator.configure` and zeroed by
:meth:`Isolator.reset`:

* the STFT input ring, awareness ring and overlap-add ring, inside a
  :class:`~deepiso.realtime.dsp.SpectralStream` (which also decouples the
  device block size from the model hop with its FIFO);
* the LSTM ``h``/``c``, inside the model (``model.step`` carries them);
* ``ring`` ``(C, latency)`` float32: the mixture delayed by the plugin's
  latency, so that instrumental = delayed mixture − vocals, sample-aligned;
* ``vocals`` / ``instrumental`` ``(max_block, C)`` float32: the stems of the
  last block, read by a :class:`~deepiso.realtime.plugins.basic.Mix` after it.

Model output kinds (``spec.output``): ``spectrum`` is the vocal spectrum's
real+imag; ``ratio_mask`` is one gain per bin for the centre mixture frame
(awareness row ``past_frames``); ``complex_mask`` is a complex gain (real+imag)
for that frame.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from .. import dsp, windows
from ..chain import Plugin, PluginError
from ..frame import FrameSpec, FrameSpecError

STEMS = ("vocals", "instrumental")


@numba.njit(cache=True, nogil=True)
def _copy_checked(y, out_ri):  # pragma: no cover - compiled
    bad = 0
    for c in range(out_ri.shape[0]):
        for i in range(out_ri.shape[1]):
            v = y[c, i]
            if not math.isfinite(v):
                bad += 1
                v = 0.0
            out_ri[c, i] = v
    return bad


@numba.njit(cache=True, nogil=True)
def _ratio_mask(mask, centre, out_ri):  # pragma: no cover - compiled
    bins = mask.shape[1]
    bad = 0
    for c in range(mask.shape[0]):
        for k in range(bins):
            g = mask[c, k]
            if not math.isfinite(g):
                bad += 1
                g = 0.0
            out_ri[c, k] = g * centre[c, k]
            out_ri[c, bins + k] = g * centre[c, bins + k]
    return bad


@numba.njit(cache=True, nogil=True)
def _complex_mask(mask, centre, out_ri):  # pragma: no cover - compiled
    bins = centre.shape[1] // 2
    bad = 0
    for c in range(mask.shape[0]):
        for k in range(bins):
            a, b = mask[c, k], mask[c, bins + k]
            if not (math.isfinite(a) and math.isfinite(b)):
                bad += 1
                a, b = 0.0, 0.0
            x, y = centre[c, k], centre[c, bins + k]
            out_ri[c, k] = a * x - b * y
            out_ri[c, bins + k] = a * y + b * x
    return bad


@numba.njit(cache=True, nogil=True)
def _instrumental(mix, voc, ring, pos, inst):  # pragma: no cover - compiled
    # inst = mixture delayed by ring.shape[1] samples − vocals; ring (C, L), pos[0] the write index.
    n, n_ch = mix.shape
    length = ring.shape[1]
    p = pos[0]
    for i in range(n):
        for c in range(n_ch):
            if length:
                delayed = ring[c, p]
                ring[c, p] = mix[i, c]
            else:
                delayed = mix[i, c]
            inst[i, c] = delayed - voc[i, c]
        if length:
            p += 1
            if p == length:
                p = 0
    pos[0] = p


ModelLoader = Callable[..., Any]


@numba.njit(cache=True, nogil=True)
def _max_energy(x):  # pragma: no cover - compiled
    """The largest sum of squares over the rows of ``x`` (NaN if any value is NaN)."""
    best = 0.0
    for c in range(x.shape[0]):
        s = 0.0
        for i in range(x.shape[1]):
            s += x[c, i] * x[c, i]
        if s > best or s != s:
            best = s
    return best


#: A context (every awareness frame, every channel) quieter than this is silence: the model is not run,
#: the frame is silent and the LSTM state returns to its initial zeros, the state every training
#: segment starts from. (Fed digital silence, the network's state drifts to where it stays nearly blind
#: for many seconds after the signal starts; the noise of 16-bit silence sits near -101 dBFS.) Near-silence
#: counts too: started on the few samples near -95 dBFS that lead into a sound, the network locked into
#: passing everything for seconds at some positions of the onset on the hop grid (the demo clip: +0.4
#: and +1.1 dB at 2 of 32 offsets, +3.8...+5.9 at the others with a floor of -100; +3.8...+5.9 at all 32
#: with -80). A voice 80 dB under full scale is inaudible; training's levels are -50...-10 dBFS.
SILENCE_DBFS = -80.0


def silence_energy(spec: FrameSpec, floor_dbfs: float = SILENCE_DBFS) -> float:
    """Sum of squares of a whole awareness context of white noise at ``floor_dbfs`` (dBFS RMS).

    Each real or imaginary part of a bin has mean square ``sigma^2 * sum(analysis window^2) / 2``.
    """
    window = windows.analysis_window(spec.window, spec.n_fft).astype(np.float64)
    return float(10 ** (floor_dbfs / 10) * np.sum(window**2) / 2 * spec.input_size)


def with_synthesis(spec: FrameSpec, length: int) -> FrameSpec:
    """``spec`` with the synthesis ``length`` (0: the full ``n_fft``), or :class:`PluginError` saying why not."""
    try:
        return dataclasses.replace(spec, synthesis_length=length)
    except FrameSpecError as exc:
        raise PluginError(f"isolator synthesis length: {exc}") from None


def check_floor(floor_dbfs: float) -> float:
    """``floor_dbfs`` as a float, or :class:`PluginError` unless it is a level in [-200, -20] dBFS."""
    try:
        value = float(floor_dbfs)
    except (TypeError, ValueError):
        raise PluginError(f"isolator floor must be a level in dBFS, got {floor_dbfs!r}") from None
    if not -200.0 <= value <= -20.0:  # NaN fails too
        raise PluginError(f"isolator floor must be between -200 and -20 dBFS, got {floor_dbfs!r}")
    return value


def silent_contexts(contexts: np.ndarray, spec: FrameSpec, floor_dbfs: float = SILENCE_DBFS) -> np.ndarray:
    """Which rows of ``contexts`` ``(C, T, input_size)`` the isolator treats as silence: ``(T,)`` bool.

    A row is silent when it is at or below :func:`silence_energy` of ``floor_dbfs`` on every channel, the rule the
    streaming isolator applies; offline paths use it to run the model exactly as the engine does
    (silent rows give zero output, and the model restarts from its initial state after them).
    """
    energy = np.einsum("cti,cti->ct", contexts, contexts, dtype=np.float64)
    return np.all(energy <= silence_energy(spec, floor_dbfs), axis=0)


def _default_loader(source: str | os.PathLike, batch: int = 1) -> Any:
    from ..onnx_model import ModelError, load_model

    try:
        return load_model(source, batch=batch)
    except ModelError as exc:
        raise PluginError(str(exc)) from exc


class Isolator(Plugin):
    """Voice isolation with a streaming model.

    ``model``: a model name (``"default"``, ``"tiny-test"``), a path to an
    ``.onnx`` file, or an already loaded model object (``spec``, ``batch``,
    ``reset()``, ``step(features)``). ``stem``: what :meth:`process` writes,
    ``"vocals"`` or ``"instrumental"`` (a ``Mix`` after it can blend both).
    ``channels``: load the model for this many channels right away.
    ``loader(source, batch=...)`` loads a model (default: the ONNX loader).

    It runs at the model's sample rate (``native_rate``); the host resamples
    when the device runs at another one. ``model_faults`` counts frames whose
    model output was not finite (the frame is silenced and the LSTM state reset).

    ``floor_dbfs``: input whose whole awareness context is below this level
    (dBFS RMS, measured as white noise of that level would be) counts as
    silence: the model is skipped, the frame gives no voice, and the LSTM
    restarts from its initial state when the signal returns. The default
    (-80) catches digital silence and the near-silence around it. Raising it to just above a
    microphone's noise floor (e.g. -60) keeps the network from adapting to
    the hiss before anyone speaks, which otherwise costs it for the first
    seconds of the signal that follows (``benchmarks/quality.py --lead-in``);
    input under the floor is muted, so keep it well below the quietest voice.

    ``synthesis_length``: run the model with another synthesis than its card's
    (:attr:`FrameSpec.synthesis_length <deepiso.realtime.frame.FrameSpec>`;
    ``None``: the card's). No weight depends on it, so a shorter one trades
    quality for latency on any model: at 1024/256 a length of 512 takes the
    delay from 17.4 ms to 5.8 ms. A model trained for the synthesis it runs
    with does better (docs/quality.md gives the cost).
    """

    name = "isolator"

    def __init__(self, model: Any = "default", stem: str = "vocals", channels: int | None = None,
                 loader: ModelLoader | None = None, floor_dbfs: float = SILENCE_DBFS,
                 synthesis_length: int | None = None) -> None:
        if stem not in STEMS:
            raise PluginError(f"isolator stem {stem!r} is not one of {STEMS}")
        self.stem = stem
        self.floor_dbfs = check_floor(floor_dbfs)
        self._loader = loader or _default_loader
        if isinstance(model, str | os.PathLike):
            self.source: str | os.PathLike | None = model
            self.model = self._loader(model, batch=channels or 1)
        else:
            self.source = None
            self.model = model
        spec = getattr(self.model, "spec", None)
        if not isinstance(spec, FrameSpec):
            raise PluginError(f"model {model!r} has no frame spec")
        if synthesis_length is not None and synthesis_length != spec.synthesis_length:
            spec = with_synthesis(spec, synthesis_length)
        self.spec: FrameSpec = spec
        self.native_rate = spec.sample_rate
        self.model_faults = 0
        self._silent = True
        self._silence = 0.0
        self.stream: dsp.SpectralStream | None = None
        self._n = 0

    def configure(self, sample_rate: int, channels: int, max_block: int, block_size: int | None = None) -> None:
        spec = self.spec
        if sample_rate != spec.sample_rate:
            raise PluginError(f"the model runs at {spec.sample_rate} Hz, not {sample_rate} Hz (resample first)")
        super().configure(sample_rate, channels, max_block)
        if int(getattr(self.model, "batch", 1)) != channels:
            if self.source is None:
                raise PluginError(f"the model was prepared for {self.model.batch} channel(s), not {channels}")
            self.model = self._loader(self.source, batch=channels)
        self.stream = dsp.SpectralStream(spec, channels, self._frame, block_size=block_size)
        context = self.stream.analyzer.context
        # The awareness ring is allocated once and updated in place, so this
        # (C, K*2*bins) view always shows the current context: the model's input.
        self._features = context.reshape(channels, spec.input_size)
        if not np.shares_memory(self._features, context):  # pragma: no cover - numpy guarantees a view here
            raise PluginError("awareness context is not contiguous")
        self._centre = context[:, spec.past_frames, :]
        self.latency_samples = self.stream.latency_samples
        self.vocals = np.zeros((max_block, channels), np.float32)
        self.instrumental = np.zeros((max_block, channels), np.float32)
        self._ring = np.zeros((channels, self.latency_samples), np.float32)
        self._pos = np.zeros(1, np.int64)
        self._kind = spec.output
        self._silence = silence_energy(spec, self.floor_dbfs)
        self._n = 0
        self.reset()

    def _frame(self, context: np.ndarray, out_ri: np.ndarray) -> None:
        if _max_energy(self._features) <= self._silence:
            out_ri.fill(0.0)
            if not self._silent:
                self.model.reset()
                self._silent = True
            return
        self._silent = False
        y = self.model.step(self._features)
        if self._kind == "spectrum":
            bad = _copy_checked(y, out_ri)
        elif self._kind == "ratio_mask":
            bad = _ratio_mask(y, self._centre, out_ri)
        else:
            bad = _complex_mask(y, self._centre, out_ri)
        if bad:
            out_ri.fill(0.0)
            self.model_faults += 1
            self.model.reset()

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        n = inp.shape[0]
        voc, inst = self.vocals[:n], self.instrumental[:n]
        self.stream.process(inp, voc)  # type: ignore[union-attr]
        _instrumental(inp, voc, self._ring, self._pos, inst)
        out[...] = voc if self.stem == "vocals" else inst
        self._n = n

    def stems(self) -> tuple[np.ndarray, np.ndarray]:
        """``(vocals, instrumental)`` of the last block, each ``(n, C)`` views valid until the next block."""
        return self.vocals[: self._n], self.instrumental[: self._n]

    def reset(self) -> None:
        if self.stream is not None:
            self.stream.reset()
            self._ring.fill(0.0)
            self._pos[0] = 0
        self.model.reset()
        self._silent = True

    def describe(self) -> str:
        s = self.spec
        return (f"isolator ({s.output}, {s.sample_rate} Hz, n_fft {s.n_fft}, hop {s.hop}, "
                f"awareness {s.past_frames}+1+{s.future_frames}"
                + (f", floor {self.floor_dbfs:g} dBFS)" if self.floor_dbfs != SILENCE_DBFS else ")"))
