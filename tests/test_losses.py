"""Contrastive cosine distance, magnitude and SI-SDR losses: values, silent frames, gradients."""

import math

import pytest
import torch

from deepiso.train.losses import (
    LossWeights,
    combined_loss,
    contrastive_cosine,
    gap_loss,
    magnitude_loss,
    si_sdr,
    si_sdr_loss,
)


def _frames(seed=0, b=2, t=5, f=18):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, f, generator=g), torch.randn(b, t, f, generator=g)


def test_contrastive_is_minimal_at_the_vocals_and_maximal_at_the_accompaniment():
    v, a = _frames()
    a = a - (a * v).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True) * v  # a ⟂ v
    at_vocals = contrastive_cosine(v, v, a)
    at_accomp = contrastive_cosine(a, v, a)
    away = contrastive_cosine(v - a, v, a)  # same angle to v as ... further from a
    assert abs(float(at_vocals) - 1.0) < 1e-5  # d_v = 0, d_a = 1 (orthogonal)
    assert abs(float(at_accomp) - 3.0) < 1e-5  # d_v = 1, d_a = 2
    assert float(away) < float(at_vocals)  # pushing away from the accompaniment lowers the loss
    # scale-invariant in the prediction
    assert abs(float(contrastive_cosine(5 * v, v, a)) - float(at_vocals)) < 1e-5


def test_contrastive_is_finite_with_gradient_on_silent_targets():
    _, a = _frames(1)
    v = torch.zeros_like(a)
    pred = (0.3 * a).clone().requires_grad_(True)
    loss = contrastive_cosine(pred, v, a)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(pred.grad).all()
    assert float(pred.grad.norm()) > 0  # it pushes a prediction towards silence
    assert float(contrastive_cosine(torch.zeros_like(a), v, a)) < loss.item()
    # everything silent, prediction silent: zero, finite gradient
    z = torch.zeros(1, 3, 8, requires_grad=True)
    loss = contrastive_cosine(z, torch.zeros(1, 3, 8), torch.zeros(1, 3, 8))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
    # vocals only (no accompaniment): the accompaniment term is off
    v, _ = _frames(2)
    assert abs(float(contrastive_cosine(v, v, torch.zeros_like(v)))) < 1e-5


def test_magnitude_loss():
    v, a = _frames(3)
    assert float(magnitude_loss(v, v)) < 1e-6
    assert float(magnitude_loss(v + a, v)) > 0.1


def test_si_sdr_values():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 4000, generator=g)
    noise = torch.randn(3, 4000, generator=g)
    est = 2.0 * ref + 0.1 * noise
    want = 10 * torch.log10((4 * ref.pow(2).sum(-1)) / (0.01 * noise.pow(2).sum(-1)))
    torch.testing.assert_close(si_sdr(est, ref), want, atol=0.05, rtol=0)
    # silent references are skipped; all silent → 0 with a graph
    est.requires_grad_(True)
    loss = si_sdr_loss(est, torch.zeros_like(ref), ref)
    assert loss.item() == 0.0
    mixed = torch.stack([ref[0], torch.zeros(4000)])
    loss = si_sdr_loss(est[:2], mixed, ref[:2])
    torch.testing.assert_close(loss, -si_sdr(est[:1], ref[:1]).mean())


def test_combined_terms_and_weights():
    v, a = _frames(4)
    pred = v + 0.5 * a
    w = LossWeights(contrastive=1.0, magnitude=2.0, si_sdr=0.0)
    total, parts = combined_loss(w, pred, v, a)
    assert set(parts) == {"contrastive", "magnitude"}
    assert abs(float(total) - (parts["contrastive"] + 2.0 * parts["magnitude"])) < 1e-5
    try:
        combined_loss(LossWeights(si_sdr=1.0), pred, v, a)
    except ValueError as exc:
        assert "waveforms" in str(exc)
    else:
        raise AssertionError("SI-SDR without waveforms must fail")


def test_gap_loss_measures_the_estimate_in_voice_free_frames_only():
    v, a = _frames(7, b=3, t=10)
    v[0, 4:] = 0.0  # item 0: voice-free from frame 4 on
    v[1] = 0.0  # item 1: accompaniment only
    # item 2: voiced throughout: no gap, it does not count
    mix = v + a
    assert abs(float(gap_loss(mix, v, a))) < 1e-5  # passing the mixture through: 0 dB
    assert abs(float(gap_loss(0.1 * mix, v, a)) - (-20.0)) < 1e-3  # 20 dB down in the gaps
    assert abs(float(gap_loss(v.clone(), v, a, limit_db=60.0)) - (-60.0)) < 1e-6  # silence in the gaps: the floor
    louder_where_voiced = mix.clone()
    louder_where_voiced[0, :4] *= 100.0
    louder_where_voiced[2] *= 100.0
    assert abs(float(gap_loss(louder_where_voiced, v, a))) < 1e-5  # voiced frames do not count
    pred = (0.5 * mix).requires_grad_()
    gap_loss(pred, v, a).backward()
    assert pred.grad is not None and float(pred.grad[0, 4:].abs().sum()) > 0
    assert float(pred.grad[0, :4].abs().sum()) == 0.0 and float(pred.grad[2].abs().sum()) == 0.0
    no_gap = gap_loss(mix[2:], v[2:], a[2:])
    assert float(no_gap) == 0.0
    total, parts = combined_loss(LossWeights(contrastive=0.0, gap=0.5), 0.1 * mix, v, a)
    assert set(parts) == {"gap"} and abs(float(total) - 0.5 * parts["gap"]) < 1e-6
    # the floor is the weights' gap_limit_db: 40 dB down in the gaps counts as done at a limit of 30
    total, parts = combined_loss(LossWeights(contrastive=0.0, gap=1.0, gap_limit_db=30.0), 0.01 * mix, v, a)
    assert abs(parts["gap"] - (-30.0)) < 1e-4
    pred = (0.01 * mix).requires_grad_()
    combined_loss(LossWeights(contrastive=0.0, gap=1.0, gap_limit_db=30.0), pred, v, a)[0].backward()
    assert float(pred.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="gap_limit_db"):
        LossWeights(gap=1.0, gap_limit_db=0.0)
