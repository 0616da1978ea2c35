"""The bandfilter architecture: ERB-band gains, a deep filter on the low bins, a GRU; beside IsolatorNet."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.arch_cost import layer_macs
from deepiso.export import export_checkpoint, export_model
from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.onnx_model import load_model
from deepiso.realtime.separator import Separator
from deepiso.train import testing as T
from deepiso.train.bandfilter import BandFilterConfig, BandFilterNet, erb_bands
from deepiso.train.checkpoint import load_checkpoint, save_checkpoint
from deepiso.train.config import ConfigError, TrainConfig
from deepiso.train.features import Frontend
from deepiso.train.loop import initial_weights, resolve_model, run_batch, train
from deepiso.train.losses import LossWeights
from deepiso.train.model import (
    IsolatorNet,
    ModelConfig,
    ModelConfigError,
    TorchSequence,
    build_model,
    build_named,
    get_config,
)
from deepiso.train.onnx_import import import_onnx


def _random_net(name: str = "bandfilter", seed: int = 0) -> BandFilterNet:
    torch.manual_seed(seed)
    net = build_named(name)
    with torch.no_grad():  # the filter starts at zero; give it weights so that it is exercised
        torch.nn.init.normal_(net.df_head.weight, std=0.05)
        torch.nn.init.normal_(net.df_head.bias, std=0.05)
    return net.eval()


def _voice_with_gaps(rate: int, seconds: float = 1.5) -> np.ndarray:
    """A voiced signal with digital silence at the start and in the middle, of a length no hop divides."""
    rng = np.random.default_rng(0)
    n = int(seconds * rate) + 37
    t = np.arange(n) / rate
    x = 0.2 * np.sin(2 * np.pi * 210 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.03 * rng.standard_normal(n)
    x[: rate // 5] = 0.0
    x[n // 2 : n // 2 + rate // 4] = 0.0
    return x.astype(np.float32)


def test_erb_bands_cover_every_bin_once_and_widen_with_frequency():
    bands = erb_bands(481, 48_000, 32)
    assert bands.shape == (32, 481)
    torch.testing.assert_close(bands.sum(dim=0), torch.ones(481))  # the transpose spreads gains as a convex mix
    assert bool((bands >= 0).all()) and bool((bands.sum(dim=1) > 0).all())
    centres = bands.argmax(dim=1)
    assert bool((centres[1:] > centres[:-1]).all())
    widths = (bands > 0).sum(dim=1)
    assert widths[0] <= 3 and widths[-2] > 50  # ~100 Hz at the bottom, kilohertz at the top
    with pytest.raises(ModelConfigError, match="do not fit"):
        erb_bands(20, 16_000, 16, min_width=2)


def test_named_network_is_sized_for_two_cores_and_keeps_the_engine_contract():
    spec, cfg = get_config("bandfilter")
    assert (spec.sample_rate, spec.n_fft, spec.hop, spec.context, spec.output) == (48_000, 960, 480, 5, "spectrum")
    net = _random_net()
    assert isinstance(net, BandFilterNet) and net.cfg.architecture == "bandfilter"
    assert 300_000 <= net.num_parameters() <= 800_000
    assert not any(name.startswith("band_") for name in net.state_dict())  # fixed matrices: buffers, not weights
    x = torch.randn(2, 9, spec.input_size)
    c0 = torch.randn(cfg.layers, 2, cfg.hidden)
    h0 = torch.randn(cfg.layers, 2, cfg.hidden)
    with torch.no_grad():
        y, (h, c) = net(x, (h0, c0))
        assert y.shape == (2, 9, spec.output_size) and h.shape == h0.shape
        assert c is c0  # a GRU has no cell state: c passes through unchanged
        state, steps = (h0, c0), []
        for t in range(x.shape[1]):
            out, state = net(x[:, t : t + 1], state)
            steps.append(out)
    torch.testing.assert_close(torch.cat(steps, dim=1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state[0], h, atol=1e-5, rtol=1e-5)
    # gains in [0, 1] above the filtered bins: no bin louder than the centre frame's
    centre = net.centre_features(x)
    n, d = spec.n_bins, cfg.df_bins
    level = lambda ri: ri[..., d:n] ** 2 + ri[..., n + d :] ** 2  # noqa: E731
    assert bool((level(y) <= level(centre) * (1 + 1e-5) + 1e-12).all())


def test_config_round_trips_and_old_configs_read_as_before():
    spec, cfg = get_config("bandfilter")
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["architecture"] == "bandfilter"
    assert ModelConfig.from_dict(data) == cfg  # what checkpoints and cards are read with
    assert isinstance(build_model(spec, ModelConfig.from_dict(data)), BandFilterNet)
    isolator = get_config("default")[1]
    assert "architecture" not in isolator.to_dict()  # files written before architectures read as they did
    assert ModelConfig.from_dict({**isolator.to_dict(), "architecture": "isolator"}) == isolator
    with pytest.raises(ModelConfigError, match="unknown architecture 'nope'"):
        ModelConfig.from_dict({**data, "architecture": "nope"})
    with pytest.raises(ModelConfigError, match="unknown fields: colour"):
        ModelConfig.from_dict({**data, "colour": 1})
    with pytest.raises(ModelConfigError, match="newer"):
        ModelConfig.from_dict({**data, "format_version": 99})
    with pytest.raises(ModelConfigError, match="hidden"):
        BandFilterConfig(hidden=0)
    # format 1 (before the gated filter) reads as the added filter it was trained with
    old = {k: v for k, v in data.items() if k != "deep_filter"} | {"format_version": 1}
    assert cfg.deep_filter == "gated" and ModelConfig.from_dict(old) == cfg.replace(deep_filter="added")
    with pytest.raises(ModelConfigError, match="deep_filter must be one of added, gated, got 'both'"):
        BandFilterConfig(deep_filter="both")
    with pytest.raises(ModelConfigError, match="outputs the vocal spectrum"):
        build_model(FrameSpec.from_dict({**spec.to_dict(), "output": "ratio_mask"}), cfg)


def test_exports_verified_and_streams_through_the_engine_as_pytorch_computes(tmp_path):
    net = _random_net()
    rate = net.spec.sample_rate
    x = _voice_with_gaps(rate)
    reference = Separator(TorchSequence(net)).separate(x).vocals  # PyTorch, frame contract as the engine's
    for precision in ("fp32", "int8"):
        path = tmp_path / f"bandfilter-{precision}.onnx"
        result = export_model(net, path, int8=precision == "int8")
        card = result.card
        assert card["state"] == {"layers": 2, "hidden": 192, "cell": "gru",
                                 "c": "unused: passed through unchanged (c_out = c)"}
        assert card["model_config"]["architecture"] == "bandfilter"
        tolerance = card["verification"]["tolerance"]
        assert card["verification"]["step_vs_pytorch_max_abs_diff"] <= tolerance
        back, _ = import_onnx(path)  # what optim.init_from does with an exported file
        assert isinstance(back, BandFilterNet)
        for name, weight in net.state_dict().items():
            error = float((back.state_dict()[name] - weight).abs().max())
            assert error == 0.0 if precision == "fp32" else error < 0.02, (name, error)
        model = load_model(path, batch=1, providers=["CPUExecutionProvider"])
        model.c[...] = 0.5
        model.step(np.zeros(net.spec.input_size, np.float32))
        assert np.all(model.c == 0.5)  # c_out = c through the engine's buffers
        live = Separator(str(path)).stream(x, block=256).vocals  # Host + Isolator on the step graph
        assert live.shape == reference.shape == (x.size, 1)
        assert np.abs(reference).max() > 1e-2
        if precision == "fp32":
            np.testing.assert_allclose(live, reference, atol=tolerance)
        else:
            error = np.sqrt(np.mean((live - reference) ** 2) / np.mean(reference**2))
            assert error <= card["quantization"]["tolerance"]["relative_rms_error"], error


def test_a_few_training_steps_reduce_the_loss_on_a_batch():
    net = build_named("bandfilter").train()
    spec = net.spec
    frontend = Frontend(spec)
    weights = LossWeights(**vars(TrainConfig.load("train/configs/bandfilter.yaml").loss))
    gen = torch.Generator().manual_seed(0)
    n = int(0.3 * spec.sample_rate)
    t = torch.arange(n) / spec.sample_rate
    voc = 0.2 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 3 * t).abs()
    acc = 0.05 * torch.randn(2, 1, n, generator=gen)
    batch = {"mixture": voc + acc, "vocals": voc.expand(2, 1, n).clone()}
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: a second thread only waits
    try:
        for _ in range(25):
            out = run_batch(net, net, frontend, batch, weights, need_waves=False)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            losses.append(float(out.loss.detach()))
    finally:
        torch.set_num_threads(threads)
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < losses[0] - 0.05, losses


def test_trains_through_the_loop_and_its_checkpoint_round_trips(tmp_path):
    data = T.make_folder_dataset(tmp_path / "data", tracks=3, seconds=0.6, rate=48_000, channels=1)
    base = TrainConfig.load("train/configs/bandfilter.yaml").to_dict()
    base.update(out_dir=str(tmp_path / "run"), progress=False, tensorboard=False, checkpoint_every=0)
    base["data"] = {"kind": "folder", "root": str(data), "segment_seconds": 0.25, "channels": 1,
                    "train_items": 8, "valid_items": 2, "valid_fraction": 0.34}
    base["optim"].update(batch_size=4, epochs=2, warmup_steps=0)
    base["augment"]["carry_state"] = 0.5  # the GRU state carried between steps, in h
    cfg = TrainConfig.from_dict(base)
    summary = train(cfg)
    assert summary["position"]["global_step"] == 4
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in summary["history"])
    net, info = load_checkpoint(tmp_path / "run" / "best.pt")
    assert isinstance(net, BandFilterNet) and info["model"]["architecture"] == "bandfilter"
    # round trip: saved again and loaded, the same weights and the same output
    save_checkpoint(tmp_path / "again.pt", net)
    again, _ = load_checkpoint(tmp_path / "again.pt")
    x = torch.randn(1, 5, net.spec.input_size)
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], net(x)[0])
    # `deepiso export` of the checkpoint, and a run that starts from the exported file
    exported = export_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "bandfilter.onnx")
    assert exported.card["model_config"] == net.cfg.to_dict() and exported.card["state"]["cell"] == "gru"
    state, _ = initial_weights(str(exported.step_path), net.spec, net.cfg, verbose=False)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    # a network whose filter is added (phases 1 and 2) starts a gated one with the same weights; the other
    # way round, and any other difference, is refused
    assert net.cfg.deep_filter == "gated"
    added = BandFilterNet(net.spec, net.cfg.replace(deep_filter="added"))
    added.load_state_dict(net.state_dict())
    save_checkpoint(tmp_path / "added.pt", added)
    state, _ = initial_weights(str(tmp_path / "added.pt"), net.spec, net.cfg, verbose=False)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ConfigError, match="'bandfilter' network other than"):
        initial_weights(str(tmp_path / "run" / "best.pt"), added.spec, added.cfg, verbose=False)
    with pytest.raises(ConfigError, match="'bandfilter' network other than"):
        initial_weights(str(tmp_path / "added.pt"), net.spec, net.cfg.replace(hidden=8), verbose=False)
    # an IsolatorNet configuration does not start from it, and the architecture key is checked
    with pytest.raises(ConfigError, match="'bandfilter' network other than"):
        initial_weights(str(tmp_path / "run" / "best.pt"), *get_config("tiny-test"), verbose=False)
    with pytest.raises(ConfigError, match="not the 'isolator'"):
        resolve_model(TrainConfig.from_dict({**base, "architecture": "isolator"}))


def test_the_training_configuration_is_default_recipe_on_the_new_network_with_the_new_levers():
    cfg, default = (TrainConfig.load(f"train/configs/{n}.yaml") for n in ("bandfilter", "default"))
    spec, mcfg = resolve_model(cfg)
    assert isinstance(build_model(spec, mcfg), BandFilterNet) and spec == get_config("bandfilter")[0]
    # default's data and loss, plus the voice augmentations, the tonal backgrounds and the pause terms
    levers = {"formant", "pitch", "mic_eq", "room", "phone", "source_weights"}
    data, base = vars(cfg.data), vars(default.data)
    assert {k for k in data if data[k] != base[k]} == levers
    assert all(0 < data[k] < 1 for k in levers - {"source_weights"}) and data["source_weights"] == {
        "generated-tonal": 8.0}
    loss, base_loss = vars(cfg.loss), vars(default.loss)
    assert {k for k in loss if loss[k] != base_loss[k]} == {"compressed", "voice_guard"}
    assert cfg.augment == default.augment
    assert not cfg.optim.init_from  # from scratch
    assert isinstance(build_model(*resolve_model(default)), IsolatorNet)  # default's unchanged


@pytest.mark.parametrize("name", ["tiny-test", "bandfilter-tiny-test"])
def test_mac_hooks_count_the_recurrent_and_linear_layers(name):
    net = build_named(name).eval()
    spec, cfg = net.spec, net.cfg
    x = torch.zeros(1, 3, spec.input_size)
    gates = 3 if isinstance(net, BandFilterNet) else 4
    h = cfg.hidden
    first = net.gru.input_size if gates == 3 else net.lstm.input_size
    recurrent = gates * ((first + h) * h + (cfg.layers - 1) * 2 * h * h)
    linear = sum(m.in_features * m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear))
    assert layer_macs(net, x) == 3 * (recurrent + linear)


def test_a_gated_filter_cannot_open_a_band_the_gains_close():
    # The same weights, the filter added and gated: where the gains are 0 the gated output is 0 in
    # every bin, the added one keeps the filter's output on the low bins; where they are 1 both agree.
    torch.manual_seed(0)
    spec, cfg = get_config("bandfilter-tiny-test")
    gated = BandFilterNet(spec, cfg)
    added = BandFilterNet(spec, cfg.replace(deep_filter="added"))
    torch.nn.init.normal_(gated.df_head.weight, std=0.5)
    added.load_state_dict(gated.state_dict())
    x = torch.randn(2, 7, spec.input_size)
    d, n = cfg.df_bins, spec.n_bins
    for bias, closed in ((-60.0, True), (60.0, False)):  # every gain ~0, then every gain ~1
        for net in (gated, added):
            torch.nn.init.constant_(net.gain_head.bias, bias)
            torch.nn.init.zeros_(net.gain_head.weight)
        with torch.no_grad():
            yg, _ = gated(x)
            ya, _ = added(x)
        low = torch.cat([ya[..., :d], ya[..., n : n + d]], dim=-1)
        if closed:
            assert float(yg.abs().max()) < 1e-12 and float(low.abs().max()) > 0.1
        else:
            torch.testing.assert_close(yg, ya)

