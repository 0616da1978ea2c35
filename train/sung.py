"""Sung speech: spoken words turned into singing by pitch-synchronous overlap-add.

Real singing cannot be had under the corpus's licenses, and the sung-vowel
soundfont programs carry no words. This module sings a speech recording
instead: its voiced stretches (the vowels, roughly one a syllable) become the
notes of a generated melody, held longer, with a glide into each note and a
vibrato that sets in after its onset; consonants and pauses keep their speech
timing. The voice's own pitch periods are re-spaced by TD-PSOLA (Moulines &
Charpentier, 1990), so the spectral envelope, the speaker's timbre and the
words stay while the pitch follows the notes.

``track_f0`` is a YIN pitch tracker (de Cheveigné & Kawahara, 2002) on a
decimated copy; ``pitch_marks`` places one analysis mark a period on the
low-passed waveform's peaks; ``sing`` does the rest and is deterministic for a
given ``seed``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

__all__ = ["SingError", "SungPlan", "pitch_marks", "sing", "track_f0"]

HOP_SECONDS = 0.005
UNVOICED_STEP_SECONDS = 0.005
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "minor-pentatonic": (0, 3, 5, 7, 10),
}


class SingError(ValueError):
    """Input that cannot be sung: the message says what is wrong with it."""


def _lowpass(x: np.ndarray, rate: float, cutoff: float, width: float) -> np.ndarray:
    """Zero-phase low-pass with a raised-cosine transition from ``cutoff`` to ``cutoff + width`` Hz."""
    n = x.size
    nfft = 1 << max(1, (n - 1).bit_length())
    spec = np.fft.rfft(x, nfft)
    f = np.fft.rfftfreq(nfft, 1.0 / rate)
    gain = np.clip((cutoff + width - f) / width, 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spec * gain, nfft)[:n]


def _check(x: np.ndarray, rate: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise SingError(f"expected mono audio (samples,), got shape {x.shape}")
    if not 8_000 <= int(rate) <= 192_000:
        raise SingError(f"sample rate {rate} Hz is outside 8000..192000 Hz")
    if not np.isfinite(x).all():
        raise SingError("audio contains NaN or Inf samples")
    return x.astype(np.float64)


def track_f0(x: np.ndarray, rate: int, fmin: float = 60.0, fmax: float = 500.0,
             threshold: float = 0.2, range_db: float = 45.0) -> tuple[np.ndarray, np.ndarray]:
    """Fundamental frequency every 5 ms: ``(f0 Hz, voiced bool)``, one value per hop from sample 0.

    YIN's cumulative-mean-normalised difference on a copy decimated to about
    11 kHz; a hop is voiced where its minimum is under ``threshold`` and its
    level within ``range_db`` of the loudest hop. f0 is 0 where unvoiced.
    """
    x = _check(x, rate)
    if not 0 < fmin < fmax < rate / 4:
        raise SingError(f"f0 range {fmin}..{fmax} Hz is not within 0..{rate / 4:g} Hz")
    q = max(1, int(rate // 11_025))
    lo_rate = rate / q
    y = _lowpass(x, rate, min(0.8 * lo_rate / 2, 3_500.0), 0.15 * lo_rate / 2)[::q] if x.size else x
    hop = max(1, int(round(HOP_SECONDS * lo_rate)))
    tau_min = max(2, int(lo_rate / fmax))
    tau_max = int(math.ceil(lo_rate / fmin))
    win = tau_max + 1
    n_hops = x.size // max(1, int(round(HOP_SECONDS * rate)))
    f0 = np.zeros(n_hops)
    voiced = np.zeros(n_hops, bool)
    if n_hops == 0:
        return f0, voiced
    pad = np.concatenate([np.zeros(win // 2), y, np.zeros(win + tau_max + 1)])
    starts = np.arange(n_hops) * hop
    idx = starts[:, None] + np.arange(win + tau_max)[None, :]
    level = np.zeros(n_hops)
    nfft = 1 << (2 * win + tau_max).bit_length()
    for b in range(0, n_hops, 512):
        seg = pad[idx[b:b + 512]]
        head = seg[:, :win]
        r = np.fft.irfft(np.conj(np.fft.rfft(head, nfft)) * np.fft.rfft(seg, nfft), nfft)[:, :tau_max + 1]
        c = np.cumsum(np.concatenate([np.zeros((seg.shape[0], 1)), seg ** 2], axis=1), axis=1)
        e0 = c[:, win:win + 1]
        et = c[:, win:win + tau_max + 1] - c[:, :tau_max + 1]
        d = np.maximum(e0 + et - 2.0 * r, 0.0)
        d[:, 0] = 0.0
        cum = np.cumsum(d[:, 1:], axis=1)
        cmnd = np.ones_like(d)
        cmnd[:, 1:] = d[:, 1:] * np.arange(1, tau_max + 1) / np.maximum(cum, 1e-20)
        level[b:b + 512] = e0[:, 0] / win
        band = cmnd[:, tau_min:tau_max]
        below = band < threshold
        # the first dip under the threshold, followed down to its local minimum (YIN step 4)
        first = np.where(below.any(axis=1), below.argmax(axis=1), band.argmin(axis=1))
        for k, t in enumerate(first):
            row = band[k]
            while t + 1 < row.size and row[t + 1] < row[t]:
                t += 1
            v = row[t]
            tau = t + tau_min
            if 0 < t < row.size - 1:  # parabolic refinement
                a, b_, cc = row[t - 1], row[t], row[t + 1]
                den = a - 2 * b_ + cc
                if den > 0:
                    tau = tau + 0.5 * (a - cc) / den
            f0[b + k] = lo_rate / tau
            voiced[b + k] = v < threshold
    loud = 10 * np.log10(level + 1e-20)
    voiced &= loud > loud.max() - range_db
    voiced &= loud > -90.0
    f0[~voiced] = 0.0
    return f0, voiced


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _clean_voicing(f0: np.ndarray, voiced: np.ndarray, min_run: int = 6, max_gap: int = 3) -> np.ndarray:
    """Fill voicing gaps up to ``max_gap`` hops, drop runs shorter than ``min_run`` hops, median-smooth f0."""
    v = voiced.copy()
    for a, b in _runs(~v):
        if a > 0 and b < v.size and b - a <= max_gap:
            v[a:b] = True
    for a, b in _runs(v):
        if b - a < min_run:
            v[a:b] = False
    out = np.zeros_like(f0)
    for a, b in _runs(v):
        seg = f0[a:b].copy()
        good = seg > 0
        if not good.any():
            v[a:b] = False
            continue
        seg[~good] = np.interp(np.flatnonzero(~good), np.flatnonzero(good), seg[good])
        padded = np.pad(np.log(seg), 2, mode="edge")
        out[a:b] = np.exp(np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=1))
    return out * v, v


def pitch_marks(x: np.ndarray, rate: int, f0: np.ndarray, voiced: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                       np.ndarray]:
    """Analysis marks ``(positions, half-window lengths, voiced)`` in samples.

    Voiced stretches get one mark a period, each on the peak of the low-passed
    waveform near where the previous period predicts it; elsewhere marks sit
    every 5 ms.
    """
    x = _check(x, rate)
    hop = int(round(HOP_SECONDS * rate))
    step = int(round(UNVOICED_STEP_SECONDS * rate))
    lp = _lowpass(x, rate, 900.0, 300.0)
    pos: list[int] = []
    half: list[int] = []
    kind: list[bool] = []
    cursor = 0
    for a, b in _runs(voiced):
        s, e = a * hop, min(x.size, b * hop)
        while cursor < s:
            pos.append(cursor)
            half.append(step)
            kind.append(False)
            cursor += step
        period = int(rate / f0[a])
        t = s + int(np.argmax(lp[s:s + period])) if s + period < x.size else s
        while t < e:
            h = min(len(f0) - 1, t // hop)
            period = int(round(rate / f0[h])) if f0[h] > 0 else period
            pos.append(t)
            half.append(period)
            kind.append(True)
            c = t + period
            lo, hi = c - period // 4, min(x.size, c + period // 4 + 1)
            if lo >= hi:
                break
            t = lo + int(np.argmax(lp[lo:hi]))
        cursor = max(cursor, e)
    while cursor < x.size:
        pos.append(cursor)
        half.append(step)
        kind.append(False)
        cursor += step
    return np.asarray(pos, np.int64), np.asarray(half, np.int64), np.asarray(kind, bool)


@dataclass
class SungPlan:
    """What ``sing`` chose, for the record: the notes (MIDI numbers) and how each stretch was timed.

    ``spans_in`` / ``spans_out``: each note's voiced stretch, ``(start, stop)`` in seconds, in the input
    and in the output; ``stretch``: output length / input length of each.
    """

    notes: list[float]
    stretch: list[float]
    spans_in: list[tuple[float, float]]
    spans_out: list[tuple[float, float]]
    scale: str
    vibrato_hz: float
    vibrato_semitones: float
    seconds_in: float
    seconds_out: float


def _melody(rng: random.Random, n: int, centre: float) -> tuple[list[float], str]:
    scale_name = rng.choice(sorted(SCALES))
    scale = SCALES[scale_name]
    root = round(centre) + rng.randint(-3, 2)
    degree = rng.randint(0, len(scale) - 1)
    notes = []
    for _ in range(n):
        degree += rng.choice((-2, -1, -1, 0, 1, 1, 2))
        octave, d = divmod(degree, len(scale))
        pitch = root + 12 * octave + scale[d]
        if not centre - 8 <= pitch <= centre + 9:  # stay in the singer's range: turn back
            degree -= 2 * (1 if pitch > centre else -1)
            octave, d = divmod(degree, len(scale))
            pitch = root + 12 * octave + scale[d]
        notes.append(float(pitch))
    return notes, scale_name


def sing(x: np.ndarray, rate: int, seed: int | str = 0, stretch: tuple[float, float] = (1.2, 2.6),
         max_note_seconds: float = 1.6) -> tuple[np.ndarray, SungPlan]:
    """``x`` (mono speech) sung on a generated melody: ``(audio at rate, plan)``.

    Each voiced stretch (split into notes of 0.25-0.4 s where it is longer) is held ``stretch`` times longer (at most
    ``max_note_seconds``; the last one before a pause a little more), its
    pitch glides into a note of a scale around the speaker's own median pitch
    and a vibrato (4.5-6.5 Hz, 0.15-0.6 semitone) sets in after 150 ms.
    Raises :class:`SingError` when nothing in ``x`` is voiced.
    """
    x = _check(x, rate)
    lo, hi = stretch
    if not 0.5 <= lo <= hi <= 6.0:
        raise SingError(f"stretch range {stretch} is not within 0.5..6")
    if x.size < 0.05 * rate:
        raise SingError(f"{x.size} samples are too short to sing (at least 50 ms)")
    rng = random.Random(f"sing:{seed}")
    f0, voiced = track_f0(x, rate)
    f0, voiced = _clean_voicing(f0, voiced)
    hop = int(round(HOP_SECONDS * rate))
    runs = []
    for a, b in _runs(voiced):  # a voiced stretch of several syllables becomes several notes
        pieces = max(1, int(round((b - a) * HOP_SECONDS / rng.uniform(0.25, 0.4))))
        edges = np.linspace(a, b, pieces + 1).round().astype(int)
        runs += list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
    if not runs:
        raise SingError("no voiced sound found to sing")
    centre = float(np.median(69 + 12 * np.log2(f0[voiced] / 440.0)))
    notes, scale_name = _melody(rng, len(runs), centre)
    vib_hz = rng.uniform(4.5, 6.5)
    vib_st = rng.uniform(0.15, 0.6)
    glide_s = rng.uniform(0.03, 0.08)

    # Time map: knots (input sample, output sample); voiced runs stretched, the rest kept.
    knots_in, knots_out = [0.0], [0.0]
    factors = []
    for k, (a, b) in enumerate(runs):
        s, e = a * hop, min(x.size, b * hop)
        gap_after = (runs[k + 1][0] - b) * HOP_SECONDS if k + 1 < len(runs) else 1.0
        f = rng.uniform(lo, hi) * (1.4 if gap_after > 0.15 else 1.0)
        f = min(f, max(1.0, max_note_seconds * rate / max(1, e - s)))
        factors.append(f)
        knots_out.append(knots_out[-1] + (s - knots_in[-1]))
        knots_in.append(float(s))
        knots_out.append(knots_out[-1] + f * (e - s))
        knots_in.append(float(e))
    knots_out.append(knots_out[-1] + (x.size - knots_in[-1]))
    knots_in.append(float(x.size))
    k_in, k_out = np.asarray(knots_in), np.asarray(knots_out)
    n_out = int(k_out[-1])

    # The pitch target per output sample within each note; 0 outside the notes.
    target = np.zeros(n_out + 1)
    prev = None
    for note, os_, oe in zip(notes, k_out[1:-1:2], k_out[2:-1:2], strict=True):
        os_, oe = int(os_), min(n_out, int(oe))
        t = np.arange(oe - os_) / rate
        p = np.full(t.size, note)
        if prev is not None:
            p += (prev - note) * np.clip(1.0 - t / glide_s, 0.0, 1.0)
        ramp = np.clip((t - 0.15) / 0.2, 0.0, 1.0)
        p += vib_st * ramp * np.sin(2 * np.pi * vib_hz * t)
        target[os_:oe] = 440.0 * 2.0 ** ((p - 69.0) / 12.0)
        prev = note

    marks, halves, kinds = pitch_marks(x, rate, f0, voiced)
    longest = int(halves.max())
    y = np.zeros(n_out + 2 * longest + 2)
    wsum = np.zeros_like(y)
    windows: dict[int, np.ndarray] = {}
    t_out = 0
    while t_out < n_out:
        t_in = float(np.interp(t_out, k_out, k_in))
        i = int(np.searchsorted(marks, t_in))
        if i == marks.size or (i > 0 and t_in - marks[i - 1] < marks[i] - t_in):
            i -= 1
        m, h = int(marks[i]), int(halves[i])
        w = windows.get(h)
        if w is None:
            w = windows[h] = np.hanning(2 * h + 1)
        a, b = max(0, m - h), min(x.size, m + h + 1)
        grain = x[a:b] * w[a - (m - h): b - (m - h)]
        o = t_out + longest - (m - a)
        y[o:o + grain.size] += grain
        wsum[o:o + grain.size] += w[a - (m - h): b - (m - h)]
        step = rate / target[t_out] if target[t_out] > 0 and kinds[i] else (h if kinds[i] else
                                                                               UNVOICED_STEP_SECONDS * rate)
        t_out += max(1, int(round(step)))
    y = (y / np.maximum(wsum, 1.0))[longest:longest + n_out]
    spans_in = [(round(a * hop / rate, 4), round(min(x.size, b * hop) / rate, 4)) for a, b in runs]
    spans_out = [(round(a / rate, 4), round(b / rate, 4)) for a, b in zip(k_out[1:-1:2], k_out[2:-1:2],
                                                                          strict=True)]
    plan = SungPlan(notes, [round(f, 3) for f in factors], spans_in, spans_out, scale_name, round(vib_hz, 3),
                    round(vib_st, 3), round(x.size / rate, 3), round(n_out / rate, 3))
    return y.astype(np.float32), plan
