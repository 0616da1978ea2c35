"""Augmentations: AWGN N×M copies fresh per batch, gain, swap, remix; all inert in eval mode."""

import torch

from deepiso.train.augment import AWGN, Augment, ChannelSwap, RandomGain, Remix


def _batch(b=3, c=2, n=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    voc = torch.randn(b, c, n, generator=g) * 0.1
    acc = torch.randn(b, c, n, generator=g) * 0.2
    return {"mixture": voc + acc, "vocals": voc}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_awgn_makes_n_times_m_copies_with_the_same_target():
    batch = _batch()
    awgn = AWGN(profiles=2, snr_db=[20.0, 10.0, 0.0], keep_clean=True)
    out = awgn(batch, _gen(1))
    assert awgn.copies == 7
    assert out["mixture"].shape == (3 * 7, 2, 1000)
    mix = out["mixture"].reshape(3, 7, 2, 1000)
    voc = out["vocals"].reshape(3, 7, 2, 1000)
    assert torch.equal(mix[:, 0], batch["mixture"])  # the clean copy
    assert all(torch.equal(voc[:, k], batch["vocals"]) for k in range(7))
    noise = mix[:, 1:] - batch["mixture"][:, None]  # (3, N*M, 2, 1000), level order per profile
    rms = batch["mixture"].pow(2).mean(dim=(1, 2)).sqrt()
    snr = 20 * torch.log10(rms[:, None] / noise.pow(2).mean(dim=(2, 3)).sqrt())
    torch.testing.assert_close(snr, torch.tensor([20.0, 10.0, 0.0] * 2).expand(3, 6), atol=0.5, rtol=0)
    # fresh noise for another step or epoch, the same for the same seed (exact resume)
    again = awgn(batch, _gen(1))
    other = awgn(batch, _gen(2))
    assert torch.equal(again["mixture"], out["mixture"])
    assert not torch.equal(other["mixture"], out["mixture"])


def test_eval_mode_is_identity():
    batch = _batch()
    chain = Augment([RandomGain(), ChannelSwap(1.0), Remix(1.0), AWGN(1, [10.0])]).eval()
    out = chain(batch, _gen(0))
    assert out["mixture"] is batch["mixture"] and out["vocals"] is batch["vocals"]


def test_gain_swap_remix():
    batch = _batch()
    out = RandomGain(-6, 6)(batch, _gen(0))
    ratio = out["mixture"] / batch["mixture"]
    assert torch.allclose(out["vocals"] / batch["vocals"], ratio, atol=1e-5)
    assert float(ratio.min()) >= 10 ** (-6 / 20) - 1e-5 and float(ratio.max()) <= 10 ** (6 / 20) + 1e-5
    out = ChannelSwap(1.0)(batch, _gen(0))
    assert torch.equal(out["mixture"], batch["mixture"].flip(1)) and torch.equal(out["vocals"], batch["vocals"].flip(1))
    out = Remix(1.0)(batch, _gen(0))
    assert torch.equal(out["vocals"], batch["vocals"])
    acc_in = batch["mixture"] - batch["vocals"]
    acc_out = out["mixture"] - out["vocals"]
    for i in range(3):  # every accompaniment comes from another item
        assert not torch.allclose(acc_out[i], acc_in[i])
        assert any(torch.allclose(acc_out[i], acc_in[j], atol=1e-6) for j in range(3) if j != i)


def test_onset_silences_a_random_start_of_mixture_and_vocals_alike():
    from deepiso.train.augment import Onset

    batch = _batch(b=64, c=2, n=1000)
    onset = Onset(p=0.5, max_samples=300)
    out = onset(batch, _gen(3))
    lengths = []
    for i in range(64):
        live = (out["mixture"][i].abs().sum(0) != 0).nonzero()
        k = int(live[0]) if live.numel() else 1000
        assert k < 300
        # the same samples silenced in both, the rest untouched
        assert torch.all(out["mixture"][i, :, :k] == 0) and torch.all(out["vocals"][i, :, :k] == 0)
        assert torch.equal(out["mixture"][i, :, k:], batch["mixture"][i, :, k:])
        assert torch.equal(out["vocals"][i, :, k:], batch["vocals"][i, :, k:])
        lengths.append(k)
    silenced = sum(k > 0 for k in lengths)
    assert 16 <= silenced <= 48  # about half the items
    assert len(set(lengths)) > 10  # at many phases, not one
    assert torch.equal(onset(batch, _gen(3))["mixture"], out["mixture"])  # reproducible from the generator
    onset.eval()
    assert onset(batch, _gen(3)) is batch


def test_onset_rejects_bad_settings():
    import pytest

    from deepiso.train.augment import Onset

    with pytest.raises(ValueError, match="probability"):
        Onset(p=1.5)
    with pytest.raises(ValueError, match="max_samples"):
        Onset(p=0.5, max_samples=0)


def test_onset_is_last_in_the_configured_chain():
    from deepiso.train.augment import Onset
    from deepiso.train.config import TrainConfig
    from deepiso.train.loop import build_augment

    cfg = TrainConfig.from_dict({"model": "tiny-test", "augment": {"onset": 0.3, "onset_max": 512, "remix": 0.5}})
    chain = list(build_augment(cfg).chain)
    assert isinstance(chain[-1], Onset) and chain[-1].p == 0.3 and chain[-1].max_samples == 512
    assert not any(isinstance(m, Onset) for m in build_augment(TrainConfig.from_dict({"model": "tiny-test"})).chain)


def test_state_carry_starts_rows_from_the_state_they_ended_with_unless_they_open_on_silence():
    import pytest

    from deepiso.train.augment import StateCarry

    carry = StateCarry(p=0.5, hop=64)
    mix = torch.randn(64, 1000, generator=_gen(0))
    mix[:8, :64] = 0.0  # the first 8 rows open on a hop of digital silence
    assert carry.initial(mix, _gen(1)) is None  # nothing carried yet: zeros
    h = torch.randn(2, 64, 16, generator=_gen(2))
    c = torch.randn(2, 64, 16, generator=_gen(3))
    carry.update((h.requires_grad_(), c))
    assert not carry.state[0].requires_grad  # detached: no gradient crosses into the last step
    h0, c0 = carry.initial(mix, _gen(1))
    kept = [bool(h0[:, i].abs().sum() > 0) for i in range(64)]
    for i in range(64):  # a row gets its own state whole, or zeros
        if kept[i]:
            assert torch.equal(h0[:, i], h[:, i].detach()) and torch.equal(c0[:, i], c[:, i])
        else:
            assert torch.all(h0[:, i] == 0) and torch.all(c0[:, i] == 0)
    assert not any(kept[:8])  # silent openings start from zeros, as the engine restarts after silence
    assert 14 <= sum(kept[8:]) <= 42  # about half of the others
    assert torch.equal(carry.initial(mix, _gen(1))[0], h0)  # reproducible from the generator
    assert carry.initial(mix[:32], _gen(1)) is None  # another batch size: nothing to carry onto it
    assert StateCarry(p=0.0).initial(mix, _gen(1)) is None
    off = StateCarry(p=0.0)
    off.update((h, c))
    assert off.state is None  # off keeps nothing
    with pytest.raises(ValueError, match="carry_state"):
        StateCarry(p=1.0)  # a row would never start from zeros again


def test_carried_state_reaches_the_network_and_a_bad_setting_is_a_config_error(tmp_path):
    import pytest

    from deepiso.train import testing as T
    from deepiso.train.augment import StateCarry
    from deepiso.train.config import ConfigError, TrainConfig
    from deepiso.train.features import Frontend
    from deepiso.train.loop import run_batch, train
    from deepiso.train.losses import LossWeights
    from deepiso.train.model import build_model, get_config

    spec, mcfg = get_config("tiny-test")
    net = build_model(spec, mcfg)
    fe = Frontend(spec)
    batch = {k: v[:, :1] for k, v in _batch(b=4, c=1, n=4000).items()}
    w = LossWeights(magnitude=1.0)
    carry = StateCarry(p=0.99, hop=spec.hop)
    fresh = run_batch(net, net, fe, batch, w, need_waves=False, carry=carry, gen=_gen(0))
    assert carry.state is not None and carry.state[0].abs().amax() > 0
    again = run_batch(net, net, fe, batch, w, need_waves=False, carry=carry, gen=_gen(0))
    assert not torch.allclose(again.pred, fresh.pred)  # the same items from the carried state
    plain = run_batch(net, net, fe, batch, w, need_waves=False)
    torch.testing.assert_close(plain.pred, fresh.pred)  # the first step started from zeros

    root = T.make_folder_dataset(tmp_path / "data", tracks=3)
    cfg = TrainConfig.from_dict({"model": "tiny-test", "data": {"kind": "folder", "root": str(root)},
                                 "augment": {"carry_state": 1.0}, "out_dir": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match="augment.carry_state"):
        train(cfg)
