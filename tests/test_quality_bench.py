"""The quality benchmark: its metrics, its evaluation-set builder, delay handling of streaming peers, one run."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks import evalset, peers, quality
from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.metrics import voice_free_mask

RATE = 16_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny generated corpus (formant speech and singing, synthetic music and noise) with valid and test splits."""
    folder = tmp_path_factory.mktemp("corpus")
    evalset.make_synthetic_corpus(folder, splits=("valid", "test"), files_per_kind=2, seconds=3.0, rate=RATE,
                                  espeak=False, seed=3)
    return folder


@pytest.fixture(scope="module")
def items(corpus):
    return evalset.build_set(corpus, split="valid", per_cell=1, seconds=2.0, rate=RATE, seed=5)


# ----------------------------------------------------------------------------- systems


def test_oracle_masks_beat_the_mixture(items):
    irm, ibm, mixture = quality.OracleMask(binary=False), quality.OracleMask(binary=True), quality.MixtureSystem()
    for it in items:
        base = quality.score(quality.run_system(mixture, it)[0], it, None)
        assert base["si_sdri"] == pytest.approx(0.0, abs=1e-9)
        for oracle in (irm, ibm):
            got = quality.score(quality.run_system(oracle, it)[0], it, None)
            assert got["si_sdri"] > 5.0, (oracle.name, it.name, got)
            assert got["residual_db"] is not None and got["residual_db"] < -30.0


def test_a_lead_in_is_played_first_and_only_the_item_is_scored(items):
    it = items[0]
    lead = quality.lead_in(it, 0.5, -70.0)
    assert lead.shape == (it.mixture.shape[0], RATE // 2)
    assert 10 * np.log10(np.mean(lead.astype(np.float64) ** 2)) == pytest.approx(-70.0, abs=0.2)
    assert np.array_equal(lead, quality.lead_in(it, 0.5, -70.0))  # the same noise for every system
    assert not np.array_equal(lead, quality.lead_in(items[1], 0.5, -70.0))
    assert quality.lead_in(it, 0.0, -70.0).shape == (it.mixture.shape[0], 0)

    class Resampled(quality.MixtureSystem):
        rate = 24_000  # runs at another rate: the lead is resampled with the item and cut after

    class Seen(quality.MixtureSystem):
        def separate(self, mixture, rate, truth=None):
            self.got = (mixture.copy(), None if truth is None else truth[0].copy())
            return super().separate(mixture, rate, truth)

    seen = Seen()
    seen.needs_truth = True
    est = quality.run_system(seen, it, lead)[0]
    np.testing.assert_array_equal(est, quality.downmix(it.mixture))  # lined up with the item
    assert seen.got[0].shape[-1] == it.mixture.shape[-1] + lead.shape[-1]
    np.testing.assert_array_equal(seen.got[0][..., :lead.shape[-1]], lead)
    assert not seen.got[1][..., :lead.shape[-1]].any()  # no voice in the lead-in
    est = quality.run_system(Resampled(), it, lead)[0]
    assert quality.si_sdr(est, quality.downmix(it.mixture)) > 25.0
    # A system silent for its first second of input: the lead-in takes half of that second.
    class SlowStart(quality.MixtureSystem):
        def separate(self, mixture, rate, truth=None):
            out = super().separate(mixture, rate, truth)
            out[:rate] = 0.0
            return out

    est = quality.run_system(SlowStart(), it, lead)[0]
    assert not est[: RATE // 2].any()
    np.testing.assert_array_equal(est[RATE // 2:], quality.downmix(it.mixture)[RATE // 2:])


@pytest.mark.parametrize("synthesis", [0, 128, 192])  # the full synthesis and low-delay ones
def test_spectral_apply_identity_returns_the_input_aligned(synthesis):
    spec = FrameSpec(sample_rate=RATE, n_fft=256, hop=64, past_frames=2, future_frames=1,
                     synthesis_length=synthesis)
    x = np.random.default_rng(3).standard_normal(5000).astype(np.float32)
    y = quality.spectral_apply(x, spec, lambda frames: frames)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-5)


def test_ica_separates_a_panned_voice_and_not_a_centred_one(items):
    it = items[0]
    voice, background = it.vocals.mean(0), it.background.mean(0)
    ica = quality.ICASystem()
    ica.load()
    panned = np.stack([0.8 * voice + 0.3 * background, 0.2 * voice + 0.9 * background])  # (channels, n)
    est = ica.separate(panned, it.rate, (voice[None], background[None]))
    assert quality.si_sdr(est, voice) > 20.0
    # The report's finding: a centred voice among instruments panned left and right
    # (more sources than channels) is not separable.
    other = np.random.default_rng(5).standard_normal(voice.size).astype(np.float32) * background.std()
    centred = np.stack([0.5 * voice + 0.8 * background + 0.2 * other, 0.5 * voice + 0.2 * background + 0.8 * other])
    est = ica.separate(centred, it.rate, (voice[None], background[None]))
    assert quality.si_sdr(est, voice) < 5.0


# ----------------------------------------------------------------------------- evaluation set


def test_set_builder_draws_every_cell_at_its_snr_from_its_split(items, corpus):
    assert len(items) == len(evalset.CATEGORIES) * len(evalset.SNRS_DB)
    cells = {(it.category, it.meta["snr_db"]) for it in items}
    assert cells == {(c, s) for c in evalset.CATEGORIES for s in evalset.SNRS_DB}
    for it in items:
        assert it.mixture.shape == it.vocals.shape == (2, 2 * RATE)
        assert it.mixture.dtype == np.float32
        v, b = it.vocals.mean(0).astype(np.float64), it.background.mean(0).astype(np.float64)
        assert 10 * np.log10(np.sum(v ** 2) / np.sum(b ** 2)) == pytest.approx(it.meta["snr_db"], abs=0.01)
        assert np.abs(it.mixture).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
        files = [c["file"] for c in it.meta["voice_clips"]] + [it.meta["background_clip"]["file"]]
        assert all("/valid/" in f for f in files), files
        assert all(Path(c["file"]).name.startswith(it.meta["voice"]) for c in it.meta["voice_clips"])
        assert Path(it.meta["background_clip"]["file"]).name.startswith(it.meta["background"])
        # Speech and singing have pauses, so the gap residual can be measured on every item.
        assert voice_free_mask(it.vocals.mean(0), RATE).sum() >= 0.2 * RATE


def test_set_builder_is_deterministic_and_round_trips_through_a_folder(items, corpus, tmp_path):
    again = evalset.build_set(corpus, split="valid", per_cell=1, seconds=2.0, rate=RATE, seed=5)
    other = evalset.build_set(corpus, split="valid", per_cell=1, seconds=2.0, rate=RATE, seed=6)
    assert all(np.array_equal(a.mixture, b.mixture) for a, b in zip(items, again, strict=True))
    assert not all(np.array_equal(a.mixture, b.mixture) for a, b in zip(items, other, strict=True))
    evalset.save_set(items, tmp_path / "set")
    assert sorted(p.name for p in (tmp_path / "set" / items[0].name).iterdir()) == \
        ["meta.json", "mixture.wav", "vocals.wav"]
    back = evalset.load_set(tmp_path / "set")
    assert [b.name for b in back] == [it.name for it in items]
    for a, b in zip(items, back, strict=True):
        assert b.rate == RATE and b.meta == json.loads(json.dumps(a.meta))
        np.testing.assert_array_equal(a.mixture, b.mixture)
        np.testing.assert_array_equal(a.vocals, b.vocals)


def test_manifest_in_the_corpus_builder_record_layout(tmp_path):
    (tmp_path / "voice").mkdir()
    records = [
        {"path": "voice/a.flac", "kind": "voice", "category": "speech", "split": "valid", "source": "x"},
        {"path": "voice/b.flac", "kind": "voice", "category": "singing", "split": "test", "source": "y"},
        {"path": "bg/c.flac", "kind": "background", "category": "ambience", "split": "valid", "source": "z"},
        {"path": "bg/d.flac", "kind": "background", "category": "music", "split": "train", "source": "w"},
    ]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    files = evalset.read_manifest(tmp_path)
    assert [(f.role, f.category, f.split) for f in files] == [
        ("voice", "speech", "valid"), ("voice", "singing", "test"), ("background", "noise", "valid"),
        ("background", "music", "train")]
    assert files[0].path == tmp_path / "voice/a.flac"


def test_set_of_one_voice_source_keeps_only_its_voices_and_categories(corpus, capsys):
    sung = {f.source for f in evalset.read_manifest(corpus) if f.role == "voice" and f.category == "singing"}
    items = evalset.build_set(corpus, split="valid", per_cell=1, seconds=2.0, rate=RATE, seed=5,
                              voice_sources=tuple(sung))
    assert {it.category for it in items} == {"singing_music"} and len(items) == len(evalset.SNRS_DB)
    assert {c["source"] for it in items for c in it.meta["voice_clips"]} == sung
    full = {it.name: it for it in evalset.build_set(corpus, split="valid", per_cell=1, seconds=2.0, rate=RATE,
                                                     seed=5)}
    for it in items:  # the same draw as the full set's cell: the voice list of that category is unchanged
        np.testing.assert_array_equal(it.mixture, full[it.name].mixture)
    with pytest.raises(evalset.EvalSetError, match="has no voice source nobody"):
        evalset.build_set(corpus, split="valid", voice_sources=("nobody",))
    with pytest.raises(SystemExit, match="has no voice source nobody"):
        quality.main(["--corpus", str(corpus), "--split", "valid", "--voice-source", "nobody", "--peers", "none"])


def test_set_builder_bad_inputs_name_the_problem(corpus, tmp_path):
    with pytest.raises(evalset.EvalSetError, match="no corpus manifest"):
        evalset.build_set(tmp_path)
    with pytest.raises(evalset.EvalSetError, match="unknown split"):
        evalset.build_set(corpus, split="holdout")
    with pytest.raises(evalset.EvalSetError, match="no voice/speech files for speech_music"):
        evalset.build_set(corpus, split="train")
    (tmp_path / "manifest.jsonl").write_text("{not json\n")
    with pytest.raises(evalset.EvalSetError, match="manifest.jsonl: not a readable JSON manifest"):
        evalset.read_manifest(tmp_path)
    with pytest.raises(evalset.EvalSetError, match="no such evaluation set folder"):
        evalset.load_set(tmp_path / "missing")
    with pytest.raises(evalset.EvalSetError, match="silent"):
        evalset.mix_at_snr(np.zeros((2, 100)), np.ones((2, 100)), 0.0)


# ----------------------------------------------------------------------------- streaming peers' delay


def _delay_line(cls, delay: int, gain: float = 1.0):
    """A stand-in for a streaming peer library: passes audio through ``delay`` samples late, frame by frame."""

    class Delayed(cls):
        def load(self):
            pass

        def _open(self):
            return {"line": np.zeros(delay + self.frame, np.float32)}

        def _process(self, state, inp, out):
            line = state["line"]
            line[delay: delay + self.frame] = inp
            out[:] = gain * line[: self.frame]
            line[: delay] = line[self.frame: self.frame + delay]

        def _close(self, state):
            state["line"] = None

    peer = Delayed()
    peer.delay = delay
    return peer


@pytest.mark.parametrize("cls, stated", [(peers.RNNoisePeer, 960), (peers.DeepFilterNet3Peer, 1440)])
def test_streaming_peer_delay_is_compensated(cls, stated):
    assert cls.delay == stated and cls.rate == 48_000 and cls.frame == 480
    peer = _delay_line(cls, cls.delay)
    x = np.random.default_rng(5).standard_normal(48_000 + 123).astype(np.float32)  # not a whole number of frames
    raw = peer.raw(x)
    np.testing.assert_array_equal(raw[stated: x.size], x[: x.size - stated])  # the library's output is late
    y = peer.separate(np.stack([x, x]), 48_000)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, x)  # and the wrapper lines it up to the sample
    assert peers.measure_delay(peer.raw, x, max_delay=4 * stated) == stated


def test_a_wrong_stated_delay_shows_in_the_score():
    # The wrapper trusts its stated delay; if the library's real delay differed, the estimate
    # would be misaligned and lose SI-SDR, which is why the run measures the delay of every peer.
    peer = _delay_line(peers.RNNoisePeer, 960)
    peer.delay = 480
    x = np.random.default_rng(6).standard_normal(24_000).astype(np.float32)
    assert quality.si_sdr(peer.separate(x[None], 48_000), x) < -3.0
    assert peers.measure_delay(_delay_line(peers.RNNoisePeer, 960).raw, x, 4000) == 960


def test_unknown_peer_name_is_refused():
    with pytest.raises(ValueError, match="unknown peers"):
        peers.available_peers(["rnnoise", "nonesuch"])


# ----------------------------------------------------------------------------- one run end to end


def test_benchmark_runs_our_tiny_model_and_the_oracles_on_two_items(items, tmp_path):
    folder = evalset.save_set([items[1], items[-2]], tmp_path / "set")  # one speech, one singing item
    out = tmp_path / "res" / "quality.json"
    result = quality.main(["--set", str(folder), "--model", "tiny-test", "--peers", "none", "--no-ica",
                           "--sdr", "fast", "--out", str(out), "--clips", "1"])
    data = json.loads(out.read_text())
    assert data["summary"].keys() == {"mixture", "deepiso:tiny-test", "oracle_irm", "oracle_ibm"}
    assert len(data["rows"]) == 2 * 4
    tiny = next(s for s in data["systems"] if s["name"] == "deepiso:tiny-test")
    assert "UNTRAINED" in tiny["note"] and tiny["frame_spec"]["sample_rate"] == 16_000
    assert data["summary"]["oracle_irm"]["si_sdri"] > 5.0
    assert data["summary"]["deepiso:tiny-test"]["cpu_s_per_min"] > 0.0
    speech = [r for r in data["rows"] if r["category"].startswith("speech")]
    singing = [r for r in data["rows"] if r["category"].startswith("singing")]
    assert speech and singing
    assert all("pesq" in r and "stoi" in r for r in speech)  # speech items only (None without the packages)
    assert not any("pesq" in r for r in singing)
    assert "| deepiso tiny-test (untrained) |" in result["markdown"]
    # Every item is reported under the corpus source of most of its voice, in the summary and a table.
    for r in data["rows"]:
        it = items[1] if r["item"] == items[1].name else items[-2]
        assert r["voice_source"] == quality.voice_source(it) and r["voice_source"]
    by_source = data["summary"]["deepiso:tiny-test"]["by_voice_source"]
    assert sum(m["items"] for m in by_source.values()) == 2
    assert all(f"| {src} |" in result["markdown_by_voice_source"] for src in by_source)
    for pic in data["pictures"]:
        assert Path(pic).is_file() and Path(pic).stat().st_size > 10_000
    assert len(data["pictures"]) == 2


def test_voice_source_is_the_source_of_most_of_the_voice():
    clips = [{"source": "a", "seconds": 1.0}, {"source": "b", "seconds": 1.5}, {"source": "a", "seconds": 1.0}]
    silent = np.zeros((2, 8), np.float32)
    assert quality.voice_source(evalset.Item("x", silent, silent, 16_000, {"voice_clips": clips})) == "a"
    assert quality.voice_source(evalset.Item("y", silent, silent, 16_000, {})) is None


def test_missing_model_file_is_reported(tmp_path):
    from deepiso.realtime.onnx_model import ModelError

    with pytest.raises(ModelError, match="nope.onnx"):
        quality.ModelSystem(str(tmp_path / "nope.onnx")).load()


# ----------------------------------------------------------------------------- Open-Unmix on our corpus

def _umx_args(corpus, out, steps):
    return ["--set", f"data.root={corpus}", "--set", "data.segment_seconds=0.5", "--set", "data.train_items=16",
            "--set", "data.valid_items=4", "--set", "optim.batch_size=4", "--out", str(out), "--steps", str(steps),
            "--checkpoint-every", "2", "--validate-every", "2", "--stat-items", "8", "--nfft", "512", "--nhop",
            "128", "--hidden", "16", "--layers", "2"]


def test_openunmix_trains_on_our_corpus_resumes_exactly_and_loads_as_a_peer(tmp_path, capsys):
    import torch

    from benchmarks import openunmix_train
    from deepiso.train.testing import make_manifest_corpus

    corpus = make_manifest_corpus(tmp_path / "corpus", seconds=1.0)
    # 4 steps, then 2 more from the checkpoint == 6 steps in one go
    openunmix_train.main(_umx_args(corpus, tmp_path / "a", 4))
    first = json.loads((tmp_path / "a" / "vocals.json").read_text())
    assert first["budget"]["steps"] == 4 and first["budget"]["audio_hours"] == pytest.approx(4 * 4 * 0.5 / 3600)
    result = openunmix_train.main(_umx_args(corpus, tmp_path / "a", 6))
    assert "resuming" in capsys.readouterr().err and result["steps"] == 6
    openunmix_train.main(_umx_args(corpus, tmp_path / "b", 6))
    a = torch.load(tmp_path / "a" / "vocals.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "vocals.pth", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    meta = json.loads((tmp_path / "a" / "vocals.json").read_text())
    assert [h["step"] for h in meta["history"]] == [2, 4, 6]
    assert all(h["val_loss"] is not None and np.isfinite(h["val_loss"]) for h in meta["history"])
    assert meta["args"]["unidirectional"] is False and meta["args"]["nb_channels"] == 1
    assert meta["data"]["train_files"] > 0  # our data pipeline's summary

    peer = peers.OpenUnmixPeer(tmp_path / "a")
    peer.load()
    assert peer.info()["budget"]["steps"] == 6 and "trained 6 steps of 4 x 0.5 s" in peer.note
    loaded = peer._sep.target_models["vocals"].state_dict()
    for k in a:
        assert torch.equal(loaded[k], a[k]), k
    rng = np.random.default_rng(0)
    mix = (0.1 * rng.standard_normal((1, peer.rate))).astype(np.float32)
    est = peer.separate(mix, peer.rate)
    assert est.shape == (peer.rate,) and np.isfinite(est).all() and np.abs(est).max() > 0


def test_openunmix_training_refuses_a_zero_budget(tmp_path):
    from benchmarks import openunmix_train

    with pytest.raises(SystemExit, match="--steps"):
        openunmix_train.main(["--out", str(tmp_path), "--steps", "0"])


# ----------------------------------------------------------------------------- MUSDB18 through the musdb parser

@pytest.mark.parametrize("layout", ["wav", "stems"])
def test_musdb_test_tracks_through_the_musdb_parser_into_a_run(tmp_path, layout):
    from deepiso.train import testing as T

    make = T.make_musdb_wav if layout == "wav" else T.make_musdb_stems
    root = make(tmp_path / "musdb", train=1, test=2, seconds=2.0)
    items = evalset.musdb_items(root, "test")
    assert sorted(i.meta["name"] for i in items) == ["Test Artist 0 - Song", "Test Artist 1 - Song"]
    assert all(i.rate == 44_100 and i.mixture.shape[0] == 2 and i.vocals.shape == i.mixture.shape for i in items)
    if layout == "wav":  # the vocal truth is the vocals stem (musdb decodes to 16 bits: half a step apart)
        import soundfile as sf

        first = next(i for i in items if i.meta["name"] == "Test Artist 0 - Song")
        stem, _ = sf.read(root / "test" / "Test Artist 0 - Song" / "vocals.wav", dtype="float32")
        np.testing.assert_allclose(first.vocals, stem.T, atol=2**-15)
    out = tmp_path / "res" / "quality.json"
    quality.main(["--musdb", str(root), "--musdb-seconds", "1.5", "--model", "tiny-test", "--peers", "none",
                  "--no-ica", "--sdr", "fast", "--out", str(out), "--clips", "0"])
    data = json.loads(out.read_text())
    assert {r["category"] for r in data["rows"]} == {"musdb"}
    assert len({r["item"] for r in data["rows"]}) == 2
    assert data["summary"]["oracle_irm"]["si_sdri"] > 3.0
    with pytest.raises(evalset.EvalSetError, match="no MUSDB18 folder"):
        evalset.musdb_items(tmp_path / "nope")
    with pytest.raises(evalset.EvalSetError, match="no MUSDB18 tracks in subset 'valid'"):
        evalset.musdb_items(root, "valid")


def test_two_models_of_the_same_name_get_separate_rows(items, tmp_path):
    from deepiso.realtime.onnx_model import resolve_model

    folder = evalset.save_set([items[0]], tmp_path / "set")
    shipped = resolve_model("tiny-test")
    copy = tmp_path / "other" / "tiny-test.onnx"
    copy.parent.mkdir()
    for suffix in (".onnx", ".seq.onnx"):  # the step graph and the sequence graph beside it
        src = shipped.with_name(f"tiny-test{suffix}")
        if src.exists():
            copy.with_name(f"tiny-test{suffix}").write_bytes(src.read_bytes())
    out = tmp_path / "res" / "quality.json"
    quality.main(["--set", str(folder), "--model", "tiny-test", "--model", str(copy), "--peers", "none", "--no-ica",
                  "--no-oracle", "--sdr", "none", "--out", str(out), "--clips", "0"])
    data = json.loads(out.read_text())
    assert set(data["summary"]) == {"mixture", "deepiso:tiny-test", "deepiso:tiny-test@other"}
    assert len(data["rows"]) == 3


def test_our_model_is_scored_as_the_engine_runs_it_across_digital_silence():
    """The benchmark's offline path applies the isolator's silence rule: same output as the streaming host."""
    from deepiso.realtime.host import Host
    from deepiso.realtime.plugins.isolator import Isolator

    system = quality.ModelSystem("tiny-test")
    system.load()
    spec = system.spec
    rng = np.random.default_rng(11)
    t = np.arange(6_000) / spec.sample_rate
    sig = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
    gap = np.zeros(40 * spec.hop, np.float32)
    x = np.concatenate([gap, sig, gap, sig, gap[:1000]])
    offline = system.separate(x[None, :], spec.sample_rate)
    host = Host([Isolator("tiny-test", channels=1)], spec.sample_rate, 1, block_size=spec.hop)
    live = host.run_offline(x[:, None], spec.hop, flush=True)[:, 0]
    valid = x.size - host.latency_samples
    assert np.abs(offline[:valid]).max() > 1e-3
    np.testing.assert_allclose(offline[:valid], live[:valid], atol=1e-4, rtol=0)


def test_a_floor_variant_is_scored_as_the_engine_runs_it_with_that_floor(items, tmp_path):
    from deepiso.realtime.chain import PluginError
    from deepiso.realtime.host import Host
    from deepiso.realtime.plugins.isolator import Isolator

    system = quality.ModelSystem("tiny-test", floor_dbfs=-50.0)
    assert system.name == "deepiso:tiny-test@floor-50"
    system.load()
    spec = system.spec
    rng = np.random.default_rng(12)
    t = np.arange(6_000) / spec.sample_rate
    sig = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
    hiss = (1e-3 * rng.standard_normal(40 * spec.hop)).astype(np.float32)  # -60 dBFS: under the floor
    x = np.concatenate([hiss, sig, hiss, sig])
    offline = system.separate(x[None, :], spec.sample_rate)
    host = Host([Isolator("tiny-test", channels=1, floor_dbfs=-50.0)], spec.sample_rate, 1, block_size=spec.hop)
    live = host.run_offline(x[:, None], spec.hop, flush=True)[:, 0]
    valid = x.size - host.latency_samples
    np.testing.assert_allclose(offline[:valid], live[:valid], atol=1e-4, rtol=0)
    plain = quality.ModelSystem("tiny-test")
    plain.load()
    assert np.abs(plain.separate(x[None, :], spec.sample_rate)[:valid] - offline[:valid]).max() > 1e-3
    with pytest.raises(PluginError, match="isolator floor must be"):
        quality.ModelSystem("tiny-test", floor_dbfs=0.0)
    folder = evalset.save_set([items[0]], tmp_path / "set")
    out = tmp_path / "quality.json"
    quality.main(["--set", str(folder), "--model", "tiny-test", "--floor", "-60", "--peers", "none", "--no-ica",
                  "--no-oracle", "--sdr", "none", "--out", str(out), "--clips", "0", "--lead-in", "0.5"])
    data = json.loads(out.read_text())
    assert set(data["summary"]) == {"mixture", "deepiso:tiny-test", "deepiso:tiny-test@floor-60"}
    assert data["set"]["lead_in"] == {"seconds": 0.5, "level_dbfs": -70.0}
    floors = {s["name"]: s.get("floor_dbfs") for s in data["systems"]}
    assert floors["deepiso:tiny-test@floor-60"] == -60.0 and floors["deepiso:tiny-test"] == -80.0


def test_a_synthesis_variant_is_scored_as_the_engine_runs_it_with_that_synthesis(items, tmp_path):
    from deepiso.realtime.chain import PluginError
    from deepiso.realtime.host import Host
    from deepiso.realtime.plugins.isolator import Isolator

    system = quality.ModelSystem("tiny-test", synthesis_length=128)
    assert system.name == "deepiso:tiny-test@synthesis128"
    system.load()
    spec = system.spec
    assert spec.synthesis_length == 128 and spec.latency_samples(spec.hop) == 128  # 64 + one look-ahead hop
    rng = np.random.default_rng(13)
    t = np.arange(8_000) / spec.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
    offline = system.separate(x[None, :], spec.sample_rate)
    isolator = Isolator("tiny-test", channels=1, synthesis_length=128)
    host = Host([isolator], spec.sample_rate, 1, block_size=spec.hop)
    assert host.latency_samples == 128 < Host([Isolator("tiny-test", channels=1)], spec.sample_rate, 1,
                                               block_size=spec.hop).latency_samples
    live = host.run_offline(x[:, None], spec.hop, flush=True)[:, 0]
    valid = x.size - host.latency_samples
    # With a look-ahead frame the engine's first step is for the frame before the signal (its output is
    # inside the latency); that step moves the LSTM state, which the offline run never has, for a few hops.
    settled = 16 * spec.hop
    np.testing.assert_allclose(offline[settled:valid], live[settled:valid], atol=3e-4, rtol=0)
    plain = quality.ModelSystem("tiny-test")
    plain.load()
    assert np.abs(plain.separate(x[None, :], spec.sample_rate)[:valid] - offline[:valid]).max() > 1e-3
    for bad in (32, 256, 64):  # under the hop, the whole window, a Hann of one hop (never covers its edges)
        with pytest.raises(PluginError, match="isolator synthesis length"):
            Isolator("tiny-test", channels=1, synthesis_length=bad)
        with pytest.raises(PluginError, match="isolator synthesis length"):
            quality.ModelSystem("tiny-test", synthesis_length=bad).load()
    folder = evalset.save_set([items[0]], tmp_path / "set")
    out = tmp_path / "quality.json"
    quality.main(["--set", str(folder), "--model", "tiny-test", "--synthesis-length", "128", "--peers", "none",
                  "--no-ica", "--no-oracle", "--sdr", "none", "--out", str(out), "--clips", "0"])
    data = json.loads(out.read_text())
    assert set(data["summary"]) == {"mixture", "deepiso:tiny-test", "deepiso:tiny-test@synthesis128"}


def test_set_without_a_voice_source_is_the_draw_from_before_it_joined(corpus, tmp_path, capsys):
    grown = tmp_path / "grown"
    shutil.copytree(corpus, grown)
    lines = (corpus / "manifest.jsonl").read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    speech = next(r for r in records if r["kind"] == "voice" and r["category"] == "speech" and r["split"] == "valid")
    sung = next(r for r in records if r["kind"] == "voice" and r["category"] == "singing" and r["split"] == "valid")
    extra = [dict(speech, source="later"), dict(sung, source="later")]
    (grown / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in extra) + "".join(lines))
    kw = dict(split="valid", per_cell=2, seconds=2.0, rate=RATE, seed=5)
    before = evalset.build_set(corpus, **kw)
    again = evalset.build_set(grown, **kw, without_voice_sources=("later",))
    assert [it.name for it in again] == [it.name for it in before]
    for a, b in zip(again, before, strict=True):
        np.testing.assert_array_equal(a.mixture, b.mixture)
    assert all(c["source"] != "later" for it in again for c in it.meta["voice_clips"])
    drawn = evalset.build_set(grown, **kw)  # the grown corpus draws other items
    assert any(not np.array_equal(a.mixture, b.mixture) for a, b in zip(drawn, before, strict=True))
    with pytest.raises(evalset.EvalSetError, match="has no voice source nobody"):
        evalset.build_set(grown, **kw, without_voice_sources=("nobody",))
    out = quality.main(["--corpus", str(grown), "--split", "valid", "--per-cell", "1", "--seconds", "2",
                        "--without-voice-source", "later", "--peers", "none", "--no-ica", "--no-oracle",
                        "--sdr", "none", "--clips", "0", "--out", str(tmp_path / "q.json")])
    assert out["set"]["without_voice_sources"] == ["later"]
    capsys.readouterr()
