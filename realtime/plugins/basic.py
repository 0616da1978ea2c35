"""Small real-time plugins: gain, gate, meter and the vocals/instrumental mix.

All of them add no latency, allocate their state in ``configure`` and process
``(n, channels)`` float32 blocks in place. Parameters (``db``,
``threshold_db``, ``vocals`` ...) may be changed from another thread while the
stream runs: the audio thread reads them once per block and ramps gains over
the block, so changes never click.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np

from ..chain import Plugin, PluginError


def db_to_gain(db: float) -> float:
    """Decibels → linear amplitude; ``-inf`` (or below -150 dB) → 0."""
    return 0.0 if db <= -150.0 else 10.0 ** (db / 20.0)


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 1e-12 else -240.0


@numba.njit(cache=True, nogil=True)
def _ramp_gain(inp, out, g0, g1):  # pragma: no cover - compiled
    n, c = inp.shape
    step = (g1 - g0) / n if n else 0.0
    for i in range(n):
        g = g0 + step * (i + 1)
        for j in range(c):
            out[i, j] = inp[i, j] * g


@numba.njit(cache=True, nogil=True)
def _gate(inp, out, state, thresh, a_open, a_close, env_release, hold_samples, floor):  # pragma: no cover
    # state: [envelope, gain, hold counter]. Detection is linked across
    # channels (the loudest decides) so the stereo image never shifts.
    n, c = inp.shape
    env, gain, hold = state[0], state[1], state[2]
    for i in range(n):
        peak = 0.0
        for j in range(c):
            v = abs(inp[i, j])
            if v > peak:
                peak = v
        env = peak if peak > env else env * env_release
        if env >= thresh:
            hold = hold_samples
            target = 1.0
        elif hold > 0:
            hold -= 1
            target = 1.0
        else:
            target = floor
        coef = a_open if target > gain else a_close
        gain = target + (gain - target) * coef
        for j in range(c):
            out[i, j] = inp[i, j] * gain
    state[0], state[1], state[2] = env, gain, hold


@numba.njit(cache=True, nogil=True)
def _meter(inp, out, peak, ms, peak_decay, ms_coef, clips):  # pragma: no cover - compiled
    n, c = inp.shape
    for j in range(c):
        p = peak[j] * peak_decay
        s = ms[j]
        for i in range(n):
            v = inp[i, j]
            out[i, j] = v
            a = abs(v)
            if a > p:
                p = a
            if a >= 1.0:
                clips[j] += 1
            s = ms_coef * s + (1.0 - ms_coef) * v * v
        peak[j] = p
        ms[j] = s


@numba.njit(cache=True, nogil=True)
def _mix(voc, inst, out, v0, v1, i0, i1):  # pragma: no cover - compiled
    n, c = voc.shape
    dv = (v1 - v0) / n if n else 0.0
    di = (i1 - i0) / n if n else 0.0
    for k in range(n):
        gv = v0 + dv * (k + 1)
        gi = i0 + di * (k + 1)
        for j in range(c):
            out[k, j] = gv * voc[k, j] + gi * inst[k, j]


class Gain(Plugin):
    """Multiply by ``db`` decibels (ramped over a block when it changes)."""

    name = "gain"

    def __init__(self, db: float = 0.0) -> None:
        self.db = float(db)
        self._current = db_to_gain(self.db)

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        target = db_to_gain(self.db)
        _ramp_gain(inp, out, self._current, target)
        self._current = target

    def reset(self) -> None:
        self._current = db_to_gain(self.db)

    def describe(self) -> str:
        return f"gain {self.db:+.1f} dB"


class Gate(Plugin):
    """Noise gate: below ``threshold_db`` (dBFS peak) for longer than ``hold_ms``, fade to ``floor_db``.

    ``attack_ms`` is how fast it opens, ``release_ms`` how fast it closes.
    """

    name = "gate"

    def __init__(self, threshold_db: float = -50.0, attack_ms: float = 1.0, release_ms: float = 80.0,
                 hold_ms: float = 50.0, floor_db: float = -80.0) -> None:
        if attack_ms < 0 or release_ms < 0 or hold_ms < 0:
            raise PluginError("gate times must be >= 0 ms")
        self.threshold_db = float(threshold_db)
        self.attack_ms, self.release_ms, self.hold_ms = float(attack_ms), float(release_ms), float(hold_ms)
        self.floor_db = float(floor_db)
        self._state = np.zeros(3, np.float64)

    def configure(self, sample_rate: int, channels: int, max_block: int, block_size: int | None = None) -> None:
        super().configure(sample_rate, channels, max_block)
        self.reset()

    def _coef(self, ms: float) -> float:
        samples = ms * 1e-3 * self.sample_rate
        return math.exp(-1.0 / samples) if samples > 0 else 0.0

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        _gate(inp, out, self._state, db_to_gain(self.threshold_db), self._coef(self.attack_ms),
              self._coef(self.release_ms), self._coef(10.0), int(self.hold_ms * 1e-3 * self.sample_rate),
              db_to_gain(self.floor_db))

    def reset(self) -> None:
        self._state[:] = (0.0, db_to_gain(self.floor_db), 0.0)

    @property
    def is_open(self) -> bool:
        return bool(self._state[1] > 0.5)

    def describe(self) -> str:
        return f"gate {self.threshold_db:.0f} dBFS"


class Meter(Plugin):
    """Peak and RMS per channel; audio passes unchanged.

    The callback updates ``peak`` (decaying ``decay_db_per_s``) and a running
    mean square (time constant ``rms_ms``); :meth:`levels` reads them from any
    other thread.
    """

    name = "meter"

    def __init__(self, rms_ms: float = 300.0, decay_db_per_s: float = 20.0) -> None:
        self.rms_ms = float(rms_ms)
        self.decay_db_per_s = float(decay_db_per_s)
        self.peak = np.zeros(0, np.float64)
        self.ms = np.zeros(0, np.float64)
        self.clips = np.zeros(0, np.int64)
        self._block_decay = 1.0

    def configure(self, sample_rate: int, channels: int, max_block: int, block_size: int | None = None) -> None:
        super().configure(sample_rate, channels, max_block)
        self.peak = np.zeros(channels, np.float64)
        self.ms = np.zeros(channels, np.float64)
        self.clips = np.zeros(channels, np.int64)
        self._ms_coef = math.exp(-1.0 / max(self.rms_ms * 1e-3 * sample_rate, 1.0))
        self._per_sample_decay_db = self.decay_db_per_s / sample_rate

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        decay = 10.0 ** (-self._per_sample_decay_db * inp.shape[0] / 20.0)
        _meter(inp, out, self.peak, self.ms, decay, self._ms_coef, self.clips)

    def reset(self) -> None:
        self.peak.fill(0.0)
        self.ms.fill(0.0)

    def levels(self) -> dict[str, list[float]]:
        """``{"peak_db": [...], "rms_db": [...], "clips": [...]}`` per channel (dBFS)."""
        return {
            "peak_db": [gain_to_db(float(p)) for p in self.peak],
            "rms_db": [gain_to_db(math.sqrt(max(float(s), 0.0))) for s in self.ms],
            "clips": [int(c) for c in self.clips],
        }


#: ``--mix`` presets: (vocals gain, instrumental gain), linear.
MIX_PRESETS = {
    "vocals": (1.0, 0.0),
    "karaoke": (0.0, 1.0),
    "instrumental": (0.0, 1.0),
    "mixture": (1.0, 1.0),
}


class Mix(Plugin):
    """Balance of the two stems of the isolator before it in the chain.

    ``vocals`` and ``instrumental`` are linear gains; ``Mix.parse("karaoke")``
    keeps the instrumental only, ``Mix.parse("0,-12")`` sets them in dB. Its
    input (whatever the isolator wrote) is ignored: it reads the isolator's
    stems for the same block (``stems()`` of the nearest upstream plugin that
    has one), so it must come after the isolator in the same chain.
    """

    name = "mix"

    def __init__(self, vocals: float = 1.0, instrumental: float = 0.0, preset: str | None = None) -> None:
        if preset is not None:
            vocals, instrumental = Mix.parse_gains(preset)
        self.vocals = float(vocals)
        self.instrumental = float(instrumental)
        self._cur = (self.vocals, self.instrumental)
        self._source = None

    @staticmethod
    def parse_gains(text: str) -> tuple[float, float]:
        """A preset name (``vocals``, ``karaoke``, ``instrumental``, ``mixture``) or ``"VOCALS_DB,INSTR_DB"``."""
        key = text.strip().lower()
        if key in MIX_PRESETS:
            return MIX_PRESETS[key]
        parts = key.replace(":", ",").split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            return db_to_gain(float(parts[0])), db_to_gain(float(parts[1]))
        except ValueError:
            raise PluginError(f"mix {text!r} is not one of {', '.join(MIX_PRESETS)} "
                              "nor 'VOCALS_DB,INSTRUMENTAL_DB' (e.g. '0,-12')") from None

    @classmethod
    def parse(cls, text: str) -> Mix:
        return cls(*cls.parse_gains(text))

    def connect(self, upstream: Sequence[object]) -> None:
        for p in reversed(upstream):
            if callable(getattr(p, "stems", None)):
                self._source = p
                return
        raise PluginError("mix needs an isolator before it in the chain")

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        voc, inst = self._source.stems()  # type: ignore[union-attr]
        n = inp.shape[0]
        if voc.shape[0] != n:
            raise PluginError("mix must directly follow the isolator's block")
        v0, i0 = self._cur
        _mix(voc, inst, out, v0, self.vocals, i0, self.instrumental)
        self._cur = (self.vocals, self.instrumental)

    def reset(self) -> None:
        self._cur = (self.vocals, self.instrumental)

    def describe(self) -> str:
        return f"mix vocals {gain_to_db(self.vocals):+.0f} dB, instrumental {gain_to_db(self.instrumental):+.0f} dB"
