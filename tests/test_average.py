"""Weight averaging: a run keeps each epoch's weights, `deepiso train average` writes their (weighted) mean
as a checkpoint the exporter takes, from checkpoints and ONNX files alike; inputs that cannot be averaged
are refused with a clear error and nothing is written."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from deepiso.export import export_model
from deepiso.realtime import cli
from deepiso.train import testing as T
from deepiso.train.average import AverageError, average_checkpoints, average_networks
from deepiso.train.checkpoint import load_checkpoint, save_checkpoint
from deepiso.train.config import TrainConfig
from deepiso.train.loop import train
from deepiso.train.model import build_model, build_named, get_config


def _net(seed: int, name: str = "tiny-test"):
    torch.manual_seed(seed)
    net = build_named(name)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


@pytest.fixture()
def three(tmp_path):
    nets = [_net(s) for s in (1, 2, 3)]
    paths = [save_checkpoint(tmp_path / f"n{i}.pt", n, train_config={"seed": i}, config_json=False)
             for i, n in enumerate(nets)]
    return nets, [str(p) for p in paths]


def test_the_mean_of_checkpoints_is_the_mean_of_every_weight(three, tmp_path):
    nets, paths = three
    out = average_checkpoints(tmp_path / "avg.pt", paths)
    avg, info = load_checkpoint(out)
    states = [n.state_dict() for n in nets]
    for name, tensor in avg.state_dict().items():
        want = sum(s[name].double() for s in states) / 3
        torch.testing.assert_close(tensor.double(), want, atol=1e-7, rtol=0), name
    assert info["train_config"] == {"seed": 0}  # the first input's
    assert [a["source"] for a in info["metrics"]["average_of"]] == paths
    assert [a["weight"] for a in info["metrics"]["average_of"]] == pytest.approx([1 / 3] * 3)
    # the mean computes something else than each input: the weights really moved
    x = torch.randn(1, 5, avg.spec.input_size)
    outs = [n(x)[0] for n in nets]
    assert all(not torch.allclose(avg(x)[0], o) for o in outs)


def test_weights_are_normalised_and_one_input_with_all_the_weight_comes_back_exactly(three, tmp_path):
    nets, paths = three
    blend, _ = average_networks(paths[:2], [3.0, 1.0])
    a, b = nets[0].state_dict(), nets[1].state_dict()
    for name, tensor in blend.state_dict().items():
        torch.testing.assert_close(tensor.double(), 0.75 * a[name].double() + 0.25 * b[name].double(),
                                   atol=1e-7, rtol=0)
    same, _ = average_networks(paths[:2], [0.0, 1.0])
    for name, tensor in same.state_dict().items():
        assert torch.equal(tensor, b[name]), name


def test_onnx_inputs_blend_with_checkpoints_and_the_result_exports(tmp_path):
    spec, cfg = get_config("default")
    spec = dataclasses.replace(spec, n_fft=256, hop=64, sample_rate=16_000)
    small = cfg.replace(hidden=32, encoder_width=16, fc_width=32)
    torch.manual_seed(0)
    a, b = build_model(spec, small).eval(), build_model(spec, small).eval()
    onnx_a = export_model(a, tmp_path / "a.onnx", name="a").step_path
    pt_b = save_checkpoint(tmp_path / "b.pt", b, config_json=False)
    out = tmp_path / "blend.pt"
    assert cli.main(["train", "average", str(out), str(onnx_a), str(pt_b), "--weights", "1", "1"]) == 0
    blend, _ = load_checkpoint(out)
    sa, sb = a.state_dict(), b.state_dict()
    for name, tensor in blend.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, (sa[name] + sb[name]) / 2, atol=1e-6, rtol=0)
    exported = export_model(blend, tmp_path / "blend.onnx", name="blend")  # parity-checked by the exporter
    assert exported.step_path.is_file()


def test_a_run_keeps_each_epochs_weights_and_their_mean_is_a_checkpoint(tmp_path):
    data = {"kind": "folder", "root": str(T.make_folder_dataset(tmp_path / "data", tracks=3)),
            "segment_seconds": 0.25, "train_items": 8, "valid_items": 2, "channels": 2, "valid_fraction": 0.34}
    cfg = TrainConfig.from_dict({"model": "tiny-test", "data": data, "augment": {"awgn_profiles": 0},
                                 "loss": {"magnitude": 1.0}, "optim": {"batch_size": 4, "epochs": 2, "lr": 0.01},
                                 "out_dir": str(tmp_path / "run"), "progress": False, "threads": 1,
                                 "tensorboard": False, "keep_epochs": True})
    train(cfg)
    run = tmp_path / "run"
    kept = sorted(p.name for p in run.glob("epoch_*.pt"))
    assert kept == ["epoch_001.pt", "epoch_002.pt"]
    e1, i1 = load_checkpoint(run / "epoch_001.pt")
    e2, i2 = load_checkpoint(run / "epoch_002.pt")
    last = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    assert (i1["metrics"]["epoch"], i2["metrics"]["epoch"]) == (0, 1)
    assert all(torch.equal(e2.state_dict()[k], last[k]) for k in last)  # the last epoch's file = last.pt
    assert any(not torch.equal(e1.state_dict()[k], e2.state_dict()[k]) for k in last)
    avg, info = load_checkpoint(average_checkpoints(run / "avg.pt", [str(run / "epoch_001.pt"),
                                                                     str(run / "epoch_002.pt")]))
    assert info["train_config"]["keep_epochs"] is True
    k = next(iter(last))
    torch.testing.assert_close(avg.state_dict()[k], (e1.state_dict()[k] + e2.state_dict()[k]) / 2)
    # a run without keep_epochs writes none
    train(cfg.with_overrides(["keep_epochs=false", f"out_dir={tmp_path / 'plain'}"]))
    assert not list((tmp_path / "plain").glob("epoch_*.pt"))


def test_inputs_that_cannot_be_averaged_are_refused_and_nothing_is_written(three, tmp_path, capsys):
    _, paths = three
    out = tmp_path / "avg.pt"
    other = save_checkpoint(tmp_path / "other.pt", _net(4, "seed"), config_json=False)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    nan = _net(5)
    with torch.no_grad():
        next(nan.parameters())[0].fill_(float("nan"))
    save_checkpoint(tmp_path / "nan.pt", nan, config_json=False)
    cases = {
        "nothing to average": ([], None),
        "another network": ([paths[0], str(other)], None),
        "not a deepiso checkpoint": ([paths[0], str(tmp_path / "junk.pt")], None),
        "no such checkpoint": ([paths[0], str(tmp_path / "missing.pt")], None),
        "NaN": ([paths[0], str(tmp_path / "nan.pt")], None),
        "give one weight per input": (paths, [1.0]),
        "not negative": (paths[:2], [1.0, -1.0]),
        "sum to 0": (paths[:2], [0.0, 0.0]),
    }
    for message, (sources, weights) in cases.items():
        with pytest.raises(AverageError, match=message):
            average_checkpoints(out, sources, weights)
        assert not out.exists(), message
    with pytest.raises(AverageError, match="one of the inputs"):
        average_checkpoints(paths[0], paths)
    assert cli.main(["train", "average", str(out), paths[0], str(other)]) == 2
    assert "another network" in capsys.readouterr().err
    assert not out.exists()
