"""Contrastive cosine distance, magnitude, SI-SDR, gap and the pause terms' losses: values, silent frames,
gradients, and a few training steps with each pause term."""

import dataclasses
import math

import pytest
import torch

from deepiso.train.losses import (
    LossWeights,
    combined_loss,
    compressed_spectral_loss,
    contrastive_cosine,
    gap_loss,
    magnitude_loss,
    multi_resolution_stft_loss,
    si_sdr,
    si_sdr_loss,
    voice_guard_loss,
)


def _frames(seed=0, b=2, t=5, f=18):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, f, generator=g), torch.randn(b, t, f, generator=g)


def test_contrastive_is_minimal_at_the_vocals_and_maximal_at_the_accompaniment():
    v, a = _frames()
    a = a - (a * v).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True) * v  # a ⟂ v
    at_vocals = contrastive_cosine(v, v, a)
    at_accomp = contrastive_cosine(a, v, a)
    away = contrastive_cosine(v - a, v, a)  # same angle to v as ... further from a
    assert abs(float(at_vocals) - 1.0) < 1e-5  # d_v = 0, d_a = 1 (orthogonal)
    assert abs(float(at_accomp) - 3.0) < 1e-5  # d_v = 1, d_a = 2
    assert float(away) < float(at_vocals)  # pushing away from the accompaniment lowers the loss
    # scale-invariant in the prediction
    assert abs(float(contrastive_cosine(5 * v, v, a)) - float(at_vocals)) < 1e-5


def test_contrastive_is_finite_with_gradient_on_silent_targets():
    _, a = _frames(1)
    v = torch.zeros_like(a)
    pred = (0.3 * a).clone().requires_grad_(True)
    loss = contrastive_cosine(pred, v, a)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(pred.grad).all()
    assert float(pred.grad.norm()) > 0  # it pushes a prediction towards silence
    assert float(contrastive_cosine(torch.zeros_like(a), v, a)) < loss.item()
    # everything silent, prediction silent: zero, finite gradient
    z = torch.zeros(1, 3, 8, requires_grad=True)
    loss = contrastive_cosine(z, torch.zeros(1, 3, 8), torch.zeros(1, 3, 8))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
    # vocals only (no accompaniment): the accompaniment term is off
    v, _ = _frames(2)
    assert abs(float(contrastive_cosine(v, v, torch.zeros_like(v)))) < 1e-5


def test_magnitude_loss():
    v, a = _frames(3)
    assert float(magnitude_loss(v, v)) < 1e-6
    assert float(magnitude_loss(v + a, v)) > 0.1


def test_si_sdr_values():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 4000, generator=g)
    noise = torch.randn(3, 4000, generator=g)
    est = 2.0 * ref + 0.1 * noise
    want = 10 * torch.log10((4 * ref.pow(2).sum(-1)) / (0.01 * noise.pow(2).sum(-1)))
    torch.testing.assert_close(si_sdr(est, ref), want, atol=0.05, rtol=0)
    # silent references are skipped; all silent → 0 with a graph
    est.requires_grad_(True)
    loss = si_sdr_loss(est, torch.zeros_like(ref), ref)
    assert loss.item() == 0.0
    mixed = torch.stack([ref[0], torch.zeros(4000)])
    loss = si_sdr_loss(est[:2], mixed, ref[:2])
    torch.testing.assert_close(loss, -si_sdr(est[:1], ref[:1]).mean())


def test_combined_terms_and_weights():
    v, a = _frames(4)
    pred = v + 0.5 * a
    w = LossWeights(contrastive=1.0, magnitude=2.0, si_sdr=0.0)
    total, parts = combined_loss(w, pred, v, a)
    assert set(parts) == {"contrastive", "magnitude"}
    assert abs(float(total) - (parts["contrastive"] + 2.0 * parts["magnitude"])) < 1e-5
    try:
        combined_loss(LossWeights(si_sdr=1.0), pred, v, a)
    except ValueError as exc:
        assert "waveforms" in str(exc)
    else:
        raise AssertionError("SI-SDR without waveforms must fail")


def test_gap_loss_measures_the_estimate_in_voice_free_frames_only():
    v, a = _frames(7, b=3, t=10)
    v[0, 4:] = 0.0  # item 0: voice-free from frame 4 on
    v[1] = 0.0  # item 1: accompaniment only
    # item 2: voiced throughout: no gap, it does not count
    mix = v + a
    assert abs(float(gap_loss(mix, v, a))) < 1e-5  # passing the mixture through: 0 dB
    assert abs(float(gap_loss(0.1 * mix, v, a)) - (-20.0)) < 1e-3  # 20 dB down in the gaps
    assert abs(float(gap_loss(v.clone(), v, a, limit_db=60.0)) - (-60.0)) < 1e-6  # silence in the gaps: the floor
    louder_where_voiced = mix.clone()
    louder_where_voiced[0, :4] *= 100.0
    louder_where_voiced[2] *= 100.0
    assert abs(float(gap_loss(louder_where_voiced, v, a))) < 1e-5  # voiced frames do not count
    pred = (0.5 * mix).requires_grad_()
    gap_loss(pred, v, a).backward()
    assert pred.grad is not None and float(pred.grad[0, 4:].abs().sum()) > 0
    assert float(pred.grad[0, :4].abs().sum()) == 0.0 and float(pred.grad[2].abs().sum()) == 0.0
    no_gap = gap_loss(mix[2:], v[2:], a[2:])
    assert float(no_gap) == 0.0
    total, parts = combined_loss(LossWeights(contrastive=0.0, gap=0.5), 0.1 * mix, v, a)
    assert set(parts) == {"gap"} and abs(float(total) - 0.5 * parts["gap"]) < 1e-6
    # the floor is the weights' gap_limit_db: 40 dB down in the gaps counts as done at a limit of 30
    total, parts = combined_loss(LossWeights(contrastive=0.0, gap=1.0, gap_limit_db=30.0), 0.01 * mix, v, a)
    assert abs(parts["gap"] - (-30.0)) < 1e-4
    pred = (0.01 * mix).requires_grad_()
    combined_loss(LossWeights(contrastive=0.0, gap=1.0, gap_limit_db=30.0), pred, v, a)[0].backward()
    assert float(pred.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="gap_limit_db"):
        LossWeights(gap=1.0, gap_limit_db=0.0)


# ----------------------------------------------------------------------------
# Losses for the pauses: compressed spectrum, multi-resolution STFT, voice guard

RATE = 16_000
VOICE_END = 4000  # the voice stops after 0.25 s: the rest of each item is voice-free


def _item(seed=3, seconds=0.5, items=2):
    """``(vocals, accompaniment)`` waveforms ``(items, samples)`` with a voice-free second part, and the
    ``tiny-test`` frontend."""
    from deepiso.train.features import Frontend
    from deepiso.train.model import get_config
    from deepiso.train.testing import synth_track

    voc, acc = [], []
    for i in range(items):
        v, a = synth_track(seconds, RATE, 1, seed + i)
        v = torch.from_numpy(v[:, 0]).double() * 2.0
        v[VOICE_END:] = 0.0
        voc.append(v)
        acc.append(torch.from_numpy(a[:, 0]).double())
    return torch.stack(voc), torch.stack(acc), Frontend(get_config("tiny-test")[0]).double()


def _spectra(fe, *waves):
    from deepiso.train.features import features

    return [features(fe.stft(w)) for w in waves]


def _gap_frames(fe, n_frames):
    """Frames ``(T,)`` whose whole analysis window lies in the voice-free part."""
    hop, n_fft = fe.spec.hop, fe.spec.n_fft
    return torch.tensor([t * hop - (n_fft - hop) >= VOICE_END for t in range(n_frames)])


def test_compressed_spectral_loss_counts_every_frame():
    voc, acc, fe = _item()
    V, A = _spectra(fe, voc, acc)
    gap = _gap_frames(fe, V.shape[1])[None, :, None]
    assert 10 < int(gap.sum()) < V.shape[1] - 10
    assert float(compressed_spectral_loss(V, V)) < 1e-12  # perfect
    mix, cleaner = V + A, V + 0.3 * A
    assert float(compressed_spectral_loss(mix, V)) > 1.5 * float(compressed_spectral_loss(cleaner, V)) > 0
    # the same estimate where there is voice; background kept in the voice-free frames vs silence there
    keep, silent = V + 0.3 * A, V + 0.3 * A * (~gap)
    assert float(compressed_spectral_loss(keep, V)) > 1.5 * float(compressed_spectral_loss(silent, V))
    # the voice-free frames get a gradient towards silence (SI-SDR's would come only through the scale)
    pred = keep.clone().requires_grad_(True)
    compressed_spectral_loss(pred, V).backward()
    assert float((pred.grad * pred.detach()).masked_select(gap).sum()) > 0  # a step against the gradient shrinks them
    # the power is the compression's: c = 1 is a plain complex + magnitude MSE
    plain = compressed_spectral_loss(mix, V, power=1.0)
    n = V.shape[-1] // 2
    want = 2 * (A.pow(2).mean()) + ((mix[..., :n] ** 2 + mix[..., n:] ** 2 + 1e-10).sqrt()
                                    - (V[..., :n] ** 2 + V[..., n:] ** 2 + 1e-10).sqrt()).pow(2).mean()
    torch.testing.assert_close(plain, want, rtol=1e-6, atol=1e-9)


def test_multi_resolution_stft_loss_counts_every_frame():
    voc, acc, _ = _item()
    mix = voc + acc
    assert float(multi_resolution_stft_loss(voc, voc, mix)) < 1e-6  # perfect
    at_mix = float(multi_resolution_stft_loss(mix, voc, mix))
    assert at_mix > 1.3 * float(multi_resolution_stft_loss(voc + 0.1 * acc, voc, mix)) > 0
    assert 0.5 < at_mix < 4.0  # normalised by the mixture: about 2 ||M - S|| / ||M|| in compressed magnitudes
    # nearly level-independent (bins near the SPEC_EPS floor aside): about the same value 20 dB down
    torch.testing.assert_close(multi_resolution_stft_loss(0.1 * mix, 0.1 * voc, 0.1 * mix),
                               torch.tensor(at_mix, dtype=torch.float64), rtol=0.06, atol=0)
    gap = torch.arange(voc.shape[-1]) >= VOICE_END + 2048  # clear of the longest window
    keep, silent = voc + 0.3 * acc, voc + 0.3 * acc * (~gap)
    assert float(multi_resolution_stft_loss(keep, voc, mix)) > 1.2 * float(multi_resolution_stft_loss(silent, voc, mix))
    # one resolution, or several
    one = multi_resolution_stft_loss(mix, voc, mix, ffts=[512])
    assert math.isfinite(float(one)) and float(one) > 0
    # accompaniment-only items are defined (normalised by the mixture, not the voice)
    zero = torch.zeros_like(voc)
    assert float(multi_resolution_stft_loss(zero, zero, acc)) < 1e-6
    assert float(multi_resolution_stft_loss(acc, zero, acc)) > 1.0


def test_voice_guard_penalises_removing_voice_not_leaving_background():
    voc, acc, fe = _item()
    V, A = _spectra(fe, voc, acc)
    gap = _gap_frames(fe, V.shape[1])[None, :, None]
    voiced = ~_gap_frames(fe, V.shape[1]).clone()
    voiced[: 3] = True
    mix = V + A
    assert float(voice_guard_loss(V, V)) == 0.0  # perfect
    assert float(voice_guard_loss(2.0 * V, V)) == 0.0  # louder than the voice everywhere: nothing removed
    assert abs(float(voice_guard_loss(torch.zeros_like(V), V)) - 1.0) < 1e-9  # muted: all of it removed
    left = float(voice_guard_loss(mix, V))  # the background left in
    muted = float(voice_guard_loss(mix * gap, V))  # voiced frames muted, the pauses left as they are
    assert 0.0 <= left < 0.05 and muted > 0.9 and muted > 20 * left
    # 6 dB too quiet in the voiced frames costs, and less than muting them
    assert 0.01 < float(voice_guard_loss(0.5 * V, V)) < 0.1
    # quiet voices weigh as much as loud ones: each item is normalised by its own voice
    quiet = torch.cat([V[:1], 0.01 * V[1:]])
    torch.testing.assert_close(voice_guard_loss(0.5 * quiet, quiet), voice_guard_loss(0.5 * V, V), rtol=0.05, atol=0)
    # no gradient in the voice-free frames: it never fights the pause terms there
    pred = (0.5 * mix).requires_grad_(True)
    voice_guard_loss(pred, V).backward()
    assert float(pred.grad.masked_select(gap.expand_as(pred)).abs().sum()) == 0.0
    assert float(pred.grad.abs().sum()) > 0
    # items without voice do not count; none with voice: 0
    no_voice = torch.cat([V[:1], torch.zeros_like(V[1:])])
    torch.testing.assert_close(voice_guard_loss(0.5 * no_voice, no_voice), voice_guard_loss(0.5 * V[:1], V[:1]))
    assert float(voice_guard_loss(A, torch.zeros_like(A))) == 0.0


@pytest.mark.parametrize("term", ["compressed", "mrstft", "voice_guard"])
def test_pause_terms_have_finite_gradients_on_silence(term):
    voc, acc, fe = _item()
    onset = voc.clone(), acc.clone()
    onset[0][:, :1000] = 0.0  # digital silence before the item starts
    onset[1][:, :1000] = 0.0
    cases = {
        "normal": (voc, acc, voc + acc),
        "digital-silence frames": (onset[0], onset[1], onset[0] + onset[1]),
        "all silent": (torch.zeros_like(voc), torch.zeros_like(voc), torch.zeros_like(voc)),
        "all silent, the estimate not": (torch.zeros_like(voc), torch.zeros_like(voc), 0.01 * acc),
        "the estimate silent": (voc, acc, torch.zeros_like(voc)),
    }
    w = LossWeights(contrastive=0.0, **{term: 1.0})
    for name, (v, a, est) in cases.items():
        V, A = _spectra(fe, v, a)
        pred = _spectra(fe, est)[0].requires_grad_(True)
        wave = est.clone().requires_grad_(True)
        total, parts = combined_loss(w, pred, V, A, wave, v, v + a)
        total.backward()
        assert set(parts) == {term} and math.isfinite(float(total.detach())), name
        for g in (pred.grad, wave.grad):
            assert g is None or bool(torch.isfinite(g).all()), name
        if name == "all silent":
            assert float(total.detach()) < 1e-9, name


def test_pause_terms_off_leave_the_total_as_it_was():
    for key in ("compressed", "mrstft", "voice_guard"):  # off by default, in the weights and the configuration
        assert getattr(LossWeights(), key) == 0.0
        from deepiso.train.config import LossConfig

        assert getattr(LossConfig(), key) == 0.0
    voc, acc, fe = _item()
    V, A = _spectra(fe, voc, acc)
    pred, wave = V + 0.4 * A, voc + 0.4 * acc
    recipe = LossWeights(contrastive=0.0, magnitude=1.0, si_sdr=0.1, gap=0.003)
    total, parts = combined_loss(recipe, pred, V, A, wave, voc, voc + acc)
    assert set(parts) == {"magnitude", "si_sdr", "gap"}
    want = magnitude_loss(pred, V) + 0.1 * si_sdr_loss(wave, voc, voc + acc) + 0.003 * gap_loss(pred, V, A)
    assert float(total) == pytest.approx(float(want), rel=1e-12, abs=1e-12)
    off = dataclasses.replace(recipe, compressed=0.0, mrstft=0.0, voice_guard=0.0, compressed_power=0.5,
                              mrstft_ffts=[64])
    assert combined_loss(off, pred, V, A, wave, voc, voc + acc) == (total, parts)
    # each term on adds its weight times its part, and is reported under its own name
    on = dataclasses.replace(recipe, compressed=2.0, mrstft=0.05, voice_guard=0.5)
    total_on, parts_on = combined_loss(on, pred, V, A, wave, voc, voc + acc)
    assert set(parts_on) == {"magnitude", "si_sdr", "gap", "compressed", "mrstft", "voice_guard"}
    extra = 2.0 * parts_on["compressed"] + 0.05 * parts_on["mrstft"] + 0.5 * parts_on["voice_guard"]
    assert float(total_on) == pytest.approx(float(total) + extra, rel=1e-9)
    with pytest.raises(ValueError, match="multi-resolution STFT term needs"):
        combined_loss(LossWeights(mrstft=1.0), pred, V, A)
    assert LossWeights(mrstft=1.0).needs_waves and not LossWeights(compressed=1.0, voice_guard=1.0).needs_waves
    with pytest.raises(ValueError, match="mrstft_ffts"):
        LossWeights(mrstft_ffts=[250])
    with pytest.raises(ValueError, match="compressed_power"):
        LossWeights(compressed_power=0.0)


def test_pause_terms_load_from_a_configuration():
    from deepiso.train.config import TrainConfig

    cfg = TrainConfig.from_dict({"loss": {"compressed": 1.0, "mrstft": 0.02, "mrstft_ffts": [128, 512],
                                          "voice_guard": 0.1}})
    w = LossWeights(**vars(cfg.loss))
    assert (w.compressed, w.mrstft, w.mrstft_ffts, w.voice_guard, w.compressed_power) == (1.0, 0.02, (128, 512),
                                                                                          0.1, 0.3)
    assert cfg.with_overrides(["loss.voice_guard=0.2"]).loss.voice_guard == 0.2


@pytest.mark.parametrize("weights", [{"compressed": 1.0}, {"mrstft": 1.0}, {"voice_guard": 1.0},
                                     {"magnitude": 1.0, "si_sdr": 0.1, "compressed": 1.0, "mrstft": 0.02,
                                      "voice_guard": 0.1}])
def test_a_few_steps_with_each_pause_term_lower_the_loss(weights):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: one thread is fastest, and fair to a busy machine
    try:
        _steps(weights)
    finally:
        torch.set_num_threads(threads)


def _steps(weights):
    from deepiso.train.features import Frontend
    from deepiso.train.loop import run_batch
    from deepiso.train.model import build_named

    torch.manual_seed(0)
    net = build_named("tiny-test")
    fe = Frontend(net.spec)
    voc, acc, _ = _item(seconds=0.25, items=4)
    batch = {"mixture": (voc + acc).float()[:, None], "vocals": voc.float()[:, None]}
    w = LossWeights(contrastive=0.0, **weights)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = run_batch(net, net, fe, batch, w, need_waves=False)
        assert set(out.parts) == {k for k in weights}
        opt.zero_grad()
        out.loss.backward()
        assert all(bool(torch.isfinite(p.grad).all()) for p in net.parameters() if p.grad is not None)
        opt.step()
        losses.append(float(out.loss.detach()))
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < 0.9 * losses[0], losses
