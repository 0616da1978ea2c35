"""The host runs the chain block by block exactly like offline processing, and survives bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import StandInModel, standin_loader

from deepiso.realtime import dsp
from deepiso.realtime.chain import MAX_CONSECUTIVE_FAULTS, Plugin, PluginError
from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.host import Host
from deepiso.realtime.onnx_model import load_model
from deepiso.realtime.plugins.basic import Gain, Gate, Meter, Mix
from deepiso.realtime.plugins.isolator import Isolator
from deepiso.realtime.plugins.resample import Resample


def _signal(n: int, channels: int, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    voice = 0.4 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(2 * np.pi * 3 * t)))[:, None]
    return (voice + 0.2 * rng.standard_normal((n, channels))).astype(np.float32)


def _random_blocks(host: Host, x: np.ndarray, seed: int = 1, top: int = 700) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.full_like(x, np.nan)
    i = 0
    while i < x.shape[0]:
        n = int(rng.integers(1, top))
        host.process(x[i : i + n], out[i : i + n])
        i += n
    return out


def _offline_vocals(model, spec: FrameSpec, x: np.ndarray) -> np.ndarray:
    """dsp.stft → awareness → model step per frame → dsp.istft, aligned with ``x`` (``(samples, C)``)."""
    model.reset()
    feats = dsp.features(dsp.stft(x.T, spec))  # (C, T, 2*bins)
    # At step t the newest frame is t; the model's output belongs to frame t - future.
    ctx = dsp.awareness(feats, spec.past_frames + spec.future_frames, 0)
    width, bins = spec.feature_size, spec.n_bins
    frames = np.zeros((x.shape[1], ctx.shape[1], bins), np.complex64)
    for t in range(ctx.shape[1]):
        y = model.step(np.ascontiguousarray(ctx[:, t])).copy()
        centre = dsp.from_features(ctx[:, t, spec.past_frames * width : (spec.past_frames + 1) * width])
        if spec.output == "spectrum":
            frames[:, t] = dsp.from_features(y)
        elif spec.output == "ratio_mask":
            frames[:, t] = y * centre
        else:
            frames[:, t] = dsp.from_features(y) * centre
    out = dsp.istft(frames, spec)
    return dsp.align(out, spec.synthesis_delay + spec.future_frames * spec.hop, x.shape[0]).T


def assert_streams_as_offline(step_path, spec: FrameSpec, samples: int = 6000, seed: int = 2) -> None:
    """The engine running the model file ``step_path``, block by block at random sizes, against the same
    model frame by frame offline (mono)."""
    sig = _signal(samples, 1, spec.sample_rate, seed=seed)
    host = Host([Isolator(str(step_path), channels=1)], spec.sample_rate, 1, max_block=1024)
    out = _random_blocks(host, sig)
    lat = host.latency_samples
    ref = _offline_vocals(load_model(step_path), spec, sig)
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(out[lat:], ref[: sig.shape[0] - lat], atol=1e-4, rtol=0)


def test_real_model_host_block_by_block_equals_offline():
    channels = 2
    model = load_model("tiny-test", batch=channels)
    spec = model.spec
    x = _signal(spec.sample_rate, channels, spec.sample_rate)
    host = Host([Isolator("tiny-test", channels=channels)], spec.sample_rate, channels, max_block=1024)
    lat = host.latency_samples
    assert lat == spec.latency_samples(None)
    out = _random_blocks(host, x)
    reference = _offline_vocals(model, spec, x)
    n = x.shape[0] - lat
    assert np.abs(reference).max() > 1e-3  # the model does produce something
    np.testing.assert_allclose(out[lat:], reference[:n], atol=1e-4, rtol=0)
    # One call with the whole signal gives the same as random blocks.
    whole = Host([Isolator("tiny-test", channels=channels)], spec.sample_rate, channels, max_block=x.shape[0])
    one = np.empty_like(x)
    whole.process(x, one)
    np.testing.assert_allclose(one, out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("output", ["spectrum", "ratio_mask", "complex_mask"])
@pytest.mark.parametrize("future", [0, 2])
@pytest.mark.parametrize("synthesis", [0, 128])  # the full synthesis and a low-delay one
def test_every_output_kind_streams_like_offline(output, future, synthesis):
    spec = FrameSpec(sample_rate=16_000, n_fft=256, hop=64, past_frames=3, future_frames=future, output=output,
                     synthesis_length=synthesis)
    x = _signal(12_000, 2, spec.sample_rate, seed=3)
    host = Host([Isolator("stand-in", loader=standin_loader(spec), channels=2)], 16_000, 2, max_block=1024)
    out = _random_blocks(host, x, seed=future)
    lat = host.latency_samples
    assert lat == spec.latency_samples(None) == (synthesis or 256) - 1 + future * 64
    reference = _offline_vocals(StandInModel(spec, batch=2), spec, x)
    np.testing.assert_allclose(out[lat:], reference[: x.shape[0] - lat], atol=1e-4, rtol=0)


def test_after_digital_silence_the_model_starts_afresh():
    """Silence in, silence out, and the signal after it is isolated exactly as at the start of a stream."""
    model = load_model("tiny-test", batch=1)
    spec = model.spec
    sig = _signal(8_000, 1, spec.sample_rate, seed=7)
    gap = 40 * spec.hop  # whole hops, longer than a context: the rings hold only zeros at the onset
    x = np.concatenate([np.zeros((gap, 1), np.float32), sig, np.zeros((gap, 1), np.float32), sig])
    host = Host([Isolator("tiny-test", channels=1)], spec.sample_rate, 1, max_block=1024)
    lat = host.latency_samples
    out = _random_blocks(host, x, seed=4)
    ref = _offline_vocals(model, spec, sig)
    n = sig.shape[0] - lat
    assert np.all(out[: gap - spec.n_fft] == 0.0)  # before the first frame that holds the onset
    np.testing.assert_allclose(out[gap + lat : gap + lat + n], ref[:n], atol=1e-4, rtol=0)
    # The second onset follows a signal: without the reset the state it left would change this part.
    second = 2 * gap + sig.shape[0]
    np.testing.assert_allclose(out[second + lat : second + lat + n], ref[:n], atol=1e-4, rtol=0)
    # A quiet signal is no silence: -60 dBFS noise goes through the model from its first frame when the
    # floor is under the onset's first frames (mostly the zeros before it), and from the frames after them
    # at the default floor.
    quiet = (1e-3 * np.random.default_rng(2).standard_normal((4_000, 1))).astype(np.float32)
    host = Host([Isolator("tiny-test", channels=1, floor_dbfs=-100.0)], spec.sample_rate, 1, max_block=1024)
    out = _random_blocks(host, quiet, seed=5)
    ref = _offline_vocals(model, spec, quiet)
    np.testing.assert_allclose(out[lat:], ref[: quiet.shape[0] - lat], atol=1e-6, rtol=0)
    host = Host([Isolator("tiny-test", channels=1)], spec.sample_rate, 1, max_block=1024)
    out = _random_blocks(host, quiet, seed=5)
    assert np.all(np.abs(out[lat + spec.n_fft:]).max(axis=-1) > 0.0)
    assert np.abs(out[lat:]).max() > 0


def test_a_raised_floor_treats_quiet_hiss_as_silence_and_the_signal_after_it_starts_afresh():
    model = load_model("tiny-test", batch=1)
    spec = model.spec
    sig = _signal(8_000, 1, spec.sample_rate, seed=7)
    gap = 40 * spec.hop
    hiss = (1e-3 * np.random.default_rng(3).standard_normal((gap, 1))).astype(np.float32)  # -60 dBFS
    x = np.concatenate([hiss, sig])
    ref = _offline_vocals(model, spec, sig)
    floored = Host([Isolator("tiny-test", channels=1, floor_dbfs=-50.0)], spec.sample_rate, 1, max_block=1024)
    lat = floored.latency_samples
    n = sig.shape[0] - lat
    out = _random_blocks(floored, x, seed=4)
    assert np.all(out[: gap - spec.n_fft] == 0.0)  # the hiss is muted
    np.testing.assert_allclose(out[gap + lat : gap + lat + n], ref[:n], atol=1e-4, rtol=0)
    # At the default floor the hiss runs through the model, and its state carries into the signal.
    plain = _random_blocks(Host([Isolator("tiny-test", channels=1)], spec.sample_rate, 1, max_block=1024), x,
                           seed=4)
    assert np.abs(plain[: gap - spec.n_fft]).max() > 0
    assert np.abs(plain[gap + lat : gap + lat + n] - ref[:n]).max() > 1e-3
    # Just below the floor is silence, just above is signal.
    above = _random_blocks(Host([Isolator("tiny-test", channels=1, floor_dbfs=-62.0)], spec.sample_rate, 1,
                                max_block=1024), hiss, seed=4)
    assert np.abs(above[spec.n_fft:]).max() > 0
    iso = Isolator("tiny-test", channels=1, floor_dbfs=-65)
    assert iso.floor_dbfs == -65.0 and "floor -65 dBFS" in iso.describe()
    assert "floor" not in Isolator("tiny-test", channels=1).describe()
    for bad in (float("nan"), -10.0, -300.0, "loud", None):
        with pytest.raises(PluginError, match="isolator floor must be"):
            Isolator("tiny-test", channels=1, floor_dbfs=bad)


def test_fixed_block_size_lowers_latency_and_stays_exact():
    model = load_model("tiny-test", batch=1)
    spec = model.spec
    x = _signal(8_000, 1, spec.sample_rate, seed=5)
    host = Host([Isolator("tiny-test", channels=1)], spec.sample_rate, 1, block_size=128)
    assert host.latency_samples == spec.n_fft - spec.hop + spec.future_frames * spec.hop  # gcd(128, 64) = hop
    out = host.run_offline(x, 128, flush=True)
    # The offline reference stops at the last whole frame; the stream goes on.
    valid = x.shape[0] - host.latency_samples
    np.testing.assert_allclose(out[:valid], _offline_vocals(model, spec, x)[:valid], atol=1e-4, rtol=0)


def test_stems_add_up_to_the_delayed_mixture():
    x = _signal(8_000, 2, 16_000, seed=7)
    iso = Isolator("tiny-test", channels=2)
    mix = Mix.parse("mixture")
    host = Host([iso, mix], 16_000, 2)
    out = _random_blocks(host, x)
    lat = host.latency_samples
    np.testing.assert_allclose(out[lat:], x[:-lat], atol=1e-5, rtol=0)
    vocals_host = Host([Isolator("tiny-test", channels=2)], 16_000, 2)
    karaoke_host = Host([Isolator("tiny-test", channels=2), Mix.parse("karaoke")], 16_000, 2)
    vocals = _random_blocks(vocals_host, x, seed=4)
    karaoke = _random_blocks(karaoke_host, x, seed=9)
    np.testing.assert_allclose(karaoke[lat:], x[:-lat] - vocals[lat:], atol=1e-5, rtol=0)


def test_model_rate_differs_from_device_rate_resampled_with_reported_latency():
    spec = FrameSpec(sample_rate=16_000, n_fft=256, hop=64, past_frames=2)
    iso = Isolator("identity", loader=standin_loader(spec, identity=True), channels=1)
    host = Host([iso], 48_000, 1, block_size=256)
    assert isinstance(host.resampler, Resample)
    inner = iso.latency_samples * 3
    assert host.latency_samples >= inner
    rng = np.random.default_rng(0)
    # Band-limited noise (below 6 kHz) so the 16 kHz round trip keeps it.
    noise = rng.standard_normal(48_000 * 2)
    spectrum = np.fft.rfft(noise)
    spectrum[int(6000 / 24000 * spectrum.size):] = 0
    x = (0.3 * np.fft.irfft(spectrum, noise.size)).astype(np.float32)[:, None]
    out = host.run_offline(x, 256)
    corr = np.correlate(out[:, 0], x[:48_000, 0], mode="valid")
    assert abs(int(np.argmax(corr)) - host.latency_samples) <= 2
    lat = host.latency_samples
    err = out[lat + 4800 : 90_000, 0] - x[4800 : 90_000 - lat, 0]
    assert np.sqrt(np.mean(err**2)) < 0.05 * np.sqrt(np.mean(x**2))


class Flaky(Plugin):
    """Adds 1.0, but raises on every ``every``-th block."""

    name = "flaky"

    def __init__(self, every: int = 3) -> None:
        self.every, self.calls, self.resets = every, 0, 0

    def process(self, inp, out):
        self.calls += 1
        out[...] = inp + 1.0
        if self.calls % self.every == 0:
            raise RuntimeError("flaky plugin failed")

    def reset(self):
        self.resets += 1


class NaNMaker(Plugin):
    name = "nan-maker"

    def __init__(self) -> None:
        self.calls = self.resets = 0

    def process(self, inp, out):
        self.calls += 1
        out[...] = inp
        if self.calls == 5:
            out[3, 0] = np.nan

    def reset(self):
        self.resets += 1


def test_plugin_exception_is_counted_and_the_stream_survives():
    flaky = Flaky(every=3)
    host = Host([flaky, Gain(0.0)], 16_000, 1, block_size=64)
    flaky.calls = flaky.resets = 0  # the host's warm-up block ran once
    x = np.full((64, 1), 0.25, np.float32)
    outs = []
    for _ in range(9):
        out = np.empty_like(x)
        host.process(x, out)
        outs.append(out[0, 0])
    assert outs == [1.25, 1.25, 0.25] * 3  # a failed block passes its input through
    stats = host.stats()
    assert stats.plugin_faults["flaky"] == 3
    assert flaky.resets >= 3
    assert any("flaky plugin failed" in e for e in stats.errors)


def test_a_plugin_that_always_fails_is_bypassed():
    always = Flaky(every=1)
    host = Host([always], 16_000, 1, block_size=64)
    always.calls = 0
    x = np.full((64, 1), 0.5, np.float32)
    out = np.empty_like(x)
    for _ in range(MAX_CONSECUTIVE_FAULTS + 10):
        host.process(x, out)
    stats = host.stats()
    assert stats.bypassed == ["flaky"]
    assert stats.plugin_faults["flaky"] == MAX_CONSECUTIVE_FAULTS
    np.testing.assert_array_equal(out, x)


def test_failing_plugin_with_latency_outputs_silence_on_a_fault():
    class SlowFail(Flaky):
        latency_samples = 10

    slow = SlowFail(every=2)
    host = Host([slow], 16_000, 1, block_size=32)
    slow.calls = 0
    x = np.full((32, 1), 0.5, np.float32)
    out1, out2 = np.empty_like(x), np.empty_like(x)
    host.process(x, out1)
    host.process(x, out2)
    assert out1[0, 0] == 1.5 and not out2.any()


def test_nonfinite_chain_output_becomes_silence_and_resets():
    maker = NaNMaker()
    host = Host([maker], 16_000, 1, block_size=16)
    maker.calls = maker.resets = 0
    x = np.full((16, 1), 0.1, np.float32)
    outs = []
    for _ in range(7):
        out = np.empty_like(x)
        host.process(x, out)
        outs.append(out.copy())
    assert not outs[4].any() and outs[5][0, 0] == np.float32(0.1)
    assert host.stats().output_faults == 1
    assert maker.resets >= 1


@pytest.mark.parametrize("kind", ["nan", "inf", "dc", "full_scale_noise", "silence", "huge"])
def test_bad_samples_keep_the_isolator_alive_and_the_output_finite(kind):
    rate = 16_000
    rng = np.random.default_rng(2)
    good = _signal(rate, 1, rate)
    bad = {
        "nan": np.full((4000, 1), np.nan, np.float32),
        "inf": np.where(rng.random((4000, 1)) < 0.5, np.inf, -np.inf).astype(np.float32),
        "dc": np.ones((4000, 1), np.float32),
        "full_scale_noise": rng.uniform(-1, 1, (4000, 1)).astype(np.float32),
        "silence": np.zeros((4000, 1), np.float32),
        "huge": np.full((4000, 1), 1e30, np.float32),
    }[kind]
    x = np.concatenate([good[:4000], bad, good[4000:]])
    meter = Meter()
    host = Host([Isolator("tiny-test", channels=1), Mix.parse("0,-6"), Gate(-70), meter], rate, 1)
    out = _random_blocks(host, x)
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= host.limit
    tail = out[-4000:]
    assert np.sqrt(np.mean(tail**2)) > 1e-3  # still isolating after the bad stretch
    stats = host.stats()
    if kind in ("nan", "inf", "huge"):
        assert stats.input_faults > 0
    else:
        assert stats.input_faults == 0
    assert all(np.isfinite(v) for v in meter.levels()["rms_db"])


def test_latency_is_the_sum_of_the_chain():
    class Delay(Plugin):
        name = "delay"
        latency_samples = 100

    host = Host([Isolator("tiny-test", channels=1), Delay(), Gain(-3)], 16_000, 1, block_size=100)
    spec = host.chain.plugins[0].spec
    assert host.latency_samples == spec.latency_samples(100) + 100
    assert f"{host.latency_ms:.2f}" in host.describe()


def test_bad_host_settings_are_refused():
    with pytest.raises(PluginError, match="sample rate"):
        Host([], 0, 1)
    with pytest.raises(PluginError, match="channels"):
        Host([], 16_000, 0)
    with pytest.raises(PluginError, match="mix needs an isolator"):
        Host([Mix.parse("karaoke")], 16_000, 1)
    with pytest.raises(PluginError, match="different sample rates"):
        spec = FrameSpec(sample_rate=22_050, n_fft=256, hop=64)
        Host([Isolator("tiny-test"), Isolator("x", loader=standin_loader(spec))], 16_000, 1)


def test_the_callback_allocates_no_audio_buffers(allocation_growth):
    spec = FrameSpec(sample_rate=16_000, n_fft=512, hop=128, past_frames=3, future_frames=1)
    iso = Isolator("identity", loader=standin_loader(spec, identity=True), channels=2)
    host = Host([iso, Mix.parse("0,-20"), Gain(-1), Gate(-60), Meter()], 16_000, 2, block_size=4096)
    x = _signal(4096, 2, 16_000)
    out = np.empty_like(x)
    host.process(x, out)
    peak, kept = allocation_growth(lambda: host.process(x, out), 20)
    # One block is 4096 x 2 x 4 = 32 KiB: any per-block array would show up here.
    assert peak < 8 * 1024
    assert kept < 4 * 1024


WARM_CHECK = """
import numpy as np
from deepiso.realtime import host
from deepiso.realtime.live import build_chain
chain, _, _, _ = build_chain("tiny-test", "vocals", 1)
host.Host(chain, 16000, 1, block_size=64)
kernels = [host._sanitize_copy]  # the only kernel that sees driver buffers; the chain gets a copy
missing = [k.py_func.__name__ for k in kernels if not any("readonly" in str(sig[0]) for sig in k.signatures)]
print("missing:", missing)
"""


def test_host_compiles_read_only_input_paths_before_the_first_callback():
    # Drivers hand callbacks read-only buffers; numba compiles them as a separate type,
    # which would stall the first callback of a fresh install. Host() must do it first.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", WARM_CHECK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "missing: []" in out.stdout, out.stdout
