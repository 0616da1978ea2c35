"""The streaming polyphase resampler: exact counts, group delay, pass-band error, alias rejection, no allocation."""

import numpy as np
import pytest

from deepiso.realtime.host import Host
from deepiso.realtime.plugins.resample import Resample
from deepiso.realtime.resampler import QUALITY, ResamplerError, StreamResampler

# quality → (1 kHz tone error dB, alias rejection dB), the docstring's table
TABLE = {"QQ": (-60, 45), "LQ": (-80, 70), "MQ": (-95, 85), "HQ": (-110, 100), "VHQ": (-110, 110)}
PAIRS = [(48_000, 44_100), (44_100, 16_000), (16_000, 44_100)]


def _run(r: StreamResampler, x: np.ndarray, seed: int = 0) -> np.ndarray:
    """``x`` through ``r`` in random block sizes up to ``r.max_block``."""
    out = np.zeros((r.max_out(x.shape[0]) + 8, x.shape[1]), np.float32)
    buf = np.zeros((r.max_out(r.max_block), x.shape[1]), np.float32)
    rng = np.random.default_rng(seed)
    i = count = 0
    while i < x.shape[0]:
        block = x[i : i + int(rng.integers(1, r.max_block + 1))]
        c = r.process(block, buf)
        out[count : count + c] = buf[:c]
        count += c
        i += block.shape[0]
    return out[:count]


@pytest.mark.parametrize("quality", list(QUALITY))
@pytest.mark.parametrize("src, dst", PAIRS)
def test_tone_comes_out_on_time_and_clean(src, dst, quality):
    r = StreamResampler(src, dst, 2, 512, quality)
    n = src  # one second
    t = np.arange(n) / src
    x = np.stack([np.sin(2 * np.pi * 1000 * t), 0.5 * np.cos(2 * np.pi * 700 * t)], axis=1).astype(np.float32)
    y = _run(r, x)
    assert y.shape == (-(-n * dst // src), 2)  # exactly ceil(N * to / from) outputs, whatever the blocks
    k = np.arange(y.shape[0])
    ideal = np.stack([np.sin(2 * np.pi * 1000 * (k - r.delay_out) / dst),
                      0.5 * np.cos(2 * np.pi * 700 * (k - r.delay_out) / dst)], axis=1)
    core = slice(int(r.delay_out) + 64, y.shape[0] - 64)
    err_db = 10 * np.log10(np.mean((y[core] - ideal[core]) ** 2) / np.mean(ideal[core] ** 2))
    assert err_db < TABLE[quality][0]


@pytest.mark.parametrize("quality", list(QUALITY))
def test_tones_above_the_band_do_not_alias(quality):
    src, dst = 48_000, 16_000
    rolloff = QUALITY[quality][1]
    t = np.arange(src) / src
    for f in (1.02 * 8000 / rolloff, 9000.0, 12_000.0, 20_000.0):
        r = StreamResampler(src, dst, 1, src, quality)
        y = _run(r, np.sin(2 * np.pi * f * t).astype(np.float32)[:, None])[2000:-2000, 0]
        assert 10 * np.log10(np.mean(y**2) / 0.5 + 1e-30) < -TABLE[quality][1], f


def test_reset_forgets_the_past_and_bad_settings_are_named():
    r = StreamResampler(48_000, 16_000, 1, 256)
    x = np.ones((256, 1), np.float32)
    out = np.zeros((r.max_out(256), 1), np.float32)
    first = out[: r.process(x, out)].copy()
    r.process(x, out)
    r.reset()
    np.testing.assert_array_equal(out[: r.process(x, out)], first)
    with pytest.raises(ResamplerError, match="larger than max_block"):
        r.process(np.zeros((257, 1), np.float32), np.zeros((200, 1), np.float32))
    with pytest.raises(ResamplerError, match="quality"):
        StreamResampler(48_000, 16_000, 1, 256, "best")
    with pytest.raises(ResamplerError, match=">= 1"):
        StreamResampler(0, 16_000, 1, 256)
    with pytest.raises(ResamplerError, match="extra_delay"):
        StreamResampler(48_000, 16_000, 1, 256, extra_delay=1.0)


def test_resample_plugin_allocates_nothing_per_block(allocation_growth):
    host = Host([Resample(16_000)], 48_000, 2, max_block=1024)
    x = (0.1 * np.random.default_rng(0).standard_normal((1024, 2))).astype(np.float32)
    out = np.empty_like(x)
    for _ in range(3):
        host.process(x, out)
    peak, kept = allocation_growth(lambda: host.process(x, out), 50)
    # a block is 1024 x 2 x 4 = 8 KiB, its 16 kHz copy 2.7 KiB: any per-block array would show up
    assert peak < 2 * 1024
    assert kept < 1024
