"""Tonal sounds that are not a voice, generated as corpus backgrounds the network must remove.

A voice isolator hears pitch and takes a steady or melodic tone for a voice unless it has learned
otherwise. The ``generated-tonal`` corpus source (:mod:`deepiso.train.corpus`) makes such sounds as
background files: phone ringtones (dual and single tones with ring cadences, electronic trills,
melodic chimes), whistling (melodies and calls), synth leads (pulse, detuned "supersaw", FM), sine
tones (steady, beeping, chords), sweeps (logarithmic, linear, sirens) and solo instruments (General
MIDI programs rendered by fluidsynth; :func:`instrument_phrase` writes their notes).

The quality benchmark has a set of such sounds of its own (``benchmarks/no_voice.py``) that must stay
unheard in training. These generators share no code and no parameters with it: other frequencies and
cadences, other tempi, note lengths and registers, other oscillators and other instruments. Steady
tones keep :data:`AVOID_RATIO` away from :data:`AVOID_HZ` (the benchmark's fixed tones) and no sweep
runs its 100 Hz to 8 kHz course.

Each generator takes a ``numpy.random.Generator``, the rate and a length and returns mono float64;
:func:`make` picks the variant's generator, seeds it from a string and sets the level. numpy only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

#: The steady tones of the benchmark's no-voice set (Hz): generated steady and ringing tones keep away.
AVOID_HZ = (400.0, 440.0, 450.0, 480.0, 1000.0, 1300.0)
#: How far (as a frequency ratio, ~0.7 semitone) a generated steady tone stays from each of :data:`AVOID_HZ`.
AVOID_RATIO = 1.04
#: Ring cadences (on, off, on, off ... seconds): none of them is the benchmark's.
CADENCES: tuple[tuple[float, ...], ...] = (
    (1.0, 3.0), (1.5, 3.5), (0.8, 0.4, 0.8, 3.0), (1.2, 4.5), (0.3, 0.2, 0.3, 0.2, 0.3, 2.5), (2.5, 2.5),
)
#: Solo instruments, by family: (General MIDI program, 0-based; lowest and highest MIDI note played).
#: No voice-like program (Choir Aahs, Voice Oohs, Synth Voice, Lead 6) and none of the benchmark's
#: (piano 0, violin 40, trumpet 56, alto sax 65, flute 73).
INSTRUMENTS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "strings": ((41, 48, 84), (42, 36, 72), (43, 28, 60), (110, 55, 88), (45, 36, 84), (46, 36, 91),
                (24, 40, 79), (25, 40, 79), (27, 40, 84)),
    "winds": ((57, 40, 72), (58, 28, 58), (60, 41, 77), (64, 56, 87), (66, 44, 75), (67, 36, 68),
              (68, 58, 91), (69, 52, 81), (70, 34, 72), (71, 50, 89), (72, 74, 103), (74, 60, 91),
              (75, 60, 91), (77, 55, 84), (78, 72, 96), (79, 60, 91), (22, 60, 84), (109, 55, 79),
              (111, 60, 86)),
    "keys": ((2, 36, 96), (4, 36, 91), (5, 36, 91), (6, 36, 89), (8, 60, 103), (10, 60, 96),
             (11, 53, 89), (12, 45, 96), (13, 65, 103), (16, 36, 96), (19, 36, 84), (21, 53, 89),
             (108, 55, 84)),
}
#: Every variant: (family, variant). Items of the corpus source take them in turn.
VARIANTS: tuple[tuple[str, str], ...] = (
    ("ringtone", "dual_tone"), ("ringtone", "single_tone"), ("ringtone", "trill"), ("ringtone", "chime"),
    ("whistle", "melody"), ("whistle", "call"),
    ("synth_lead", "pulse"), ("synth_lead", "supersaw"), ("synth_lead", "fm"),
    ("sine", "steady"), ("sine", "beeps"), ("sine", "chord"),
    ("sweep", "log"), ("sweep", "linear"), ("sweep", "siren"),
    ("instrument", "strings"), ("instrument", "winds"), ("instrument", "keys"),
)
SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9), (0, 2, 3, 5, 7, 9, 10),
          (0, 3, 5, 7, 10))
MIDI_DIVISION = 480


def rng_for(seed: str) -> np.random.Generator:
    """A generator seeded by a string (the same string, the same sounds on every machine)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))


def _hz(note: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(note) - 69.0) / 12.0)


def _clear_of_avoided(f: float) -> bool:
    return all(abs(np.log(f / a)) >= np.log(AVOID_RATIO) for a in AVOID_HZ)


def tone_hz(rng: np.random.Generator, low: float, high: float) -> float:
    """A frequency drawn log-uniformly in ``low..high`` Hz, :data:`AVOID_RATIO` away from :data:`AVOID_HZ`."""
    for _ in range(1000):
        f = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if _clear_of_avoided(f):
            return f
    raise ValueError(f"no frequency in {low}..{high} Hz keeps clear of {AVOID_HZ}")


def _fade(x: np.ndarray, rate: int, seconds: float = 0.008) -> np.ndarray:
    m = min(int(seconds * rate), x.size // 2)
    if m > 0:
        ramp = np.linspace(0.0, 1.0, m)
        x[:m] *= ramp
        x[-m:] *= ramp[::-1]
    return x


def gate(n: int, rate: int, pattern: tuple[float, ...], start: float, edge: float = 0.006) -> np.ndarray:
    """0/1 gate ``(n,)`` of the on/off ``pattern`` (seconds, repeated) from ``start`` s, with soft edges."""
    out = np.zeros(n)
    t, k = start, 0
    while t * rate < n:
        if k % 2 == 0:
            a, b = int(t * rate), min(int((t + pattern[k % len(pattern)]) * rate), n)
            if b > a:
                out[a:b] = _fade(np.ones(b - a), rate, edge)
        t += pattern[k % len(pattern)]
        k += 1
    return out


def _polyblep(p: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """The band-limiting correction of a saw's jump at phase 0 (``p`` in [0, 1), ``dt`` the phase step)."""
    out = np.zeros_like(p)
    a = p < dt
    x = p[a] / dt[a]
    out[a] = 2 * x - x * x - 1
    b = p > 1 - dt
    x = (p[b] - 1) / dt[b]
    out[b] = x * x + 2 * x + 1
    return out


def saw(freq: np.ndarray, rate: int, phase0: float = 0.0) -> np.ndarray:
    """A band-limited (PolyBLEP) sawtooth following ``freq`` (Hz per sample)."""
    dt = np.clip(freq / rate, 1e-6, 0.49)
    p = (phase0 + np.cumsum(dt)) % 1.0
    return 2 * p - 1 - _polyblep(p, dt)


def pulse(freq: np.ndarray, rate: int, duty: float, phase0: float = 0.0) -> np.ndarray:
    """A band-limited pulse wave of duty cycle ``duty`` (the difference of two saws)."""
    return 0.5 * (saw(freq, rate, phase0) - saw(freq, rate, (phase0 + duty) % 1.0))


def _melody(rng: np.random.Generator, count: int, low: int, high: int) -> list[int]:
    """``count`` MIDI notes on a scale within ``low..high``, moving by leaps as well as steps."""
    scale = SCALES[int(rng.integers(len(SCALES)))]
    tonic = int(rng.integers(low, low + 12))
    notes = [tonic + 12 * o + s for o in range(-2, 6) for s in scale if low <= tonic + 12 * o + s <= high]
    i = int(rng.integers(len(notes)))
    out = []
    for _ in range(count):
        out.append(notes[i])
        i = int(np.clip(i + rng.choice((-4, -3, -1, 0, 1, 2, 4, 5)), 0, len(notes) - 1))
    return out


def _note_track(rng: np.random.Generator, n: int, rate: int, notes: list[int], lengths: tuple[float, ...],
                glide: float, rest: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample pitch (MIDI, with ``glide`` s ramps between notes) and a 0/1 gate, notes of ``lengths`` s."""
    pitch = np.full(n, float(notes[0]))
    on = np.zeros(n)
    pos, k, last = int(rng.uniform(0.05, 0.4) * rate), 0, float(notes[0])
    while pos < n:
        dur = int(float(rng.choice(lengths)) * rate)
        note = float(notes[k % len(notes)])
        end = min(pos + dur, n)
        g = min(int(glide * rate), end - pos)
        pitch[pos:end] = note
        if g > 0:
            pitch[pos:pos + g] = np.linspace(last, note, g)
        on[pos:max(pos, end - int(0.02 * rate))] = 1.0
        last, pos, k = note, end + (int(rng.uniform(0.15, 0.7) * rate) if rng.random() < rest else 0), k + 1
        pitch[end:pos] = note
    return pitch, on


def _smooth(x: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    """``x`` smoothed by a moving average of ``seconds`` (envelopes without clicks)."""
    m = max(1, int(seconds * rate))
    c = np.concatenate([[0.0], np.cumsum(x)])
    y = (c[m:] - c[:-m]) / m
    return np.concatenate([np.full(m - 1, y[0]) if y.size else np.zeros(m - 1), y])[: x.size]


def _band_noise(rng: np.random.Generator, n: int, rate: int, low: float, high: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    spec[(f < low) | (f > high)] = 0
    x = np.fft.irfft(spec, n=n)
    return x / (np.std(x) + 1e-12)


# ----------------------------------------------------------------------------- ringtones
def ringtone(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """``dual_tone``, ``single_tone``, ``trill`` or ``chime``."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    start = float(rng.uniform(0.0, 0.6))
    cadence = CADENCES[int(rng.integers(len(CADENCES)))]
    if variant in ("dual_tone", "single_tone"):
        f1 = tone_hz(rng, 330.0, 620.0)
        tone = np.sin(2 * np.pi * f1 * t + rng.uniform(0, 2 * np.pi))
        if variant == "dual_tone":
            f2 = tone_hz(rng, f1 * 1.06, f1 * 1.25)
            tone = tone + np.sin(2 * np.pi * f2 * t + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.4:  # an old line's distortion: odd harmonics
            tone = np.tanh(float(rng.uniform(1.5, 4.0)) * tone)
        return tone * gate(n, rate, cadence, start)
    if variant == "trill":
        lo = tone_hz(rng, 600.0, 850.0) if rng.random() < 0.5 else tone_hz(rng, 1400.0, 2400.0)
        ratio = float(rng.uniform(1.12, 1.22) if rng.random() < 0.5 else rng.uniform(1.4, 1.6))
        rate_hz = float(rng.uniform(8.0, 15.0) if rng.random() < 0.5 else rng.uniform(25.0, 34.0))
        square = np.sin(2 * np.pi * rate_hz * t) > 0
        f = _smooth(np.where(square, lo * ratio, lo), rate, 0.004)
        x = np.sin(2 * np.pi * np.cumsum(f) / rate)
        return x * gate(n, rate, ((0.6, 0.3) if rng.random() < 0.5 else (1.6, 1.1)), start)
    if variant == "chime":
        notes = _melody(rng, int(rng.integers(4, 12)), 64, 91)
        step = float(rng.uniform(0.2, 0.35))
        ratio = float(rng.choice((1.41, 2.76, 3.5, 4.0)))
        decay = float(rng.uniform(2.5, 5.0))
        m = int(1.2 * rate)
        tt = np.arange(m) / rate
        motif = np.zeros(int(step * rate) * len(notes) + m)
        for k, note in enumerate(notes):
            f = float(_hz(note))
            tone = np.sin(2 * np.pi * f * tt + float(rng.uniform(0.5, 2.5)) * np.exp(-tt * 6)
                          * np.sin(2 * np.pi * ratio * f * tt))
            a = k * int(step * rate)
            motif[a:a + m] += _fade(tone * np.exp(-tt * decay), rate, 0.002)
        period = motif.size + int(rng.uniform(0.5, 1.5) * rate)
        out = np.zeros(n)
        for a in range(int(start * rate), n, period):
            b = min(a + motif.size, n)
            out[a:b] += motif[:b - a]
        return out
    raise ValueError(f"unknown ringtone variant {variant!r}")


# ----------------------------------------------------------------------------- whistles
def whistle(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """``melody`` (a whistled tune) or ``call`` (rising and falling whistle calls), with breath noise."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    if variant == "melody":
        low = int(rng.integers(74, 80)) if rng.random() < 0.5 else int(rng.integers(86, 91))
        notes = _melody(rng, 96, low, low + 16)
        pitch, on = _note_track(rng, n, rate, notes, (0.15, 0.25, 0.35, 0.5, 0.8), float(rng.uniform(0.015, 0.06)),
                                0.25)
        depth = float(rng.uniform(0.1, 0.5))
        vib = float(rng.uniform(3.5, 4.8) if rng.random() < 0.5 else rng.uniform(6.2, 7.2))
        f0 = _hz(pitch + depth * np.sin(2 * np.pi * vib * t))
    elif variant == "call":
        f_lo, f_hi = tone_hz(rng, 700.0, 1500.0), tone_hz(rng, 1800.0, 3500.0)
        length = float(rng.uniform(0.35, 1.0))
        m = int(length * rate)
        shape = np.sin(np.pi * np.linspace(0.0, 1.0, m)) ** float(rng.uniform(0.5, 2.0))
        f0 = np.full(n, f_lo)
        on = np.zeros(n)
        pos = int(rng.uniform(0.1, 0.5) * rate)
        while pos + m < n:
            f0[pos:pos + m] = f_lo + (f_hi - f_lo) * shape
            on[pos:pos + m] = 1.0
            pos += m + int(rng.uniform(0.2, 2.0) * rate)
    else:
        raise ValueError(f"unknown whistle variant {variant!r}")
    phase = 2 * np.pi * np.cumsum(f0) / rate
    env = _smooth(on, rate, float(rng.uniform(0.01, 0.04)))
    tone = np.sin(phase) + float(rng.uniform(0.01, 0.06)) * np.sin(2 * phase)
    breath = _band_noise(rng, n, rate, 600.0, min(7000.0, 0.45 * rate))
    return env * (tone + float(rng.uniform(0.05, 0.2)) * breath)


# ----------------------------------------------------------------------------- synth leads
def synth_lead(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """``pulse`` (narrow pulse wave), ``supersaw`` (detuned saws) or ``fm`` (two-operator FM) melody."""
    if variant not in ("pulse", "supersaw", "fm"):
        raise ValueError(f"unknown synth lead variant {variant!r}")
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    bpm = float(rng.uniform(70, 96) if rng.random() < 0.5 else rng.uniform(145, 180))
    beat = 60.0 / bpm
    low = int(rng.integers(48, 66))
    notes = _melody(rng, 128, low, low + 20)
    lengths = tuple(beat * k for k in (0.25, 0.5, 0.75, 1.0, 3.0))
    pitch, on = _note_track(rng, n, rate, notes, lengths, float(rng.choice((0.0, 0.0, 0.03, 0.08))), 0.1)
    pitch = pitch + float(rng.uniform(0.0, 0.3)) * np.sin(2 * np.pi * float(rng.uniform(4.0, 7.0)) * t)
    f = _hz(pitch)
    if variant == "pulse":
        x = pulse(f, rate, float(rng.uniform(0.1, 0.35)), float(rng.uniform()))
    elif variant == "supersaw":
        voices = int(rng.integers(3, 8))
        x = sum(saw(f * 2 ** (c / 1200), rate, float(rng.uniform()))
                for c in rng.uniform(-25, 25, voices)) / np.sqrt(voices)
    else:
        ratio, index = float(rng.choice((1.0, 2.0, 3.0, 0.5))), float(rng.uniform(1.0, 4.0))
        mod = np.sin(2 * np.pi * np.cumsum(ratio * f) / rate)
        x = np.sin(2 * np.pi * np.cumsum(f) / rate + index * _smooth(on, rate, 0.05) * mod)
    attack, release = float(rng.uniform(0.002, 0.08)), float(rng.uniform(0.02, 0.3))
    env = np.maximum(_smooth(on, rate, attack), float(rng.uniform(0.3, 0.8)) * _smooth(on, rate, release))
    if variant != "fm":  # a darker sound: one-pole low-pass by FFT (fixed cutoff)
        cutoff = float(rng.uniform(1200, 7000))
        spec = np.fft.rfft(x)
        ff = np.fft.rfftfreq(n, 1 / rate)
        x = np.fft.irfft(spec / np.sqrt(1 + (ff / cutoff) ** 2), n=n)
    return x * env


# ----------------------------------------------------------------------------- sine tones
def sine(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """``steady`` (one tone, slowly drifting in level), ``beeps`` (a device beeping) or ``chord``."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    if variant == "steady":
        f = tone_hz(rng, 120.0, 6000.0)
        drift = 1.0 + float(rng.uniform(0.0, 0.3)) * np.sin(2 * np.pi * float(rng.uniform(0.05, 0.5)) * t)
        return _fade(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * drift, rate, 0.05)
    if variant == "beeps":
        f = tone_hz(rng, 1500.0, 4500.0)
        on, off = float(rng.uniform(0.05, 0.5)), float(rng.uniform(0.08, 1.0))
        pattern = (on, off) if rng.random() < 0.6 else (on, off * 0.5, on, off * 3)
        return np.sin(2 * np.pi * f * t) * gate(n, rate, pattern, float(rng.uniform(0.0, 0.5)), 0.003)
    if variant == "chord":
        root = tone_hz(rng, 150.0, 900.0)
        ratios = [1.0] + list(rng.choice((1.2, 1.25, 1.333, 1.5, 2.0, 2.5), int(rng.integers(1, 3)), replace=False))
        trem = 1.0 + float(rng.uniform(0.0, 0.4)) * np.sin(2 * np.pi * float(rng.uniform(2.0, 6.0)) * t)
        x = sum(np.sin(2 * np.pi * root * r * t + rng.uniform(0, 2 * np.pi)) for r in ratios)
        return _fade(x * trem, rate, 0.05)
    raise ValueError(f"unknown sine variant {variant!r}")


# ----------------------------------------------------------------------------- sweeps
def sweep(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """Repeated ``log`` or ``linear`` sweeps (up or down, 0.3-6 s each, with pauses) or a ``siren``."""
    n = int(round(seconds * rate))
    top = 0.45 * rate
    if variant == "siren":
        t = np.arange(n) / rate
        lo, hi = tone_hz(rng, 450.0, 800.0), tone_hz(rng, 1100.0, 1900.0)
        mod_hz = float(rng.uniform(0.1, 0.5) if rng.random() < 0.5 else rng.uniform(2.5, 4.5))
        shape = 0.5 + 0.5 * np.sin(2 * np.pi * mod_hz * t + rng.uniform(0, 2 * np.pi))
        f = lo * (hi / lo) ** shape
        phase = 2 * np.pi * np.cumsum(f) / rate
        return sum(np.sin(k * phase) / k ** float(rng.uniform(1.0, 2.0)) for k in range(1, 6) if k * hi < top)
    if variant not in ("log", "linear"):
        raise ValueError(f"unknown sweep variant {variant!r}")
    out = np.zeros(n)
    pos = int(rng.uniform(0.0, 0.4) * rate)
    while pos < n:
        f1, f2 = float(rng.uniform(150, 500)), float(min(rng.uniform(1500, 6000) if rng.random() < 0.7
                                                        else rng.uniform(9000, 15000), top))
        if rng.random() < 0.4:
            f1, f2 = f2, f1  # downwards
        dur = float(rng.uniform(0.3, 6.0))
        m = min(int(dur * rate), n - pos)
        tt = np.arange(m) / rate
        if variant == "log":
            k = np.log(f2 / f1)
            phase = 2 * np.pi * f1 * dur / k * (np.exp(tt / dur * k) - 1.0)
        else:
            phase = 2 * np.pi * (f1 * tt + 0.5 * (f2 - f1) / dur * tt * tt)
        out[pos:pos + m] = _fade(np.sin(phase), rate, 0.01)
        pos += m + int(rng.uniform(0.1, 1.5) * rate)
    return out


# ----------------------------------------------------------------------------- instruments
def instrument_phrase(rng: np.random.Generator, family: str, seconds: float) -> tuple[int, list[tuple[int, bytes]]]:
    """A solo phrase for one instrument of ``family`` (:data:`INSTRUMENTS`): ``(program, events)``.

    ``events`` are ``(tick, bytes)`` of a format-0 MIDI file at :data:`MIDI_DIVISION` ticks a beat
    (tempo, program, notes on channel 1), about ``seconds`` long: a melody with rests, staccato and
    legato notes, and on keys and plucked strings sometimes a second note of a chord.
    """
    if family not in INSTRUMENTS:
        raise ValueError(f"unknown instrument family {family!r}; known: {', '.join(INSTRUMENTS)}")
    program, low, high = INSTRUMENTS[family][int(rng.integers(len(INSTRUMENTS[family])))]
    bpm = float(rng.uniform(60, 88) if rng.random() < 0.5 else rng.uniform(132, 176))
    tick_s = 60.0 / bpm / MIDI_DIVISION
    notes = _melody(rng, 256, low, high)
    events: list[tuple[int, bytes]] = [(0, b"\xff\x51\x03" + int(60e6 / bpm).to_bytes(3, "big")),
                                       (0, bytes([0xC0, program])), (0, bytes([0xB0, 7, 100])),
                                       (0, bytes([0xB0, 91, int(rng.integers(0, 60))]))]
    chords = family == "keys" or program in (24, 25, 27, 46)
    tick, k = int(rng.integers(0, MIDI_DIVISION)), 0
    while tick * tick_s < seconds - 0.5:
        beats = float(rng.choice((0.25, 0.5, 0.5, 1.0, 1.5, 2.0, 3.0)))
        length = int(beats * MIDI_DIVISION)
        held = max(1, int(length * float(rng.uniform(0.35, 1.0))))
        vel = int(rng.integers(45, 120))
        pitches = [notes[k]] + ([notes[k] - int(rng.choice((3, 4, 5, 7, 8, 9)))] if chords and rng.random() < 0.3
                                else [])
        for p in pitches:
            if 0 <= p < 128:
                events += [(tick, bytes([0x90, p, vel])), (tick + held, bytes([0x80, p, 0]))]
        tick, k = tick + length + (int(rng.integers(1, 5)) * MIDI_DIVISION // 2 if rng.random() < 0.12 else 0), k + 1
    events.sort(key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))  # note-offs first at one tick
    return program, events


#: The generator of each family but the instruments (rendered from :func:`instrument_phrase`).
GENERATORS: dict[str, Callable[[np.random.Generator, int, float, str], np.ndarray]] = {
    "ringtone": ringtone, "whistle": whistle, "synth_lead": synth_lead, "sine": sine, "sweep": sweep,
}


def make(family: str, variant: str, seed: str, rate: int, seconds: float) -> np.ndarray:
    """One generated sound, mono float32, at an RMS level drawn in -34..-12 dBFS (peaks under -1 dBFS)."""
    if family not in GENERATORS:
        raise ValueError(f"unknown tonal family {family!r}; known: {', '.join(GENERATORS)}")
    rng = rng_for(seed)
    level = float(rng.uniform(-34.0, -12.0))
    x = np.asarray(GENERATORS[family](rng, rate, seconds, variant), np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    if not rms > 0:
        raise ValueError(f"tonal {family}/{variant} ({seed}): the generator made silence")
    x *= 10 ** (level / 20) / rms
    x *= min(1.0, 10 ** (-1 / 20) / float(np.abs(x).max()))
    return x.astype(np.float32)


__all__ = ["AVOID_HZ", "AVOID_RATIO", "CADENCES", "GENERATORS", "INSTRUMENTS", "MIDI_DIVISION", "VARIANTS",
           "instrument_phrase", "make", "rng_for", "tone_hz"]
