"""Voice augmentations (deepiso.train.voice_augment) and their use in SourceMixDataset, measured."""

import json

import numpy as np
import pytest
import soundfile as sf

from deepiso.train import datasets as ds
from deepiso.train import testing as T
from deepiso.train import voice_augment as va

RATE = 16_000


def _voice(f0: float = 120.0, centre: float = 1200.0, seconds: float = 1.0) -> np.ndarray:
    """A steady vowel: harmonics of ``f0`` under one formant-like bump at ``centre`` Hz (0.35 octave wide)."""
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for k in range(1, int(7000 / f0)):
        amp = np.exp(-0.5 * (np.log2(k * f0 / centre) / 0.35) ** 2) + 0.01
        out += amp * np.sin(2 * np.pi * k * f0 * t + 0.7 * k * k)
    return (0.1 * out)[None].astype(np.float32)


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seg = x[0, 2000:-2000].astype(np.float64)  # away from the edges
    return np.fft.rfftfreq(seg.size, 1 / RATE), np.abs(np.fft.rfft(seg * np.hanning(seg.size)))


def _pitch(x: np.ndarray) -> float:
    """f0 by harmonic summation over 80–200 Hz."""
    f, s = _spectrum(x)
    candidates = np.arange(80.0, 200.0, 0.25)
    score = [np.interp(np.arange(1, 15) * c, f, s).sum() for c in candidates]
    return float(candidates[int(np.argmax(score))])


def _formant(x: np.ndarray, f0: float) -> float:
    """The envelope's centre: the power-weighted mean log frequency of the harmonics of ``f0``."""
    f, s = _spectrum(x)
    freqs = np.arange(1, int(7000 / f0)) * f0
    power = np.array([s[np.abs(f - h) < f0 / 4].max() for h in freqs]) ** 2
    return float(2 ** (np.sum(power * np.log2(freqs)) / power.sum()))


@pytest.mark.parametrize("factor", [0.85, 1.18])
def test_formant_shift_moves_the_envelope_by_the_factor_and_keeps_the_pitch(factor):
    x = _voice()
    y = va.formant_shift(x, RATE, factor)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _pitch(y) == pytest.approx(120.0, abs=0.5)
    assert _formant(y, 120.0) / _formant(x, 120.0) == pytest.approx(factor, rel=0.02)
    assert np.array_equal(va.formant_shift(x, RATE, 1.0), x)
    with pytest.raises(ValueError, match="formant factor must be > 0"):
        va.formant_shift(x, RATE, 0.0)


@pytest.mark.parametrize("factor", [0.84, 1.19])
def test_pitch_shift_moves_the_pitch_by_the_factor_and_keeps_the_envelope_length_and_timing(factor):
    x = _voice()
    y = va.pitch_shift(x, RATE, factor)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _pitch(y) / 120.0 == pytest.approx(factor, rel=0.01)
    assert _formant(y, _pitch(y)) / _formant(x, 120.0) == pytest.approx(1.0, abs=0.03)
    # change_speed moves both; pitch_shift only the pitch
    sped = ds.change_speed(x, factor, x.shape[1])
    assert _formant(sped, _pitch(sped)) / _formant(x, 120.0) == pytest.approx(factor, rel=0.03)
    gated = x.copy()
    gated[:, : RATE // 4] = 0.0
    gated[:, 3 * RATE // 4 :] = 0.0
    env = np.convolve(np.abs(va.pitch_shift(gated, RATE, factor)[0]), np.ones(160) / 160, "same")
    loud = np.flatnonzero(env > 0.5 * env.max())
    assert abs(loud[0] - RATE // 4) < 0.01 * RATE and abs(loud[-1] - 3 * RATE // 4) < 0.01 * RATE  # aligned


def test_short_voices_keep_their_length():
    for n in (1, 100, 700):
        x = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
        for f in (va.formant_shift, va.pitch_shift):
            assert f(x, RATE, 1.1).shape == (2, n)
        assert va.mic_eq(x, RATE, np.random.default_rng(0)).shape == (2, n)


def _band_pink(n: int, seed: int) -> np.ndarray:
    spec = np.fft.rfft(ds.hiss(np.random.default_rng(seed), (1, n), -1.0)[0])
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[(f < 100) | (f > 7900)] = 0.0
    return (np.fft.irfft(spec, n=n) * 0.05)[None].astype(np.float32)


def test_mic_eq_reshapes_the_spectrum_within_its_limit_and_keeps_the_level():
    n = 1 << 16
    f = np.fft.rfftfreq(n, 1 / RATE)
    edges = 100 * 2 ** np.arange(0, 6.3, 1 / 3)  # third octaves, 100 Hz - 7.7 kHz
    shapes = []
    for seed in range(8):
        x = _band_pink(n, seed)
        y = va.mic_eq(x, RATE, np.random.default_rng(seed), max_db=6.0)
        assert y.shape == x.shape and y.dtype == np.float32
        px = np.abs(np.fft.rfft(x[0].astype(np.float64))) ** 2
        py = np.abs(np.fft.rfft(y[0].astype(np.float64))) ** 2
        bands = np.array([10 * np.log10(py[(f >= lo) & (f < hi)].sum() / px[(f >= lo) & (f < hi)].sum())
                          for lo, hi in zip(edges[:-1], edges[1:], strict=True)])
        assert np.all(np.abs(bands) <= 6.05), bands
        fine = np.fft.rfftfreq(1 << 17, 1 / RATE)  # the grid mic_eq draws its response on for this length
        drawn = 10 ** (va.mic_eq_response(np.random.default_rng(seed), fine, 6.0) / 10)
        want = [10 * np.log10(drawn[(fine >= lo) & (fine < hi)].mean())
                for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        np.testing.assert_allclose(bands, want, atol=0.5)  # the drawn response is what is applied
        level = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2))
        assert abs(level) < 1.5, level
        shapes.append(bands)
        np.testing.assert_array_equal(y, va.mic_eq(x, RATE, np.random.default_rng(seed)))  # the draw decides
    assert sum(b.max() - b.min() > 2.0 for b in shapes) >= 5  # most draws colour the voice, not just scale it
    assert np.std(np.array(shapes), axis=0).mean() > 1.0  # every microphone is another
    bands = va.mic_eq_response(np.random.default_rng(1), f, max_db=3.0)
    assert np.abs(bands).max() <= 3.0


def _decay_time(h: np.ndarray, rate: int) -> float:
    """RT60 from the Schroeder integral's -5 to -25 dB slope (T20)."""
    energy = np.cumsum((h.astype(np.float64) ** 2)[::-1])[::-1]
    db = 10 * np.log10(energy / energy[0] + 1e-30)
    a, b = np.argmax(db < -5), np.argmax(db < -25)
    slope = np.polyfit(np.arange(a, b) / rate, db[a:b], 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_a_room_decays_at_its_rt60_and_its_targets_are_the_early_or_direct_voice(rt60):
    x = np.zeros((1, 2 * RATE), np.float32)
    x[0, 1000] = 1.0
    wet, early = va.room_reverb(x, RATE, np.random.default_rng(7), rt60=(rt60, rt60), target="early")
    _, dry = va.room_reverb(x, RATE, np.random.default_rng(7), rt60=(rt60, rt60), target="dry")
    assert wet.shape == early.shape == dry.shape == x.shape
    assert int(np.argmax(np.abs(wet[0]))) == 1000  # the direct sound stays where the voice was
    assert _decay_time(wet[0, 1000:], RATE) == pytest.approx(rt60, rel=0.25)
    stop = 1000 + int(va.EARLY_SECONDS * RATE)
    np.testing.assert_allclose(early[0, 1000 : stop - int(0.006 * RATE)], wet[0, 1000 : stop - int(0.006 * RATE)],
                               atol=1e-6)  # the first 50 ms (before the fade) are the room's own
    assert np.abs(early[0, stop:]).max() < 1e-6 and np.abs(early[0, :1000]).max() < 1e-6
    late = np.sum(wet[0, stop:].astype(np.float64) ** 2) / np.sum(wet[0].astype(np.float64) ** 2)
    assert late > 0.005  # what the target leaves out: the late tail
    assert np.count_nonzero(np.abs(dry[0]) > 1e-9) == 1 and dry[0, 1000] == pytest.approx(wet[0, 1000], rel=1e-5)
    with pytest.raises(ValueError, match="room target must be one of"):
        va.room_reverb(x, RATE, np.random.default_rng(0), target="wet")


def test_a_room_can_hold_the_background_and_keeps_channels():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, RATE)).astype(np.float32)
    bg = rng.standard_normal((2, RATE)).astype(np.float32)
    wet, early, bg_wet = va.room_reverb(x, RATE, np.random.default_rng(1), background=bg)
    assert wet.shape == early.shape == bg_wet.shape == (2, RATE)
    assert not np.allclose(wet[0], wet[1])  # one microphone per channel
    assert abs(np.corrcoef(bg_wet[0], bg[0])[0, 1]) < 0.99


def _tone_level(x: np.ndarray, rate: int, hz: float) -> float:
    f = np.fft.rfftfreq(x.size, 1 / rate)
    s = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return 20 * np.log10(s[np.abs(f - hz) < 5].max() + 1e-12)


@pytest.mark.parametrize("band, rate, inside, outside", [("narrow", 16_000, 1000.0, (100.0, 5000.0)),
                                                        ("wide", 32_000, 1000.0, (20.0, 10_000.0))])
def test_a_phone_line_keeps_its_band_and_removes_the_rest(band, rate, inside, outside):
    t = np.arange(rate) / rate
    tones = sum(0.1 * np.sin(2 * np.pi * hz * t) for hz in (inside, *outside))
    x = np.stack([tones, tones]).astype(np.float32)
    y = va.phone_line(x, rate, band, "mu")
    assert y.shape == x.shape and y.dtype == np.float32
    mid = slice(rate // 10, -rate // 10)
    assert _tone_level(y[0, mid], rate, inside) == pytest.approx(_tone_level(x[0, mid], rate, inside), abs=1.0)
    for hz in outside:
        assert _tone_level(y[0, mid], rate, hz) < _tone_level(x[0, mid], rate, hz) - 30, hz
    noise = np.fft.rfft(np.random.default_rng(0).standard_normal(rate))
    freqs = np.fft.rfftfreq(rate, 1 / rate)
    noise[(freqs < 500) | (freqs > 3000)] = 0.0  # inside both bands
    noise = (0.1 * np.fft.irfft(noise, n=rate) / np.abs(np.fft.irfft(noise, n=rate)).max())[None].astype(np.float32)
    heard = va.phone_line(noise, rate, band, "a")[0, mid]
    lags = range(-20, 21)
    assert max(lags, key=lambda k: np.dot(np.roll(heard, k), noise[0, mid])) == 0  # aligned
    assert not va.phone_line(np.zeros((1, 500), np.float32), rate, band, "a").any()  # silence stays silence
    with pytest.raises(ValueError, match="phone band must be one of"):
        va.phone_line(x, rate, "satellite")


@pytest.mark.parametrize("law", ["mu", "a"])
def test_g711_companding_round_trips_within_its_step(law):
    x = np.linspace(-1, 1, 20_001, dtype=np.float32)
    y = va.g711(x, law)
    err = np.abs(y.astype(np.float64) - x)
    assert np.all(err <= 0.025 * np.abs(x) + 2e-4), float((err - 0.025 * np.abs(x)).max())
    assert err.max() > 1e-3  # 8 bits: lossy
    t = np.arange(8000) / 8000
    quiet = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # -40 dBFS peak: companding keeps the SNR
    noise = va.g711(quiet, law) - quiet
    assert 10 * np.log10(np.mean(quiet**2) / np.mean(noise**2)) > 25
    assert va.g711(np.zeros(4, np.float32), law).tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="G.711 law"):
        va.g711(x, "b")


@pytest.mark.skipif(va.ffmpeg_codecs() != {"libgsm", "g722"}, reason="ffmpeg without libgsm or g722")
@pytest.mark.parametrize("band", ["narrow", "wide"])
def test_a_phone_codec_is_lossy_and_aligned(band):
    x = _voice(seconds=0.5)
    plain = va.phone_line(x, RATE, band, "mu")
    coded = va.phone_line(x, RATE, band, "mu", codec=True)
    assert coded.shape == x.shape and not np.allclose(coded, plain, atol=1e-3)
    mid = slice(800, -800)
    corr = [np.corrcoef(np.roll(coded[0], k)[mid], plain[0, mid])[0, 1] for k in range(-3, 4)]
    assert int(np.argmax(corr)) == 3 and corr[3] > 0.8, corr


# ----------------------------------------------------------------------------
# In SourceMixDataset

OPTIONS = {"formant": {"formant": 1.0}, "pitch": {"pitch": 1.0}, "mic_eq": {"mic_eq": 1.0},
           "room": {"room": 1.0}, "room dry": {"room": 1.0, "room_target": "dry"},
           "phone": {"phone": 1.0}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Steady full-band vowels (voice in every item) over noise, 1.5 s each."""
    root = tmp_path_factory.mktemp("corpus")
    records = []
    for i in range(4):
        t = np.arange(int(1.5 * RATE)) / RATE
        f0 = 110.0 + 37 * i
        vowel = sum(np.sin(2 * np.pi * k * f0 * t + k * k) / k for k in range(1, int(7900 / f0)))
        noise = np.random.default_rng(i).standard_normal(t.size)
        for kind, audio in (("voice", 0.1 * vowel), ("background", 0.05 * noise)):
            (root / kind).mkdir(exist_ok=True)
            sf.write(root / kind / f"{i}.wav", audio, RATE)
            records.append({"path": f"{kind}/{i}.wav", "kind": kind, "duration": 1.5, "source": f"tone-{kind}",
                            "split": "valid" if i == 0 else "train"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return [f for f in ds.manifest_sources(root) if f.split == "train"]


def _items(d, count=4):
    return [(d[i]["mixture"].numpy(), d[i]["vocals"].numpy()) for i in range(count)]


COMMON = {"rate": RATE, "samples": 8000, "items": 4, "seed": 5, "loopback": 0.0}


def test_at_probability_zero_the_items_are_those_without_the_options(corpus):
    plain = _items(ds.SourceMixDataset(corpus, quiet=0.5, speed=0.5, **COMMON))
    off = _items(ds.SourceMixDataset(corpus, quiet=0.5, speed=0.5, formant=0.0, formant_factor=(0.6, 0.7),
                                     pitch=0.0, pitch_factor=(1.5, 1.6), mic_eq=0.0, mic_eq_db=20.0, room=0.0,
                                     room_rt60=(2.0, 2.5), room_target="dry", room_background=1.0, phone=0.0,
                                     phone_mixture=1.0, phone_codec=1.0, **COMMON))
    for (m0, v0), (m1, v1) in zip(plain, off, strict=True):
        assert np.array_equal(m0, m1) and np.array_equal(v0, v1)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_at_probability_one_training_items_change_reproducibly_and_validation_does_not(corpus, name):
    plain = _items(ds.SourceMixDataset(corpus, **COMMON))
    aug = _items(ds.SourceMixDataset(corpus, **OPTIONS[name], **COMMON))
    again = _items(ds.SourceMixDataset(corpus, **OPTIONS[name], **COMMON))
    for (m0, v0), (m1, v1), (m2, v2) in zip(plain, aug, again, strict=True):
        assert not np.array_equal(v0, v1) and not np.array_equal(m0, m1)
        assert np.array_equal(m1, m2) and np.array_equal(v1, v2)
        assert m1.dtype == v1.dtype == np.float32 and np.abs(m1).max() <= 0.99 + 1e-6
    valid = ds.SourceMixDataset(corpus, **OPTIONS[name], **{**COMMON, "train": False})
    valid_plain = ds.SourceMixDataset(corpus, **{**COMMON, "train": False})
    for (m0, v0), (m1, v1) in zip(_items(valid_plain), _items(valid), strict=True):
        assert np.array_equal(m0, m1) and np.array_equal(v0, v1)


def _high_share(x: np.ndarray, above: float) -> float:
    f = np.fft.rfftfreq(x.size, 1 / RATE)
    s = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size))) ** 2
    return float(s[f > above].sum() / (s.sum() + 1e-30))


@pytest.mark.parametrize("whole", [False, True])
def test_the_phone_target_is_the_voice_through_the_same_line(corpus, whole):
    plain = _items(ds.SourceMixDataset(corpus, **COMMON))
    phoned = _items(ds.SourceMixDataset(corpus, phone=1.0, phone_mixture=float(whole), **COMMON))
    for (m0, v0), (m1, v1) in zip(plain, phoned, strict=True):
        assert _high_share(v1[0], 7200) < 1e-4 < _high_share(v0[0], 7200)  # the voice is on the line
        if whole:
            assert _high_share(m1[0], 7200) < 1e-4  # and so is the background
        else:
            np.testing.assert_allclose(m1 - v1, m0 - v0, atol=1e-6)  # the background is not


def test_the_room_target_is_part_of_the_reverberant_voice(corpus):
    early = _items(ds.SourceMixDataset(corpus, room=1.0, room_background=0.0, **COMMON))
    for mix, voc in early:
        rest = mix - voc  # background plus the voice's late tail
        assert np.abs(voc).max() > 0 and np.mean(rest.astype(np.float64) ** 2) > 0


def test_bad_augmentation_values_are_refused(corpus):
    for bad, match in [({"formant": 1.5}, "formant must be a probability"),
                       ({"pitch": -0.1}, "pitch must be a probability"),
                       ({"mic_eq": 2.0}, "mic_eq must be a probability"),
                       ({"room": 1.1}, "room must be a probability"),
                       ({"room_background": -1.0}, "room_background must be a probability"),
                       ({"phone": 1.2}, "phone must be a probability"),
                       ({"phone_mixture": 3.0}, "phone_mixture must be a probability"),
                       ({"phone_codec": -0.5}, "phone_codec must be a probability"),
                       ({"formant_factor": (1.2, 0.9)}, "formant_factor must be"),
                       ({"pitch_factor": (0.3, 1.0)}, "pitch_factor must be"),
                       ({"room_rt60": (0.9, 0.2)}, "room_rt60 must be"),
                       ({"mic_eq_db": 0.0}, r"mic_eq_db must be in \(0, 24\]"),
                       ({"room_target": "wet"}, "room_target must be one of early, dry")]:
        with pytest.raises(ds.DatasetError, match=match):
            ds.SourceMixDataset(corpus, **{**COMMON, **bad})


def test_the_configuration_reaches_the_training_dataset_only(tmp_path):
    from deepiso.train.config import TrainConfig
    from deepiso.train.loop import build_datasets, resolve_model

    root = T.make_manifest_corpus(tmp_path / "corpus")
    data = {"kind": "manifest", "root": str(root), "formant": 0.2, "formant_factor": [0.9, 1.1], "pitch": 0.3,
            "pitch_factor": [0.9, 1.12], "mic_eq": 0.25, "mic_eq_db": 4.0, "room": 0.2, "room_rt60": [0.2, 0.5],
            "room_target": "dry", "room_background": 0.7, "phone": 0.3, "phone_mixture": 0.4}
    cfg = TrainConfig.from_dict({"data": data})
    spec, _ = resolve_model(cfg)
    train, valid, _ = build_datasets(cfg, spec)
    got = {k: getattr(train, k) for k in data if k not in ("kind", "root")}
    assert got == {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k not in ("kind", "root")}
    assert (valid.formant, valid.pitch, valid.mic_eq, valid.room, valid.phone) == (0.0,) * 5
    with pytest.raises(ds.DatasetError, match="room_target must be one of"):
        build_datasets(cfg.with_overrides(["data.room_target=wet"]), spec)
