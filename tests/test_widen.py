"""Widening a trained network (Net2Net): the same function with more units, then training on."""

import numpy as np
import pytest
import torch

from deepiso.train import testing as T
from deepiso.train.checkpoint import load_checkpoint
from deepiso.train.config import ConfigError, TrainConfig
from deepiso.train.loop import train
from deepiso.train.model import IsolatorNet, get_config
from deepiso.train.widen import WidenError, output_change, widen


def _trained_like(name: str, seed: int = 0) -> IsolatorNet:
    """A network with weights away from their initialisation (LayerNorm gains and biases too)."""
    spec, cfg = get_config(name)
    torch.manual_seed(seed)
    net = IsolatorNet(spec, cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _sequence(net: IsolatorNet, frames: int = 40) -> torch.Tensor:
    return torch.randn(2, frames, net.spec.input_size, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name, changes", [
    ("default", {"encoder_width": 192, "fc_width": 512}),
    ("default", {"hidden": 512}),
    ("default", {"hidden": 768, "encoder_width": 288, "fc_width": 768}),
    ("seed", {"pre_fc": 512, "hidden": 512, "fc_width": 512}),
])
def test_whole_multiples_compute_what_the_narrow_network_does_step_by_step(name, changes):
    net = _trained_like(name)
    wide = widen(net, net.cfg.replace(**changes)).eval()
    assert wide.num_parameters() > net.num_parameters()
    for k, v in changes.items():
        assert getattr(wide.cfg, k) == v
    x = _sequence(net)
    with torch.no_grad():
        y, (h, c) = net(x)
        yw, (hw, cw) = wide(x)
        torch.testing.assert_close(yw, y, atol=2e-5, rtol=1e-4)
        # streamed frame by frame with the state carried, as the engine runs it: still the same
        streamed = {}
        for key, model in (("narrow", net), ("wide", wide)):
            state, rows = None, []
            for t in range(x.shape[1]):
                out, state = model(x[:, t : t + 1], state)
                rows.append(out)
            streamed[key] = torch.cat(rows, 1)
        torch.testing.assert_close(streamed["wide"], streamed["narrow"], atol=2e-5, rtol=1e-4)
    hidden_before = net.cfg.hidden
    if wide.cfg.hidden > hidden_before:  # every copy of a unit carries the original's state
        reps = wide.cfg.hidden // hidden_before
        for r in range(reps):
            block = hw[:, :, r * hidden_before : (r + 1) * hidden_before]
            torch.testing.assert_close(block, h, atol=2e-5, rtol=1e-4)


def test_copies_part_from_the_first_gradient_step():
    net = _trained_like("default")
    wide = widen(net, net.cfg.replace(hidden=512, encoder_width=192, fc_width=512)).train()
    x = _sequence(net)
    y, _ = wide(x)
    (y ** 2).mean().backward()
    enc = wide.frame_encoder[0].weight.grad
    assert not torch.allclose(enc[:96], enc[96:])  # same weights, different gradients
    w_hh = wide.lstm.weight_hh_l0.grad
    assert not torch.allclose(w_hh[:256], w_hh[256:512])
    head = wide.head[0].weight.grad
    assert not torch.allclose(head[:256], head[256:])
    even = widen(net, net.cfg.replace(hidden=512), noise=0.0).train()  # divided evenly: copies stay twins
    y, _ = even(x)
    (y ** 2).mean().backward()
    torch.testing.assert_close(even.lstm.weight_hh_l0.grad[:256], even.lstm.weight_hh_l0.grad[256:512])


def test_other_widths_work_and_the_change_they_cause_is_measured():
    net = _trained_like("default")
    fc = widen(net, net.cfg.replace(fc_width=300))  # no norm reads the head: still exact
    assert output_change(net, fc) < 1e-4
    odd = widen(net, net.cfg.replace(hidden=384))  # the LSTM's LayerNorm sees new statistics
    change = output_change(net, odd)
    assert 1e-4 < change < 1.0
    assert widen(net, net.cfg.replace(hidden=384), seed=1).lstm.weight_hh_l0.shape == (4 * 384, 384)


@pytest.mark.parametrize("changes, match", [
    ({"hidden": 128}, "hidden cannot shrink"),
    ({"layers": 3}, "only encoder_width, pre_fc, hidden, fc_width can grow; layers differ"),
    ({"skip": False}, "skip differ"),
    ({"pre_fc": 256}, "pre_fc cannot be switched on or off"),
])
def test_what_is_not_a_widening_is_refused(changes, match):
    net = _trained_like("default")
    with pytest.raises(WidenError, match=match):
        widen(net, net.cfg.replace(**changes))


def test_a_run_starts_from_a_narrower_checkpoint_widened(tmp_path, capsys):
    data = {"kind": "manifest", "root": str(T.make_manifest_corpus(tmp_path / "data"))}
    base = {"model": "tiny-test", "data": {"segment_seconds": 0.25, "train_items": 4, "valid_items": 2, **data},
            "augment": {"awgn_profiles": 0}, "loss": {"magnitude": 1.0},
            "optim": {"batch_size": 2, "epochs": 1}, "out_dir": str(tmp_path / "narrow"), "progress": False,
            "threads": 1}
    train(TrainConfig.from_dict(base))
    narrow, _ = load_checkpoint(tmp_path / "narrow" / "best.pt")
    capsys.readouterr()
    wide_cfg = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / "wide"),
                                      "model_overrides": {"hidden": 32, "fc_width": 48},
                                      "optim": {**base["optim"], "init_from": str(tmp_path / "narrow" / "best.pt")}})
    result = train(wide_cfg)
    err = capsys.readouterr().err
    assert "widened" in err and "hidden 16 -> 32, fc_width 16 -> 48" in err
    assert result["steps"] == 2 and np.isfinite(result["best"]["val_loss"])
    wide, _ = load_checkpoint(tmp_path / "wide" / "best.pt")
    assert wide.cfg.hidden == 32 and wide.cfg.fc_width == 48 and wide.num_parameters() > narrow.num_parameters()
    shrink = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / "shrink"), "model_overrides": {"hidden": 8},
                                    "optim": {**base["optim"], "init_from": str(tmp_path / "narrow" / "best.pt")}})
    with pytest.raises(ConfigError, match="is another network than this configuration's \\(differs in hidden\\)"):
        train(shrink)


@pytest.mark.parametrize("changes", [{"fc_width": 512}, {"hidden": 512, "fc_width": 512}])
def test_a_deep_filter_network_widens_with_its_filter(changes):
    import dataclasses

    spec, cfg = get_config("default")
    spec = dataclasses.replace(spec, output="spectrum")
    torch.manual_seed(0)
    net = IsolatorNet(spec, cfg.replace(deep_filter=32, deep_filter_gain=1.0))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # the filter's head too: it starts at zero otherwise
    net.eval()
    wide = widen(net, net.cfg.replace(**changes)).eval()
    assert wide.df_head.in_features == wide.cfg.fc_width
    x = _sequence(net)
    with torch.no_grad():
        y, wy = net(x)[0], wide(x)[0]
        assert float(y.abs().max()) > 0.1
        torch.testing.assert_close(wy, y, atol=2e-5, rtol=1e-4)
