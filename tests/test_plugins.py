"""Built-in plugins do what their names say, and the registry finds them by entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest

from deepiso.realtime.chain import PluginError
from deepiso.realtime.host import Host
from deepiso.realtime.plugins import BUILTIN, ENTRY_POINT_GROUP, available_plugins, create_plugin
from deepiso.realtime.plugins.basic import Gain, Gate, Meter, Mix, db_to_gain
from deepiso.realtime.plugins.resample import Resample

RATE = 16_000


def _tone(seconds: float, amp: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.repeat((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)[:, None], channels, axis=1)


def test_builtins_are_registered_as_entry_points():
    registered = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, target in BUILTIN.items():
        assert registered.get(name) == target
    assert set(BUILTIN) <= set(available_plugins())


def test_create_plugin_by_name_and_bad_names():
    gain = create_plugin("gain", db=-6.0)
    assert isinstance(gain, Gain) and gain.db == -6.0
    with pytest.raises(PluginError, match="no plugin named 'reverb'.*gain"):
        create_plugin("reverb")
    with pytest.raises(PluginError, match="bad options"):
        create_plugin("gain", decibels=3)


def test_gain_ramps_to_its_target_without_a_step():
    gain = Gain(0.0)
    host = Host([gain], RATE, 1, block_size=100)
    x = np.ones((100, 1), np.float32)
    out = np.empty_like(x)
    host.process(x, out)
    assert np.allclose(out, 1.0)
    gain.db = -6.0
    host.process(x, out)
    assert np.all(np.diff(out[:, 0]) < 0)  # a ramp, not a jump
    assert out[-1, 0] == pytest.approx(db_to_gain(-6.0), rel=1e-6)
    host.process(x, out)
    assert np.allclose(out, db_to_gain(-6.0))


def test_gate_closes_on_quiet_input_and_opens_on_loud():
    gate = Gate(threshold_db=-40, attack_ms=1, release_ms=20, hold_ms=20, floor_db=-80)
    host = Host([gate], RATE, 2, block_size=160)
    quiet, loud = _tone(0.5, 0.001, channels=2), _tone(0.5, 0.5, channels=2)
    x = np.concatenate([loud, quiet, loud])
    out = np.empty_like(x)
    for a in range(0, x.shape[0], 160):
        host.process(x[a : a + 160], out[a : a + 160])
    n = loud.shape[0]
    rms = lambda v: float(np.sqrt(np.mean(v**2)))  # noqa: E731
    assert rms(out[n // 2 : n]) == pytest.approx(rms(loud), rel=0.01)
    assert rms(out[n + n // 2 : 2 * n]) < rms(quiet) * db_to_gain(-60)
    assert rms(out[2 * n + n // 2 :]) == pytest.approx(rms(loud), rel=0.01)


def test_meter_reads_peak_and_rms_and_passes_audio():
    meter = Meter(rms_ms=50)
    host = Host([meter], RATE, 2, block_size=256)
    x = _tone(1.0, db_to_gain(-6.0), channels=2)
    x[:, 1] *= 0.5
    out = np.empty_like(x)
    for a in range(0, x.shape[0], 256):
        host.process(x[a : a + 256], out[a : a + 256])
    np.testing.assert_array_equal(out, x)
    levels = meter.levels()
    assert levels["peak_db"][0] == pytest.approx(-6.0, abs=0.1)
    assert levels["rms_db"][0] == pytest.approx(-9.01, abs=0.2)
    assert levels["peak_db"][1] == pytest.approx(-12.02, abs=0.1)
    assert levels["clips"] == [0, 0]


@pytest.mark.parametrize("text,expected", [
    ("vocals", (1.0, 0.0)), ("karaoke", (0.0, 1.0)), ("Instrumental", (0.0, 1.0)),
    ("0,-6", (1.0, db_to_gain(-6.0))), ("-inf:0", (0.0, 1.0)),
])
def test_mix_presets_and_gains(text, expected):
    v, i = Mix.parse_gains(text)
    assert v == pytest.approx(expected[0]) and i == pytest.approx(expected[1])


@pytest.mark.parametrize("text", ["loud", "1,2,3", "a,b", ""])
def test_mix_rejects_nonsense(text):
    with pytest.raises(PluginError, match="mix"):
        Mix.parse_gains(text)


def test_mix_blends_the_isolator_stems():
    iso = create_plugin("isolator", model="tiny-test", channels=1)
    mix = Mix(vocals=0.5, instrumental=0.25)
    host = Host([iso, mix], RATE, 1, block_size=128)
    x = _tone(0.5, 0.3) + np.random.default_rng(0).normal(0, 0.1, (8000, 1)).astype(np.float32)
    out = np.empty_like(x)
    for a in range(0, x.shape[0], 128):
        host.process(x[a : a + 128], out[a : a + 128])
        voc, inst = iso.stems()
        np.testing.assert_allclose(out[a : a + 128], 0.5 * voc + 0.25 * inst, atol=1e-6)


@pytest.mark.parametrize("outer,inner", [(48_000, 16_000), (44_100, 48_000), (16_000, 44_100)])
@pytest.mark.parametrize("block", [256, None])
def test_resample_round_trip_delay_is_the_reported_latency(outer, inner, block):
    res = Resample(inner)
    host = Host([res], outer, 1, max_block=512, block_size=block)
    lat = host.latency_samples
    assert lat == res.latency_samples > 0
    rng = np.random.default_rng(1)
    n = outer * 2
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[int(0.4 * min(inner, outer) / outer * 2 * spectrum.size / 2 * 2) // 2:] = 0  # below 0.4 x min rate
    x = (0.3 * np.fft.irfft(spectrum, n)).astype(np.float32)[:, None]
    out = np.empty_like(x)
    sizes = np.random.default_rng(2).integers(1, 512, 10_000)
    i = k = 0
    while i < n:
        step = block or int(sizes[k])
        host.process(x[i : i + step], out[i : i + step])
        i += step
        k += 1
    corr = np.correlate(out[outer // 2 :, 0], x[outer // 2 : outer, 0], mode="valid")
    assert abs(int(np.argmax(corr)) - lat) <= 1
    err = out[lat + outer // 4 :, 0] - x[outer // 4 : n - lat, 0]
    assert np.sqrt(np.mean(err**2)) < 0.03 * np.sqrt(np.mean(x**2))  # LQ: the top of the band droops
    assert res.underruns == 0


def test_resample_rejects_bad_settings():
    with pytest.raises(PluginError, match="quality"):
        Resample(16_000, quality="best")
    with pytest.raises(PluginError, match="outside"):
        Resample(10)
