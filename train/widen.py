"""Grow a trained :class:`IsolatorNet` into a wider one that computes the same function.

A wider network trained from scratch sits on a plateau for a long time (the
recipe records one that stayed near +1.6 dB where the narrower network had
reached +2.8); starting it from a trained narrower one skips that. This is
Net2Net's widening (Chen, Goodfellow and Shlens, 2016): every new unit is a
copy of an existing one, and the weights that read a unit and its copies are
divided among them, so the sum the next layer sees is unchanged.

What can grow: ``encoder_width`` (the shared per-frame encoder), ``pre_fc``,
``hidden`` (every LSTM layer; a copied unit gets the gate rows of its original
for all four gates, and the recurrent weights that read it are divided like
any others) and ``fc_width`` (the FC head's hidden layers; a deep filter's
head reads the last of them, as the mask's output layer does). Everything
else must stay as it is.

A LayerNorm over a grown layer keeps its statistics only when every unit has
the same number of copies, i.e. when the new width is a multiple of the old
one: then the widened network computes what the original does (to float
rounding). Another width works too, but the norms' mean and variance move and
so does the output; :func:`widen` reports the largest change it measured.

Copies that stay identical get identical gradients and never part. So the
weight that reads a unit is not divided evenly among its copies but in
random shares around even (``noise``: their relative spread): the copies
still compute the same thing, and the sum the next layer sees is still
exactly the original's, but their gradients differ from the first step on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .model import IsolatorNet, ModelConfig, build_model

#: The ModelConfig fields :func:`widen` can grow.
WIDTH_FIELDS = ("encoder_width", "pre_fc", "hidden", "fc_width")


class WidenError(ValueError):
    """The target configuration is not a widening of the network's."""


@dataclass(frozen=True)
class _Map:
    """New unit j copies old unit ``source[j]`` and carries ``share[j]`` of what reads the original
    (the shares of one original's copies sum to 1)."""

    source: np.ndarray
    share: np.ndarray

    @classmethod
    def grow(cls, old: int, new: int, rng: np.random.Generator, noise: float) -> _Map:
        reps, extra = divmod(new, old)
        source = np.concatenate([np.tile(np.arange(old), reps), rng.choice(old, size=extra, replace=False)])
        weight = np.clip(1.0 + noise * rng.standard_normal(new), 0.5, 1.5)
        weight[np.bincount(source, minlength=old)[source] == 1] = 1.0  # a unit with no copy keeps all
        return cls(source, weight / np.bincount(source, weights=weight, minlength=old)[source])

    @classmethod
    def blocks(cls, inner: _Map, blocks: int, old_width: int) -> _Map:
        """``blocks`` side-by-side copies of ``inner`` (the K context positions of the encoder's output)."""
        source = np.concatenate([b * old_width + inner.source for b in range(blocks)])
        return cls(source, np.tile(inner.share, blocks))

    @classmethod
    def identity(cls, width: int) -> _Map:
        return cls(np.arange(width), np.ones(width))

    def concat(self, other: _Map, offset: int) -> _Map:
        return _Map(np.concatenate([self.source, offset + other.source]), np.concatenate([self.share, other.share]))


def _rows(w: Tensor, m: _Map, gates: int = 1) -> Tensor:
    """Rows (or, of a vector, entries) of ``w`` for the new units (``gates`` stacked blocks, as an
    LSTM's i, f, g, o)."""
    old = w.shape[0] // gates
    idx = np.concatenate([g * old + m.source for g in range(gates)])
    return w[torch.from_numpy(idx)]


def _cols(w: Tensor, m: _Map) -> Tensor:
    """Columns of ``w`` reading the new units: each original's weight in its copies' shares."""
    return w[:, torch.from_numpy(m.source)] * torch.from_numpy(m.share).to(w.dtype)


def widen(net: IsolatorNet, cfg: ModelConfig, *, noise: float = 0.1, seed: int = 0) -> IsolatorNet:
    """``net`` grown to ``cfg`` (same frame contract; only :data:`WIDTH_FIELDS` may change, none may shrink)."""
    old = net.cfg
    changed = [k for k, v in cfg.to_dict().items() if old.to_dict().get(k) != v and k != "name"]
    if bad := [k for k in changed if k not in WIDTH_FIELDS]:
        raise WidenError(f"only {', '.join(WIDTH_FIELDS)} can grow; {', '.join(bad)} differ")
    for k in WIDTH_FIELDS:
        if getattr(cfg, k) < getattr(old, k):
            raise WidenError(f"{k} cannot shrink ({getattr(old, k)} -> {getattr(cfg, k)})")
        if (getattr(old, k) == 0) != (getattr(cfg, k) == 0):
            raise WidenError(f"{k} cannot be switched on or off ({getattr(old, k)} -> {getattr(cfg, k)})")
    if old.fc_layers == 1 and cfg.fc_width != old.fc_width:
        raise WidenError("fc_width has no layer to grow with fc_layers 1")
    rng = np.random.default_rng(seed)
    k_ctx = net.spec.context
    src = {k: v.detach().clone() for k, v in net.state_dict().items()}
    out: dict[str, Tensor] = {}

    def grow_linear(prefix: str, rows: _Map | None, cols: _Map | None) -> None:
        w, b = src[f"{prefix}.weight"], src[f"{prefix}.bias"]
        if cols is not None:
            w = _cols(w, cols)
        if rows is not None:
            w, b = _rows(w, rows), _rows(b, rows)
        out[f"{prefix}.weight"], out[f"{prefix}.bias"] = w, b

    # the encoded context: K frames of the encoder's width, or the frames themselves
    if net.frame_encoder is not None:
        enc = _Map.grow(old.encoder_width, cfg.encoder_width, rng, noise)
        grow_linear("frame_encoder.0", enc, None)
        z, z_width = _Map.blocks(enc, k_ctx, old.encoder_width), k_ctx * old.encoder_width
    else:
        z_width = k_ctx * net.frame_transform.frame_size
        z = _Map.identity(z_width)
    if old.pre_fc:
        pre = _Map.grow(old.pre_fc, cfg.pre_fc, rng, noise)
        grow_linear("pre_fc.0", pre, z)
        z, z_width = pre, old.pre_fc
    def grow_norm(prefix: str, m: _Map) -> None:  # a LayerNorm's gain and bias (absent with norm "none")
        for name in ("weight", "bias"):
            if f"{prefix}.{name}" in src:
                out[f"{prefix}.{name}"] = _rows(src[f"{prefix}.{name}"], m)

    grow_norm("in_norm", z)
    hid = _Map.grow(old.hidden, cfg.hidden, rng, noise)
    for layer in range(old.layers):
        reads = z if layer == 0 else hid
        out[f"lstm.weight_ih_l{layer}"] = _rows(_cols(src[f"lstm.weight_ih_l{layer}"], reads), hid, 4)
        out[f"lstm.weight_hh_l{layer}"] = _rows(_cols(src[f"lstm.weight_hh_l{layer}"], hid), hid, 4)
        for b in ("bias_ih", "bias_hh"):
            out[f"lstm.{b}_l{layer}"] = _rows(src[f"lstm.{b}_l{layer}"], hid, 4)
    grow_norm("out_norm", hid)
    reads = z.concat(hid, z_width) if old.skip else hid  # the head reads [z, LSTM output]
    linears = [i for i, m in enumerate(net.head) if isinstance(m, torch.nn.Linear)]
    fc_old, fc_new = old.fc_width or old.hidden, cfg.fc_width or cfg.hidden  # 0: the LSTM's width
    for n, i in enumerate(linears):
        if n == len(linears) - 1 and "df_head.weight" in src:  # the deep filter reads what the last layer reads
            grow_linear("df_head", None, reads)
        rows = None if n == len(linears) - 1 else _Map.grow(fc_old, fc_new, rng, noise)  # the last maps to the bins
        grow_linear(f"head.{i}", rows, reads)
        reads = rows
    for k, v in src.items():  # buffers and whatever has no width (the frame transform)
        out.setdefault(k, v)
    wide = build_model(net.spec, cfg)
    missing = set(wide.state_dict()) ^ set(out)
    if missing:
        raise WidenError(f"cannot map {', '.join(sorted(missing))}")  # pragma: no cover - a new layer kind
    wide.load_state_dict(out)
    return wide.train(net.training)


def output_change(a: IsolatorNet, b: IsolatorNet, frames: int = 64, seed: int = 0) -> float:
    """Largest absolute difference between the outputs of ``a`` and ``b`` on random input (a check)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, frames, a.spec.input_size, generator=gen)
    with torch.no_grad():
        return float((a(x)[0] - b(x)[0]).abs().max())


__all__ = ["WIDTH_FIELDS", "WidenError", "output_change", "widen"]
