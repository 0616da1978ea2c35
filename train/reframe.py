"""Move a trained :class:`IsolatorNet`'s awareness window: other past and future frames, same weights.

The network reads its context as ``K`` blocks, one per frame, oldest first
(the shared encoder's output per frame, or the frames themselves with the
``stack`` encoder). Every weight that reads the context reads it block by
block, so a block can be moved to another position. :func:`reframe` builds
the network for another ``past_frames`` / ``future_frames`` and gives each of
its context positions the weights of the old position at the same offset from
the output frame (the old ``-2`` block reads the new ``-2`` frame). A position
the old network did not have (a look-ahead frame the causal network never
saw) is read with zero weights, and a position the new network drops is
forgotten; everything after the first layer that reads the context is copied.

So the moved network computes what the old one did, except for what the
dropped frames contributed and, with ``norm="layer"``, the statistics of the
LayerNorm over the whole context (a new frame's block enters its mean and
variance; its gain and bias are those of the nearest old position).
Training then teaches the new positions to be used.

``synthesis_length`` (a low-delay synthesis) may change too: no weight reads
it, but the network was trained for the other synthesis, so it is worth
training on with the time-domain loss before it is used.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import Tensor

from deepiso.realtime.frame import FrameSpec

from .model import IsolatorNet, build_model

#: The FrameSpec fields :func:`reframe` can change.
WINDOW_FIELDS = ("past_frames", "future_frames", "synthesis_length")


class ReframeError(ValueError):
    """The target frame contract differs in more than the awareness window."""


def _positions(old: FrameSpec, new: FrameSpec) -> list[int | None]:
    """For each new context position, the old position at the same offset from the output frame."""
    out: list[int | None] = []
    for j in range(new.context):
        i = j - new.past_frames + old.past_frames
        out.append(i if 0 <= i < old.context else None)
    return out


def _nearest(old: FrameSpec, new: FrameSpec) -> list[int]:
    """For each new position, the old position nearest in offset (for a LayerNorm's gain and bias)."""
    return [min(max(j - new.past_frames + old.past_frames, 0), old.context - 1) for j in range(new.context)]


def _blocks(w: Tensor, block: int, positions: list[int | None], dim: int) -> Tensor:
    """``w`` with its ``dim`` axis (K old blocks of ``block``) rearranged into the new positions;
    ``None`` positions are zeros."""
    parts = []
    for i in positions:
        if i is None:
            shape = list(w.shape)
            shape[dim] = block
            parts.append(torch.zeros(shape, dtype=w.dtype))
        else:
            parts.append(w.narrow(dim, i * block, block))
    return torch.cat(parts, dim=dim)


def reframe(net: IsolatorNet, spec: FrameSpec) -> IsolatorNet:
    """``net`` with the awareness window of ``spec`` (only :data:`WINDOW_FIELDS` may differ)."""
    old = net.spec
    changed = [k for k, v in asdict(spec).items() if asdict(old)[k] != v]
    if bad := [k for k in changed if k not in WINDOW_FIELDS]:
        raise ReframeError(f"only {', '.join(WINDOW_FIELDS)} can change; {', '.join(bad)} differ")
    cfg = net.cfg
    block = cfg.encoder_width if net.frame_encoder is not None else net.frame_transform.frame_size
    k_old = old.context
    pos, near = _positions(old, spec), _nearest(old, spec)
    src = {k: v.detach().clone() for k, v in net.state_dict().items()}
    out = dict(src)
    if cfg.pre_fc:  # the pre-FC is the only layer that reads the blocks
        out["pre_fc.0.weight"] = _blocks(src["pre_fc.0.weight"], block, pos, 1)
    else:
        for name in ("weight", "bias"):
            if f"in_norm.{name}" in src:
                out[f"in_norm.{name}"] = _blocks(src[f"in_norm.{name}"], block, near, 0)  # type: ignore[arg-type]
        out["lstm.weight_ih_l0"] = _blocks(src["lstm.weight_ih_l0"], block, pos, 1)
        if cfg.skip:  # the head's first layer reads [context blocks, LSTM output]
            w = src["head.0.weight"]
            ctx, rest = w[:, : k_old * block], w[:, k_old * block :]
            out["head.0.weight"] = torch.cat([_blocks(ctx, block, pos, 1), rest], dim=1)
    moved = build_model(spec, cfg)
    mismatch = sorted(k for k, v in moved.state_dict().items() if out[k].shape != v.shape)
    if mismatch:
        raise ReframeError(f"cannot map {', '.join(mismatch)}")  # pragma: no cover - a new layer kind
    moved.load_state_dict(out)
    return moved.train(net.training)


__all__ = ["WINDOW_FIELDS", "ReframeError", "reframe"]
