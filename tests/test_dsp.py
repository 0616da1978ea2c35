"""Streaming and offline STFT paths agree, and analysis+synthesis is the identity."""

import numpy as np
import pytest

from deepiso.realtime import dsp, windows
from deepiso.realtime.frame import FrameSpec

CONFIGS = [(1024, 256), (2048, 512), (512, 128)]
#: (n_fft, hop, synthesis_length): the full synthesis, and low-delay ones (its delay: length - hop)
SYNTHESES = [(n_fft, hop, 0) for n_fft, hop in CONFIGS] + [(1024, 256, 512), (512, 128, 384)]
WINDOWS = ["hann", "sqrt_hann", "hamming", "blackman"]


def _signal(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16_000
    tone = 0.5 * np.sin(2 * np.pi * 441 * t)[:, None]
    return (tone + 0.3 * rng.standard_normal((n, channels))).astype(np.float32)


def _blocks(n: int, size: int | str, seed: int = 1):
    """Start/stop pairs covering n samples: fixed size, or random sizes 1..700."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < n:
        step = int(rng.integers(1, 700)) if size == "random" else size
        yield i, min(n, i + step)
        i += step


def _run_stream(spec: FrameSpec, x: np.ndarray, block, frame_fn=None, block_hint=None):
    """Feed x (n, C) through a SpectralStream; collect the frames the model saw."""
    seen = []
    identity = dsp.identity_frame(spec)

    def record(context, out_ri):
        seen.append(context.copy())
        (frame_fn or identity)(context, out_ri)

    stream = dsp.SpectralStream(spec, x.shape[1], record, block_size=block_hint)
    out = np.zeros_like(x)
    for a, b in _blocks(x.shape[0], block):
        stream.process(x[a:b], out[a:b])
    return stream, out, np.stack(seen, axis=1) if seen else None


@pytest.mark.parametrize("n_fft,hop,synthesis", SYNTHESES)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("block", [1, 7, "hop", "3hop5"])
def test_streaming_features_and_synthesis_equal_offline(n_fft, hop, synthesis, window, block):
    spec = FrameSpec(sample_rate=16_000, n_fft=n_fft, hop=hop, window=window, past_frames=2, future_frames=1,
                     synthesis_length=synthesis)
    size = {"hop": hop, "3hop5": 3 * hop + 5}.get(block, block)
    n = 12 * n_fft + 37 if size != 1 else 3 * n_fft + 11
    x = _signal(n, 2)
    stream, out, seen = _run_stream(spec, x, size)

    # features: every context the model saw == offline awareness stack
    offline_spec = dsp.stft(x.T, spec)  # (C, T, bins)
    offline_ctx = dsp.awareness(dsp.features(offline_spec), spec.past_frames, spec.future_frames)
    n_frames = n // hop
    assert seen.shape[1] == n_frames
    # at step t the stream holds frames t-K+1..t; offline row t-future holds the same
    ctx = spec.context
    stream_ctx = seen.reshape(2, n_frames, ctx * spec.feature_size)
    f = spec.future_frames
    np.testing.assert_allclose(stream_ctx[:, f:], offline_ctx[:, : n_frames - f], atol=1e-5, rtol=0)

    # synthesis: streaming output == offline istft of the centre frames, after the stream delay
    centre = dsp.from_features(offline_ctx[..., spec.past_frames * spec.feature_size:(spec.past_frames + 1)
                                           * spec.feature_size])
    offline_out = dsp.istft(centre, spec)  # (C, T*hop): frame t emitted at hop t
    delay = stream.latency_samples - (spec.synthesis_span - hop)  # fifo prefill + look-ahead beyond the OLA delay
    expected = np.zeros_like(x.T)
    expected[:, delay:delay + offline_out.shape[1]] = offline_out[:, : n - delay]
    np.testing.assert_allclose(out.T, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_fft,hop,synthesis", SYNTHESES)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("block", [1, 7, "hop", "3hop5", "random"])
def test_identity_round_trip_after_reported_latency(n_fft, hop, synthesis, window, block):
    spec = FrameSpec(sample_rate=16_000, n_fft=n_fft, hop=hop, window=window, past_frames=1, future_frames=2,
                     synthesis_length=synthesis)
    size = {"hop": hop, "3hop5": 3 * hop + 5}.get(block, block)
    hint = size if isinstance(size, int) else None
    n = {1: 3 * n_fft + 11, hop: 10 * n_fft}.get(size, 10 * n_fft + 3)  # whole blocks only
    x = _signal(n, 1, seed=3)
    stream, out, _ = _run_stream(spec, x, size, block_hint=hint)
    latency = stream.latency_samples
    assert latency == spec.latency_samples(hint)
    assert stream.underruns == 0
    np.testing.assert_allclose(out[latency:], x[: n - latency], atol=1e-5, rtol=0)
    # nothing leaks out before the signal's first sample arrives at the output
    np.testing.assert_allclose(out[:latency], 0.0, atol=1e-6)


def test_latency_with_hop_aligned_blocks_is_minimal():
    spec = FrameSpec(n_fft=1024, hop=256, past_frames=4, future_frames=0)
    assert spec.latency_samples(256) == 768
    assert spec.latency_samples(512) == 768
    assert spec.latency_samples(128) == 1024 - 128
    assert spec.latency_samples(None) == 1023
    assert FrameSpec(n_fft=1024, hop=256, future_frames=2).latency_samples(256) == 768 + 512
    low = FrameSpec(n_fft=1024, hop=256, synthesis_length=512)  # low-delay synthesis: length - hop
    assert (low.latency_samples(256), low.latency_samples(128), low.latency_samples(None)) == (256, 384, 511)
    assert FrameSpec(n_fft=1024, hop=256, synthesis_length=512, future_frames=1).latency_samples(256) == 512


def test_offline_round_trip_every_window():
    for window in WINDOWS:
        spec = FrameSpec(n_fft=512, hop=128, window=window)
        x = _signal(8000, 1)[:, 0]
        y = dsp.align(dsp.istft(dsp.stft(x, spec), spec), spec.n_fft - spec.hop, x.size)
        usable = (x.size // spec.hop) * spec.hop - (spec.n_fft - spec.hop)
        np.testing.assert_allclose(y[:usable], x[:usable], atol=1e-5)


def test_blocks_that_break_the_block_size_rule_underrun_but_keep_the_delay():
    spec = FrameSpec(n_fft=512, hop=128, past_frames=0)
    x = _signal(128 * 40, 1, seed=5)
    stream = dsp.SpectralStream(spec, 1, block_size=128)
    out = np.zeros_like(x)
    sizes = [128] * 10 + [100, 28] + [128] * 29  # one misaligned pair mid-stream
    assert sum(sizes) == x.shape[0]
    i = 0
    for s in sizes:
        stream.process(x[i:i + s], out[i:i + s])
        i += s
    assert stream.underruns == 1
    latency = stream.latency_samples
    assert latency == 384
    # before and well after the glitch the output is exact, at the same delay
    np.testing.assert_allclose(out[latency:1280], x[:1280 - latency], atol=1e-5)
    np.testing.assert_allclose(out[2000:], x[2000 - latency:x.shape[0] - latency], atol=1e-5)


def test_in_place_processing_matches_separate_buffers():
    spec = FrameSpec(n_fft=1024, hop=256)
    x = _signal(20_000, 2, seed=9)
    _, out, _ = _run_stream(spec, x, 300)
    stream = dsp.SpectralStream(spec, 2)
    buf = x.copy()
    for a, b in _blocks(buf.shape[0], 300):
        stream.process(buf[a:b], buf[a:b])
    np.testing.assert_array_equal(buf, out)


def test_reset_returns_to_a_fresh_state():
    spec = FrameSpec(n_fft=512, hop=128, past_frames=3)
    x = _signal(5000, 1, seed=11)
    s = dsp.SpectralStream(spec, 1)
    first = np.zeros_like(x)
    s.process(x, first)
    s.reset()
    second = np.zeros_like(x)
    s.process(x, second)
    np.testing.assert_array_equal(first, second)


def test_synthesis_window_gives_unit_overlap():
    for window in WINDOWS + ["rect"]:
        for n_fft, hop in CONFIGS:
            if window == "rect" and hop != n_fft // 4:
                continue
            wa = windows.analysis_window(window, n_fft).astype(np.float64)
            ws = windows.synthesis_window(window, n_fft, hop).astype(np.float64)
            total = np.zeros(n_fft * 3)
            for start in range(0, 2 * n_fft + 1, hop):
                total[start:start + n_fft] += wa * ws
            np.testing.assert_allclose(total[n_fft:2 * n_fft], 1.0, atol=1e-6)


@pytest.mark.parametrize("window", WINDOWS + ["rect"])
@pytest.mark.parametrize("n_fft,hop,length", [(1024, 256, 512), (1024, 256, 768), (512, 128, 384), (2048, 512, 1024)])
def test_low_delay_synthesis_gives_unit_overlap_on_the_newest_samples_only(window, n_fft, hop, length):
    wa = windows.analysis_window(window, n_fft).astype(np.float64)
    ws = windows.synthesis_window(window, n_fft, hop, length).astype(np.float64)
    assert not ws[: n_fft - length].any() and ws[n_fft - length + 1 :].min() > 0
    total = np.zeros(n_fft * 3)
    for start in range(0, 2 * n_fft + 1, hop):
        total[start:start + n_fft] += wa * ws
    np.testing.assert_allclose(total[n_fft:2 * n_fft], 1.0, atol=1e-5)
    # on them, analysis times synthesis is the squared window of that length, divided by its overlap-add
    g = windows.make_window(window, length).astype(np.float64) ** 2
    ola = sum(np.roll(np.pad(g, (0, length)), k * hop)[:length] + np.roll(np.pad(g, (length, 0)), -k * hop)[length:]
              for k in range(1, length // hop + 1)) + g
    np.testing.assert_allclose((wa * ws)[n_fft - length:], g / ola, atol=1e-6)
    full = windows.synthesis_window(window, n_fft, hop)
    assert ws.max() > full.max()  # the price: the newest samples of a frame are weighted up
    np.testing.assert_array_equal(windows.synthesis_window(window, n_fft, hop, n_fft), full)


def test_a_low_delay_synthesis_the_window_cannot_cover_is_refused():
    from deepiso.realtime.frame import FrameSpecError

    with pytest.raises(FrameSpecError, match="256 samples at hop 256 does not overlap enough"):
        FrameSpec(n_fft=1024, hop=256, synthesis_length=256)  # a Hann of one hop leaves zeros
    for bad in (128, 1024, 2048, -1):
        with pytest.raises(FrameSpecError, match="synthesis_length must be 0"):
            FrameSpec(n_fft=1024, hop=256, synthesis_length=bad)
    with pytest.raises(FrameSpecError, match="synthesis_length must be an integer"):
        FrameSpec(n_fft=1024, hop=256, synthesis_length=512.0)
    assert FrameSpec(n_fft=1024, hop=256, window="rect", synthesis_length=256).latency_samples(256) == 0


def test_awareness_rows_hold_the_right_frames():
    feats = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    ctx = dsp.awareness(feats, past=2, future=1)
    assert ctx.shape == (5, 8)
    np.testing.assert_array_equal(ctx[0], [0, 0, 0, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(ctx[4], [4, 5, 6, 7, 8, 9, 0, 0])


def test_a_full_scale_sine_has_unit_magnitude_in_its_bin():
    for n_fft, hop in CONFIGS:
        spec = FrameSpec(sample_rate=16_000, n_fft=n_fft, hop=hop)
        k = 40
        x = np.sin(2 * np.pi * k * np.arange(8 * n_fft) / n_fft).astype(np.float32)
        mag = np.abs(dsp.stft(x, spec))[-1]
        assert abs(mag[k] - 1.0) < 1e-4
        assert mag.argmax() == k


def test_features_round_trip():
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((3, 4, 9)) + 1j * rng.standard_normal((3, 4, 9))).astype(np.complex64)
    f = dsp.features(z)
    assert f.shape == (3, 4, 18) and f.dtype == np.float32
    np.testing.assert_array_equal(dsp.from_features(f), z)
