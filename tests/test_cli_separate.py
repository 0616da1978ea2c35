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
