"""Torch twin of :mod:`deepiso.realtime.dsp`'s offline path (STFT, features, awareness, iSTFT).

Same frame convention, windows and scaling as the numpy functions (a test
proves them equal to 1e-5), but on tensors, on any device, and
differentiable, so the training loop computes features on the GPU and can
take a time-domain loss through :func:`istft`.

Layouts: signals ``(..., samples)``; spectra complex ``(..., frames, bins)``;
features float ``(..., frames, 2 * bins)`` (all real parts, then all
imaginary parts); contexts ``(..., frames, K * 2 * bins)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from deepiso.realtime import dsp, windows
from deepiso.realtime.frame import FrameSpec


class Frontend(torch.nn.Module):
    """Holds the analysis and synthesis windows of one :class:`FrameSpec` as buffers."""

    def __init__(self, spec: FrameSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("analysis", torch.from_numpy(windows.analysis_window(spec.window, spec.n_fft)),
                             persistent=False)
        self.register_buffer("synthesis",
                             torch.from_numpy(dsp.spec_synthesis_window(spec)),
                             persistent=False)

    def stft(self, x: Tensor) -> Tensor:
        """``(..., samples)`` real → complex ``(..., samples // hop, n_bins)`` (== :func:`dsp.stft`)."""
        n_fft, hop = self.spec.n_fft, self.spec.hop
        n_frames = x.shape[-1] // hop
        x = F.pad(x[..., : n_frames * hop], (n_fft - hop, 0))
        frames = x.unfold(-1, n_fft, hop)[..., :n_frames, :]
        return torch.fft.rfft(frames * self.analysis, dim=-1)

    def istft(self, spectrum: Tensor) -> Tensor:
        """Complex ``(..., T, n_bins)`` → ``(..., T * hop)`` in the streaming convention (== :func:`dsp.istft`).

        The output is the signal delayed by ``synthesis_span - hop`` samples
        (``n_fft - hop`` unless the synthesis is low-delay), exactly what the
        engine emits; differentiable.
        """
        n_fft, hop = self.spec.n_fft, self.spec.hop
        n_frames = spectrum.shape[-2]
        parts = -(-n_fft // hop)
        time = torch.fft.irfft(spectrum, n=n_fft, dim=-1) * self.synthesis  # (..., T, n_fft)
        if parts * hop != n_fft:
            time = F.pad(time, (0, parts * hop - n_fft))
        lead = time.shape[:-2]
        time = time.reshape(-1, n_frames, parts * hop).transpose(1, 2)  # (N, parts*hop, T)
        out = F.fold(time, output_size=(1, (n_frames + parts - 1) * hop), kernel_size=(1, parts * hop),
                     stride=(1, hop))  # (N, 1, 1, (T + parts - 1) * hop)
        skip = n_fft - self.spec.synthesis_span
        return out.reshape(lead + (-1,))[..., skip : skip + n_frames * hop]

    def features(self, spectrum: Tensor) -> Tensor:
        return features(spectrum)

    def contexts(self, x: Tensor) -> Tensor:
        """Signal ``(..., samples)`` → model input ``(..., frames, input_size)``."""
        return awareness(features(self.stft(x)), self.spec.past_frames, self.spec.future_frames)

    def delay(self, x: Tensor) -> Tensor:
        """``x`` delayed like :meth:`istft`'s output: ``(..., samples)`` → ``(..., frames * hop)``."""
        n = (x.shape[-1] // self.spec.hop) * self.spec.hop
        return F.pad(x, (self.spec.synthesis_delay, 0))[..., :n]


def features(spectrum: Tensor) -> Tensor:
    """Complex ``(..., bins)`` → real+imag ``(..., 2 * bins)`` (== :func:`dsp.features`)."""
    return torch.cat([spectrum.real, spectrum.imag], dim=-1)


def from_features(ri: Tensor) -> Tensor:
    """Real+imag ``(..., 2 * bins)`` → complex ``(..., bins)``."""
    n = ri.shape[-1] // 2
    return torch.complex(ri[..., :n].contiguous(), ri[..., n:].contiguous())


def awareness(feats: Tensor, past: int, future: int) -> Tensor:
    """``(..., T, F)`` → ``(..., T, (past + 1 + future) * F)``, oldest first, zeros outside.

    Equals :func:`dsp.awareness`.
    """
    padded = F.pad(feats, (0, 0, past, future))
    n = feats.shape[-2]
    return torch.cat([padded[..., j : j + n, :] for j in range(past + 1 + future)], dim=-1)
