"""The deep filter: a complex filter over the awareness frames of the lowest bins, added to the mask.

A trained mask network given one computes exactly what it did; a filter that is not zero does what
its formula says; it exports, streams and imports like any other network; what cannot be built is
refused with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_host import assert_streams_as_offline

from deepiso.export.exporter import export_model
from deepiso.export.verify import awareness_inputs, synthetic_signal, torch_steps
from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.onnx_model import load_model
from deepiso.train.deepfilter import DeepFilterError, add_deep_filter
from deepiso.train.loop import ConfigError, initial_weights
from deepiso.train.model import ModelConfig, ModelConfigError, build_model
from deepiso.train.onnx_import import import_onnx

MASK_SPEC = FrameSpec(sample_rate=8000, n_fft=128, hop=32, past_frames=3, future_frames=0, output="ratio_mask")
DF_SPEC = FrameSpec.from_dict({**MASK_SPEC.to_dict(), "output": "spectrum"})
CFG = ModelConfig(hidden=12, layers=2, pre_fc=0, fc_layers=2, encoder="encode_once", encoder_width=8,
                  input_compression="power", norm="layer", skip=True)
BINS = 20


def _mask_net(seed: int = 3):
    torch.manual_seed(seed)
    return build_model(MASK_SPEC, CFG).eval()


def _contexts(spec: FrameSpec, frames: int = 120, channels: int = 2, seed: int = 4) -> torch.Tensor:
    return torch.from_numpy(awareness_inputs(spec, synthetic_signal(spec, frames, channels=channels, seed=seed)))


def _filtered(seed: int = 3, scale: float = 6.0):
    """A deep-filter network whose filter is not zero."""
    net = add_deep_filter(_mask_net(seed), DF_SPEC, CFG.replace(deep_filter=BINS)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        net.df_head.weight.copy_(scale * torch.randn(net.df_head.weight.shape, generator=g))
        net.df_head.bias.copy_(scale * torch.randn(net.df_head.bias.shape, generator=g))
    return net


def test_a_mask_network_given_a_deep_filter_computes_what_it_did():
    old = _mask_net()
    new = add_deep_filter(old, DF_SPEC, CFG.replace(deep_filter=BINS)).eval()
    assert new.spec.output == "spectrum" and new.cfg.deep_filter == BINS
    assert new.num_parameters() == old.num_parameters() + (12 + 1) * 2 * DF_SPEC.context * BINS  # df_head: 12 -> 2KD
    x = _contexts(MASK_SPEC)
    with torch.no_grad():
        before = old.vocal_spectrum(old(x)[0], x)
        after = new.vocal_spectrum(new(x)[0], x)
    assert float(before.abs().max()) > 1e-2
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


def test_the_filter_adds_its_complex_sum_over_the_context_frames_to_the_lowest_bins():
    net = _filtered()
    x = _contexts(DF_SPEC, frames=40)
    n, k, d = DF_SPEC.n_bins, DF_SPEC.context, BINS
    with torch.no_grad():
        z = net.in_norm(net.pre_fc(net._encode(x)))
        r, _ = net.lstm(z)
        hidden = net.head[:-1](torch.cat([z, net.out_norm(r)], dim=-1))
        mask = torch.sigmoid(net.head[-1](hidden)).numpy()
        coef = torch.tanh(CFG.deep_filter_gain * net.df_head(hidden)).numpy()
        y, _ = net(x)
    xs = x.numpy().reshape(x.shape[0], x.shape[1], k, 2 * n)
    spec = xs[..., :n] + 1j * xs[..., n:]  # (B, T, K, bins) complex
    w = (coef[..., : k * d] + 1j * coef[..., k * d :]).reshape(x.shape[0], x.shape[1], k, d)
    want = mask * spec[:, :, DF_SPEC.past_frames]
    want[..., :d] += (w * spec[..., :d]).sum(axis=2)
    got = y.numpy()[..., :n] + 1j * y.numpy()[..., n:]
    assert np.abs(want[..., :d] - mask[..., :d] * spec[:, :, DF_SPEC.past_frames, :d]).max() > 1e-2  # it filters
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    assert np.abs(coef).max() <= 1.0


def assert_exports_streams_and_imports(net, path):
    """``net`` exported to ``path`` (the exporter checks step vs PyTorch and sequence vs step): its step
    graph steps as PyTorch does, the engine streams it as offline, and it imports back bit for bit."""
    result = export_model(net, path, name=path.stem)
    spec = net.spec
    x = awareness_inputs(spec, synthetic_signal(spec, 300, channels=1, seed=9))
    model = load_model(result.step_path)
    stepped = np.stack([model.step(x[:, t]).copy() for t in range(300)], axis=1)
    assert np.max(np.abs(stepped - torch_steps(net, x))) <= 1e-4
    assert_streams_as_offline(result.step_path, spec)
    back, _ = import_onnx(result.step_path)
    assert back.cfg.to_dict() == net.cfg.to_dict()
    for name, value in net.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], value, atol=0, rtol=0)
    return result


def test_a_deep_filter_network_exports_streams_and_imports_exactly(tmp_path):
    result = assert_exports_streams_and_imports(_filtered(), tmp_path / "df.onnx")
    assert result.card["output"] == "spectrum" and result.card["model_config"]["deep_filter"] == BINS


def test_training_starts_a_deep_filter_network_from_a_mask_checkpoint(tmp_path):
    from deepiso.train.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "mask.pt", _mask_net())
    state, _ = initial_weights(str(path), DF_SPEC, CFG.replace(deep_filter=BINS), verbose=False)
    assert not state["df_head.weight"].any() and not state["df_head.bias"].any()
    torch.testing.assert_close(state["head.2.weight"], _mask_net().state_dict()["head.2.weight"])
    with pytest.raises(ConfigError, match="another network.*hidden"):
        initial_weights(str(path), DF_SPEC, CFG.replace(deep_filter=BINS, hidden=10), verbose=False)


def test_what_cannot_carry_a_deep_filter_is_refused():
    with pytest.raises(ModelConfigError, match="deep_filter needs output 'spectrum'"):
        build_model(MASK_SPEC, CFG.replace(deep_filter=BINS))
    with pytest.raises(ModelConfigError, match="more than the 65 bins"):
        build_model(DF_SPEC, CFG.replace(deep_filter=66))
    with pytest.raises(ModelConfigError, match="must be >= 0"):
        CFG.replace(deep_filter=-1)
    with pytest.raises(ModelConfigError, match="must be an integer"):
        CFG.replace(deep_filter=2.5)
    with pytest.raises(ModelConfigError, match="deep_filter_gain must be > 0"):
        CFG.replace(deep_filter=4, deep_filter_gain=0.0)
    with pytest.raises(ModelConfigError, match="fc_layers >= 2"):
        CFG.replace(deep_filter=4, fc_layers=1)
    mask = _mask_net()
    with pytest.raises(DeepFilterError, match=r"only deep_filter \(and its gain\) may change.*hidden"):
        add_deep_filter(mask, DF_SPEC, CFG.replace(deep_filter=BINS, hidden=16))
    with pytest.raises(DeepFilterError, match="only the frame contract's output.*hop"):
        add_deep_filter(mask, FrameSpec.from_dict({**DF_SPEC.to_dict(), "hop": 64}), CFG.replace(deep_filter=BINS))
    with pytest.raises(DeepFilterError, match="needs output 'spectrum' and deep_filter > 0"):
        add_deep_filter(mask, MASK_SPEC, CFG)
    with pytest.raises(DeepFilterError, match="not to output 'spectrum'"):
        add_deep_filter(_filtered(), DF_SPEC, CFG.replace(deep_filter=BINS))


def test_a_new_gain_rescales_the_filter_and_keeps_the_output(tmp_path):
    from deepiso.train.checkpoint import save_checkpoint
    from deepiso.train.deepfilter import regain

    net = _filtered()
    x = _contexts(DF_SPEC)
    faster = regain(net, CFG.replace(deep_filter=BINS, deep_filter_gain=0.2)).eval()
    assert faster.cfg.deep_filter_gain == 0.2
    torch.testing.assert_close(faster.df_head.weight, net.df_head.weight / 4)
    with torch.no_grad():
        torch.testing.assert_close(faster(x)[0], net(x)[0], atol=1e-5, rtol=1e-5)
    path = save_checkpoint(tmp_path / "df.pt", net)
    state, _ = initial_weights(str(path), DF_SPEC, CFG.replace(deep_filter=BINS, deep_filter_gain=0.2), verbose=False)
    torch.testing.assert_close(state["df_head.bias"], net.df_head.bias / 4)
    with pytest.raises(DeepFilterError, match="only deep_filter_gain may change.*hidden"):
        regain(net, CFG.replace(deep_filter=BINS, deep_filter_gain=0.2, hidden=16))
    with pytest.raises(DeepFilterError, match="same deep filter"):
        regain(net, CFG.replace(deep_filter=BINS + 1))
