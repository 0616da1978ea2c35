"""The torch feature twin equals deepiso.realtime.dsp (≤ 1e-5), and its iSTFT is differentiable."""

import numpy as np
import pytest
import torch

from deepiso.realtime import dsp
from deepiso.realtime.frame import FrameSpec
from deepiso.train.features import Frontend, awareness, features, from_features

SPECS = [FrameSpec(16_000, 256, 64, past_frames=2, future_frames=1),
         FrameSpec(44_100, 1024, 256, past_frames=2, future_frames=2),
         FrameSpec(16_000, 300, 128, window="sqrt_hann", past_frames=4),
         FrameSpec(44_100, 1024, 256, past_frames=2, future_frames=1, synthesis_length=768),  # low-delay
         FrameSpec(16_000, 512, 128, window="hamming", synthesis_length=256)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.n_fft}-{s.hop}-{s.window}-{s.synthesis_span}")
def test_torch_twin_equals_numpy(spec):
    x = np.random.default_rng(0).standard_normal((2, 3, 6 * spec.n_fft + 17)).astype(np.float32) * 0.5
    fe = Frontend(spec)
    tx = torch.from_numpy(x)
    ref_spec = dsp.stft(x, spec)
    np.testing.assert_allclose(fe.stft(tx).numpy(), ref_spec, atol=1e-5)
    ref_ctx = dsp.awareness(dsp.features(ref_spec), spec.past_frames, spec.future_frames)
    np.testing.assert_allclose(fe.contexts(tx).numpy(), ref_ctx, atol=1e-5)
    np.testing.assert_allclose(awareness(features(torch.from_numpy(ref_spec)), spec.past_frames,
                                         spec.future_frames).numpy(), ref_ctx, atol=1e-6)
    np.testing.assert_allclose(fe.istft(torch.from_numpy(ref_spec)).numpy(), dsp.istft(ref_spec, spec), atol=1e-5)
    # analysis + synthesis == the signal delayed like the stream
    np.testing.assert_allclose(fe.istft(fe.stft(tx)).numpy(), fe.delay(tx).numpy(), atol=1e-5)
    assert torch.equal(from_features(features(fe.stft(tx))), fe.stft(tx))


def test_istft_is_differentiable():
    spec = SPECS[0]
    fe = Frontend(spec)
    ri = torch.randn(1, 20, spec.feature_size, requires_grad=True)
    wave = fe.istft(from_features(ri))
    wave.pow(2).sum().backward()
    assert ri.grad is not None and torch.isfinite(ri.grad).all() and float(ri.grad.abs().sum()) > 0
