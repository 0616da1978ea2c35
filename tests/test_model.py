"""The isolation network and its checkpoints: shapes, streaming equivalence, named configs, bad files."""

import json

import numpy as np
import pytest
import torch

from deepiso.realtime import dsp
from deepiso.realtime.frame import FrameSpec
from deepiso.train.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from deepiso.train.model import (
    CONFIGS,
    ModelConfig,
    ModelConfigError,
    build_model,
    build_named,
    get_config,
    mel_bands,
)

TINY_SPEC, TINY_CFG = get_config("tiny-test")

VARIANTS = {
    "tiny-test": (TINY_SPEC, TINY_CFG),
    "causal": (FrameSpec(16_000, 256, 64, past_frames=3, future_frames=0), TINY_CFG),
    "encode_once": (TINY_SPEC, TINY_CFG.replace(encoder="encode_once", encoder_width=8, pre_fc=0)),
    "power": (TINY_SPEC, TINY_CFG.replace(input_compression="power", compression_power=0.5)),
    "ratio_mask_bands": (FrameSpec(16_000, 256, 64, past_frames=2, future_frames=0, output="ratio_mask"),
                         TINY_CFG.replace(bands=24, input_compression="power")),
    "complex_mask": (FrameSpec(16_000, 256, 64, past_frames=1, future_frames=2, output="complex_mask"),
                     TINY_CFG.replace(encoder="encode_once", encoder_width=6, layers=1)),
    "norm_skip": (FrameSpec(16_000, 256, 64, past_frames=3, future_frames=0, output="ratio_mask"),
                  TINY_CFG.replace(encoder="encode_once", encoder_width=8, pre_fc=0, norm="layer", skip=True,
                                   input_compression="power")),
}


def _contexts(spec: FrameSpec, n_samples: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = (0.3 * rng.standard_normal((batch, n_samples))).astype(np.float32)
    ctx = dsp.awareness(dsp.features(dsp.stft(x, spec)), spec.past_frames, spec.future_frames)
    return torch.from_numpy(np.ascontiguousarray(ctx))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_sequence_call_equals_frame_by_frame(name):
    torch.manual_seed(0)
    spec, cfg = VARIANTS[name]
    model = build_model(spec, cfg).eval()
    x = _contexts(spec, 40 * spec.hop)
    assert x.shape == (2, 40, spec.input_size)
    with torch.no_grad():
        y_seq, (h_seq, c_seq) = model(x)
        state = None
        steps = []
        for t in range(x.shape[1]):
            y, state = model(x[:, t : t + 1], state)
            steps.append(y)
        y_step = torch.cat(steps, dim=1)
        # and in uneven chunks carrying state
        state, chunks, t = None, [], 0
        for size in (3, 1, 10, 7, 19):
            y, state = model(x[:, t : t + size], state)
            chunks.append(y)
            t += size
    assert y_seq.shape == (2, 40, spec.output_size)
    assert h_seq.shape == c_seq.shape == (cfg.layers, 2, cfg.hidden)
    torch.testing.assert_close(y_step, y_seq, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(chunks, dim=1), y_seq, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(state[0], h_seq, atol=1e-5, rtol=1e-4)


def test_seed_is_the_report_model():
    spec, cfg = get_config("seed")
    assert (spec.sample_rate, spec.n_fft, spec.hop, spec.window) == (44_100, 1024, 256, "hann")
    assert spec.context == 5 and spec.past_frames == 2 and spec.future_frames == 2
    assert spec.output == "spectrum" and spec.features == "ri"
    model = build_model(spec, cfg)
    assert model.lstm.num_layers == 2 and model.lstm.hidden_size == 256
    assert model.pre_fc[0].in_features == 5 * 2 * 513 and model.pre_fc[0].out_features == 256
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 and linears[-1].out_features == 2 * 513
    assert 2.6e6 < model.num_parameters() < 2.9e6


def test_default_is_causal_and_small():
    spec, cfg = get_config("default")
    assert spec.causal
    model = build_model(spec, cfg)
    assert model.num_parameters() * 4 < 8e6  # fp32 bytes, well under the engine's ~12 MB
    x = torch.zeros(1, 3, spec.input_size)
    y, _ = model(x)
    assert y.shape == (1, 3, spec.output_size)


def test_all_named_configs_build():
    for name in CONFIGS:
        model = build_named(name)
        assert model.cfg.name == name
    with pytest.raises(KeyError, match="unknown model configuration 'nope'"):
        get_config("nope")


def test_model_config_json_round_trip_and_bad_values():
    cfg = TINY_CFG.replace(encoder="encode_once", encoder_width=4, bands=8)
    text = json.dumps(cfg.to_dict())
    assert ModelConfig.from_dict(json.loads(text)) == cfg
    with pytest.raises(ModelConfigError, match="unknown fields: colour"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 1})
    with pytest.raises(ModelConfigError, match="newer"):
        ModelConfig.from_dict({**cfg.to_dict(), "format_version": 99})
    with pytest.raises(ModelConfigError, match="encoder_width"):
        ModelConfig(encoder="encode_once")
    with pytest.raises(ModelConfigError, match="hidden"):
        ModelConfig(hidden=0)
    with pytest.raises(ModelConfigError, match="compression_power"):
        ModelConfig(compression_power=2.0)
    with pytest.raises(ModelConfigError, match="unknown norm 'batch'"):
        ModelConfig(norm="batch")
    with pytest.raises(ModelConfigError, match="skip must be true or false"):
        ModelConfig(skip="yes")
    with pytest.raises(ModelConfigError, match="mask output"):
        build_model(TINY_SPEC, TINY_CFG.replace(bands=8))


def test_bad_input_shape_is_named():
    model = build_model(TINY_SPEC, TINY_CFG)
    with pytest.raises(ValueError, match=f"expected input \\(batch, frames, {TINY_SPEC.input_size}\\)"):
        model(torch.zeros(1, 3, 7))


def test_mel_bands_cover_every_bin():
    m = mel_bands(129, 16_000, 24)
    assert m.shape == (24, 129)
    assert (m.sum(dim=0) > 0).all()
    torch.testing.assert_close(m.sum(dim=1), torch.ones(24))


def test_power_compression_keeps_phase():
    spec, cfg = VARIANTS["power"]
    model = build_model(spec, cfg)
    f = torch.tensor([[3.0] + [0.0] * 128 + [4.0] + [0.0] * 128])  # bin 0 = 3 + 4j, |X| = 5
    out = model.frame_transform(f)
    assert abs(float(out[0, 0]) - 3 / 5 * 5**0.5) < 1e-4
    assert abs(float(out[0, 129]) - 4 / 5 * 5**0.5) < 1e-4


@pytest.mark.parametrize("output", ["spectrum", "ratio_mask", "complex_mask"])
def test_vocal_spectrum_applies_masks_to_centre_frame(output):
    spec = FrameSpec(16_000, 256, 64, past_frames=1, future_frames=1, output=output)
    model = build_model(spec, TINY_CFG)
    x = _contexts(spec, 10 * spec.hop, batch=1)
    with torch.no_grad():
        y, _ = model(x)
        v = model.vocal_spectrum(y, x)
    assert v.shape == (1, 10, spec.feature_size)
    centre = x[..., spec.feature_size : 2 * spec.feature_size]
    n = spec.n_bins
    if output == "spectrum":
        assert torch.equal(v, y)
    elif output == "ratio_mask":
        assert float(y.min()) >= 0 and float(y.max()) <= 1
        torch.testing.assert_close(v[..., :n], centre[..., :n] * y)
    else:
        mix = torch.complex(centre[..., :n], centre[..., n:])
        gain = torch.complex(y[..., :n], y[..., n:])
        prod = mix * gain
        torch.testing.assert_close(v, torch.cat([prod.real, prod.imag], dim=-1))


# ----------------------------------------------------------------------------
# checkpoints


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    spec, cfg = VARIANTS["complex_mask"]
    model = build_model(spec, cfg)
    path = save_checkpoint(tmp_path / "run" / "best.pt", model, train_config={"lr": 1e-3},
                           metrics={"val_loss": 0.25}, extra={"step": 7, "opt": {"t": torch.ones(2)}})
    assert not list((tmp_path / "run").glob(".*.part"))
    loaded, info = load_checkpoint(path)
    assert not loaded.training
    assert loaded.spec == spec and loaded.cfg == cfg
    assert info["train_config"] == {"lr": 1e-3} and info["metrics"] == {"val_loss": 0.25}
    assert info["extra"]["step"] == 7
    side = json.loads((tmp_path / "run" / "config.json").read_text())
    assert FrameSpec.from_dict(side["frame_spec"]) == spec
    assert ModelConfig.from_dict(side["model"]) == cfg
    x = _contexts(spec, 12 * spec.hop)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model.eval()(x)[0])


def test_checkpoint_bad_files(tmp_path):
    model = build_model(TINY_SPEC, TINY_CFG)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello world")
    with pytest.raises(CheckpointError, match="text.pt: not a deepiso checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    good = save_checkpoint(tmp_path / "good.pt", model)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="format marker"):
        load_checkpoint(tmp_path / "foreign.pt")
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="newer than this deepiso"):
        load_checkpoint(tmp_path / "newer.pt")
    payload["format_version"] = 1
    payload["state_dict"] = {k: v for k, v in payload["state_dict"].items() if "head" not in k}
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "partial.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"format": "deepiso-checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="never as code"):
        read_checkpoint(tmp_path / "evil.pt")
