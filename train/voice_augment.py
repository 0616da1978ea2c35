"""Voice augmentations for on-the-fly mixing: more kinds of voice from the voices the corpus has.

Each function takes ``(channels, n)`` float32 audio at ``rate`` and returns
the same shape (:func:`room_reverb` returns two such arrays: what the
microphone hears and the training target). Random parameters are drawn from
the ``numpy`` generator passed in, so :class:`~deepiso.train.datasets.SourceMixDataset`
items stay reproducible from ``(seed, epoch, index)``.

* :func:`formant_shift`: the spectral envelope (vocal-tract length) moves, the
  pitch stays;
* :func:`pitch_shift`: the pitch moves, the spectral envelope stays;
* :func:`mic_eq`: a microphone's colour (a smooth tilt and a few bands);
* :func:`room_reverb`: a simulated shoebox room (``pyroomacoustics``);
* :func:`phone_line`: a telephone channel (narrow or wide band, G.711
  companding, optionally GSM-FR or G.722 through ``ffmpeg``).

:func:`~deepiso.train.datasets.change_speed` moves pitch, formants and tempo
together; the first two move them apart. Every function keeps the length and
the time alignment of its input.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np

#: the part of a room's impulse response after the direct sound that counts as the voice itself
EARLY_SECONDS = 0.05
ROOM_TARGETS = ("early", "dry")


# ----------------------------------------------------------------------------
# STFT (numpy; centred frames, Hann window, weighted overlap-add)


def _frame_size(rate: int) -> int:
    """A power of two near 40 ms: 512 at 16 kHz, 2048 at 44.1/48 kHz."""
    return int(2 ** round(np.log2(0.04 * rate)))


def _window(n_fft: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``(channels, n)`` → ``(channels, frames, n_fft // 2 + 1)``; frame ``t`` is centred on sample ``t * hop``."""
    pad = n_fft // 2
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad + hop)))
    frames = 1 + (xp.shape[1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.fft.rfft(xp[:, idx] * _window(n_fft), axis=-1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, n: int) -> np.ndarray:
    """The inverse of :func:`_stft`, ``n`` samples long."""
    w = _window(n_fft)
    frames = spec.shape[1]
    blocks = np.fft.irfft(spec, n=n_fft, axis=-1) * w
    total = n_fft + hop * (frames - 1)
    out = np.zeros((spec.shape[0], total))
    norm = np.zeros(total)
    for t in range(frames):
        out[:, t * hop : t * hop + n_fft] += blocks[:, t]
        norm[t * hop : t * hop + n_fft] += w * w
    out /= np.maximum(norm, 1e-3)
    pad = n_fft // 2
    out = out[:, pad : pad + n]
    return out if out.shape[1] == n else np.pad(out, ((0, 0), (0, n - out.shape[1])))


def _log_envelope(mag: np.ndarray, rate: int, n_fft: int) -> np.ndarray:
    """Log spectral envelope of magnitude frames ``(..., bins)``.

    Cepstral smoothing below three quarters of each frame's pitch period (the
    cepstral peak at 70–800 Hz; 1.2 ms where the frame shows no clear pitch),
    then three "true envelope" passes, so the envelope runs through the
    harmonics' peaks rather than between them.
    """
    floor = 1e-7 * (float(mag.max()) + 1e-12)
    log_mag = np.log(mag + floor)
    cep = np.fft.irfft(log_mag, n=n_fft, axis=-1)
    lo, hi = max(2, rate // 800), min(n_fft // 2, rate // 70)
    period = lo + np.argmax(cep[..., lo:hi], axis=-1)
    voiced = np.take_along_axis(cep, period[..., None], axis=-1)[..., 0] > 0.08
    keep = np.where(voiced, 0.75 * period, 0.0012 * rate)[..., None]
    q = np.arange(n_fft)
    lifter = (q < keep) | (q > n_fft - keep)
    env = np.fft.rfft(cep * lifter, axis=-1).real
    for _ in range(3):
        env = np.fft.rfft(np.fft.irfft(np.maximum(log_mag, env), n=n_fft, axis=-1) * lifter, axis=-1).real
    return env


def _warp_gain(mag: np.ndarray, factor: float, rate: int, n_fft: int, limit_db: float = 24.0) -> np.ndarray:
    """Per-bin gains that move the spectral envelope of ``mag`` up by ``factor`` (new envelope at
    ``f`` = old envelope at ``f / factor``) and leave the fine structure (the harmonics) in place."""
    env = _log_envelope(mag, rate, n_fft)
    bins = env.shape[-1]
    src = np.minimum(np.arange(bins) / factor, bins - 1.0)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    frac = src - lo
    warped = env[..., lo] * (1 - frac) + env[..., hi] * frac
    limit = limit_db / 20 * np.log(10)
    return np.exp(np.clip(warped - env, -limit, limit))


# ----------------------------------------------------------------------------
# Formants and pitch


def formant_shift(x: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """The voice of a shorter (``factor`` > 1) or longer (< 1) vocal tract at the same pitch and tempo.

    Each STFT frame's spectral envelope (cepstrally smoothed log magnitude) is
    moved along the frequency axis by ``factor`` and the frame's magnitude is
    scaled by the ratio of the moved to the original envelope; the phase and
    the harmonic fine structure stay, so the pitch, the timing and the length
    do too. A vocal tract 15 % shorter raises every formant about 15 %:
    factors 0.85–1.18 span adult male to child-like voices from one speaker.
    """
    if not factor > 0:
        raise ValueError(f"formant factor must be > 0, got {factor}")
    n = x.shape[1]
    if factor == 1.0 or n == 0:
        return x.astype(np.float32, copy=True)
    n_fft = _frame_size(rate)
    hop = n_fft // 4
    spec = _stft(x, n_fft, hop)
    spec *= _warp_gain(np.abs(spec), factor, rate, n_fft)
    return _istft(spec, n_fft, hop, n).astype(np.float32)


def _time_stretch(x: np.ndarray, rate: int, stretch: float, envelope_factor: float) -> np.ndarray:
    """``x`` made ``stretch`` times as long at the same pitch (a phase vocoder), its envelope moved by
    ``envelope_factor`` in the same pass."""
    n = x.shape[1]
    n_fft = _frame_size(rate)
    hop = n_fft // 4
    spec = _stft(x, n_fft, hop)
    frames = spec.shape[1]
    steps = np.arange(0, frames - 1, 1 / stretch)
    base = steps.astype(int)
    frac = steps - base
    a, b = spec[:, base], spec[:, base + 1]
    mag = np.abs(a) * (1 - frac)[None, :, None] + np.abs(b) * frac[None, :, None]
    expected = 2 * np.pi * hop * np.arange(spec.shape[-1]) / n_fft
    dphase = np.angle(b) - np.angle(a) - expected
    dphase -= 2 * np.pi * np.round(dphase / (2 * np.pi))
    advance = expected + dphase
    phase = np.angle(spec[:, :1]) + np.concatenate([np.zeros_like(advance[:, :1]),
                                                    np.cumsum(advance[:, :-1], axis=1)], axis=1)
    if envelope_factor != 1.0:
        mag = mag * _warp_gain(mag, envelope_factor, rate, n_fft)
    return _istft(mag * np.exp(1j * phase), n_fft, hop, int(round(n * stretch)))


def pitch_shift(x: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """The same voice singing or speaking ``factor`` times higher, with its formants and tempo kept.

    A phase vocoder stretches the audio ``factor`` times longer at the same
    pitch, with its spectral envelope moved by ``1 / factor`` in the same pass;
    resampling it back to the input's length then raises pitch and envelope by
    ``factor``, which brings the envelope back where it was. Factors
    0.84–1.19 are ±3 semitones. The length and the alignment are the input's.
    """
    import soxr

    if not factor > 0:
        raise ValueError(f"pitch factor must be > 0, got {factor}")
    n = x.shape[1]
    if factor == 1.0 or n == 0:
        return x.astype(np.float32, copy=True)
    long = _time_stretch(x, rate, factor, 1 / factor)
    y = soxr.resample(np.ascontiguousarray(long.T, dtype=np.float32), 1000.0 * factor, 1000.0, quality="HQ")
    y = np.ascontiguousarray(y.T[:, :n], dtype=np.float32)
    return y if y.shape[1] == n else np.pad(y, ((0, 0), (0, n - y.shape[1])))


# ----------------------------------------------------------------------------
# Microphone colour


def mic_eq_response(rng: np.random.Generator, freqs: np.ndarray, max_db: float = 6.0) -> np.ndarray:
    """A random microphone response in dB at ``freqs`` (Hz): a tilt of up to ±1.5 dB per octave about
    1 kHz plus one to three peaking (Q 0.7–3) or shelving bands of up to ±``max_db`` dB each (centres
    100 Hz–10 kHz), scaled so that the power of a pink spectrum over 100 Hz–8 kHz stays (the level
    of a voice changes by a dB or two at most) and clipped to ±``max_db``."""
    top = max(200.0, min(10_000.0, 0.8 * float(freqs.max())))
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    db = float(rng.uniform(-1.5, 1.5)) * np.clip(octaves, -5.0, 4.0)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["peak", "peak", "low_shelf", "high_shelf"])
        centre = np.log2(float(np.exp(rng.uniform(np.log(100.0), np.log(top)))) / 1000.0)
        gain = float(rng.uniform(-max_db, max_db))
        if kind == "peak":
            width = 1.0 / float(rng.uniform(0.7, 3.0))  # octaves, about 1/Q
            db = db + gain * np.exp(-0.5 * ((octaves - centre) / (0.5 * width)) ** 2)
        else:
            sign = 1.0 if kind == "high_shelf" else -1.0
            db = db + gain / (1 + np.exp(-sign * 4.0 * (octaves - centre)))
    ref = np.log2(np.geomspace(100.0, min(8000.0, float(freqs.max())), 64) / 1000.0)
    order = np.argsort(octaves)
    db = db - 10 * np.log10(np.mean(10 ** (np.interp(ref, octaves[order], db[order]) / 10)))
    return np.clip(db, -max_db, max_db)


def mic_eq(x: np.ndarray, rate: int, rng: np.random.Generator, max_db: float = 6.0) -> np.ndarray:
    """``x`` coloured as by another microphone: the response of :func:`mic_eq_response`, applied
    zero-phase (the alignment stays); the level changes by a few dB at most."""
    n = x.shape[1]
    if n == 0:
        return x.astype(np.float32, copy=True)
    size = 1 << int(np.ceil(np.log2(n + 4096)))  # room for the short smooth filter's tails
    freqs = np.fft.rfftfreq(size, 1 / rate)
    gain = 10 ** (mic_eq_response(rng, freqs, max_db) / 20)
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64), n=size, axis=-1) * gain, n=size, axis=-1)
    return y[:, :n].astype(np.float32)


# ----------------------------------------------------------------------------
# Rooms


def room_impulse_responses(rng: np.random.Generator, rate: int, rt60: tuple[float, float] = (0.15, 0.8),
                           channels: int = 1, sources: int = 1, max_order: int = 10) -> dict:
    """Impulse responses of a random shoebox room (``pyroomacoustics``, image source method).

    The room is 3–10 × 3–8 × 2.4–4 m (made smaller where its walls could not
    absorb enough for the drawn time) with a reverberation time drawn
    uniformly from ``rt60`` (s; wall absorption by Sabine's formula); one
    microphone per channel (0.2 m apart), ``sources`` sources, the first
    0.3–2.5 m from the microphones, the others anywhere. Images up to
    ``max_order`` reflections are exact; past the time they cover, the tail is
    Gaussian noise decaying at the drawn RT60 (independent per microphone),
    matched to the image-source energy where they meet: the full image-source
    method takes seconds for RT60 0.8 s. Each source's responses start at its
    earliest direct sound and are scaled so that its loudest direct sound is 1.
    Returns ``{"rir": [source][channel] arrays, "direct": [source][channel]
    (sample, amplitude) of the direct sound, "rt60": seconds}``.
    """
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3.0, 10.0), rng.uniform(3.0, 8.0), rng.uniform(2.4, 4.0)])
    target = float(rng.uniform(*rt60))
    for _ in range(20):
        try:
            absorption, order = pra.inverse_sabine(target, dims)
            break
        except ValueError:  # too large a room for so short a time: no wall absorbs more than everything
            dims = np.maximum(dims * 0.85, 1.2)
    else:
        absorption, order = 0.99, 0
    margin = min(0.4, float(dims.min()) / 4)
    mic = np.array([rng.uniform(margin, d - margin) for d in dims])
    mic[2] = min(mic[2], 2.0)
    positions = []
    for s in range(sources):
        for _ in range(50):
            if s == 0:
                direction = rng.standard_normal(3)
                direction[2] *= 0.3
                pos = mic + float(rng.uniform(0.3, 2.5)) * direction / np.linalg.norm(direction)
            else:
                pos = np.array([rng.uniform(margin, d - margin) for d in dims])
            if np.all(pos > margin) and np.all(pos < dims - margin) and np.linalg.norm(pos - mic) > 0.25:
                break
        else:
            pos = np.clip(mic + np.array([0.5, 0.0, 0.0]), margin, dims - margin)
        positions.append(pos)
    order = min(int(order), max_order)
    room = pra.ShoeBox(dims, fs=rate, materials=pra.Material(float(absorption)), max_order=order)
    for pos in positions:
        room.add_source(pos)
    offsets = (np.arange(channels) - (channels - 1) / 2) * 0.2
    mics = np.stack([np.clip(mic + np.array([o, 0.0, 0.0]), 0.05, dims - 0.05) for o in offsets], axis=1)
    room.add_microphone_array(mics)
    room.compute_rir()
    covered = order * float(dims.min()) / float(room.c)  # seconds after the direct sound the images cover
    length = int((target * 1.1 + 0.02) * rate)
    decay = 3 * np.log(10) / target  # amplitude: -60 dB after rt60
    win = int(0.02 * rate)
    out: dict = {"rir": [], "direct": [], "rt60": target}
    for s in range(sources):
        raw = [np.asarray(room.rir[ch][s], np.float64) for ch in range(channels)]
        peaks = [int(np.argmax(np.abs(r))) for r in raw]
        start = min(peaks)
        loudest = max(abs(float(r[p])) for r, p in zip(raw, peaks, strict=True))
        rirs, direct = [], []
        for r, p in zip(raw, peaks, strict=True):
            r = r[start:] / loudest
            cut = int(covered * rate) + p - start
            if cut < length:
                t = np.arange(length) / rate
                tail = rng.standard_normal(length) * np.exp(-decay * t)
                seg = r[max(0, cut - win) : min(cut, r.size)]
                ref = tail[max(0, cut - win) : min(cut, r.size)]
                scale = np.sqrt(np.mean(seg**2) / (np.mean(ref**2) + 1e-30)) if seg.size else 0.0
                full = np.zeros(length)
                full[: min(cut, r.size)] = r[: min(cut, r.size)]
                full[cut:] = scale * tail[cut:]
                r = full
            rirs.append(r[:length])
            direct.append((p - start, float(r[p - start])))
        out["rir"].append(rirs)
        out["direct"].append(direct)
    return out


def _convolve(x: np.ndarray, rirs: list[np.ndarray]) -> np.ndarray:
    from scipy.signal import fftconvolve

    n = x.shape[1]
    return np.stack([fftconvolve(x[c].astype(np.float64), rirs[c])[:n] for c in range(x.shape[0])])


def early_part(rir: np.ndarray, rate: int, seconds: float = EARLY_SECONDS) -> np.ndarray:
    """The first ``seconds`` of an impulse response that starts at its direct sound (5 ms fade-out)."""
    keep = min(rir.size, int(seconds * rate))
    fade = min(keep, int(0.005 * rate))
    out = rir[:keep].copy()
    if fade:
        out[keep - fade :] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    return out


def room_reverb(x: np.ndarray, rate: int, rng: np.random.Generator, rt60: tuple[float, float] = (0.15, 0.8),
                target: str = "early", background: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """``x`` spoken in a random room (:func:`room_impulse_responses`): ``(wet, target)``, and
    ``background`` played from elsewhere in the same room as a third array when given.

    ``wet`` is what the microphone hears. ``target`` is what the network is
    taught to keep: ``"early"`` (the default), the voice with its first 50 ms
    of reflections, or ``"dry"``, the direct sound alone. Early reflections
    arrive within the ear's integration time: they colour the voice but
    belong to it (speech-enhancement work, DeepFilterNet among them, trains
    towards the dry or early-reflection voice for this reason), while asking
    a causal network to remove them too costs quality elsewhere for little
    gain in clarity; the late tail is removed like any other background.
    Both start at the direct sound, whose level is the input's, so ``target``
    stays aligned with ``x`` (``"dry"`` is ``x`` itself where one channel is).
    """
    if target not in ROOM_TARGETS:
        raise ValueError(f"room target must be one of {ROOM_TARGETS}, got {target!r}")
    rooms = room_impulse_responses(rng, rate, rt60, channels=x.shape[0], sources=1 + (background is not None))
    rirs = rooms["rir"][0]
    wet = _convolve(x, rirs).astype(np.float32)
    if target == "early":
        tgt = _convolve(x, [early_part(r, rate) for r in rirs]).astype(np.float32)
    else:
        tgt = np.zeros_like(x, dtype=np.float32)
        for c, (delay, amp) in enumerate(rooms["direct"][0]):
            tgt[c, delay:] = amp * x[c, : x.shape[1] - delay]
    if background is None:
        return wet, tgt
    return wet, tgt, _convolve(background, rooms["rir"][1]).astype(np.float32)


# ----------------------------------------------------------------------------
# Phone lines

PHONE_BANDS = {"narrow": (8000, 300.0, 3400.0), "wide": (16_000, 50.0, 7000.0)}
PHONE_CODECS = {"narrow": ("libgsm", "gsm", 0), "wide": ("g722", "g722", 22)}  # ffmpeg encoder, format, delay


def g711(x: np.ndarray, law: str = "mu") -> np.ndarray:
    """``x`` (full scale ±1) through G.711 companding: the μ-law (μ = 255) or A-law (A = 87.6)
    curve quantised to 8 bits and expanded back (the continuous laws that G.711's segments
    approximate). The error is about 2 % of the sample's magnitude (a step near zero)."""
    y = np.clip(x.astype(np.float64), -1.0, 1.0)
    a = np.abs(y)
    if law == "mu":
        mu = 255.0
        c = np.log1p(mu * a) / np.log1p(mu)
        c = np.round(c * 127) / 127
        out = np.expm1(c * np.log1p(mu)) / mu
    elif law == "a":
        big_a = 87.6
        k = 1 + np.log(big_a)
        c = np.where(a < 1 / big_a, big_a * a / k, (1 + np.log(np.maximum(a, 1 / big_a) * big_a)) / k)
        c = np.round(c * 127) / 127
        out = np.where(c < 1 / k, c * k / big_a, np.exp(c * k - 1) / big_a)
    else:
        raise ValueError(f"G.711 law must be 'mu' or 'a', got {law!r}")
    return (np.sign(y) * out).astype(np.float32)


@functools.cache
def ffmpeg_codecs() -> frozenset[str]:
    """The ffmpeg audio encoders of :data:`PHONE_CODECS` that this machine has."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return frozenset()
    try:
        text = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names = {line.split()[1] for line in text.splitlines() if len(line.split()) > 1}
    return frozenset(enc for enc, _, _ in PHONE_CODECS.values() if enc in names)


def _codec(x: np.ndarray, rate: int, band: str) -> np.ndarray:
    """One channel through the band's lossy codec (GSM-FR or G.722) and back, via ffmpeg."""
    encoder, fmt, delay = PHONE_CODECS[band]
    pcm = (np.clip(x, -1, 1) * 32767).round().astype("<i2").tobytes()
    run = functools.partial(subprocess.run, capture_output=True, check=True, timeout=120)
    coded = run(["ffmpeg", "-v", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
                 "-c:a", encoder, "-f", fmt, "pipe:1"], input=pcm).stdout
    raw = run(["ffmpeg", "-v", "error", "-f", fmt, "-i", "pipe:0", "-f", "s16le", "-ar", str(rate), "-ac", "1",
               "pipe:1"], input=coded).stdout
    y = np.frombuffer(raw, "<i2").astype(np.float32)[delay:] / 32768
    return y[: x.size] if y.size >= x.size else np.pad(y, (0, x.size - y.size))


def phone_line(x: np.ndarray, rate: int, band: str = "narrow", law: str = "mu", codec: bool = False) -> np.ndarray:
    """``x`` as heard through a telephone: resampled to the line's rate, band-passed, G.711-companded
    (:func:`g711`), optionally through a lossy codec, and resampled back to ``rate``.

    ``band``: ``"narrow"`` (8 kHz, 300–3400 Hz, the classic line; codec GSM-FR)
    or ``"wide"`` (16 kHz, 50–7000 Hz, HD voice; codec G.722). The band-pass
    is a 4th-order Butterworth applied forwards and backwards (zero phase), and
    the codec's delay is removed, so the output stays aligned with ``x``.
    ``codec`` needs ffmpeg with the encoder (:func:`ffmpeg_codecs`). Silence stays silence.
    """
    import soxr
    from scipy.signal import butter, sosfiltfilt

    if band not in PHONE_BANDS:
        raise ValueError(f"phone band must be one of {sorted(PHONE_BANDS)}, got {band!r}")
    n = x.shape[1]
    if n == 0 or not np.any(x):
        return np.zeros_like(x, dtype=np.float32)
    line_rate, low, high = PHONE_BANDS[band]
    y = soxr.resample(np.ascontiguousarray(x.T, dtype=np.float32), rate, line_rate, quality="HQ").T
    sos = butter(4, [low, min(high, 0.45 * line_rate)], btype="bandpass", fs=line_rate, output="sos")
    y = sosfiltfilt(sos, y.astype(np.float64), axis=-1, padlen=min(y.shape[1] - 1, line_rate // 20))
    y = g711(y, law)
    if codec:
        y = np.stack([_codec(ch, line_rate, band) for ch in y])
    out = soxr.resample(np.ascontiguousarray(y.T, dtype=np.float32), line_rate, rate, quality="HQ").T
    out = np.ascontiguousarray(out[:, :n], dtype=np.float32)
    return out if out.shape[1] == n else np.pad(out, ((0, 0), (0, n - out.shape[1])))
