"""Sung speech (deepiso.train.sung): the pitch tracker, and speech sung on notes with its words and timbre kept."""

from __future__ import annotations

import numpy as np
import pytest

from deepiso.train.sung import SingError, sing, track_f0

RATE = 44_100


def _glottal(f0: np.ndarray, rate: int = RATE, formants=((700.0, 80.0), (1200.0, 90.0), (2600.0, 120.0))):
    """A pulse train following ``f0`` (Hz per sample) through fixed formant resonators: a sustained vowel."""
    phase = np.cumsum(f0 / rate)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    y = pulses
    for freq, bw in formants:  # two-pole resonators, as in a formant synthesiser
        r = np.exp(-np.pi * bw / rate)
        a1, a2 = 2 * r * np.cos(2 * np.pi * freq / rate), -r * r
        out = np.zeros_like(y)
        for n in range(y.size):
            out[n] = y[n] + a1 * (out[n - 1] if n else 0.0) + a2 * (out[n - 2] if n > 1 else 0.0)
        y = out
    return y / np.abs(y).max()


def _speech_like(rng: np.random.Generator):
    """Syllables: a vowel with a falling or rising speech pitch, a noise burst (a consonant), a short pause."""
    parts, vowels = [], []
    pos = 0
    for _ in range(5):
        n = int(rng.uniform(0.15, 0.3) * RATE)
        start = rng.uniform(110, 200)
        f0 = np.linspace(start, start * rng.uniform(0.8, 1.25), n)
        vowel = 0.3 * _glottal(f0)
        burst = 0.05 * rng.standard_normal(int(0.06 * RATE))
        pause = np.zeros(int(0.08 * RATE))
        vowels.append((pos, pos + n))
        parts += [vowel, burst, pause]
        pos += n + burst.size + pause.size
    return np.concatenate(parts), vowels


@pytest.fixture(scope="module")
def speech():
    return _speech_like(np.random.default_rng(3))


def test_f0_tracker_follows_a_gliding_voice_and_rejects_noise_and_silence():
    n = 2 * RATE
    truth = np.linspace(110.0, 330.0, n)  # more than an octave and a half
    f0, voiced = track_f0(_glottal(truth), RATE)
    hops = np.arange(f0.size) * int(0.005 * RATE)
    inner = (hops > 0.05 * RATE) & (hops < n - 0.05 * RATE)
    assert voiced[inner].mean() > 0.95
    err = np.abs(f0[inner & voiced] / truth[hops[inner & voiced]] - 1)
    assert np.median(err) < 0.01 and np.percentile(err, 95) < 0.03
    noise = 0.3 * np.random.default_rng(0).standard_normal(RATE)
    assert track_f0(noise, RATE)[1].mean() < 0.05
    f0_silent, voiced_silent = track_f0(np.zeros(RATE), RATE)
    assert not voiced_silent.any() and not f0_silent.any()


def test_sung_notes_are_held_on_pitch_with_the_consonants_and_the_timbre_kept(speech):
    x, vowels = speech
    y, plan = sing(x, RATE, seed="a")
    assert np.isfinite(y).all() and y.dtype == np.float32
    assert len(plan.notes) == len(vowels) and len(plan.stretch) == len(vowels)
    assert all(f >= 1.2 for f in plan.stretch)
    # The notes are the vowels: each found within its vowel, and covering most of it.
    for (a, b), (s, e) in zip(vowels, plan.spans_in, strict=True):
        assert a / RATE - 0.01 <= s < e <= b / RATE + 0.01 and e - s > 0.75 * (b - a) / RATE
    # Only they are held longer: the output is the input plus each note's extra length.
    extra = sum((f - 1) * (e - s) for f, (s, e) in zip(plan.stretch, plan.spans_in, strict=True))
    assert plan.seconds_out == pytest.approx(x.size / RATE + extra, abs=0.01)
    assert y.size / RATE == pytest.approx(plan.seconds_out, abs=0.01)
    for f, (s, e), (so, eo) in zip(plan.stretch, plan.spans_in, plan.spans_out, strict=True):
        assert eo - so == pytest.approx(f * (e - s), abs=0.002)
    # Every note sits on its pitch: within its vibrato (at most 0.6 semitone) plus tracking error.
    f0, voiced = track_f0(y, RATE)
    hop = int(0.005 * RATE)
    for note, (so, eo) in zip(plan.notes, plan.spans_out, strict=True):
        s, e = int(so * RATE), int(eo * RATE)
        mid = slice((s + (e - s) // 4) // hop, (e - (e - s) // 4) // hop)
        assert voiced[mid].mean() > 0.9
        sung = 69 + 12 * np.log2(np.median(f0[mid][voiced[mid]]) / 440.0)
        assert abs(sung - note) < 0.5, (sung, note)
    # The consonants (noise bursts) are there, at their speech length: as much unvoiced energy as before.
    def unvoiced_energy(sig):
        f, v = track_f0(sig, RATE)
        frames = sig[: v.size * hop].reshape(v.size, hop)
        return float(np.sum(frames[~v] ** 2))
    assert unvoiced_energy(y) == pytest.approx(unvoiced_energy(x), rel=0.5)
    # The spectral envelope (formants at 700 / 1200 / 2600 Hz) stays where it was: no chipmunk voice.
    def band_share(sig):
        p = np.abs(np.fft.rfft(sig)) ** 2
        f = np.fft.rfftfreq(sig.size, 1 / RATE)
        return np.sum(p[(f > 550) & (f < 1400)]) / np.sum(p[(f > 60) & (f < 5000)])
    assert band_share(y) == pytest.approx(band_share(x), rel=0.25)
    # The level stays (within 3 dB of the input's RMS).
    assert abs(20 * np.log10(np.sqrt(np.mean(y ** 2)) / np.sqrt(np.mean(x ** 2)))) < 3.0


def test_singing_is_deterministic_per_seed_and_the_melody_changes_with_it(speech):
    x, _ = speech
    y1, p1 = sing(x, RATE, seed=7)
    y2, p2 = sing(x, RATE, seed=7)
    assert np.array_equal(y1, y2) and p1 == p2
    _, p3 = sing(x, RATE, seed=8)
    assert p3.notes != p1.notes or p3.stretch != p1.stretch


def test_bad_inputs_are_refused_with_what_is_wrong(speech):
    x, _ = speech
    with pytest.raises(SingError, match="NaN or Inf"):
        sing(np.where(np.arange(x.size) == 100, np.nan, x), RATE)
    with pytest.raises(SingError, match="mono"):
        sing(np.stack([x, x], axis=1), RATE)
    with pytest.raises(SingError, match="sample rate"):
        sing(x, 1000)
    with pytest.raises(SingError, match="too short"):
        sing(x[:100], RATE)
    with pytest.raises(SingError, match="no voiced sound"):
        sing(np.zeros(RATE), RATE)
    with pytest.raises(SingError, match="no voiced sound"):
        sing(0.2 * np.random.default_rng(1).standard_normal(RATE), RATE)
    with pytest.raises(SingError, match="stretch range"):
        sing(x, RATE, stretch=(3.0, 1.0))
    with pytest.raises(SingError, match="f0 range"):
        track_f0(x, RATE, fmin=500, fmax=100)
