"""Moving a trained network's awareness window (look-ahead frames, fewer past frames), then training on."""

import numpy as np
import pytest
import torch

from deepiso.realtime import dsp
from deepiso.realtime.frame import FrameSpec
from deepiso.train import testing as T
from deepiso.train.checkpoint import load_checkpoint
from deepiso.train.config import ConfigError, TrainConfig
from deepiso.train.loop import train
from deepiso.train.model import IsolatorNet, get_config
from deepiso.train.reframe import ReframeError, reframe


def _trained_like(name: str, **changes) -> IsolatorNet:
    """A network with weights away from their initialisation (LayerNorm gains and biases too)."""
    spec, cfg = get_config(name)
    torch.manual_seed(0)
    net = IsolatorNet(spec, cfg.replace(**changes))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _window(spec: FrameSpec, past: int, future: int) -> FrameSpec:
    return FrameSpec.from_dict({**spec.to_dict(), "past_frames": past, "future_frames": future})


def _contexts(spec: FrameSpec, seconds: float = 0.5) -> torch.Tensor:
    """The awareness stacks of one signal, as the offline and the streaming paths build them."""
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal(int(seconds * spec.sample_rate))).astype(np.float32)
    ctx = dsp.awareness(dsp.features(dsp.stft(x, spec)), spec.past_frames, spec.future_frames)
    return torch.from_numpy(np.ascontiguousarray(ctx, dtype=np.float32))[None]


def _out(net: IsolatorNet) -> torch.Tensor:
    with torch.no_grad():
        return net(_contexts(net.spec))[0]


@pytest.mark.parametrize("name, changes, past, future", [
    ("default", {"norm": "none"}, 4, 1),  # a look-ahead frame added: the new block is read with zeros
    ("default", {"norm": "none"}, 6, 2),
    ("seed", {}, 3, 2),  # the stack encoder with a pre-FC: only the pre-FC reads the blocks
    ("default", {"norm": "none", "skip": False}, 4, 1),
])
def test_added_positions_leave_the_function_as_it_was(name, changes, past, future):
    net = _trained_like(name, **changes)
    moved = reframe(net, _window(net.spec, past, future)).eval()
    assert (moved.spec.past_frames, moved.spec.future_frames) == (past, future)
    assert moved.spec.latency_samples() - net.spec.latency_samples() == \
        (future - net.spec.future_frames) * net.spec.hop
    assert moved.num_parameters() > net.num_parameters()
    a, b = _out(net), _out(moved)
    assert a.shape == b.shape  # one output row per frame, aligned on the output frame
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_with_layer_norm_the_change_is_the_norms_statistics_only():
    net = _trained_like("default")
    moved = reframe(net, _window(net.spec, 4, 1)).eval()
    change = float((_out(moved) - _out(net)).abs().max())
    assert 1e-6 < change < 0.5
    e = net.cfg.encoder_width
    # the new block's gain and bias are those of the output frame's position
    torch.testing.assert_close(moved.in_norm.weight[5 * e :], net.in_norm.weight[4 * e :])
    torch.testing.assert_close(moved.in_norm.bias[: 5 * e], net.in_norm.bias)


def test_each_position_keeps_the_weights_of_its_offset_and_a_dropped_one_is_forgotten():
    net = _trained_like("default")
    e = net.cfg.encoder_width
    moved = reframe(net, _window(net.spec, 2, 1))  # offsets -2..+1 from -4..0
    old_w, new_w = net.lstm.weight_ih_l0.detach(), moved.lstm.weight_ih_l0.detach()
    assert new_w.shape == (old_w.shape[0], 4 * e)
    for j, i in enumerate([2, 3, 4]):  # new -2, -1, 0 read with old -2, -1, 0
        torch.testing.assert_close(new_w[:, j * e : (j + 1) * e], old_w[:, i * e : (i + 1) * e])
    assert not new_w[:, 3 * e :].any()  # the look-ahead block
    old_h, new_h = net.head[0].weight.detach(), moved.head[0].weight.detach()
    torch.testing.assert_close(new_h[:, : 3 * e], old_h[:, 2 * e : 5 * e])  # the skip connection's blocks
    assert not new_h[:, 3 * e : 4 * e].any()
    torch.testing.assert_close(new_h[:, 4 * e :], old_h[:, 5 * e :])  # the LSTM's output: untouched
    torch.testing.assert_close(moved.lstm.weight_hh_l0, net.lstm.weight_hh_l0)
    torch.testing.assert_close(moved.frame_encoder[0].weight, net.frame_encoder[0].weight)
    assert float((_out(moved) - _out(net)).abs().max()) > 1e-3  # the two oldest frames did count


def test_a_new_position_learns_from_the_first_step():
    net = _trained_like("default")
    moved = reframe(net, _window(net.spec, 4, 1)).train()
    y, _ = moved(_contexts(moved.spec))
    (y ** 2).mean().backward()
    e = net.cfg.encoder_width
    assert moved.lstm.weight_ih_l0.grad[:, 5 * e :].abs().sum() > 0
    assert moved.head[0].weight.grad[:, 5 * e : 6 * e].abs().sum() > 0


@pytest.mark.parametrize("field, value", [("hop", 128), ("n_fft", 2048), ("output", "complex_mask")])
def test_another_frame_contract_is_refused(field, value):
    net = _trained_like("default")
    spec = FrameSpec.from_dict({**net.spec.to_dict(), field: value, "future_frames": 1})
    with pytest.raises(ReframeError, match=f"future_frames, synthesis_length can change; {field} differ"):
        reframe(net, spec)


def test_a_run_starts_from_a_causal_checkpoint_with_look_ahead(tmp_path, capsys):
    data = {"kind": "manifest", "root": str(T.make_manifest_corpus(tmp_path / "data"))}
    base = {"model": "tiny-test", "data": {"segment_seconds": 0.25, "train_items": 4, "valid_items": 2, **data},
            "augment": {"awgn_profiles": 0}, "loss": {"magnitude": 1.0},
            "optim": {"batch_size": 2, "epochs": 1}, "out_dir": str(tmp_path / "causal"), "progress": False,
            "threads": 1, "frame_overrides": {"future_frames": 0}}
    train(TrainConfig.from_dict(base))
    capsys.readouterr()
    ahead = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / "ahead"),
                                   "frame_overrides": {"future_frames": 2},
                                   "optim": {**base["optim"], "init_from": str(tmp_path / "causal" / "best.pt")}})
    result = train(ahead)
    err = capsys.readouterr().err
    assert "moved the awareness window" in err and "future_frames 0 -> 2" in err
    assert result["steps"] == 2 and np.isfinite(result["best"]["val_loss"])
    net, _ = load_checkpoint(tmp_path / "ahead" / "best.pt")
    assert net.spec.future_frames == 2 and net.spec.past_frames == 2
    low = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / "low"),  # and a low-delay synthesis with it
                                 "frame_overrides": {"future_frames": 1, "synthesis_length": 128},
                                 "optim": {**base["optim"], "init_from": str(tmp_path / "causal" / "best.pt")}})
    train(low)
    assert "future_frames 0 -> 1, synthesis_length 0 -> 128" in capsys.readouterr().err
    net, _ = load_checkpoint(tmp_path / "low" / "best.pt")
    assert net.spec.synthesis_length == 128 and net.spec.latency_samples(64) == 128
    other = TrainConfig.from_dict({**base, "out_dir": str(tmp_path / "other"),
                                   "frame_overrides": {"future_frames": 1, "hop": 128},
                                   "optim": {**base["optim"], "init_from": str(tmp_path / "causal" / "best.pt")}})
    with pytest.raises(ConfigError, match="is another network than this configuration's \\(differs in .*hop"):
        train(other)
