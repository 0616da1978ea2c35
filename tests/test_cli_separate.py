"""`deepiso separate` end to end, with the isolator's input floor."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_separate_with_a_floor_mutes_hiss_and_refuses_a_bad_floor(tmp_path):
    rate = 16_000
    rng = np.random.default_rng(0)
    hiss = 1e-4 * rng.standard_normal(rate)  # -80 dBFS
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    src = tmp_path / "take.wav"
    sf.write(src, np.concatenate([hiss, tone]).astype(np.float32), rate, subtype="FLOAT")
    for floor, muted in (("-70", True), ("-100", False)):
        out = tmp_path / f"out{floor}"
        run = _cli("separate", str(src), "-o", str(out), "--model", "tiny-test", "--floor", floor, "--quiet")
        assert run.returncode == 0, run.stderr
        vocals, got_rate = sf.read(out / "take" / "vocals.wav", dtype="float32")
        inst, _ = sf.read(out / "take" / "instrumental.wav", dtype="float32")
        assert got_rate == rate and vocals.shape[0] == 2 * rate
        head = vocals[: rate - 512]
        assert (not head.any()) == muted
        np.testing.assert_allclose(vocals + inst, np.concatenate([hiss, tone]), atol=1e-4)
    run = _cli("separate", str(src), "-o", str(tmp_path / "bad"), "--model", "tiny-test", "--floor", "-5")
    assert run.returncode == 2
    assert "isolator floor must be between -200 and -20 dBFS" in run.stderr
    assert not (tmp_path / "bad").exists()


def test_separate_with_a_low_delay_synthesis_keeps_the_stems_aligned_and_refuses_a_bad_length(tmp_path):
    rate = 16_000
    rng = np.random.default_rng(1)
    take = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) + 0.05 * rng.standard_normal(rate))
    src = tmp_path / "take.wav"
    sf.write(src, take.astype(np.float32), rate, subtype="FLOAT")
    stems = {}
    for length in ("0", "128"):
        out = tmp_path / f"out{length}"
        run = _cli("separate", str(src), "-o", str(out), "--model", "tiny-test", "--synthesis-length", length,
                   "--quiet")
        assert run.returncode == 0, run.stderr
        vocals, _ = sf.read(out / "take" / "vocals.wav", dtype="float32")
        inst, _ = sf.read(out / "take" / "instrumental.wav", dtype="float32")
        assert vocals.shape[0] == rate
        np.testing.assert_allclose(vocals + inst, take, atol=1e-4)  # the stems still add up, sample-aligned
        stems[length] = vocals
    assert np.abs(stems["0"] - stems["128"]).max() > 1e-3  # the same model through another synthesis
    run = _cli("separate", str(src), "-o", str(tmp_path / "bad"), "--model", "tiny-test", "--synthesis-length", "300")
    assert run.returncode == 2
    assert "isolator synthesis length: synthesis_length must be 0 (the full n_fft) or from hop 64" in run.stderr
    assert not (tmp_path / "bad").exists()


def _take(path, samples: int, rate: int = 16_000, channels: int = 1, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    x = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(samples)
    x = np.repeat(x[:, None], channels, axis=1) * np.linspace(1.0, 0.5, channels)
    sf.write(path, x.astype(np.float32), rate, subtype="FLOAT")
    return x.astype(np.float32)


def test_separate_keeps_every_sample_and_the_stereo_image(tmp_path):
    x = _take(tmp_path / "song.wav", 16_000 + 37, channels=2)  # no multiple of the block or the hop
    run = _cli("separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "-m", "tiny-test", "-q")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    vocals, rate = sf.read(tmp_path / "out" / "song" / "vocals.wav", dtype="float32")
    inst, _ = sf.read(tmp_path / "out" / "song" / "instrumental.wav", dtype="float32")
    assert rate == 16_000 and vocals.shape == inst.shape == x.shape
    assert np.abs(vocals[-37:]).min(axis=0).max() > 0 and np.abs(vocals[-37:]).max() > 1e-3  # the tail is there
    np.testing.assert_allclose(vocals + inst, x, atol=1e-5)
    ratio = np.sqrt(np.mean(vocals[:, 1] ** 2) / np.mean(vocals[:, 0] ** 2))
    assert abs(ratio - 0.5) < 0.01  # one estimate from the mid, applied to both channels: the image is kept
    assert not list((tmp_path / "out").rglob(".deepiso-*"))  # no staging left behind


def test_separate_checks_the_output_folder_before_any_work(tmp_path):
    _take(tmp_path / "take.wav", 8_000)
    (tmp_path / "file").write_text("not a folder")
    run = _cli("separate", str(tmp_path / "take.wav"), "-o", str(tmp_path / "file" / "out"), "-m", "tiny-test")
    assert run.returncode == 2
    assert run.stderr.startswith("deepiso separate: ") and "cannot write stems there" in run.stderr
    assert "%" not in run.stderr  # refused before any processing


def test_separate_keeps_existing_stems_unless_told_to_overwrite(tmp_path):
    _take(tmp_path / "take.wav", 8_000)
    out = tmp_path / "out"
    (out / "take").mkdir(parents=True)
    (out / "take" / "vocals.wav").write_bytes(b"an earlier run")
    run = _cli("separate", str(tmp_path / "take.wav"), "-o", str(out), "-m", "tiny-test")
    assert run.returncode == 1
    assert "already holds vocals.wav; use --overwrite" in run.stderr
    assert (out / "take" / "vocals.wav").read_bytes() == b"an earlier run"
    assert not (out / "take" / "instrumental.wav").exists()
    run = _cli("separate", str(tmp_path / "take.wav"), "-o", str(out), "-m", "tiny-test", "--overwrite", "-q")
    assert run.returncode == 0, run.stderr
    assert sf.info(out / "take" / "vocals.wav").frames == 8_000


def test_separate_warns_with_counts_about_samples_that_are_not_finite(tmp_path):
    x = _take(tmp_path / "take.wav", 8_000)
    x[100] = np.nan
    x[200:202] = np.inf
    sf.write(tmp_path / "take.wav", x, 16_000, subtype="FLOAT")
    run = _cli("separate", str(tmp_path / "take.wav"), "-o", str(tmp_path / "out"), "-m", "tiny-test", "-q")
    assert run.returncode == 0, run.stderr
    assert "3 of 8000 samples are not finite" in run.stderr
    vocals, _ = sf.read(tmp_path / "out" / "take" / "vocals.wav", dtype="float32")
    assert np.isfinite(vocals).all()


def test_a_file_too_short_for_a_frame_is_refused_with_the_reason_and_the_rest_goes_on(tmp_path):
    _take(tmp_path / "blip.wav", 1)
    _take(tmp_path / "take.wav", 8_000)
    run = _cli("separate", str(tmp_path / "blip.wav"), str(tmp_path / "missing.wav"), str(tmp_path / "take.wav"),
               "-o", str(tmp_path / "out"), "-m", "tiny-test")
    assert run.returncode == 1
    assert "blip.wav: 1 sample(s) at 16000 Hz is shorter than one analysis frame of the model (256 samples" \
        in run.stderr
    assert not (tmp_path / "out" / "blip").exists() and (tmp_path / "out" / "take" / "vocals.wav").is_file()
    # Progress uses carriage returns; every message still starts a line of its own.
    for message in ("deepiso separate:", "take: done"):
        for at in [i for i in range(len(run.stderr)) if run.stderr.startswith(message, i)]:
            assert at == 0 or run.stderr[at - 1] == "\n", run.stderr
    assert "missing.wav" in run.stderr


def test_two_inputs_of_one_name_do_not_overwrite_each_other(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _take(tmp_path / "a" / "take.wav", 8_000)
    _take(tmp_path / "b" / "take.wav", 8_000, seed=3)
    run = _cli("separate", str(tmp_path / "a" / "take.wav"), str(tmp_path / "b" / "take.wav"), "-o",
               str(tmp_path / "out"), "-m", "tiny-test", "-q")
    assert run.returncode == 1 and "also named 'take'" in run.stderr
