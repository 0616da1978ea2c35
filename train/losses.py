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

Losses for the pauses (docs/training.md): :func:`compressed_spectral_loss`
(DeepFilterNet's power-law compressed spectral loss over every frame),
:func:`multi_resolution_stft_loss` (on the waveforms, at several STFT sizes)
and :func:`voice_guard_loss` (a one-sided penalty on removing voice). The
first two pull voice-free frames to silence on the scale of the voiced ones;
the third keeps them from doing it by muting quiet voice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

EPS = 1e-8
#: Smooth floor of a spectral magnitude in the compressed terms: ``sqrt(|X|^2 + SPEC_EPS^2)``. An STFT bin of
#: this size is white noise near -125 dBFS at n_fft 1024 (hann), under 16-bit quantisation; it keeps
#: ``|X|^c`` and its gradient finite at digital silence (where the gradient of ``|X|`` is exactly 0).
SPEC_EPS = 1e-5
#: The multi-resolution STFT term's FFT sizes (hops of a quarter), as in Parallel WaveGAN and DeepFilterNet.
MRSTFT_FFTS = (256, 512, 1024, 2048)


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


def _compressed(ri: Tensor, power: float) -> tuple[Tensor, Tensor]:
    """``(|X|^c, X |X|^(c-1))`` of features ``(..., 2 * bins)``: the compressed magnitude ``(..., bins)`` and the
    compressed spectrum with the phase of ``X``, as features ``(..., 2 * bins)``; ``|X|`` floored by SPEC_EPS."""
    n = ri.shape[-1] // 2
    mag = torch.sqrt(ri[..., :n] ** 2 + ri[..., n:] ** 2 + SPEC_EPS**2)
    cmag = mag.pow(power)
    gain = cmag / mag
    return cmag, ri * torch.cat([gain, gain], dim=-1)


def compressed_spectral_loss(pred: Tensor, vocals: Tensor, power: float = 0.3) -> Tensor:
    """DeepFilterNet's compressed spectral loss over every frame, voiced or not (a scalar).

    With ``Y`` the estimate's and ``S`` the vocals' STFT (the network's own
    frames: ``pred`` and ``vocals`` are features ``(B, T, 2 * bins)``), ``c =
    power`` and the mean over all items, frames and bins::

        loss = mean | |Y|^c e^{j arg Y} - |S|^c e^{j arg S} |^2  +  mean ( |Y|^c - |S|^c )^2

    (phase-aware part plus magnitude-only part, in equal parts), ``|X|`` floored
    smoothly at :data:`SPEC_EPS`.

    Scale: 0 for a perfect estimate. Not scale-invariant: it grows with the
    level as ``level^(2c)``. On a generated item (``testing.synth_track``) at
    -25 dBFS and 0 dB SNR the mixture passed through gives about 0.02 at the
    default network's frames and 0.03 at ``tiny-test``'s, about what
    :func:`magnitude_loss` gives it; silence gives about 0.003-0.01: like
    every compressed loss it prefers removing a broadband background with
    some voice to keeping both (hence :func:`voice_guard_loss`).

    Silent frames: every frame counts, with the same weight, so a voice-free
    frame's leftover background costs ``|Y|^(2c)`` per bin on the same scale as
    an error in a voiced frame (SI-SDR ignores such frames; the gap term
    measures them in dB). With ``S = 0`` the gradient on ``|Y|`` is
    ``2c |Y|^(2c-1)``: it grows as the residue gets quieter (a pull towards
    silence that does not fade), bounded near ``|Y| = SPEC_EPS`` and exactly 0
    at digital silence; finite everywhere.
    """
    mp, cp = _compressed(pred, power)
    mv, cv = _compressed(vocals, power)
    return 2.0 * (cp - cv).pow(2).mean() + (mp - mv).pow(2).mean()


def _stft_compressed(x: Tensor, n_fft: int, power: float) -> Tensor:
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    return torch.sqrt(spec.real**2 + spec.imag**2 + SPEC_EPS**2).pow(power)


def multi_resolution_stft_loss(estimate: Tensor, reference: Tensor, mixture: Tensor,
                               ffts: tuple[int, ...] | list[int] = MRSTFT_FFTS, power: float = 0.3) -> Tensor:
    """Multi-resolution STFT loss on waveforms ``(B, samples)`` (a scalar), on compressed magnitudes.

    For each FFT size ``n`` in ``ffts`` (hann window, hop ``n / 4``) with
    ``Y, S, M`` the compressed magnitudes ``|STFT|^c`` (``c = power``) of the
    estimate, the reference and the mixture, sums over the whole batch::

        sc_n  = || Y - S ||_F / || M ||_F                 (spectral convergence)
        mag_n = sum | Y - S | / sum M                      (magnitude distance)
        loss  = mean over n of (sc_n + mag_n)

    Why compressed magnitudes and not Parallel WaveGAN's log magnitudes: in a
    voice-free bin the target is the floor, and ``|log Y - log floor|`` makes
    a leftover at -20 dB cost more than any error in a voiced bin, set by the
    arbitrary floor: the dB gap term's failure (weight 0.1 collapsed
    validation, docs/training-history.md). ``|X|^0.3`` keeps a residue in the
    pauses on the scale of voiced errors (a -20 dB leftover costs half the
    mixture's compressed magnitude), as DeepFilterNet's loss does. Both parts
    are divided by the mixture's (not the reference's, as in Parallel
    WaveGAN), so the term is defined on voice-free items and hardly depends on
    the level (a few % over 20 dB, from bins near the floor) or the network's
    frame size: its weight carries over between networks.

    Scale: 0 for a perfect estimate, whatever the level. On a generated item
    (``testing.synth_track``, 0 dB SNR) the mixture passed through gives about
    1.7-1.8, half its level 1.4, silence 0.5-0.6 (about ``2 ||S|| / ||M||``),
    the voice at half its level 0.1.

    Silent frames: counted like voiced ones, so a voice-free stretch is pulled
    to silence by as much as its share of the mixture. With ``S`` at the floor
    the gradient on ``|Y|`` is ``c |Y|^(c-1)`` times the parts' normalisers:
    it grows as the residue gets quieter, is bounded near ``|Y| = SPEC_EPS``
    and exactly 0 at digital silence. A batch that is silent throughout gives
    0 for a silent estimate; the gradients are finite always.
    """
    total = estimate.sum() * 0.0
    for n in ffts:
        y, s, m = (_stft_compressed(x, int(n), power) for x in (estimate, reference, mixture))
        # the mixture's norms keep the floor: at least sqrt(bins) x floor^c, so a silent batch divides by it
        sc = (torch.sqrt((y - s).pow(2).sum() + EPS**2) - EPS) / torch.sqrt(m.pow(2).sum())
        mag = (y - s).abs().sum() / m.sum()
        total = total + sc + mag
    return total / len(ffts)


def voice_guard_loss(pred: Tensor, vocals: Tensor, power: float = 0.3) -> Tensor:
    """How much of the voice the estimate removes, one-sided, in compressed magnitudes (a scalar in 0..1).

    Per item with voice, over its bins (``pred``, ``vocals``: features
    ``(B, T, 2 * bins)``; ``c = power``; ``|X|`` floored by SPEC_EPS, written ``f``)::

        guard = sum relu(|S|^c - |Y|^c)^2 / sum (|S|^c - f^c)^2

    and the mean over items with voice (0 when none has). Only a shortfall
    counts: an estimate louder than the voice (background left in) costs
    nothing here, and a voice-free bin (``S = 0``) never counts, so it does
    not fight the pause terms in the gaps. Each item is normalised by its own
    voice, so quiet speech and soft singing weigh as much as loud voices, and
    the compression gives their quiet bins weight.

    Scale: 0 for a perfect estimate and for any estimate at least as loud as
    the voice in every bin; 1 for an estimate muted (silent) everywhere; the
    mixture passed through gives a few thousandths (bins where the background
    cancels part of the voice); an estimate 6 dB too quiet everywhere about 0.04.

    Silent frames: no gradient where the voice is silent. Where it is voiced
    and the estimate too quiet, the gradient on ``|Y|`` is
    ``-2c |Y|^(c-1) relu(.)``, strong for a nearly muted bin; it vanishes only
    within SPEC_EPS of digital silence (exactly 0 at ``Y = 0``).
    """
    mp, _ = _compressed(pred, power)
    mv, _ = _compressed(vocals, power)
    floor = SPEC_EPS**power
    dims = tuple(range(1, mv.dim()))
    den = (mv - floor).pow(2).sum(dims)
    num = torch.relu(mv - mp).pow(2).sum(dims)
    voiced = den > 1e-12
    if not bool(voiced.any()):
        return pred.sum() * 0.0
    return (num[voiced] / den[voiced]).mean()


@dataclass
class LossWeights:
    contrastive: float = 1.0
    accompaniment: float = 1.0  # weight of the contrastive term against the accompaniment
    magnitude: float = 0.0
    magnitude_power: float = 0.5
    si_sdr: float = 0.0
    gap: float = 0.0  # weight of :func:`gap_loss` (dB, like the SI-SDR term)
    gap_limit_db: float = 60.0  # its floor: voice-free frames this far down count as done
    compressed: float = 0.0  # weight of :func:`compressed_spectral_loss`
    mrstft: float = 0.0  # weight of :func:`multi_resolution_stft_loss` (needs the waveforms)
    mrstft_ffts: tuple[int, ...] | list[int] = MRSTFT_FFTS  # its FFT sizes (hops of a quarter)
    voice_guard: float = 0.0  # weight of :func:`voice_guard_loss`
    compressed_power: float = 0.3  # c of the three terms above

    def __post_init__(self) -> None:
        if not float(self.gap_limit_db) > 0.0:
            raise ValueError(f"gap_limit_db must be > 0 dB, got {self.gap_limit_db}")
        if not 0.0 < float(self.compressed_power) <= 1.0:
            raise ValueError(f"compressed_power must lie in (0, 1], got {self.compressed_power}")
        ffts = list(self.mrstft_ffts)
        if not ffts or any(isinstance(n, bool) or not isinstance(n, int) or n < 16 or n % 4 for n in ffts):
            raise ValueError(f"mrstft_ffts must be FFT sizes of at least 16, each a multiple of 4, got {ffts}")
        self.mrstft_ffts = tuple(ffts)

    def any_on(self) -> bool:
        """Whether any term has a non-zero weight."""
        return any([self.contrastive, self.magnitude, self.si_sdr, self.gap, self.compressed, self.mrstft,
                    self.voice_guard])

    @property
    def needs_waves(self) -> bool:
        """Whether a term takes waveforms (the SI-SDR and multi-resolution STFT terms)."""
        return bool(self.si_sdr or self.mrstft)


def combined_loss(w: LossWeights, pred: Tensor, vocals: Tensor, accompaniment: Tensor,
                  pred_wave: Tensor | None = None, vocals_wave: Tensor | None = None,
                  mix_wave: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of the enabled terms and each term's value (for logging).

    ``pred``/``vocals``/``accompaniment``: features ``(B, T, 2 * bins)``; the
    waveforms ``(B, samples)`` are needed only when ``w.si_sdr`` or ``w.mrstft`` is non-zero.
    """
    def waves(term: str) -> tuple[Tensor, Tensor, Tensor]:
        if pred_wave is None or vocals_wave is None or mix_wave is None:
            raise ValueError(f"the {term} term needs the predicted, vocal and mixture waveforms")
        return pred_wave, vocals_wave, mix_wave

    terms: dict[str, tuple[float, Callable[[], Tensor]]] = {
        "contrastive": (w.contrastive, lambda: contrastive_cosine(pred, vocals, accompaniment, w.accompaniment)),
        "magnitude": (w.magnitude, lambda: magnitude_loss(pred, vocals, w.magnitude_power)),
        "si_sdr": (w.si_sdr, lambda: si_sdr_loss(*waves("SI-SDR"))),
        "gap": (w.gap, lambda: gap_loss(pred, vocals, accompaniment, limit_db=w.gap_limit_db)),
        "compressed": (w.compressed, lambda: compressed_spectral_loss(pred, vocals, w.compressed_power)),
        "mrstft": (w.mrstft, lambda: multi_resolution_stft_loss(*waves("multi-resolution STFT"), w.mrstft_ffts,
                                                                w.compressed_power)),
        "voice_guard": (w.voice_guard, lambda: voice_guard_loss(pred, vocals, w.compressed_power)),
    }
    total = pred.sum() * 0.0
    parts: dict[str, float] = {}
    for name, (weight, term) in terms.items():
        if weight:
            value = term()
            total = total + weight * value
            parts[name] = float(value.detach())
    return total, parts
