"""Items with no voice at all, where the right output of a voice isolator is silence.

A voice isolator must not take every pitched, sustained sound for a voice. Each
category below is something a microphone picks up that is neither speech nor
singing; its generator makes one deterministic clip from a seed:

* ``ringtone``: a phone ringing: dual-tone ring cadences (UK 400 + 450 Hz,
  US 440 + 480 Hz), an electronic warble (1 / 1.3 kHz alternating at 20 Hz),
  and a melodic synth ringtone (a bell-like motif, repeated);
* ``whistle``: a whistled melody: a nearly pure tone of 0.9-2.4 kHz with
  glides between notes, vibrato, a weak second harmonic and breath noise;
* ``synth_lead``: a sawtooth or square melody (band-limited, additive) with an
  attack-decay-sustain-release envelope and a closing low-pass;
* ``instrument``: a solo piano, violin, flute, trumpet or alto sax phrase, a
  generated MIDI melody rendered by ``fluidsynth`` with a General MIDI
  soundfont (skipped, with the reason, where fluidsynth or a soundfont is missing);
* ``sine``: a steady 440 Hz or 1 kHz tone;
* ``sweep``: a logarithmic sine sweep from 100 Hz to 8 kHz (capped under the
  Nyquist frequency) over the whole item.

:func:`build_no_voice_set` makes ``per_category`` items of each category
(variants taken in turn), stereo float32 at ``rate`` (the same signal in both
channels; the rendered instruments keep fluidsynth's stereo), at an RMS level
drawn between -26 and -14 dBFS (peaks at most -1 dBFS). Their ``vocals`` are
all zeros, so ``mixture - vocals`` is the whole input; the quality benchmark
scores them by :func:`deepiso.realtime.metrics.level_db` (estimate against
input, dB; lower is better, 0 dB is the input passed through).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from .evalset import Item

#: Variants of each category, taken in turn by the items of that category.
VARIANTS: dict[str, tuple[str, ...]] = {
    "ringtone": ("dual_tone_uk", "dual_tone_us", "warble", "melodic"),
    "whistle": ("melody",),
    "synth_lead": ("sawtooth", "square"),
    "instrument": ("piano", "violin", "flute", "trumpet", "sax"),
    "sine": ("440hz", "1khz"),
    "sweep": ("log_100hz_8khz",),
}
CATEGORIES: tuple[str, ...] = tuple(VARIANTS)

#: General MIDI programs (0-based) and playable ranges (MIDI notes) of the solo instruments.
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    "piano": (0, 48, 84), "violin": (40, 55, 88), "flute": (73, 60, 93), "trumpet": (56, 55, 82),
    "sax": (65, 49, 80),
}
#: Where General MIDI soundfonts are looked for, in order of preference.
SOUNDFONTS: tuple[str, ...] = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",
                               "/usr/share/sounds/sf2/default-GM.sf2")


class Skipped(RuntimeError):
    """An item that cannot be made here (a tool or file missing); the message says why."""


# ----------------------------------------------------------------------------
# Building blocks (mono float64 (n,) at `rate`)


def _fade(x: np.ndarray, rate: int, seconds: float = 0.01) -> np.ndarray:
    m = min(int(seconds * rate), x.size // 2)
    if m > 0:
        ramp = np.linspace(0.0, 1.0, m)
        x[:m] *= ramp
        x[-m:] *= ramp[::-1]
    return x


def _cadence(n: int, rate: int, pattern: tuple[float, ...], start: float) -> np.ndarray:
    """A 0/1 gate ``(n,)``: ``pattern`` = on, off, on, off... seconds, repeated, from ``start`` s; 5 ms edges."""
    gate = np.zeros(n)
    t, k = start, 0
    while t * rate < n:
        if k % 2 == 0:
            a, b = int(t * rate), min(int((t + pattern[k % len(pattern)]) * rate), n)
            gate[a:b] = _fade(np.ones(b - a), rate, 0.005)
        t += pattern[k % len(pattern)]
        k += 1
    return gate


def _note_pitches(rng: np.random.Generator, count: int, low: int, high: int) -> list[int]:
    """A stepwise melody of ``count`` MIDI notes on a major or minor scale within ``low``..``high``."""
    scale = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.6 else (0, 2, 3, 5, 7, 8, 10)
    tonic = int(rng.integers(low, low + 12))
    notes = [tonic + 12 * o + s for o in range(-1, 5) for s in scale if low <= tonic + 12 * o + s <= high]
    i = int(rng.integers(len(notes) // 4, max(len(notes) // 4 + 1, 3 * len(notes) // 4)))
    out = []
    for _ in range(count):
        out.append(notes[i])
        i = int(np.clip(i + rng.choice((-2, -1, -1, 1, 1, 2, 3)), 0, len(notes) - 1))
    return out


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _adsr(m: int, rate: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    t = np.arange(m) / rate
    env = np.minimum(t / max(attack, 1e-4), 1.0)
    env = np.where(t > attack, sustain + (1 - sustain) * np.exp(-(t - attack) / max(decay, 1e-4)), env)
    rel = int(min(release * rate, m // 2))
    if rel > 0:
        env[-rel:] *= np.linspace(1.0, 0.0, rel)
    return env


def _one_pole(x: np.ndarray, coefficient: float) -> np.ndarray:
    """``y[i] = y[i-1] + c (x[i] - y[i-1])`` from ``y[-1] = x[0]`` (a smoother)."""
    from scipy.signal import lfilter, lfilter_zi

    b, a = [coefficient], [1.0, coefficient - 1.0]
    return lfilter(b, a, x, zi=lfilter_zi(b, a) * x[0])[0]


# ----------------------------------------------------------------------------
# Generators by category: (rng, rate, seconds, variant) -> (n,) mono or (channels, n)


def ringtone(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """A phone ringing: ``dual_tone_uk``, ``dual_tone_us``, ``warble`` or ``melodic``."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    start = float(rng.uniform(0.0, 0.3))
    if variant in ("dual_tone_uk", "dual_tone_us"):
        f1, f2, pattern = (400.0, 450.0, (0.4, 0.2, 0.4, 2.0)) if variant == "dual_tone_uk" else \
            (440.0, 480.0, (2.0, 4.0))
        p1, p2 = rng.uniform(0, 2 * np.pi, 2)
        return (np.sin(2 * np.pi * f1 * t + p1) + np.sin(2 * np.pi * f2 * t + p2)) * _cadence(n, rate, pattern, start)
    if variant == "warble":
        lo = float(rng.uniform(900, 1100))
        square = np.sign(np.sin(2 * np.pi * 20.0 * t)) > 0
        f = _one_pole(np.where(square, lo * 1.3, lo), 0.05)
        return np.sin(2 * np.pi * np.cumsum(f) / rate) * _cadence(n, rate, (1.0, 0.5), start)
    if variant == "melodic":
        notes = _note_pitches(rng, int(rng.integers(5, 9)), 74, 98)
        step = float(rng.uniform(0.11, 0.18))
        motif = np.zeros(int(step * rate) * len(notes) + int(0.6 * rate))
        m = int(0.6 * rate)
        tt = np.arange(m) / rate
        for k, note in enumerate(notes):
            f = _midi_hz(note)
            bell = np.sin(2 * np.pi * f * tt + 1.5 * np.exp(-tt * 8) * np.sin(2 * np.pi * 2 * f * tt))
            a = k * int(step * rate)
            motif[a: a + m] += _fade(bell * np.exp(-tt * 7), rate, 0.003)
        period = motif.size + int(rng.uniform(0.2, 0.6) * rate)
        out = np.zeros(n)
        for a in range(int(start * rate), n, period):
            b = min(a + motif.size, n)
            out[a:b] += motif[: b - a]
        return out
    raise ValueError(f"unknown ringtone variant {variant!r}")


def whistle(rng: np.random.Generator, rate: int, seconds: float, variant: str = "melody") -> np.ndarray:
    """A whistled melody: glides between notes, 5-6 Hz vibrato, a weak 2nd harmonic, breath noise."""
    from scipy.signal import butter, sosfilt

    n = int(round(seconds * rate))
    low = int(rng.integers(81, 86))  # A5..C#6: whistling sits about 0.9-2.4 kHz
    notes = _note_pitches(rng, 64, low, low + 14)
    pitch = np.zeros(n)
    gate = np.zeros(n)
    pos, k = int(rng.uniform(0.05, 0.3) * rate), 0
    while pos < n:
        dur = int(rng.choice((0.2, 0.3, 0.4, 0.6)) * rate)
        pitch[pos: pos + dur] = notes[k % len(notes)]
        gate[pos: pos + dur - int(0.03 * rate)] = 1.0
        pos, k = pos + dur + (int(rng.uniform(0.2, 0.5) * rate) if rng.random() < 0.2 else 0), k + 1
    pitch[pitch == 0] = notes[0]
    t = np.arange(n) / rate
    glide = _one_pole(pitch, 1.0 - np.exp(-1.0 / (0.025 * rate)))
    vibrato = 0.25 * np.sin(2 * np.pi * float(rng.uniform(5.0, 6.0)) * t) * np.minimum(t / 0.5, 1.0)
    f0 = _midi_hz(69) * 2 ** ((glide + vibrato - 69) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    env = _one_pole(gate, 1.0 - np.exp(-1.0 / (0.02 * rate)))
    tone = np.sin(phase) + 0.03 * np.sin(2 * phase)
    breath = sosfilt(butter(2, [800, min(6000, 0.45 * rate)], "bandpass", fs=rate, output="sos"),
                     rng.standard_normal(n))
    return env * (tone + 0.12 * breath / (np.std(breath) + 1e-12))


def synth_lead(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """A ``sawtooth`` or ``square`` lead melody: additive, band-limited, ADSR envelope, closing low-pass."""
    if variant not in ("sawtooth", "square"):
        raise ValueError(f"unknown synth lead variant {variant!r}")
    n = int(round(seconds * rate))
    notes = _note_pitches(rng, 64, 55, 79)
    beat = 60.0 / float(rng.uniform(100, 140))
    out = np.zeros(n)
    pos, k = int(rng.uniform(0.0, 0.2) * rate), 0
    cutoff = float(rng.uniform(2000, 5000))
    while pos < n:
        m = int(beat * float(rng.choice((0.5, 0.5, 1.0, 1.0, 1.5, 2.0))) * rate)
        f = _midi_hz(notes[k % len(notes)])
        tt = np.arange(m) / rate
        tone = np.zeros(m)
        step = 2 if variant == "square" else 1
        for h in range(1, int(0.45 * rate / f) + 1, step):
            tone += np.sin(2 * np.pi * f * h * tt) / h / (1 + (f * h / cutoff) ** 2)  # a soft low-pass
        b = min(pos + m, n)
        out[pos:b] += (tone * _adsr(m, rate, 0.01, 0.15, 0.6, 0.05))[: b - pos]
        pos, k = pos + m, k + 1
    return out


def sine(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """A steady ``440hz`` or ``1khz`` tone (10 ms fades)."""
    f = {"440hz": 440.0, "1khz": 1000.0}.get(variant)
    if f is None:
        raise ValueError(f"unknown sine variant {variant!r}")
    t = np.arange(int(round(seconds * rate))) / rate
    return _fade(np.sin(2 * np.pi * f * t + float(rng.uniform(0, 2 * np.pi))), rate)


def sweep(rng: np.random.Generator, rate: int, seconds: float, variant: str = "log_100hz_8khz") -> np.ndarray:
    """A logarithmic sine sweep 100 Hz → 8 kHz (or 0.45 x the rate, if lower) over the whole item."""
    n = int(round(seconds * rate))
    f1, f2 = 100.0, min(8000.0, 0.45 * rate)
    t = np.arange(n) / rate
    k = np.log(f2 / f1)
    return _fade(np.sin(2 * np.pi * f1 * seconds / k * (np.exp(t / seconds * k) - 1.0)), rate)


def _smf(program: int, notes: list[tuple[float, float, int, int]], end_s: float, bpm: float) -> bytes:
    """A format-0 standard MIDI file: ``notes`` = (start s, length s, key, velocity) on channel 0."""
    division = 480
    ticks = division * bpm / 60.0

    def vlq(v: int) -> bytes:
        out = [v & 0x7F]
        while v > 0x7F:
            v >>= 7
            out.append(0x80 | (v & 0x7F))
        return bytes(reversed(out))

    events = [(0, b"\xff\x51\x03" + int(60e6 / bpm).to_bytes(3, "big")), (0, bytes([0xC0, program])),
              (0, bytes([0xB0, 7, 110]))]
    for start, length, key, vel in notes:
        events.append((int(start * ticks), bytes([0x90, key, vel])))
        events.append((int((start + length) * ticks), bytes([0x80, key, 0])))
    events.sort(key=lambda e: (e[0], e[1][0] == 0x90))  # note-offs before note-ons at one tick
    events.append((max(int(end_s * ticks), events[-1][0]), b"\xff\x2f\x00"))
    body, now = b"", 0
    for tick, data in events:
        body += vlq(tick - now) + data
        now = tick
    return b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + \
        division.to_bytes(2, "big") + b"MTrk" + len(body).to_bytes(4, "big") + body


def _fluidsynth_exe() -> str | None:
    return shutil.which("fluidsynth")


def find_soundfont() -> str | None:
    """The first General MIDI soundfont of :data:`SOUNDFONTS` that exists here, else None."""
    return next((s for s in SOUNDFONTS if Path(s).is_file()), None)


def instrument(rng: np.random.Generator, rate: int, seconds: float, variant: str) -> np.ndarray:
    """A solo ``piano``/``violin``/``flute``/``trumpet``/``sax`` phrase rendered by fluidsynth: ``(2, n)``.

    Raises :class:`Skipped` when fluidsynth or a GM soundfont is missing, or the render fails.
    """
    if variant not in INSTRUMENTS:
        raise ValueError(f"unknown instrument {variant!r}; known: {', '.join(INSTRUMENTS)}")
    program, low, high = INSTRUMENTS[variant]
    exe = _fluidsynth_exe()
    if exe is None:
        raise Skipped("fluidsynth is not installed (Debian package fluidsynth)")
    font = find_soundfont()
    if font is None:
        raise Skipped(f"no General MIDI soundfont found (looked for {', '.join(SOUNDFONTS)})")
    bpm = float(rng.uniform(90, 130))
    beat = 60.0 / bpm
    pitches = _note_pitches(rng, 64, low, high)
    notes, t, k = [], float(rng.uniform(0.0, 0.2)), 0
    while t < seconds - 0.3:
        length = beat * float(rng.choice((0.5, 0.5, 1.0, 1.0, 1.5, 2.0)))
        notes.append((t, length * 0.95, pitches[k], int(rng.integers(70, 105))))
        t, k = t + length, k + 1
    n = int(round(seconds * rate))
    with tempfile.TemporaryDirectory(prefix="deepiso-no-voice-") as tmp:
        mid, wav = Path(tmp) / "phrase.mid", Path(tmp) / "phrase.wav"
        mid.write_bytes(_smf(program, notes, seconds + 0.5, bpm))
        cmd = [exe, "-ni", "-q", "-F", str(wav), "-T", "wav", "-O", "float", "-r", str(rate), "-g", "0.5",
               font, str(mid)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        except subprocess.TimeoutExpired:
            raise Skipped("fluidsynth took over 120 s to render the phrase") from None
        if run.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            detail = (run.stderr or run.stdout).strip().splitlines()
            raise Skipped(f"fluidsynth could not render the phrase ({detail[-1] if detail else 'no output'})")
        data, got = sf.read(str(wav), dtype="float64", always_2d=True)
    if got != rate:
        raise Skipped(f"fluidsynth wrote {got} Hz, asked {rate} Hz")
    x = data.T[:2, :n]
    return np.pad(x, ((0, 0), (0, n - x.shape[1])))


#: The generator of each category.
GENERATORS: dict[str, Callable[[np.random.Generator, int, float, str], np.ndarray]] = {
    "ringtone": ringtone, "whistle": whistle, "synth_lead": synth_lead, "instrument": instrument,
    "sine": sine, "sweep": sweep,
}


# ----------------------------------------------------------------------------
# The set


def build_no_voice_set(per_category: int = 5, seconds: float = 4.0, rate: int = 44_100, seed: int = 0,
                       categories: tuple[str, ...] | None = None) -> tuple[list[Item], dict[str, str]]:
    """``per_category`` items of every category (variants in turn), and the items that could not be made.

    Returns ``(items, skipped)``; ``skipped`` maps an item's name to the reason it is missing (fluidsynth
    or a soundfont absent). Items are stereo float32 at ``rate``, ``vocals`` all zeros, and the same
    arguments always give the same items.
    """
    categories = CATEGORIES if categories is None else tuple(categories)
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"unknown no-voice categories {unknown}; known: {', '.join(CATEGORIES)}")
    if per_category < 1 or seconds <= 0:
        raise ValueError(f"per_category must be >= 1 and seconds > 0, got {per_category} and {seconds}")
    items: list[Item] = []
    skipped: dict[str, str] = {}
    for cat in categories:
        ci = CATEGORIES.index(cat)
        for k in range(per_category):
            variant = VARIANTS[cat][k % len(VARIANTS[cat])]
            name = f"novoice_{cat}_{variant}_{k:02d}"
            rng = np.random.default_rng([seed, 1000 + ci, k])
            level = float(rng.uniform(-26.0, -14.0))
            try:
                x = np.asarray(GENERATORS[cat](rng, rate, seconds, variant), np.float64)
            except Skipped as exc:
                skipped[name] = str(exc)
                continue
            x = np.stack([x, x]) if x.ndim == 1 else x
            rms = np.sqrt(np.mean(np.square(x.mean(axis=0))))
            if rms <= 0:
                raise RuntimeError(f"{name}: the generator made silence")
            x = x * (10 ** (level / 20) / rms)
            x = x * min(1.0, 10 ** (-1 / 20) / float(np.abs(x).max()))
            mixture = np.ascontiguousarray(x, np.float32)
            meta = {"name": name, "category": cat, "variant": variant, "voice": "none", "background": cat,
                    "set": "no_voice", "seed": seed, "rate": rate, "seconds": seconds,
                    "level_dbfs": round(float(10 * np.log10(np.mean(np.square(x.mean(axis=0))))), 2)}
            items.append(Item(name, mixture, np.zeros_like(mixture), rate, meta))
    return items, skipped
