"""Give a trained ratio-mask network a deep filter on its lowest bins, computing what it did.

A ratio mask is one real gain per bin and frame: it cannot take apart a voice
harmonic and an instrument's partial that fall into the same bin (43 Hz wide
at 44.1 kHz with n_fft 1024), nor correct the phase. DeepFilterNet's deep
filter can: a complex filter over the last frames of each low bin. Here
(``ModelConfig.deep_filter``) it is added to the mask: for bin ``k < D``

    S_t,k = m_t,k X_t,k + sum_j w_t,j,k X_j,k        (j over the K awareness frames)

with ``w = tanh(gain * df_head(u))`` from the FC head's last hidden layer ``u``.
:func:`add_deep_filter` builds that network from a trained mask network: every
weight is copied, the head's last layer keeps giving the mask's logits, and
the new ``df_head`` starts at zero, so ``w = 0`` and the output is the masked
centre frame, as before (to float rounding). Only the output kind changes:
the network now outputs the vocal spectrum (``output "spectrum"``).
"""

from __future__ import annotations

from deepiso.realtime.frame import FrameSpec

from .model import IsolatorNet, ModelConfig, build_model


class DeepFilterError(ValueError):
    """The target is not the same network with a deep filter added."""


def add_deep_filter(net: IsolatorNet, spec: FrameSpec, cfg: ModelConfig) -> IsolatorNet:
    """``net`` (a ``ratio_mask`` network without a deep filter) as the ``spec``/``cfg`` network: the same
    frame contract with ``output "spectrum"``, the same configuration with ``deep_filter > 0``."""
    old_spec, old = net.spec.to_dict(), net.cfg.to_dict()
    new_spec, new = spec.to_dict(), cfg.to_dict()
    if net.spec.output != "ratio_mask" or net.cfg.deep_filter:
        raise DeepFilterError(f"a deep filter is added to a ratio-mask network without one, not to output "
                              f"{net.spec.output!r} with deep_filter {net.cfg.deep_filter}")
    if spec.output != "spectrum" or not cfg.deep_filter:
        raise DeepFilterError("the target needs output 'spectrum' and deep_filter > 0")
    if diff := sorted(k for k in old_spec if k != "output" and old_spec[k] != new_spec.get(k)):
        raise DeepFilterError(f"only the frame contract's output may change; {', '.join(diff)} differ")
    if diff := _differing(old, new, ("deep_filter", "deep_filter_gain")):
        raise DeepFilterError(f"only deep_filter (and its gain) may change in the model configuration; "
                              f"{', '.join(diff)} differ")
    out = build_model(spec, cfg)  # df_head starts at zero (IsolatorNet)
    missing, unexpected = out.load_state_dict(net.state_dict(), strict=False)
    if unexpected or sorted(missing) != ["df_head.bias", "df_head.weight"]:
        raise DeepFilterError(f"weights do not line up (missing {missing}, unexpected {unexpected})")
    return out


def _differing(old: dict, new: dict, allowed: tuple[str, ...]) -> list[str]:
    """The model-configuration fields other than ``allowed`` (and the name) whose values differ."""
    return sorted(k for k in old if k not in (*allowed, "name") and old[k] != new.get(k))





def regain(net: IsolatorNet, cfg: ModelConfig) -> IsolatorNet:
    """``net`` (with a deep filter) at ``cfg.deep_filter_gain``, computing what it did: the filter's
    weights are scaled by old gain / new gain. A higher gain makes Adam's steps move the filter faster
    (the steps are about the learning rate in the weights, whatever their scale)."""
    old, new = net.cfg.to_dict(), cfg.to_dict()
    if not net.cfg.deep_filter or net.cfg.deep_filter != cfg.deep_filter:
        raise DeepFilterError("a gain changes on a network with the same deep filter")
    if diff := _differing(old, new, ("deep_filter_gain",)):
        raise DeepFilterError(f"only deep_filter_gain may change; {', '.join(diff)} differ")
    out = build_model(net.spec, cfg)
    state = net.state_dict()
    ratio = float(net.cfg.deep_filter_gain) / float(cfg.deep_filter_gain)
    state = {k: (v * ratio if k.startswith("df_head.") else v) for k, v in state.items()}
    out.load_state_dict(state)
    return out
__all__ = ["DeepFilterError", "add_deep_filter", "regain"]
