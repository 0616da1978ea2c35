"""The quality benchmark's no-voice set: its generators, its scoring by level, its place in a run."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import evalset, no_voice, plots, quality
from deepiso.realtime.metrics import level_db

RATE = 16_000
QUICK = tuple(c for c in no_voice.CATEGORIES if c != "instrument")  # no fluidsynth: fast


def _spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(x.size, 1 / rate), np.abs(np.fft.rfft(x.astype(np.float64))) ** 2


def _centroid(x: np.ndarray, rate: int) -> float:
    f, p = _spectrum(x, rate)
    return float((f * p).sum() / p.sum())


def test_no_voice_items_are_stereo_silent_in_truth_deterministic_and_what_they_say():
    items, skipped = no_voice.build_no_voice_set(per_category=2, seconds=1.0, rate=RATE, seed=3, categories=QUICK)
    assert not skipped
    assert [it.category for it in items] == [c for c in QUICK for _ in range(2)]
    assert len({it.name for it in items}) == len(items)
    again, _ = no_voice.build_no_voice_set(per_category=2, seconds=1.0, rate=RATE, seed=3, categories=QUICK)
    other, _ = no_voice.build_no_voice_set(per_category=2, seconds=1.0, rate=RATE, seed=4, categories=QUICK)
    for a, b, c in zip(items, again, other, strict=True):
        assert a.mixture.shape == a.vocals.shape == (2, RATE) and a.mixture.dtype == np.float32
        assert a.rate == RATE and a.meta["voice"] == "none" and a.meta["variant"] in no_voice.VARIANTS[a.category]
        assert not a.vocals.any() and quality.is_voice_free(a)
        np.testing.assert_array_equal(a.mixture, b.mixture)
        assert not np.array_equal(a.mixture, c.mixture)  # another seed: another level, phase or melody
        rms = 10 * np.log10(np.mean(np.square(a.mixture.mean(0), dtype=np.float64)))
        assert np.abs(a.mixture).max() <= 10 ** (-1 / 20) + 1e-6
        assert -26.01 <= rms <= -13.99 or np.abs(a.mixture).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    by = {(it.category, it.meta["variant"]): it.mixture[0] for it in items}
    f, p = _spectrum(by[("sine", "440hz")], RATE)
    assert f[np.argmax(p)] == pytest.approx(440.0, abs=2.0)
    f, p = _spectrum(by[("sine", "1khz")], RATE)
    assert f[np.argmax(p)] == pytest.approx(1000.0, abs=2.0)
    f, p = _spectrum(by[("ringtone", "dual_tone_uk")], RATE)
    assert set(np.round(f[np.argsort(p)[-2:]], -1)) == {400.0, 450.0}
    sweep = by[("sweep", "log_100hz_8khz")]
    quarters = [_centroid(q, RATE) for q in np.array_split(sweep, 4)]
    assert quarters == sorted(quarters) and quarters[0] < 400 and quarters[-1] > 2000
    assert 800 < _centroid(by[("whistle", "melody")], RATE) < 3500
    for variant in ("sawtooth", "square"):  # harmonics: far more than a sine's single line
        f, p = _spectrum(by[("synth_lead", variant)], RATE)
        assert np.sum(p > p.max() * 1e-3) > 50
    with pytest.raises(ValueError, match="unknown no-voice categories"):
        no_voice.build_no_voice_set(categories=("ringtone", "speech"))


def test_instruments_are_skipped_with_the_reason_when_fluidsynth_is_missing(monkeypatch):
    monkeypatch.setattr(no_voice, "_fluidsynth_exe", lambda: None)
    items, skipped = no_voice.build_no_voice_set(per_category=2, seconds=0.5, rate=RATE,
                                                 categories=("instrument", "sine"))
    assert [it.category for it in items] == ["sine", "sine"]
    assert list(skipped) == ["novoice_instrument_piano_00", "novoice_instrument_violin_01"]
    assert all("fluidsynth is not installed" in why for why in skipped.values())
    monkeypatch.setattr(no_voice, "_fluidsynth_exe", lambda: "/bin/fluidsynth")
    monkeypatch.setattr(no_voice, "SOUNDFONTS", ("/nonexistent/x.sf2",))
    _, skipped = no_voice.build_no_voice_set(per_category=1, seconds=0.5, rate=RATE, categories=("instrument",))
    assert "no General MIDI soundfont" in skipped["novoice_instrument_piano_00"]


@pytest.mark.skipif(no_voice._fluidsynth_exe() is None or no_voice.find_soundfont() is None,
                    reason="fluidsynth or a GM soundfont is not installed")
def test_instruments_are_rendered_by_fluidsynth():
    items, skipped = no_voice.build_no_voice_set(per_category=2, seconds=1.5, rate=RATE, seed=1,
                                                 categories=("instrument",))
    assert not skipped and [it.meta["variant"] for it in items] == ["piano", "violin"]
    for it in items:
        assert it.mixture.shape == (2, int(1.5 * RATE)) and not it.vocals.any()
        x = it.mixture.mean(0)
        frames = np.square(x[: x.size // 160 * 160].reshape(-1, 160), dtype=np.float64).mean(1)
        assert np.mean(frames > frames.max() * 1e-4) > 0.5  # sounding most of the time, not a click
        assert 100 < _centroid(x, RATE) < 5000
    assert not np.array_equal(items[0].mixture, items[1].mixture)


def test_an_item_with_no_voice_is_scored_by_level_without_si_sdr():
    items, _ = no_voice.build_no_voice_set(per_category=1, seconds=1.0, rate=RATE, categories=("sine",))
    it = items[0]
    mix = quality.downmix(it.mixture)
    assert quality.score(mix, it, None) == {"no_voice": True, "variant": "440hz", "level_db": 0.0, "si_sdr": None,
                                            "si_sdri": None, "residual_db": None}
    assert quality.score(0.1 * mix, it, "fast")["level_db"] == pytest.approx(-20.0, abs=1e-4)
    assert quality.score(np.zeros_like(mix), it, None)["level_db"] == pytest.approx(level_db(np.zeros(4), np.ones(4)))
    silent = evalset.Item("silent", np.zeros((2, RATE), np.float32), np.zeros((2, RATE), np.float32), RATE,
                          {"category": "sine"})
    assert quality.score(np.zeros(RATE, np.float32), silent, None)["level_db"] is None


def _voiced_items() -> list[evalset.Item]:
    """Two items with a voice: tone bursts with gaps over noise."""
    out = []
    t = np.arange(RATE * 2) / RATE
    for k in range(2):
        rng = np.random.default_rng(k)
        voice = 0.2 * np.sin(2 * np.pi * 220 * (k + 1) * t) * ((t % 1.0) < 0.5)
        back = 0.05 * rng.standard_normal(t.size)
        mix, voc = evalset.mix_at_snr(np.stack([voice, voice]), np.stack([back, back]), 0.0)
        out.append(evalset.Item(f"speech_noise_{k}", mix, voc, RATE,
                                {"category": "speech_noise", "voice": "tone", "snr_db": 0.0}))
    return out


def test_a_run_with_no_voice_items_added_keeps_them_out_of_the_si_sdr_medians(tmp_path):
    folder = evalset.save_set(_voiced_items(), tmp_path / "set")
    out = tmp_path / "q.json"
    result = quality.main(["--set", str(folder), "--no-voice", "--no-voice-per-category", "1", "--no-voice-seconds",
                           "1", "--model", "tiny-test", "--peers", "none", "--sdr", "none", "--clips", "0",
                           "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["set"]["no_voice"]["rate"] == RATE  # at the set's rate
    made = data["set"]["no_voice"]["items"]
    assert made == len(no_voice.CATEGORIES) - len(data["set"]["no_voice"]["not_made"])
    free = [r for r in data["rows"] if r.get("no_voice")]
    voiced = [r for r in data["rows"] if not r.get("no_voice")]
    # The ICA baseline and the oracles pick their output from the vocal truth: not run where there is none.
    assert {r["system"] for r in free} == {"mixture", "deepiso:tiny-test"}
    assert set(data["not_run_on_no_voice"]) == {"ica", "oracle_irm", "oracle_ibm"}
    assert all(r["si_sdri"] is None and r["level_db"] is not None for r in free)
    for name, summ in data["summary"].items():
        mine = [r for r in voiced if r["system"] == name]
        assert summ["items"] == len(mine) == 2
        assert summ["si_sdri"] == pytest.approx(float(np.median([r["si_sdri"] for r in mine])))
        assert summ["residual_db"] == pytest.approx(float(np.median([r["residual_db"] for r in mine])))
    mixture = data["summary"]["mixture"]["no_voice"]
    assert mixture["items"] == made and mixture["level_db"] == pytest.approx(0.0, abs=1e-6)
    tiny = data["summary"]["deepiso:tiny-test"]["no_voice"]
    sine = [r["level_db"] for r in free if r["system"] == "deepiso:tiny-test" and r["category"] == "sine"]
    assert tiny["level_db_by_category"]["sine"] == pytest.approx(sine[0])
    assert tiny["level_db_by_variant"]["sine/440hz"] == pytest.approx(sine[0])
    assert "oracle_irm" in data["summary"] and "no_voice" not in data["summary"]["oracle_irm"]
    # Voice-free leakage stands beside SI-SDRi in the printed table; the no-voice table has a column per category.
    head = result["markdown"].splitlines()[0]
    assert head.startswith("| system | SI-SDRi all | voice-free leakage (dB) |")
    assert "gaps" not in head
    quiet = result["markdown_no_voice"].splitlines()
    assert quiet[0] == "| system | level vs input, all (dB) | " + " | ".join(
        c.replace("_", " ") for c in no_voice.CATEGORIES if c in mixture["level_db_by_category"]) + " |"
    assert any(line.startswith("| deepiso tiny-test (untrained) |") for line in quiet)
    assert not any("oracle" in line for line in quiet)
    assert [Path(p).name for p in data["pictures"]] == ["q_sisdri.png", "q_level.png"]
    assert all(Path(p).read_bytes()[:4] == b"\x89PNG" for p in data["pictures"])


def test_the_no_voice_set_alone_writes_its_own_result(tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "RESULTS", tmp_path)
    result = quality.main(["--no-voice", "--no-voice-per-category", "1", "--no-voice-seconds", "0.5",
                           "--no-voice-rate", str(RATE), "--no-ica", "--no-oracle", "--peers", "none",
                           "--sdr", "none", "--clips", "0"])
    data = json.loads((tmp_path / "quality_no_voice.json").read_text())
    assert data["set"]["from"] == "no-voice set only" and result["markdown"] == ""
    assert data["summary"]["mixture"]["items"] == 0
    assert data["summary"]["mixture"]["no_voice"]["level_db"] == pytest.approx(0.0, abs=1e-6)
    assert not (tmp_path / "quality.json").exists()
    assert [Path(p).name for p in data["pictures"]] == ["quality_no_voice_level.png"]  # no SI-SDRi to draw
    drawn = plots.main([str(tmp_path / "quality_no_voice.json"), "--out-dir", str(tmp_path / "redrawn")])
    assert drawn == [tmp_path / "redrawn" / "quality_no_voice_level.png"] and drawn[0].is_file()
    with pytest.raises(SystemExit, match="--no-voice"):
        quality.main(["--peers", "none", "--out", str(tmp_path / "x.json")])
