"""Batch augmentations: small modules that act only in training mode.

Each takes and returns a batch dict ``{"mixture": (B, C, L), "vocals": (B, C, L)}``
(float tensors, any device) plus a ``torch.Generator`` on the batch's device
that the training loop seeds from ``(seed, epoch, step)``, so the noise is
fresh every batch and every epoch, yet a resumed run draws the same numbers.
In eval mode every module returns its input unchanged.

The accompaniment is always ``mixture - vocals``; modules that change the
mixture keep that identity where it has a meaning (gain, swap, remix) and
AWGN adds the noise to the mixture only, so the target stays the clean vocals.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

Batch = dict[str, Tensor]


def _uniform(shape: tuple[int, ...], lo: float, hi: float, gen: torch.Generator, device: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=device)


class AWGN(nn.Module):
    """The report's noise generation: ``profiles`` white-noise draws × ``len(snr_db)`` levels per item.

    Each item yields ``profiles * len(snr_db)`` noisy copies (noise at
    ``snr_db`` dB below the item's mixture RMS) mapping to the same vocals;
    with ``keep_clean`` the original is kept too. The batch grows from ``B``
    to ``B * (keep_clean + profiles * len(snr_db))``, ordered item-major.
    """

    def __init__(self, profiles: int = 1, snr_db: Sequence[float] = (20.0, 10.0), keep_clean: bool = True) -> None:
        super().__init__()
        if profiles < 0:
            raise ValueError(f"AWGN profiles must be >= 0, got {profiles}")
        self.profiles, self.snr_db, self.keep_clean = profiles, [float(s) for s in snr_db], keep_clean

    @property
    def copies(self) -> int:
        return int(self.keep_clean) + self.profiles * len(self.snr_db)

    def forward(self, batch: Batch, gen: torch.Generator) -> Batch:
        if not self.training or self.profiles == 0 or not self.snr_db:
            return batch
        mix, voc = batch["mixture"], batch["vocals"]
        b, c, n = mix.shape
        rms = mix.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-5)  # (B, 1, 1)
        stds = torch.tensor([10 ** (-s / 20) for s in self.snr_db], device=mix.device)  # (M,)
        noise = torch.randn((b, self.profiles, 1, c, n), generator=gen, device=mix.device)
        noisy = mix[:, None, None] + noise * stds[None, None, :, None, None] * rms[:, None, None]  # (B, N, M, C, L)
        noisy = noisy.reshape(b, -1, c, n)
        if self.keep_clean:
            noisy = torch.cat([mix[:, None], noisy], dim=1)
        k = noisy.shape[1]
        out = dict(batch)
        out["mixture"] = noisy.reshape(b * k, c, n)
        out["vocals"] = voc[:, None].expand(b, k, c, n).reshape(b * k, c, n)
        return out


class RandomGain(nn.Module):
    """Scale each item (mixture and vocals alike) by a gain uniform in ``[low_db, high_db]`` dB."""

    def __init__(self, low_db: float = -6.0, high_db: float = 6.0) -> None:
        super().__init__()
        self.low_db, self.high_db = low_db, high_db

    def forward(self, batch: Batch, gen: torch.Generator) -> Batch:
        if not self.training or self.low_db == self.high_db == 0:
            return batch
        mix = batch["mixture"]
        db = _uniform((mix.shape[0], 1, 1), self.low_db, self.high_db, gen, mix.device)
        g = torch.pow(10.0, db / 20)
        return {**batch, "mixture": mix * g, "vocals": batch["vocals"] * g}


class ChannelSwap(nn.Module):
    """Swap left and right of a stereo item with probability ``p`` (mixture and vocals together)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, batch: Batch, gen: torch.Generator) -> Batch:
        mix = batch["mixture"]
        if not self.training or self.p <= 0 or mix.shape[1] != 2:
            return batch
        swap = (torch.rand((mix.shape[0], 1, 1), generator=gen, device=mix.device) < self.p)
        return {**batch, "mixture": torch.where(swap, mix.flip(1), mix),
                "vocals": torch.where(swap, batch["vocals"].flip(1), batch["vocals"])}


class Remix(nn.Module):
    """With probability ``p`` per item, put its vocals over another item's accompaniment.

    New pairs the dataset never held (Demucs-style remixing); the
    accompaniment of item ``i`` is taken from a random other item.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, batch: Batch, gen: torch.Generator) -> Batch:
        mix, voc = batch["mixture"], batch["vocals"]
        b = mix.shape[0]
        if not self.training or self.p <= 0 or b < 2:
            return batch
        acc = mix - voc
        shift = torch.randint(1, b, (1,), generator=gen, device=mix.device)
        other = torch.roll(acc, shifts=int(shift.item()), dims=0)  # never the item's own accompaniment
        pick = torch.rand((b, 1, 1), generator=gen, device=mix.device) < self.p
        acc = torch.where(pick, other, acc)
        return {**batch, "mixture": voc + acc}


class Onset(nn.Module):
    """With probability ``p`` per item, silence the first ``k`` samples of mixture and vocals alike.

    ``k`` is uniform in ``[0, max_samples)``. Without it every training item starts at the
    same place of the hop grid (the first frame holds exactly one hop of signal), while a
    live signal starts from silence at any sample: at a few phases of the grid the network,
    started from its zero state, locked into a constant mask that passes everything for
    seconds. Applied last, so the silenced stretch stays digital silence (the engine's
    silence rule holds the state at zero there, as training starts from zero).
    """

    def __init__(self, p: float = 0.0, max_samples: int = 4096) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"onset probability must be in [0, 1], got {p}")
        if max_samples < 1:
            raise ValueError(f"onset max_samples must be >= 1, got {max_samples}")
        self.p, self.max_samples = p, int(max_samples)

    def forward(self, batch: Batch, gen: torch.Generator) -> Batch:
        mix = batch["mixture"]
        if not self.training or self.p <= 0:
            return batch
        b, _, n = mix.shape
        pick = torch.rand((b,), generator=gen, device=mix.device) < self.p
        k = torch.randint(0, min(self.max_samples, n), (b,), generator=gen, device=mix.device)
        k = torch.where(pick, k, torch.zeros_like(k))
        keep = (torch.arange(n, device=mix.device)[None, :] >= k[:, None])[:, None, :].to(mix.dtype)
        return {**batch, "mixture": mix * keep, "vocals": batch["vocals"] * keep}


class StateCarry:
    """Items that start from the LSTM state of the item before them: truncated BPTT over a stream.

    A training item starts from the zero state and lasts a few seconds; the live engine's state is
    as old as the stream. With probability ``p`` per batch row, an item starts instead from the
    state its row ended the previous step with, detached (no gradient crosses it), so the network
    learns to isolate from states of every age, and to follow a change of material (the previous
    item is unrelated, as after a change of song or of talker). A row keeps carrying with
    probability ``p`` each step, so the age of its state is geometric, ``1 / (1 - p)`` items on
    average. An item that opens on digital silence (its first ``hop`` samples all zero) starts from
    zeros, as the engine restarts its state after a silent context.

    ``initial(mixture, gen)`` gives the state for a batch (``None``: zeros), ``update(state)`` keeps
    the state the batch ended with; ``load_state_dict()`` restores it when a run resumes.
    """

    def __init__(self, p: float = 0.0, hop: int = 1) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"carry_state probability must be in [0, 1), got {p}")
        self.p, self.hop = float(p), int(hop)
        self.state: tuple[Tensor, Tensor] | None = None

    def initial(self, mixture: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor] | None:
        """The state for items ``mixture`` ``(B, L)`` (one row per LSTM batch row), or ``None`` for zeros."""
        if self.p <= 0 or self.state is None or self.state[0].shape[1] != mixture.shape[0]:
            return None
        keep = torch.rand((mixture.shape[0],), generator=gen, device=mixture.device) < self.p
        keep &= mixture[:, : self.hop].abs().amax(dim=1) > 0
        k = keep.to(self.state[0].dtype)[None, :, None]
        return self.state[0] * k, self.state[1] * k

    def update(self, state: tuple[Tensor, Tensor]) -> None:
        if self.p > 0:
            self.state = (state[0].detach(), state[1].detach())

    def load_state_dict(self, stacked: Tensor | None, device: torch.device | str | None = None) -> None:
        """Carry on from ``torch.stack(state)`` ``(2, layers, B, hidden)`` (a resumed run's), or from none."""
        self.state = None if stacked is None else (stacked[0].to(device), stacked[1].to(device))


class Augment(nn.Module):
    """The configured chain, applied in order: gain, channel swap, remix, AWGN, onset."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.chain = nn.ModuleList(modules)

    def forward(self, batch: Batch, gen: torch.Generator) -> Batch:
        for m in self.chain:
            batch = m(batch, gen)
        return batch
