"""ONNX → PyTorch: exported weights come back exactly (fp32) or within the quantiser's rounding (int8), the
shipped default rebuilds, broken files are refused; training can start from a file; the learning-rate schedule."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from deepiso.export import export_model
from deepiso.realtime import dsp
from deepiso.realtime.onnx_model import ModelError
from deepiso.train import testing as T
from deepiso.train.checkpoint import load_checkpoint, save_checkpoint
from deepiso.train.config import ConfigError, OptimConfig, TrainConfig
from deepiso.train.loop import learning_rate, train
from deepiso.train.model import build_model, build_named, get_config
from deepiso.train.onnx_import import OnnxImportError, import_onnx


def _net(name: str, seed: int):
    torch.manual_seed(seed)
    net = build_named(name)
    with torch.no_grad():  # non-trivial norms and biases, so a swapped or dropped tensor shows
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _default_small(seed: int = 3):
    """The default network's layout (encode-once encoder, norms, skip, ratio mask) at a small size."""
    spec, cfg = get_config("default")
    spec = dataclasses.replace(spec, n_fft=256, hop=64, sample_rate=16_000)
    torch.manual_seed(seed)
    net = build_model(spec, cfg.replace(hidden=32, encoder_width=16, fc_width=32))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """fp32 and int8 exports of a tiny-test network and of a small default-layout network."""
    root = tmp_path_factory.mktemp("import")
    nets = {"tiny": _net("tiny-test", 1), "default": _default_small()}
    files = {}
    for key, net in nets.items():
        files[key] = export_model(net, root / f"{key}.onnx", name=key).step_path
        files[key + "-int8"] = export_model(net, root / f"{key}-int8.onnx", name=key, int8=True).step_path
    return nets, files


def _signal_features(spec, seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """Awareness stacks (1, T, input_size) of a noise signal, as the engine builds them."""
    rng = np.random.default_rng(seed)
    sig = (0.1 * rng.standard_normal((1, int(spec.sample_rate * seconds)))).astype(np.float32)
    frames = dsp.stft(sig, spec)
    return np.ascontiguousarray(dsp.awareness(dsp.features(frames), spec.past_frames, spec.future_frames))


@pytest.mark.parametrize("key", ["tiny", "default"])
def test_fp32_weights_come_back_exactly(exported, key):
    nets, files = exported
    net, card = import_onnx(files[key])
    assert card["name"] == key and card["precision"] == "fp32"
    ref = nets[key].state_dict()
    got = net.state_dict()
    assert set(got) == set(ref)
    for name, tensor in ref.items():
        assert torch.equal(got[name], tensor), name


@pytest.mark.parametrize("key", ["tiny", "default"])
def test_int8_weights_within_the_quantisers_rounding(exported, key):
    nets, files = exported
    net, card = import_onnx(files[key + "-int8"])
    assert card["precision"] == "int8"
    ref = nets[key].state_dict()
    got = net.state_dict()
    # Per-tensor int8: a weight moves by at most half a step (range / 255) of its tensor.
    model = onnx.load(str(files[key + "-int8"]))
    scales = [float(numpy_helper.to_array(t).max()) for t in model.graph.initializer if t.name.endswith("_scale")]
    step = max(scales)
    moved = 0
    for name, tensor in ref.items():
        diff = float((got[name] - tensor).abs().max())
        assert diff <= step / 2 + 1e-6, (name, diff, step)
        moved += diff > 0
    assert moved > 0  # the weights really were quantised: the file is not fp32 in disguise
    x = torch.from_numpy(_signal_features(nets[key].spec))
    with torch.no_grad():
        y_ref, _ = nets[key](x)
        y_got, _ = net(x)
    rel = float((y_got - y_ref).pow(2).mean().sqrt() / y_ref.pow(2).mean().sqrt())
    assert rel < 0.05, rel


def test_shipped_default_rebuilds_and_matches_onnxruntime():
    import onnxruntime as ort

    from deepiso.realtime.onnx_model import resolve_model

    net, card = import_onnx("default")
    assert card["name"] == "default" and net.num_parameters() == card["parameters"]
    x = _signal_features(net.spec, seconds=1.0)
    sess = ort.InferenceSession(str(resolve_model("default")).replace(".onnx", ".seq.onnx"),
                                providers=["CPUExecutionProvider"])
    zeros = np.zeros((net.cfg.layers, 1, net.cfg.hidden), np.float32)
    y_ort = sess.run(None, {"features": x, "h": zeros, "c": zeros})[0]
    with torch.no_grad():
        y_torch = net(torch.from_numpy(x))[0].numpy()
    # int8 weights in both; onnxruntime also quantises activations per call, PyTorch does not.
    assert float(np.mean(np.abs(y_ort - y_torch))) < 0.01
    assert float(np.corrcoef(y_ort.ravel(), y_torch.ravel())[0, 1]) > 0.98


def test_bad_files_are_refused(tmp_path, exported):
    _, files = exported
    with pytest.raises(ModelError):
        import_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelError):
        import_onnx(junk)
    # A file whose graph lost a weight that its card's network needs.
    model = onnx.load(str(files["tiny"]))
    keep = [t for t in model.graph.initializer if not t.name.endswith("head.2.bias")]
    assert len(keep) == len(model.graph.initializer) - 1
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises((OnnxImportError, ModelError)):  # the card's sha256 no longer matches either
        import_onnx(broken)


# ----------------------------------------------------------------------------- learning-rate schedule


def test_learning_rate_schedules():
    const = OptimConfig(lr=1e-3)
    assert [learning_rate(const, s, 100) for s in (0, 50, 99, 500)] == [1e-3] * 4
    cos = OptimConfig(lr=1e-3, schedule="cosine", min_lr=1e-5)
    assert learning_rate(cos, 0, 101) == pytest.approx(1e-3)
    assert learning_rate(cos, 50, 101) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(cos, 100, 101) == pytest.approx(1e-5)
    assert learning_rate(cos, 1000, 101) == pytest.approx(1e-5)  # past the end it stays at the floor
    rates = [learning_rate(cos, s, 101) for s in range(101)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    warm = OptimConfig(lr=1e-3, warmup_steps=4)
    assert [learning_rate(warm, s, 100) for s in range(5)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])


@pytest.mark.parametrize("override, message", [
    ("optim.schedule=linear", "optim.schedule 'linear' is not one of constant, cosine"),
    ("optim.min_lr=0.1", "optim.min_lr must lie in 0..optim.lr"),
    ("optim.warmup_steps=-1", "optim.warmup_steps must be >= 0"),
    ("optim.lr=0", "optim.lr must be a positive number"),
])
def test_bad_schedules_are_refused_before_training(tmp_path, override, message):
    cfg = _tiny_cfg(tmp_path).with_overrides([override])
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)")):
        train(cfg)
    assert not (tmp_path / "run" / "last.pt").exists()


# ----------------------------------------------------------------------------- init_from


def _tiny_cfg(tmp_path: Path, **optim) -> TrainConfig:
    root = tmp_path / "data"
    if not root.exists():
        T.make_folder_dataset(root, tracks=3)
    return TrainConfig.from_dict({
        "model": "tiny-test",
        "data": {"kind": "folder", "root": str(root), "segment_seconds": 0.25, "train_items": 4, "valid_items": 2,
                 "channels": 1, "valid_fraction": 0.34},
        "augment": {"awgn_profiles": 0},
        "loss": {"contrastive": 0.0, "magnitude": 1.0},
        "optim": {"batch_size": 4, "epochs": 1, **optim},
        "out_dir": str(tmp_path / "run"), "progress": False, "threads": 1, "tensorboard": False,
    })


@pytest.mark.parametrize("kind", ["onnx", "checkpoint"])
def test_training_starts_from_the_given_weights(tmp_path, exported, kind):
    nets, files = exported
    source = files["tiny"] if kind == "onnx" else save_checkpoint(tmp_path / "start.pt", nets["tiny"])
    # A rate so small that one Adam step moves no weight by more than ~1e-12: the run's weights are the source's.
    cfg = _tiny_cfg(tmp_path, init_from=str(source), lr=1e-12, min_lr=0.0)
    train(cfg, stop_after_steps=1)
    net, _ = load_checkpoint(tmp_path / "run" / "last.pt")
    for name, tensor in nets["tiny"].state_dict().items():
        assert torch.allclose(net.state_dict()[name], tensor, atol=1e-9), name
    # Without init_from the same run starts from PyTorch's initialisation: far from the source.
    fresh = _tiny_cfg(tmp_path / "fresh", lr=1e-12)
    train(fresh, stop_after_steps=1)
    other, _ = load_checkpoint(tmp_path / "fresh" / "run" / "last.pt")
    assert not torch.allclose(other.state_dict()["head.0.weight"], nets["tiny"].state_dict()["head.0.weight"])


def test_init_from_another_network_or_a_bad_file_is_refused(tmp_path, exported):
    _, files = exported
    with pytest.raises(ConfigError, match="is another network than this configuration's"):
        train(_tiny_cfg(tmp_path, init_from=str(files["default"])))
    with pytest.raises(ConfigError, match="optim.init_from: .*no such checkpoint file"):
        train(_tiny_cfg(tmp_path, init_from=str(tmp_path / "nope.pt")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigError, match="optim.init_from"):
        train(_tiny_cfg(tmp_path, init_from=str(bad)))
    assert not (tmp_path / "run" / "last.pt").exists()


def test_resume_ignores_init_from_and_keeps_the_schedule(tmp_path, exported):
    _, files = exported
    cfg = _tiny_cfg(tmp_path, init_from=str(files["tiny"]), schedule="cosine", lr=1e-3, min_lr=1e-4).with_overrides(
        ["optim.epochs=2"])
    train(cfg, stop_after_steps=1)
    first, _ = load_checkpoint(tmp_path / "run" / "last.pt")
    train(cfg)  # resumes: the weights of the run so far, not init_from's again
    last, info = load_checkpoint(tmp_path / "run" / "last.pt")
    assert not torch.allclose(last.state_dict()["head.0.weight"], first.state_dict()["head.0.weight"])
    assert math.isclose(info["extra"]["optimizer"]["param_groups"][0]["lr"],
                        learning_rate(cfg.optim, 1, 2), rel_tol=1e-9)
