"""Shared fixtures: a small streaming model, and a private PulseAudio server with virtual devices."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from deepiso.realtime.frame import FrameSpec
from deepiso.testing.pulse_server import BUS_MAP, PULSE_RATE, private_pulse  # noqa: F401 - used by the live tests


class StandInModel:
    """A small numpy LSTM with the engine's model interface (``spec``, ``batch``, ``reset``, ``step``).

    ``step`` takes ``(batch, spec.input_size)`` float32 and returns a
    preallocated ``(batch, spec.output_size)`` float32 array; ``h``/``c``
    carry over between steps exactly as in the exported step graph.
    """

    def __init__(self, spec: FrameSpec, batch: int = 1, hidden: int = 16, seed: int = 0,
                 identity: bool = False) -> None:
        rng = np.random.default_rng(seed)
        self.identity = identity  # spectrum output = the centre frame, computed without allocating
        self.spec, self.batch, self.card = spec, batch, {"name": "stand-in"}
        f, h = spec.input_size, hidden
        self.w_in = (rng.standard_normal((f, h)) / np.sqrt(f) * 8).astype(np.float32)
        self.w_x = (rng.standard_normal((h, 4 * h)) / np.sqrt(h)).astype(np.float32)
        self.w_h = (rng.standard_normal((h, 4 * h)) / np.sqrt(h)).astype(np.float32)
        self.w_out = (rng.standard_normal((h, spec.output_size)) / np.sqrt(h)).astype(np.float32)
        self.h = np.zeros((batch, h), np.float32)
        self.c = np.zeros((batch, h), np.float32)
        self.out = np.zeros((batch, spec.output_size), np.float32)
        self.steps = 0

    def reset(self) -> None:
        self.h.fill(0.0)
        self.c.fill(0.0)

    def step(self, features: np.ndarray) -> np.ndarray:
        spec = self.spec
        assert features.shape == (self.batch, spec.input_size) and features.dtype == np.float32
        assert features.flags.c_contiguous
        if self.identity:
            width = spec.feature_size
            np.copyto(self.out, features[:, spec.past_frames * width : (spec.past_frames + 1) * width])
            return self.out
        x = np.tanh(features @ self.w_in)
        g = x @ self.w_x + self.h @ self.w_h
        i, f, o, u = np.split(g, 4, axis=1)
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
        self.c[...] = sig(f) * self.c + sig(i) * np.tanh(u)
        self.h[...] = sig(o) * np.tanh(self.c)
        y = self.h @ self.w_out
        if spec.output == "ratio_mask":
            self.out[...] = sig(y)
        elif spec.output == "complex_mask":
            self.out[...] = np.tanh(y)
        else:
            width = spec.feature_size
            centre = features[:, spec.past_frames * width : (spec.past_frames + 1) * width]
            self.out[...] = centre * sig(y)
        self.steps += 1
        return self.out


def standin_loader(spec: FrameSpec, **options):
    """A loader ``(source, batch=...) -> model`` that ignores ``source``."""

    def load(source, batch: int = 1):
        return StandInModel(spec, batch=batch, **options)

    return load


@pytest.fixture
def small_spec() -> FrameSpec:
    return FrameSpec(sample_rate=16_000, n_fft=256, hop=64, past_frames=3, future_frames=0)


# ----------------------------------------------------------------------------
# A private PulseAudio server with virtual devices (no sound card needed)


@pytest.fixture(scope="session")
def pulse(tmp_path_factory):
    """A private PulseAudio server with a 4-channel bus: play on ``iso_play`` → engine input ``iso_in``;
    engine output ``iso_out``; one ``parec`` of ``bus.monitor`` sees both on one clock."""
    with private_pulse(tmp_path_factory.mktemp("pulse")) as server:
        yield server


@pytest.fixture
def allocation_growth():
    """``measure(fn, repeats) -> (peak, kept)``: bytes Python allocated at most, and kept, over ``repeats`` calls."""

    def measure(fn, repeats: int) -> tuple[int, int]:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in range(repeats):
                fn()
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak - base, current - base

    return measure


@pytest.fixture
def tiny_saved_set(tmp_path):
    """A saved evaluation set (quality.py --save-set) of 2 s items at 16 kHz drawn from a synthetic corpus."""
    from benchmarks import evalset

    corpus = tmp_path / "corpus"
    evalset.make_synthetic_corpus(corpus, splits=("valid", "test"), files_per_kind=2, seconds=3.0, rate=16000,
                                  espeak=False, seed=3)
    return evalset.save_set(evalset.build_set(corpus, split="valid", per_cell=1, seconds=2.0, rate=16000,
                                              seed=2), tmp_path / "set")
