"""`deepiso demo`, the main job on a machine with no sound card: its scoring survives lost samples, and
the whole run through a private PulseAudio server isolates the bundled clip's voice."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from deepiso.realtime.demo import load_clip, track
from deepiso.realtime.metrics import si_sdr

RATE = 8000


def _voice(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with a silent second in the middle: a voice with a pause, as far as alignment goes."""
    x = np.random.default_rng(seed).standard_normal(int(seconds * RATE)).astype(np.float32)
    x[int(2 * RATE):int(3 * RATE)] = 0.0
    return x


def test_track_keeps_a_constant_delay_exactly():
    ref = _voice(6.0)
    rec = np.concatenate([np.zeros(321, np.float32), ref, np.zeros(500, np.float32)])
    t = track(ref, rec, 321, RATE)
    assert t.jumps == 0 and set(t.lags) == {321}
    np.testing.assert_array_equal(t.aligned, ref)


def test_track_follows_lost_and_repeated_samples():
    ref = _voice(6.0)
    lost, repeated = int(1.23 * RATE), int(4.4 * RATE)
    # 200 samples lost at 1.23 s (an underrun of the player), 150 repeated at 4.4 s
    rec = np.concatenate([np.zeros(100, np.float32), ref[:lost], ref[lost + 200:repeated],
                          ref[repeated - 150:], np.zeros(800, np.float32)])
    t = track(ref, rec, 100, RATE)
    assert t.jumps == 2
    assert t.lags[0] == 100 and t.lags[-1] == 100 - 200 + 150
    # each seam is found to the sample: all but the 200 lost ones (nowhere in the recording) are the reference
    keep = np.ones(ref.size, bool)
    keep[lost:lost + 200] = False
    assert np.count_nonzero(t.aligned[keep] != ref[keep]) <= 1
    # one alignment for the whole clip would lose everything after the first seam
    whole = rec[100:100 + ref.size]
    assert si_sdr(whole, ref) < 0.0


def test_track_holds_its_lag_over_silence_and_unrelated_sound():
    ref = _voice(6.0)
    rec = np.concatenate([np.zeros(40, np.float32), ref, np.zeros(800, np.float32)])
    # the pause (2-3 s) is filled with something else in the recording: nothing to follow there
    rec[40 + 2 * RATE:40 + 3 * RATE] = np.random.default_rng(7).standard_normal(RATE)
    t = track(ref, rec, 40, RATE)
    assert t.jumps == 0 and set(t.lags) == {40}


def test_load_clip_mixes_at_the_asked_snr():
    mixture, voice = load_clip(16000, snr_db=5.0)
    active = np.abs(voice) > 1e-3 * np.abs(voice).max()
    background = mixture - voice
    snr = 10 * np.log10(np.mean(voice[active] ** 2) / np.mean(background[active] ** 2))
    assert abs(snr - 5.0) < 0.5
    assert np.isclose(np.abs(mixture).max(), 10 ** (-3 / 20), atol=1e-3)


def _demo(folder, *args):
    return subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "demo", "-o", str(folder / "out"), *args],
                          capture_output=True, text=True, timeout=300)


def test_demo_isolates_the_voice_live_with_the_default_model(tmp_path):
    # Two cores shared with other work: a run whose devices lost or repeated samples (the voice lost,
    # the round trip left longer for the rest of the run, or the recorded input itself cut up at
    # more seams than the tracking can stitch back) is retried, as the live tests retry an over-long
    # delay; the last attempt must pass every check. The shipped model gives +6.0 dB on this clip
    # offline, and a clean recording of the input scores -0.8 dB against the voice.
    def good(r: dict) -> bool:
        return r["si_sdr_improvement_db"] > 2.5 and r["si_sdr_mixture_db"] > -2.0 and \
            r["reported_latency_ms"] - 5 <= r["measured_delay_ms"] <= r["reported_latency_ms"] + 80 and \
            r["si_sdr_vocals_db"] > r["si_sdr_offline_db"] - 2.0  # the live path loses little to deepiso separate

    results = []
    for attempt in range(3):
        out = _demo(tmp_path / str(attempt))
        assert out.returncode == 0, out.stderr[-3000:]
        folder = tmp_path / str(attempt) / "out"
        result = json.loads((folder / "demo.json").read_text())
        for name in ("mixture.wav", "vocals.wav", "instrumental.wav", "demo.png"):
            assert (folder / name).stat().st_size > 10_000, name
        results.append(result)
        if good(result):
            break
    assert good(results[-1]), json.dumps(results)


def test_demo_with_a_missing_model_says_so(tmp_path):
    out = _demo(tmp_path, "--model", str(tmp_path / "nope.onnx"))
    assert out.returncode == 1
    assert "nope.onnx" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out" / "demo.json").exists()


def _stream(isolator, x: np.ndarray, block: int = 256) -> np.ndarray:
    out = np.zeros_like(x)
    buf = np.zeros((block, 1), np.float32)
    for i in range(0, x.size - block + 1, block):
        isolator.process(np.ascontiguousarray(x[i:i + block, None]), buf)
        out[i:i + block] = buf[:, 0]
    return out


def test_default_model_isolates_the_clip_wherever_its_onset_falls_on_the_hop_grid():
    # A live signal starts from silence at any sample, so at any phase of the hop grid. 0.5.0 locked
    # into a constant mask that passed the music at one phase in 64 of this clip (+0.4 dB on these
    # 5 s against a median of +4.3); trained with onsets at random phases (augment.onset) the network
    # has none. The clip leads in with a few samples near -95 dBFS; with the floor at -100 dBFS,
    # 0.5.0 also locked in on them at offsets 80 and 136 (+0.03 dB), which the -80 dBFS floor hid.
    from deepiso.realtime.plugins.isolator import SILENCE_DBFS, Isolator

    rate = 44100
    mixture, voice = load_clip(rate)
    mixture, voice = mixture[: 5 * rate], voice[: 5 * rate]
    base = si_sdr(mixture, voice)
    iso = {floor: Isolator("default", floor_dbfs=floor) for floor in (SILENCE_DBFS, -100.0)}
    for i in iso.values():
        i.configure(rate, 1, 256)

    def improvement(offset: int, floor: float) -> float:
        i = iso[floor]
        i.reset()
        x = np.concatenate([np.zeros(4096 + offset, np.float32), mixture, np.zeros(4096, np.float32)])
        y = _stream(i, x)[4096 + offset + i.latency_samples:][: mixture.size]
        return si_sdr(y, voice) - base

    gains = {offset: improvement(offset, SILENCE_DBFS) for offset in range(0, 256, 4)}
    median = float(np.median(list(gains.values())))
    worst = min(gains, key=gains.get)
    assert median > 3.0 and gains[worst] > median - 3.0, (worst, gains[worst], median)
    low_floor = {offset: improvement(offset, -100.0) for offset in (80, 136)}
    assert min(low_floor.values()) > median - 3.0, low_floor
