"""Losses: the report's contrastive cosine distance, plus magnitude, SI-SDR and gap terms.

Spectra are real+imag features ``(B, T, 2 * bins)`` (``dsp.features``
layout); each frame is one vector of ``2 * bins`` reals, as in the report.
Waveforms are ``(B, samples)``.

Contrastive cosine distance (report, section X): minimise the angle between
the prediction ``p`` and the vocals ``v``, maximise it against the
accompaniment ``a``. Per frame::

    d_v = 1 - cos(p, v)                      if v is present
        = 2 |p|² / (|p|² + |mix|² + eps)     if v is silent (loopback's
                                             accompaniment-only items): 0 only for p = 0
    d_a = 1 + cos(p, a)                      if a is present, else 0
    loss = mean(d_v) + accompaniment_weight * mean(d_a)

so the loss is finite, and has a useful gradient, on silent frames too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

EPS = 1e-8


def _norm(x: Tensor) -> Tensor:
    # sqrt(sum x^2 + eps^2): differentiable at x = 0
    return torch.sqrt(x.pow(2).sum(dim=-1) + EPS**2)


def present(x: Tensor, mix: Tensor, rel: float = 1e-3, floor: float = 1e-6) -> Tensor:
    """Frames ``(B, T)`` where ``x`` carries energy: ``|x| > rel * |mix| + floor``."""
    return _norm(x) > rel * _norm(mix) + floor


def contrastive_cosine(pred: Tensor, vocals: Tensor, accompaniment: Tensor,
                       accompaniment_weight: float = 1.0) -> Tensor:
    """The report's contrastive cosine distance (see the module docstring); a scalar."""
    mix = vocals + accompaniment
    np_, nv, na = _norm(pred), _norm(vocals), _norm(accompaniment)
    cos_v = (pred * vocals).sum(-1) / (np_ * nv)
    cos_a = (pred * accompaniment).sum(-1) / (np_ * na)
    p2 = pred.pow(2).sum(-1)
    silent_term = 2 * p2 / (p2 + mix.pow(2).sum(-1) + 1e-12)
    d_v = torch.where(present(vocals, mix), 1 - cos_v, silent_term)
    d_a = torch.where(present(accompaniment, mix), 1 + cos_a, torch.zeros_like(cos_a))
    return d_v.mean() + accompaniment_weight * d_a.mean()


def magnitude_loss(pred: Tensor, vocals: Tensor, power: float = 0.5) -> Tensor:
    """Mean absolute difference of power-compressed magnitudes (``|X|^power``); a scalar."""
    n = pred.shape[-1] // 2
    mp = torch.sqrt(pred[..., :n] ** 2 + pred[..., n:] ** 2 + EPS**2)
    mv = torch.sqrt(vocals[..., :n] ** 2 + vocals[..., n:] ** 2 + EPS**2)
    return (mp.pow(power) - mv.pow(power)).abs().mean()


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB per item: ``(B, samples)`` × 2 → ``(B,)``."""
    ref_energy = reference.pow(2).sum(-1, keepdim=True) + eps
    scale = (estimate * reference).sum(-1, keepdim=True) / ref_energy
    target = scale * reference
    noise = estimate - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def si_sdr_loss(estimate: Tensor, reference: Tensor, mixture: Tensor, limit_db: float = 50.0) -> Tensor:
    """Negative mean SI-SDR (dB, capped at ``limit_db``) over items whose reference is not silent.

    SI-SDR is undefined for a silent reference; such items (loopback's
    accompaniment-only ones) are left to the other terms. Zero when all are silent.
    """
    voiced = reference.pow(2).mean(-1) > 1e-6 * mixture.pow(2).mean(-1) + 1e-12
    if not bool(voiced.any()):
        return estimate.sum() * 0.0
    return -si_sdr(estimate[voiced], reference[voiced]).clamp(max=limit_db).mean()


def gap_loss(pred: Tensor, vocals: Tensor, accompaniment: Tensor, limit_db: float = 60.0) -> Tensor:
    """How loud the estimate is where there is no voice, in dB against the mixture there (a scalar).

    Gap frames are the frames ``(B, T)`` whose vocal energy is below 1e-6 of
    the mixture's (voice-free stretches, accompaniment-only items). Per item
    with gap frames: ``10 log10(sum |pred|^2 / sum |mix|^2)`` over them,
    floored at ``-limit_db``; the mean over those items. Scale-invariant like
    SI-SDR, so its weight is comparable with the SI-SDR term's; zero when no
    item has a gap. This is the quality benchmark's "gaps" column as a loss.
    """
    mix = vocals + accompaniment
    e_voc, e_mix, e_pred = vocals.pow(2).sum(-1), mix.pow(2).sum(-1), pred.pow(2).sum(-1)
    gap = (e_voc <= 1e-6 * e_mix) & (e_mix > 0)
    has_gap = gap.any(dim=-1)
    if not bool(has_gap.any()):
        return pred.sum() * 0.0
    g = gap.to(pred.dtype)
    ratio = ((e_pred * g).sum(-1) + EPS) / ((e_mix * g).sum(-1) + EPS)
    db = (10 * torch.log10(ratio)).clamp(min=-limit_db)
    return db[has_gap].mean()


@dataclass
class LossWeights:
    contrastive: float = 1.0
    accompaniment: float = 1.0  # weight of the contrastive term against the accompaniment
    magnitude: float = 0.0
    magnitude_power: float = 0.5
    si_sdr: float = 0.0
    gap: float = 0.0  # weight of :func:`gap_loss` (dB, like the SI-SDR term)
    gap_limit_db: float = 60.0  # its floor: voice-free frames this far down count as done

    def __post_init__(self) -> None:
        if not float(self.gap_limit_db) > 0.0:
            raise ValueError(f"gap_limit_db must be > 0 dB, got {self.gap_limit_db}")


def combined_loss(w: LossWeights, pred: Tensor, vocals: Tensor, accompaniment: Tensor,
                  pred_wave: Tensor | None = None, vocals_wave: Tensor | None = None,
                  mix_wave: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of the enabled terms and each term's value (for logging).

    ``pred``/``vocals``/``accompaniment``: features ``(B, T, 2 * bins)``; the
    waveforms ``(B, samples)`` are needed only when ``w.si_sdr`` is non-zero.
    """
    total = pred.sum() * 0.0
    parts: dict[str, float] = {}
    if w.contrastive:
        c = contrastive_cosine(pred, vocals, accompaniment, w.accompaniment)
        total = total + w.contrastive * c
        parts["contrastive"] = float(c.detach())
    if w.magnitude:
        m = magnitude_loss(pred, vocals, w.magnitude_power)
        total = total + w.magnitude * m
        parts["magnitude"] = float(m.detach())
    if w.si_sdr:
        if pred_wave is None or vocals_wave is None or mix_wave is None:
            raise ValueError("the SI-SDR term needs the predicted, vocal and mixture waveforms")
        s = si_sdr_loss(pred_wave, vocals_wave, mix_wave)
        total = total + w.si_sdr * s
        parts["si_sdr"] = float(s.detach())
    if w.gap:
        g = gap_loss(pred, vocals, accompaniment, limit_db=w.gap_limit_db)
        total = total + w.gap * g
        parts["gap"] = float(g.detach())
    return total, parts
