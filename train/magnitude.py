"""Give a trained network each frame's magnitude as an input, computing what it did.

The default network reads each awareness frame as the real and imaginary
parts of its (power-compressed) bins, the report's doubling. A bin's phase
turns from one frame to the next, so the level of a bin reaches a linear
layer only through the rectified projections of its units: for a steady
partial the encoder's units flicker with the phase. ``ModelConfig.magnitude_input``
joins the compressed magnitude of every bin to the frame (``3 * n_bins``
values instead of ``2 * n_bins``), scaled by ``magnitude_gain``.

:func:`add_magnitude` builds that network from a trained one: every weight is
copied, and the first layer that reads frames (the shared frame encoder, or
the pre-FC of a stacked context) gets zero weights for the new inputs, so the
output is what it was (to float rounding: the new columns add zeros). On a network that
already reads the magnitude, a new gain rescales those columns instead, the
same output again.
"""

from __future__ import annotations

import torch

from .deepfilter import _differing
from .model import IsolatorNet, ModelConfig, build_model

FIELDS = ("magnitude_input", "magnitude_gain")


class MagnitudeError(ValueError):
    """The target is not the same network reading the magnitude too."""


def _first_layer(net: IsolatorNet) -> tuple[str, int]:
    """The state-dict name of the weight that reads frame features, and how many frames it reads."""
    if net.frame_encoder is not None:
        return "frame_encoder.0.weight", 1
    if net.cfg.pre_fc:
        return "pre_fc.0.weight", net.spec.context
    raise MagnitudeError("the magnitude joins a network whose frames are read by one linear layer (a frame "
                         "encoder or a pre-FC); without a pre-FC the LSTM and the skip connection read them")


def add_magnitude(net: IsolatorNet, cfg: ModelConfig) -> IsolatorNet:
    """``net`` as the ``cfg`` network (``magnitude_input`` true; otherwise ``net``'s configuration, the
    gain aside), computing what ``net`` computes."""
    if not cfg.magnitude_input:
        raise MagnitudeError("the target needs magnitude_input true")
    if diff := _differing(net.cfg.to_dict(), cfg.to_dict(), FIELDS):
        raise MagnitudeError(f"only magnitude_input and magnitude_gain may change; {', '.join(diff)} differ")
    name, blocks = _first_layer(net)
    n, size = net.spec.n_bins, net.frame_transform.frame_size
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    w = state[name].reshape(-1, blocks, size)
    if net.cfg.magnitude_input:
        scaled = w.clone()
        scaled[..., 2 * n:] *= float(net.cfg.magnitude_gain) / float(cfg.magnitude_gain)
        state[name] = scaled.reshape(-1, blocks * size)
    else:
        state[name] = torch.cat([w, w.new_zeros(w.shape[0], blocks, n)], dim=-1).reshape(-1, blocks * (size + n))
    out = build_model(net.spec, cfg)
    out.load_state_dict(state)
    return out


__all__ = ["FIELDS", "MagnitudeError", "add_magnitude"]
