"""Dataset loaders against tiny datasets in the exact real layouts (musdb, stempeg, MedleyDB YAML)."""

import json

import numpy as np
import pytest
import soundfile as sf
import yaml

from deepiso.train import datasets as ds
from deepiso.train import testing as T
from deepiso.train.prepare import prepare_medleydb, prepare_musdb


@pytest.fixture(scope="module")
def stems_root(tmp_path_factory):
    return T.make_musdb_stems(tmp_path_factory.mktemp("musdb_stems"), train=2, test=1, seconds=1.0)


def test_musdb_stem_mp4_through_musdb_and_stempeg(stems_root):
    train = ds.musdb_tracks(stems_root, "train")
    test = ds.musdb_tracks(stems_root, "test")
    assert [t.name for t in train] == ["Train Artist 0 - Song", "Train Artist 1 - Song"]
    assert len(test) == 1
    t = train[0]
    assert (t.rate, t.length, t.channels) == (44_100, 44_100, 2)
    mix, voc = t.read(4410, 22050)
    assert mix.shape == voc.shape == (22050, 2)
    ref_voc, ref_acc = T.synth_track(1.0, 44_100, 2, 0)
    # AAC is lossy: the decoded stems match the written ones closely, not exactly
    assert np.corrcoef(voc[:, 0], ref_voc[4410:26460, 0])[0, 1] > 0.99
    assert np.corrcoef(mix[:, 1], (ref_voc + ref_acc)[4410:26460, 1])[0, 1] > 0.99
    # reading past the end pads with zeros
    mix, voc = t.read(50_000, 500)
    assert mix.shape == (500, 2) and not mix.any()


def test_musdb_stem_file_with_too_few_streams(tmp_path):
    import stempeg

    (tmp_path / "train").mkdir()
    bad = tmp_path / "train" / "Two - Streams.stem.mp4"
    stempeg.write_stems(str(bad), np.zeros((2, 4410, 2), np.float32), sample_rate=44_100,
                        writer=stempeg.StreamsWriter(codec="aac"))
    with pytest.raises(ds.DatasetError, match="Two - Streams.stem.mp4: a MUSDB18 stem file needs 5 audio streams"):
        ds.musdb_tracks(tmp_path, "train")


def test_musdb_wav_layout_reads_exact_samples(tmp_path):
    root = T.make_musdb_wav(tmp_path, train=2, test=1)
    tracks = ds.musdb_tracks(root, ["train", "test"], is_wav=True)
    assert len(tracks) == 3
    t = tracks[0]
    mix, voc = t.read(100, 1000)
    want_voc = sf.read(root / "train" / t.name / "vocals.wav", dtype="float32")[0][100:1100]
    np.testing.assert_array_equal(voc, want_voc)
    # musdb's fixed train/valid split: our tiny names are not musdb's validation tracks
    with pytest.raises(ds.DatasetError, match="no MUSDB18 tracks .* for split 'valid'"):
        ds.musdb_tracks(root, "train", split="valid", is_wav=True)
    (root / "train" / t.name / "vocals.wav").unlink()
    with pytest.raises(ds.DatasetError, match="vocals.wav: missing file"):
        ds.musdb_tracks(root, "train", is_wav=True)


def test_musdb_missing_subset_and_empty(tmp_path):
    with pytest.raises(ds.DatasetError, match="missing MUSDB18 subset folder"):
        ds.musdb_tracks(tmp_path, "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(ds.DatasetError, match="no MUSDB18 tracks"):
        ds.musdb_tracks(tmp_path, "train")


def test_medleydb_sums_voice_stems_from_metadata(tmp_path):
    root = T.make_medleydb(tmp_path, tracks=3, instrumental=1)
    tracks = ds.medleydb_tracks(root)
    assert [t.name for t in tracks] == ["Artist0_Song0", "Artist1_Song1", "Artist2_Song2"]
    voc_ref, acc_ref = T.synth_track(1.0, 44_100, 2, 0)
    mix, voc = tracks[0].read(0, 44_100)
    # female singer (0.7) + male singer (0.3) stems; drums and bass excluded
    np.testing.assert_allclose(voc, voc_ref, atol=1e-6)
    np.testing.assert_allclose(mix - voc, acc_ref, atol=1e-6)
    assert len(tracks[0].voice_stems) == 2
    _, voc_instr = tracks[2].read(0, 1000)
    assert not voc_instr.any()  # instrumental: silent vocals


def test_medleydb_bad_metadata_and_files(tmp_path):
    root = T.make_medleydb(tmp_path, tracks=2, instrumental=0)
    meta_path = root / "Metadata" / "Artist0_Song0_METADATA.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    stem = root / "Audio" / "Artist0_Song0" / "Artist0_Song0_STEMS" / "Artist0_Song0_STEM_03.wav"
    # mismatched length
    sf.write(stem, np.zeros((1000, 2), np.float32), 44_100)
    with pytest.raises(ds.DatasetError, match="STEM_03.wav: 1000 samples, but the mix"):
        ds.medleydb_tracks(root)
    sf.write(stem, np.zeros((44_100, 2), np.float32), 22_050)
    with pytest.raises(ds.DatasetError, match="STEM_03.wav: sample rate 22050 Hz differs"):
        ds.medleydb_tracks(root)
    stem.unlink()
    with pytest.raises(ds.DatasetError, match="STEM_03.wav: missing voice stem S03"):
        ds.medleydb_tracks(root)
    meta_path.write_text(yaml.safe_dump({"title": "x"}))
    with pytest.raises(ds.DatasetError, match="Artist0_Song0_METADATA.yaml: not a MedleyDB metadata file"):
        ds.medleydb_tracks(root)
    meta_path.write_text(yaml.safe_dump(meta))
    with pytest.raises(ds.DatasetError, match="no MedleyDB metadata"):
        ds.medleydb_tracks(tmp_path / "Audio")


def test_folder_layout_and_its_errors(tmp_path):
    root = T.make_folder_dataset(tmp_path / "data", tracks=3)
    tracks = ds.folder_tracks(root)
    assert len(tracks) == 3 and tracks[0].rate == 16_000
    bad = root / "Artist 1 - Song 1"
    sf.write(bad / "vocals.wav", np.zeros((100, 2), np.float32), 16_000)
    with pytest.raises(ds.DatasetError, match="Artist 1 - Song 1/vocals.wav: 100 samples, but the mixture"):
        ds.folder_tracks(root)
    sf.write(bad / "vocals.wav", np.zeros((16_000, 2), np.float32), 8_000)
    with pytest.raises(ds.DatasetError, match="vocals.wav: sample rate 8000 Hz differs"):
        ds.folder_tracks(root)
    (bad / "vocals.wav").unlink()
    with pytest.raises(ds.DatasetError, match="Artist 1 - Song 1/vocals.wav: missing file"):
        ds.folder_tracks(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ds.DatasetError, match="empty: no track folders"):
        ds.folder_tracks(tmp_path / "empty")
    with pytest.raises(ds.DatasetError, match="no such dataset folder"):
        ds.folder_tracks(tmp_path / "nowhere")


def test_segments_resample_fit_channels_and_are_deterministic(tmp_path):
    tracks = ds.folder_tracks(T.make_folder_dataset(tmp_path, tracks=2, rate=22_050))
    seg = ds.TrackSegments(tracks, rate=16_000, samples=4000, items=6, channels=1, seed=3)
    item = seg[2]
    assert item["mixture"].shape == item["vocals"].shape == (1, 4000)
    again = ds.TrackSegments(tracks, rate=16_000, samples=4000, items=6, channels=1, seed=3)[2]
    assert np.array_equal(item["mixture"].numpy(), again["mixture"].numpy())
    seg.set_epoch(1)
    assert not np.array_equal(seg[2]["mixture"].numpy(), item["mixture"].numpy())
    valid = ds.TrackSegments(tracks, rate=16_000, samples=4000, items=4, seed=3, train=False)
    v0 = valid[0]["mixture"].numpy()
    valid.set_epoch(5)
    assert np.array_equal(valid[0]["mixture"].numpy(), v0)  # validation never changes


@pytest.mark.parametrize("kind", ["segments", "mixes"])
def test_a_new_draw_gives_new_training_items_and_the_same_validation(tmp_path, kind):
    # A phase that starts from another run's weights must not replay that run's mixtures epoch by
    # epoch; its validation must stay the one the other run was measured on.
    if kind == "segments":
        tracks = ds.folder_tracks(T.make_folder_dataset(tmp_path, tracks=3, seconds=2.0, rate=16_000))

        def make(train, draw=0):
            return ds.TrackSegments(tracks, rate=16_000, samples=4000, items=6, seed=3, train=train, draw=draw)
    else:
        voice_dir, bg_dir = T.make_source_folders(tmp_path)
        files = ds.folder_sources([voice_dir], [bg_dir], valid_fraction=0.0)

        def make(train, draw=0):
            return ds.SourceMixDataset(files, rate=16_000, samples=4000, items=6, seed=3, train=train, draw=draw)

    def items(d, epoch):
        d.set_epoch(epoch)
        return [d[i]["mixture"].numpy() for i in range(len(d))]

    plain, other = make(True), make(True, draw=1)
    for epoch in (0, 1):
        a, b = items(plain, epoch), items(other, epoch)
        assert not any(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), epoch
        again = items(make(True, draw=1), epoch)  # reproducible
        assert all(np.array_equal(x, y) for x, y in zip(b, again, strict=True))
    valid, valid_other_draw = items(make(False), 0), items(make(False, draw=1), 3)
    assert all(np.array_equal(x, y) for x, y in zip(valid, valid_other_draw, strict=True))
    with pytest.raises(ds.DatasetError, match="draw must be >= 0"):
        make(True, draw=-1)


def test_loopback_after_split(tmp_path):
    tracks = ds.folder_tracks(T.make_folder_dataset(tmp_path, tracks=10, seconds=0.3))
    train, valid = ds.split_tracks(tracks, 0.2)
    assert train and valid and not {t.name for t in train} & {t.name for t in valid}
    looped = ds.apply_loopback(train, 0.25, seed=0)
    extra = looped[len(train):]
    assert len(extra) == 2 * round(0.25 * len(train))
    v_only = next(t for t in extra if t.mode == "vocals")
    a_only = next(t for t in extra if t.mode == "accompaniment")
    mix, voc = v_only.read(0, 1000)
    np.testing.assert_array_equal(mix, voc)
    inner_mix, inner_voc = a_only.inner.read(0, 1000)
    mix, voc = a_only.read(0, 1000)
    np.testing.assert_allclose(mix, inner_mix - inner_voc)
    assert not voc.any()
    assert ds.apply_loopback(train, 0.0, seed=0) == train


def test_source_mixing_from_folders(tmp_path):
    voice_dir, bg_dir = T.make_source_folders(tmp_path)
    files = ds.folder_sources([voice_dir], [bg_dir], valid_fraction=0.0)
    assert sum(f.kind == "voice" for f in files) == 4
    mixer = ds.SourceMixDataset(files, rate=16_000, samples=8000, items=40, seed=1, loopback=0.2)
    kinds = set()
    for i in range(40):
        item = mixer[i]
        mix, voc = item["mixture"].numpy(), item["vocals"].numpy()
        assert mix.shape == (1, 8000)
        assert np.abs(mix).max() <= 0.99 + 1e-6
        acc = mix - voc
        kinds.add(("v" if np.abs(voc).max() > 0 else "") + ("a" if np.abs(acc).max() > 1e-6 else ""))
    assert {"va", "v", "a"} <= kinds  # mixtures, and both loopback kinds
    a = mixer[3]["mixture"].numpy()
    assert np.array_equal(a, mixer[3]["mixture"].numpy())
    mixer.set_epoch(1)
    assert not np.array_equal(a, mixer[3]["mixture"].numpy())
    with pytest.raises(ds.DatasetError, match="no such folder of recordings"):
        ds.folder_sources([tmp_path / "none"], [bg_dir])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ds.DatasetError, match="empty: no audio files"):
        ds.folder_sources([tmp_path / "empty"], [bg_dir])


def test_corpus_manifest(tmp_path):
    root = T.make_manifest_corpus(tmp_path)
    files = ds.manifest_sources(root)
    assert {f.split for f in files} == {"train", "valid"}
    assert all(f.license == "CC0" and f.duration > 0 for f in files)
    summary = ds.sources_summary(files)
    assert {r["name"] for r in summary} == {"synthetic-voice", "synthetic-background"}
    lines = (root / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["path"] = "voice/gone.wav"
    (root / "manifest.jsonl").write_text("\n".join([json.dumps(rec)] + lines[1:]) + "\n")
    with pytest.raises(ds.DatasetError, match="gone.wav: missing file listed in"):
        ds.manifest_sources(root)
    (root / "manifest.jsonl").write_text('{"path": "x.wav"}\n')
    with pytest.raises(ds.DatasetError, match="record 1 needs 'path' and kind"):
        ds.manifest_sources(root)
    with pytest.raises(ds.DatasetError, match="no manifest.jsonl"):
        ds.manifest_sources(tmp_path / "voice")


def test_quiet_stretches_are_voice_free_and_at_the_drawn_level_in_training_only(tmp_path):
    root = T.make_manifest_corpus(tmp_path, rate=16_000)
    files = ds.manifest_sources(root)
    rate, n = 16_000, 16_000
    common = {"rate": rate, "samples": n, "items": 24, "seed": 3, "loopback": 0.2,
              "quiet_seconds": (0.1, 0.5), "quiet_level_db": (-90.0, -60.0)}
    quiet = ds.SourceMixDataset([f for f in files if f.split == "train"], quiet=1.0, quiet_hiss=0.0, **common)
    hissing = ds.SourceMixDataset([f for f in files if f.split == "train"], quiet=1.0, quiet_hiss=1.0, **common)
    plain = ds.SourceMixDataset([f for f in files if f.split == "train"], quiet=0.0, **common)
    valid = ds.SourceMixDataset([f for f in files if f.split == "train"], quiet=1.0, train=False, **common)
    valid_plain = ds.SourceMixDataset([f for f in files if f.split == "train"], train=False, **common)
    starts = 0
    for i in range(24):
        mix, voc = quiet[i]["mixture"].numpy()[0], quiet[i]["vocals"].numpy()[0]
        p_mix, p_voc = plain[i]["mixture"].numpy()[0], plain[i]["vocals"].numpy()[0]
        changed = np.flatnonzero(mix != p_mix)  # the stretch; the rest of the item is untouched
        part = slice(changed[0], changed[-1] + 1)
        assert 0.1 * rate - 2 <= changed[-1] + 1 - changed[0] <= 0.5 * rate, i  # one stretch of the drawn length
        assert not voc[part].any() and np.array_equal(np.delete(voc, np.r_[part]), np.delete(p_voc, np.r_[part]))
        level = 10 * np.log10(np.mean(mix[part].astype(np.float64) ** 2))
        assert -90.01 < level < -59.99, (i, level)
        background = (p_mix - p_voc)[part]
        if np.abs(background).max() > 0:  # the item's own background, turned down
            assert abs(np.corrcoef(mix[part], background)[0, 1]) > 0.999, i
        starts += changed[0] == 0
        h_mix = hissing[i]["mixture"].numpy()[0]  # the same stretch, hiss in it
        assert np.array_equal(np.delete(h_mix, np.r_[part]), np.delete(p_mix, np.r_[part]))
        assert 10 * np.log10(np.mean(h_mix[part].astype(np.float64) ** 2)) == pytest.approx(level, abs=0.01)
        if np.abs(background).max() > 0:
            assert abs(np.corrcoef(h_mix[part], background)[0, 1]) < 0.2, i  # hiss, not the background
        assert np.array_equal(valid[i]["mixture"].numpy(), valid_plain[i]["mixture"].numpy())  # never in validation
    assert 3 <= starts <= 21  # at the start half the time, elsewhere otherwise
    for bad, match in [({"quiet": 1.5}, "quiet must be a probability"),
                       ({"quiet_seconds": (0.0, 1.0)}, "quiet_seconds must be"),
                       ({"quiet_seconds": (2.0, 1.0)}, "quiet_seconds must be"),
                       ({"quiet_level_db": (-40.0, -60.0)}, "quiet_level_db must be"),
                       ({"quiet_level_db": (-10.0, 3.0)}, "quiet_level_db must be"),
                       ({"quiet_hiss": -0.1}, "quiet_hiss must be a probability")]:
        with pytest.raises(ds.DatasetError, match=match):
            ds.SourceMixDataset(files, **{**common, **bad})


@pytest.mark.parametrize("slope", [0.0, -1.0, -2.0])
def test_hiss_has_the_asked_spectral_slope(slope):
    x = ds.hiss(np.random.default_rng(4), (2, 1 << 16), slope)
    assert x.shape == (2, 1 << 16) and x.dtype == np.float32
    power = np.mean(np.abs(np.fft.rfft(x.astype(np.float64), axis=-1)) ** 2, axis=0)
    bands = [(64, 128), (1024, 2048), (16384, 32768)]  # octaves
    levels = [10 * np.log10(power[lo:hi].mean()) for lo, hi in bands]
    per_octave = (levels[-1] - levels[0]) / (np.log2(bands[-1][0] / bands[0][0]))
    assert per_octave == pytest.approx(10 * np.log10(2) * slope, abs=0.3)
    assert not np.array_equal(x[0], x[1])


def _high_band_share(x: np.ndarray, rate: int, above: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2  # windowed: no leakage from the low band
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    return float(spec[freqs > above].sum() / (spec.sum() + 1e-30))


def test_band_match_limits_the_background_to_a_phone_band_voice_in_training_only(tmp_path):
    root = T.make_manifest_corpus(tmp_path, rate=16_000)
    lines = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    for rec in lines:
        if rec["kind"] == "voice":
            rec["native_rate"] = 8000  # a phone-band voice: nothing above 4 kHz
        rec["split"] = "train"
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    files = ds.manifest_sources(root)
    assert {f.bandwidth for f in files if f.kind == "voice"} == {4000.0}
    assert {f.bandwidth for f in files if f.kind == "background"} == {0.0}
    rate = 16_000
    common = {"rate": rate, "samples": 8000, "items": 12, "seed": 2, "loopback": 0.0}
    matched = ds.SourceMixDataset(files, band_match=1.0, **common)
    plain = ds.SourceMixDataset(files, band_match=0.0, **common)
    valid = ds.SourceMixDataset(files, band_match=1.0, train=False, **common)
    for i in range(12):
        acc_m = (matched[i]["mixture"] - matched[i]["vocals"]).numpy()[0]
        acc_p = (plain[i]["mixture"] - plain[i]["vocals"]).numpy()[0]
        acc_v = (valid[i]["mixture"] - valid[i]["vocals"]).numpy()[0]
        assert _high_band_share(acc_m, rate, 4200) < 1e-6  # the background stops where the voice does
        assert _high_band_share(acc_p, rate, 4200) > 1e-3  # the synthetic backgrounds have highs
        assert _high_band_share(acc_v, rate, 4200) > 1e-3  # validation measures the real task
    with pytest.raises(ds.DatasetError, match="band_match must be a probability"):
        ds.SourceMixDataset(files, band_match=1.5, **common)
    lines[0]["native_rate"] = "fast"
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(ds.DatasetError, match="record 1 has a bandwidth or native_rate that is not a number"):
        ds.manifest_sources(root)


def test_band_limit_keeps_length_and_the_pass_band():
    rate = 44_100
    t = np.arange(rate) / rate
    x = np.stack([np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 12_000 * t)]).astype(np.float32)
    y = ds.band_limit(x, rate, 8000.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _high_band_share(y[0], rate, 9000) < 1e-6
    low = np.sin(2 * np.pi * 1000 * t)
    assert np.abs(y[0, 2000:-2000] - low[2000:-2000]).max() < 1e-2


def test_prepare_writes_the_report_layout(tmp_path, stems_root):
    n = prepare_musdb(stems_root, tmp_path / "musdb_out")
    assert n == 3
    train = ds.folder_tracks(tmp_path / "musdb_out" / "train")
    assert len(train) == 2 and len(ds.folder_tracks(tmp_path / "musdb_out" / "test")) == 1
    assert prepare_musdb(stems_root, tmp_path / "musdb_out") == 0  # resumable: nothing left to do
    med = T.make_medleydb(tmp_path / "med", tracks=2, instrumental=1)
    assert prepare_medleydb(med, tmp_path / "med_out") == 2
    out = ds.folder_tracks(tmp_path / "med_out")
    src = {t.name: t for t in ds.medleydb_tracks(med)}
    for t in out:
        np.testing.assert_allclose(t.read(0, 5000)[1], src[t.name].read(0, 5000)[1], atol=1e-6)


@pytest.mark.parametrize("file_rate, channels", [(16_000, 1), (16_000, 2), (22_050, 1)])
def test_partial_reads_give_the_same_items_as_whole_files(tmp_path, file_rate, channels):
    # 16 kHz files at a 16 kHz mix are read in part; 22.05 kHz ones are decoded whole and resampled
    root = T.make_manifest_corpus(tmp_path, seconds=1.0, rate=file_rate)
    files = ds.manifest_sources(root)
    common = {"rate": 16_000, "samples": 12_000, "items": 24, "seed": 4, "loopback": 0.1, "channels": channels,
              "voice_fill": (0.2, 1.0)}  # 0.75 s items from 1 s files: offsets drawn; 1.5 s items would loop
    partial = ds.SourceMixDataset(files, partial_reads=True, **common)
    whole = ds.SourceMixDataset(files, partial_reads=False, **common)
    longer = ds.SourceMixDataset(files, partial_reads=True, **{**common, "samples": 24_000})
    longer_whole = ds.SourceMixDataset(files, partial_reads=False, **{**common, "samples": 24_000})
    for i in range(24):
        for a, b in ((partial[i], whole[i]), (longer[i], longer_whole[i])):
            for key in ("mixture", "vocals"):
                np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, err_msg=f"{key} {i}")
    assert bool(partial._info) and (all(v is not None for v in partial._info.values()) == (file_rate == 16_000))
    assert not partial._cache if file_rate == 16_000 else partial._cache  # nothing decoded whole at the mix rate


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[spec.argmax()])


def test_speed_plays_voice_and_background_faster_or_slower_independently_in_training_only(tmp_path):
    rate, seconds = 16_000, 3.0
    t = np.arange(int(rate * seconds)) / rate
    records = []
    for kind, hz in (("voice", 500.0), ("background", 2000.0)):
        (tmp_path / kind).mkdir()
        sf.write(tmp_path / kind / "tone.wav", 0.3 * np.sin(2 * np.pi * hz * t), rate)
        records.append({"path": f"{kind}/tone.wav", "kind": kind, "category": "speech" if kind == "voice" else
                        "music", "source": f"tone-{kind}", "license": "CC0", "duration": seconds, "split": "train"})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    files = ds.manifest_sources(tmp_path)
    common = {"rate": rate, "samples": 16_000, "items": 40, "seed": 5, "loopback": 0.0, "voice_fill": (0.6, 0.9)}
    sped = ds.SourceMixDataset(files, speed=0.5, speed_factor=(0.8, 1.25), **common)
    plain = ds.SourceMixDataset(files, **common)
    off = ds.SourceMixDataset(files, speed=0.0, speed_factor=(0.8, 1.25), **common)
    valid = ds.SourceMixDataset(files, speed=1.0, train=False, **common)
    voice_f, bg_f = [], []
    for i in range(40):
        voc = sped[i]["vocals"].numpy()[0]
        acc = sped[i]["mixture"].numpy()[0] - voc
        active = np.flatnonzero(np.abs(voc) > 1e-4)
        assert 0.6 * 16_000 - 30 <= active[-1] + 1 - active[0] <= 0.9 * 16_000 + 1, i  # the drawn voice length
        voice_f.append(_peak_hz(voc[active[0] : active[-1] + 1], rate) / 500.0)
        bg_f.append(_peak_hz(acc, rate) / 2000.0)
        assert np.array_equal(off[i]["mixture"].numpy(), plain[i]["mixture"].numpy())  # off: the same items
        v_voc = valid[i]["vocals"].numpy()[0]
        v_act = np.flatnonzero(np.abs(v_voc) > 1e-4)
        assert abs(_peak_hz(v_voc[v_act[0] : v_act[-1] + 1], rate) - 500.0) < 3  # never in validation
    voice_f, bg_f = np.array(voice_f), np.array(bg_f)
    for f in (voice_f, bg_f):
        assert np.all((f > 0.79) & (f < 1.26)), f  # pitch moves by the drawn factor, inside the range
        unchanged = np.abs(f - 1) < 0.01
        assert 8 <= unchanged.sum() <= 32, f  # about half the parts keep their speed
        assert np.any(f < 0.95) and np.any(f > 1.05)  # slower and faster both drawn
    assert not np.array_equal(np.abs(voice_f - 1) < 0.01, np.abs(bg_f - 1) < 0.01)  # voice and background apart
    for bad, match in [({"speed": 1.5}, "speed must be a probability"),
                       ({"speed_factor": (1.2, 0.9)}, "speed_factor must be"),
                       ({"speed_factor": (0.3, 1.0)}, "speed_factor must be")]:
        with pytest.raises(ds.DatasetError, match=match):
            ds.SourceMixDataset(files, **{**common, **bad})


def test_change_speed_moves_pitch_and_length_by_the_factor():
    rate = 16_000
    x = np.stack([np.sin(2 * np.pi * 440 * np.arange(rate) / rate)] * 2).astype(np.float32)
    for factor in (0.85, 1.0, 1.18):
        y = ds.change_speed(x, factor, round(rate / factor))
        assert y.shape == (2, round(rate / factor)) and y.dtype == np.float32
        assert _peak_hz(y[0, 1000:-1000], rate) == pytest.approx(440 * factor, abs=1.0)
    assert ds.change_speed(x, 1.1, 20_000)[:, 15_000:].max() == 0.0  # padded past the input's end
    assert ds.change_speed(x[:, :0], 1.1, 10).shape == (2, 10)
    with pytest.raises(ValueError, match="speed factor must be > 0"):
        ds.change_speed(x, 0.0, 10)
