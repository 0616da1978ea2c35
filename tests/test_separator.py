"""The one separator: the sequence graph for files equals the engine's step graph, to the last sample."""

from __future__ import annotations

import numpy as np
import pytest

from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.onnx_model import read_card
from deepiso.realtime.separator import Separator


class PassThrough:
    """A sequence model whose vocals are the mixture itself (its centre frame), counting its calls."""

    def __init__(self, output: str = "spectrum", past: int = 2, future: int = 1) -> None:
        self.spec = FrameSpec(sample_rate=16_000, n_fft=256, hop=64, past_frames=past, future_frames=future,
                              output=output)
        self.frames_run = 0
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def run_sequence(self, x: np.ndarray) -> np.ndarray:
        self.frames_run += x.shape[1]
        spec = self.spec
        if spec.output == "ratio_mask":
            return np.ones((1, x.shape[1], spec.output_size), np.float32)
        if spec.output == "complex_mask":
            y = np.zeros((1, x.shape[1], spec.output_size), np.float32)
            y[..., : spec.n_bins] = 1.0
            return y
        width = spec.feature_size
        return np.ascontiguousarray(x[..., spec.past_frames * width : (spec.past_frames + 1) * width])


def _voice_with_gaps(rate: int, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """A voiced signal with digital silence at the start and in the middle, of a length no hop divides."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate) + 37
    t = np.arange(n) / rate
    x = 0.2 * np.sin(2 * np.pi * 210 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.03 * rng.standard_normal(n)
    x[: rate // 5] = 0.0
    x[n // 2 : n // 2 + rate // 4] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("output", ["spectrum", "ratio_mask", "complex_mask"])
def test_a_pass_through_model_gives_back_every_sample_to_the_last(output):
    model = PassThrough(output)
    sep = Separator(model, chunk_frames=50)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (4001, 2)).astype(np.float32)
    x[-1] = 0.9  # the very last sample is kept
    stems = sep.separate(x)
    assert stems.vocals.shape == x.shape and stems.rate == 16_000 and stems.nonfinite == 0
    np.testing.assert_allclose(stems.vocals, x, atol=2e-5)
    np.testing.assert_allclose(stems.vocals + stems.instrumental, x, atol=1e-6)
    assert model.frames_run == (4001 + 256) // 64  # the mid signal ran once, not once per channel


def test_silence_is_not_run_and_the_model_restarts_after_it():
    model = PassThrough()
    sep = Separator(model, chunk_frames=16)
    x = _voice_with_gaps(16_000)
    sep.separate(x)
    # Two voiced runs (before and after the middle gap) start from the initial state; the leading
    # silence and the gap are never run through the model.
    assert model.resets == 2
    total, silent = (x.size + 256) // 64, (3200 + 4000) // 64  # frames, frames of digital silence
    # Frames whose context (awareness and window) reaches into the signal are run: a few per edge.
    assert total - silent <= model.frames_run <= total - silent + 3 * 8
    assert not sep.separate(np.zeros(5000, np.float32)).vocals.any()


@pytest.mark.parametrize("chunk", [7, 1024])
def test_tiny_model_files_equal_the_live_engine_sample_for_sample(chunk):
    sep = Separator("tiny-test", chunk_frames=chunk)
    x = _voice_with_gaps(sep.rate)
    offline = sep.separate(x)
    live = sep.stream(x, block=256)
    assert offline.vocals.shape == live.vocals.shape == (x.size, 1)
    assert np.abs(offline.vocals).max() > 1e-3
    np.testing.assert_allclose(offline.vocals, live.vocals, atol=1e-5)
    np.testing.assert_allclose(offline.instrumental, live.instrumental, atol=1e-5)


def test_default_model_files_equal_the_live_engine_within_its_int8_tolerance():
    # Dynamic int8 quantisation picks its scales per call, so the sequence and the step graph agree
    # to the tolerance the model card states, not exactly.
    sep = Separator("default")
    x = _voice_with_gaps(sep.rate, seconds=4.0)
    offline, live = sep.separate(x).vocals, sep.stream(x).vocals
    error = np.sqrt(np.mean((offline - live) ** 2) / np.mean(live**2))
    stated = read_card("default")["quantization"]["tolerance"]["relative_rms_error"]
    assert error <= stated, (error, stated)


class HalfLowBand(PassThrough):
    """Vocals: half of the mixture's lower half of the bins (a linear model, so panning commutes with it)."""

    def run_sequence(self, x: np.ndarray) -> np.ndarray:
        y = super().run_sequence(x).copy()
        bins = self.spec.n_bins
        y[..., bins // 2 : bins] = 0.0
        y[..., bins + bins // 2 :] = 0.0
        return 0.5 * y


def test_stereo_is_separated_once_from_the_mid_and_keeps_its_image():
    sep = Separator(HalfLowBand())
    mono = _voice_with_gaps(sep.rate)
    stereo = np.stack([0.8 * mono, 0.4 * mono], axis=1)
    mid = sep.separate(0.6 * mono).vocals[:, 0]
    got = sep.separate(stereo).vocals
    assert np.abs(mid).max() > 0.05
    # A signal panned between the channels: each channel's vocals are its share of the mid's vocals.
    np.testing.assert_allclose(got[:, 0], mid * 0.8 / 0.6, atol=1e-4)
    np.testing.assert_allclose(got[:, 1], mid * 0.4 / 0.6, atol=1e-4)


def test_a_stereo_estimate_is_never_louder_than_the_channel_it_comes_from():
    # A vocal spectrum becomes a gain on each channel; where the model asks for more than the mid
    # holds (tiny-test's random weights do), the gain stops at 1.
    sep = Separator("tiny-test")
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.3, 0.3, (16_000, 2)).astype(np.float32)
    got = sep.separate(x).vocals
    assert np.isfinite(got).all() and np.abs(got).max() > 1e-3
    assert np.sqrt(np.mean(got**2, axis=0)).max() <= 1.01 * np.sqrt(np.mean(x**2, axis=0)).max()


def test_other_rates_come_back_at_their_rate_and_length():
    sep = Separator("tiny-test")
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (48_000 + 11, 2)).astype(np.float32)
    stems = sep.separate(x, 48_000)
    assert stems.rate == 48_000 and stems.vocals.shape == x.shape == stems.instrumental.shape
    np.testing.assert_allclose(stems.vocals + stems.instrumental, x, atol=1e-6)


def test_non_finite_samples_are_counted_and_separated_as_silence():
    sep = Separator("tiny-test")
    x = _voice_with_gaps(sep.rate)
    x[1000] = np.nan
    x[2000:2003] = np.inf
    stems = sep.separate(x)
    assert stems.nonfinite == 4
    assert np.isfinite(stems.vocals).all() and np.isfinite(stems.instrumental).all()
    assert np.isnan(x[1000])  # the caller's array is left as it was


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="samples, channels"):
        Separator(PassThrough()).separate(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="positive"):
        Separator(PassThrough()).separate(np.zeros(1000, np.float32), 0)
    with pytest.raises(ValueError, match="chunk_frames"):
        Separator(PassThrough(), chunk_frames=0)
