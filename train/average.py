"""Weight averaging: one network from several versions of the same network.

Two uses, both plain weighted means of every parameter:

* the last epochs of one run (``keep_epochs`` writes ``epoch_NNN.pt``): the
  mean of points along the end of a trajectory often generalises better than
  any one of them (stochastic weight averaging; fairseq's
  ``average_checkpoints``);
* a starting model and a network fine-tuned from it (``--weights 0.5 0.5``, or
  any blend): an interpolation that can keep what each is better at, since the
  two lie in one basin of the loss (WiSE-FT).

Inputs are training checkpoints (``.pt``) or deepiso ONNX files (a path or a
shipped name such as ``default``; int8 files are dequantised, see
:mod:`deepiso.train.onnx_import`). They must be the same network: the same
frame contract and model configuration. The result is a checkpoint that
``deepiso export`` takes; its metrics record what was averaged, and it keeps
the first checkpoint input's training configuration::

    deepiso train average runs/x/avg.pt runs/x/epoch_002.pt runs/x/epoch_003.pt
    deepiso train average runs/x/blend.pt default runs/x/best.pt --weights 0.3 0.7
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .model import IsolatorNet


class AverageError(ValueError):
    """Inputs that cannot be averaged: none, unreadable, different networks, or bad weights."""


def _load(source: str) -> tuple[IsolatorNet, dict | None]:
    if source.endswith(".pt"):
        try:
            net, info = load_checkpoint(source)
        except CheckpointError as exc:
            raise AverageError(str(exc)) from None
        return net, info.get("train_config")
    from deepiso.realtime.onnx_model import ModelError

    from .onnx_import import OnnxImportError, import_onnx

    try:
        net, _ = import_onnx(source)
    except (ModelError, OnnxImportError) as exc:
        raise AverageError(str(exc)) from None
    return net, None


def _weights(n: int, weights: list[float] | None) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise AverageError(f"{len(weights)} weight(s) for {n} input(s); give one weight per input")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise AverageError(f"weights must be finite and not negative, got {weights}")
    total = sum(weights)
    if total <= 0:
        raise AverageError("the weights sum to 0")
    return [w / total for w in weights]


def average_networks(sources: list[str], weights: list[float] | None = None) -> tuple[IsolatorNet, dict | None]:
    """``(network holding the weighted mean of the sources' weights, first checkpoint's train_config)``.

    ``weights`` (one per source, not negative) are normalised to sum to 1;
    none means a plain mean. Raises :class:`AverageError`.
    """
    if not sources:
        raise AverageError("nothing to average: give at least one checkpoint or model")
    w = _weights(len(sources), weights)
    first, train_config = None, None
    total: dict[str, torch.Tensor] = {}
    for source, wi in zip(sources, w, strict=True):
        net, tc = _load(source)
        if first is None:
            first = net
        elif net.spec.to_dict() != first.spec.to_dict() or net.cfg.to_dict() != first.cfg.to_dict():
            have, want = {**asdict(net.spec), **asdict(net.cfg)}, {**asdict(first.spec), **asdict(first.cfg)}
            diff = sorted(k for k in have if want.get(k) != have[k])
            raise AverageError(f"{source} is another network than {sources[0]} "
                               f"(differs in {', '.join(diff) or 'its layout'})")
        if train_config is None and tc is not None:
            train_config = tc
        for name, tensor in net.state_dict().items():
            if not tensor.is_floating_point():
                if name in total and not torch.equal(total[name], tensor):
                    raise AverageError(f"{source}: {name} differs from {sources[0]}'s and is not a weight")
                total[name] = tensor.clone()
                continue
            if not torch.isfinite(tensor).all():
                raise AverageError(f"{source}: {name} holds NaN or infinite values")
            acc = tensor.detach().double() * wi
            total[name] = acc if name not in total else total[name] + acc
    assert first is not None
    ref = first.state_dict()
    first.load_state_dict({k: v.to(ref[k].dtype) for k, v in total.items()}, strict=True)
    return first.eval(), train_config


def average_checkpoints(out: str | os.PathLike, sources: list[str], weights: list[float] | None = None) -> Path:
    """Average ``sources`` (:func:`average_networks`) and write the result as a checkpoint at ``out``."""
    if Path(out).resolve() in {Path(s).resolve() for s in sources if s.endswith(".pt")}:
        raise AverageError(f"{out} is one of the inputs; write the average to a new file")
    net, train_config = average_networks(sources, weights)
    w = _weights(len(sources), weights)
    metrics = {"average_of": [{"source": str(s), "weight": wi} for s, wi in zip(sources, w, strict=True)]}
    return save_checkpoint(out, net, train_config=train_config, metrics=metrics, config_json=False)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="deepiso train average",
                                description="Average the weights of checkpoints (or deepiso ONNX files) of one "
                                            "network into a new checkpoint.")
    p.add_argument("out", help="checkpoint to write (.pt)")
    p.add_argument("inputs", nargs="+", help="checkpoints (.pt) or deepiso ONNX files / shipped model names")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per input (default: equal)")
    args = p.parse_args(argv)
    if not args.out.endswith(".pt"):
        p.error("the output must be a .pt checkpoint")
    try:
        path = average_checkpoints(args.out, args.inputs, args.weights)
    except AverageError as exc:
        print(f"deepiso train average: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} (the mean of {len(args.inputs)} network(s))")
    return 0


__all__ = ["AverageError", "average_checkpoints", "average_networks", "main"]
