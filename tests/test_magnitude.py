"""The magnitude input: each frame's compressed magnitude joined to its real and imaginary parts.

A trained network given it computes what it did; with weights on it, the network reads exactly
``gain * |X|^power``; it exports, streams and imports like any other network; training starts from a
checkpoint without it; what cannot take it is refused with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_deepfilter import assert_exports_streams_and_imports

from deepiso.export.verify import awareness_inputs, synthetic_signal
from deepiso.realtime.frame import FrameSpec
from deepiso.train.checkpoint import save_checkpoint
from deepiso.train.loop import ConfigError, initial_weights
from deepiso.train.magnitude import MagnitudeError, add_magnitude
from deepiso.train.model import ModelConfig, ModelConfigError, build_model

SPEC = FrameSpec(sample_rate=8000, n_fft=128, hop=32, past_frames=3, future_frames=0, output="ratio_mask")
DF_SPEC = FrameSpec.from_dict({**SPEC.to_dict(), "output": "spectrum"})
CFG = ModelConfig(hidden=12, layers=2, pre_fc=0, fc_layers=2, encoder="encode_once", encoder_width=8,
                  input_compression="power", norm="layer", skip=True)
STACK = ModelConfig(hidden=12, layers=1, pre_fc=10, fc_layers=2, encoder="stack", input_compression="power")
MAG = {"magnitude_input": True}


def _net(cfg: ModelConfig = CFG, spec: FrameSpec = SPEC, seed: int = 3):
    torch.manual_seed(seed)
    return build_model(spec, cfg).eval()


def _contexts(spec: FrameSpec = SPEC, frames: int = 120, seed: int = 4) -> torch.Tensor:
    return torch.from_numpy(awareness_inputs(spec, synthetic_signal(spec, frames, channels=2, seed=seed)))


def _reading(cfg: ModelConfig = CFG, seed: int = 3, scale: float = 3.0):
    """A network with the magnitude input whose weights on it are not zero."""
    net = add_magnitude(_net(cfg, seed=seed), cfg.replace(**MAG)).eval()
    name = "frame_encoder.0.weight" if cfg.encoder == "encode_once" else "pre_fc.0.weight"
    n = SPEC.n_bins
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        w = dict(net.named_parameters())[name]
        blocks = w.reshape(w.shape[0], -1, 3 * n)
        blocks[..., 2 * n:] = scale * torch.randn(blocks[..., 2 * n:].shape, generator=g)
    return net


@pytest.mark.parametrize("cfg", [CFG, STACK], ids=["encode_once", "stacked"])
def test_a_network_given_the_magnitude_computes_what_it_did(cfg):
    old = _net(cfg)
    new = add_magnitude(old, cfg.replace(**MAG)).eval()
    assert new.cfg.magnitude_input and new.frame_transform.frame_size == 3 * SPEC.n_bins
    width = cfg.encoder_width if cfg.encoder == "encode_once" else cfg.pre_fc
    blocks = 1 if cfg.encoder == "encode_once" else SPEC.context
    assert new.num_parameters() == old.num_parameters() + width * blocks * SPEC.n_bins
    x = _contexts()
    with torch.no_grad():
        before, after = old(x)[0], new(x)[0]
    assert float(before.std()) > 1e-3
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)


def test_the_network_reads_the_gain_times_the_compressed_magnitude():
    net = _reading()
    x = _contexts(frames=30)
    n, f = SPEC.n_bins, SPEC.feature_size
    frames = x.reshape(*x.shape[:2], SPEC.context, f)
    with torch.no_grad():
        got = net.frame_transform(frames).numpy()
    spec = frames[..., :n].numpy() + 1j * frames[..., n:].numpy()
    mag = np.sqrt(np.abs(spec) ** 2 + 1e-12)  # the transform's magnitude (its floor keeps gradients finite)
    p = CFG.compression_power
    np.testing.assert_allclose(got[..., 2 * n:], CFG.magnitude_gain * mag * (mag + 1e-8) ** (p - 1), atol=1e-6)
    assert got[..., 2 * n:].max() > 10 * CFG.magnitude_gain * 1e-6 ** p  # not only the floor
    np.testing.assert_allclose(got[..., :n], (spec * (mag + 1e-8) ** (p - 1)).real, atol=1e-5)
    # and the output depends on it: zeroing its weights changes what the network computes
    plain = add_magnitude(_net(), CFG.replace(**MAG)).eval()
    with torch.no_grad():
        assert float((net(x)[0] - plain(x)[0]).abs().max()) > 1e-2
    # without compression the magnitude is joined as it is
    raw = build_model(SPEC, CFG.replace(input_compression="none", **MAG)).eval()
    with torch.no_grad():
        out = raw.frame_transform(frames).numpy()
    np.testing.assert_allclose(out[..., 2 * n:], CFG.magnitude_gain * mag, atol=1e-6)
    np.testing.assert_allclose(out[..., : 2 * n], frames.numpy(), atol=0)


def test_a_new_gain_rescales_the_magnitude_weights_and_keeps_the_output():
    net = _reading()
    faster = add_magnitude(net, CFG.replace(magnitude_input=True, magnitude_gain=0.8)).eval()
    n = SPEC.n_bins
    w_old, w_new = net.frame_encoder[0].weight, faster.frame_encoder[0].weight
    torch.testing.assert_close(w_new[:, 2 * n:], w_old[:, 2 * n:] / 4)
    torch.testing.assert_close(w_new[:, : 2 * n], w_old[:, : 2 * n], atol=0, rtol=0)
    x = _contexts()
    with torch.no_grad():
        torch.testing.assert_close(faster(x)[0], net(x)[0], atol=1e-5, rtol=1e-5)


def test_a_magnitude_network_with_a_deep_filter_exports_streams_and_imports_exactly(tmp_path):
    from deepiso.train.deepfilter import add_deep_filter

    cfg = CFG.replace(deep_filter=10, **MAG)
    net = add_deep_filter(_reading(), DF_SPEC, cfg).eval()
    with torch.no_grad():
        net.df_head.weight.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(5))
    result = assert_exports_streams_and_imports(net, tmp_path / "mag.onnx")
    assert result.card["model_config"]["magnitude_input"] is True


def test_training_starts_a_magnitude_network_from_a_checkpoint_without_it(tmp_path):
    path = save_checkpoint(tmp_path / "plain.pt", _net())
    target = CFG.replace(deep_filter=10, **MAG)  # the magnitude and a deep filter, both added at zero
    state, _ = initial_weights(str(path), DF_SPEC, target, verbose=False)
    n = SPEC.n_bins
    w = state["frame_encoder.0.weight"]
    assert w.shape == (8, 3 * n) and not w[:, 2 * n:].any()
    torch.testing.assert_close(w[:, : 2 * n], _net().state_dict()["frame_encoder.0.weight"], atol=0, rtol=0)
    assert not state["df_head.weight"].any()
    net = build_model(DF_SPEC, target).eval()
    net.load_state_dict(state)
    x = _contexts()
    old = _net()
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], old.vocal_spectrum(old(x)[0], x), atol=1e-6, rtol=0)
    # a checkpoint of a magnitude network at another gain starts rescaled
    path2 = save_checkpoint(tmp_path / "mag.pt", _reading())
    state2, _ = initial_weights(str(path2), SPEC, CFG.replace(magnitude_input=True, magnitude_gain=0.1),
                                verbose=False)
    torch.testing.assert_close(state2["frame_encoder.0.weight"][:, 2 * n:],
                               _reading().frame_encoder[0].weight[:, 2 * n:] * 2)
    with pytest.raises(ConfigError, match="another network.*hidden"):
        initial_weights(str(path), SPEC, CFG.replace(hidden=10, **MAG), verbose=False)


def test_what_cannot_take_the_magnitude_is_refused():
    with pytest.raises(ModelConfigError, match="magnitude_input must be true or false"):
        CFG.replace(magnitude_input=1)
    with pytest.raises(ModelConfigError, match="magnitude_gain must be > 0"):
        CFG.replace(magnitude_input=True, magnitude_gain=0.0)
    with pytest.raises(ModelConfigError, match="bands > 0 already gives magnitudes"):
        CFG.replace(bands=8, magnitude_input=True)
    with pytest.raises(MagnitudeError, match="only magnitude_input and magnitude_gain may change.*hidden"):
        add_magnitude(_net(), CFG.replace(hidden=16, **MAG))
    with pytest.raises(MagnitudeError, match="needs magnitude_input true"):
        add_magnitude(_net(), CFG)
    bare = ModelConfig(hidden=12, layers=1, pre_fc=0, fc_layers=2, encoder="stack")
    with pytest.raises(MagnitudeError, match="read by one linear layer"):
        add_magnitude(_net(bare), bare.replace(**MAG))
    banded = ModelConfig(hidden=12, layers=1, pre_fc=10, fc_layers=2, encoder="stack", bands=6)
    with pytest.raises(MagnitudeError, match="may change; bands differ"):
        add_magnitude(_net(banded), banded.replace(**MAG, bands=0))
