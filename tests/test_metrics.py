"""The one set of quality measures: SI-SDR, voice-free leakage, level, BSSEval SDR."""

import numpy as np
import pytest

from deepiso.realtime import metrics

RATE = 16_000


def test_si_sdr_of_a_scaled_copy_is_huge_and_of_noise_very_negative():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(RATE)
    assert metrics.si_sdr(0.3 * ref, ref) > 100.0
    assert metrics.si_sdr(-2.0 * ref + 5.0, ref) > 100.0  # sign, scale and DC do not matter
    assert metrics.si_sdr(rng.standard_normal(RATE), ref) < -20.0
    noisy = ref + 10 ** (-10 / 20) * rng.standard_normal(RATE)  # noise 10 dB down
    assert metrics.si_sdr(noisy, ref) == pytest.approx(10.0, abs=0.3)
    mix = ref + rng.standard_normal(RATE)  # 0 dB
    assert metrics.si_sdr_improvement(noisy, mix, ref) == pytest.approx(10.0, abs=0.5)


def test_si_sdr_refuses_mismatched_shapes_and_a_silent_reference():
    with pytest.raises(ValueError, match="one length"):
        metrics.si_sdr(np.zeros(10), np.ones(11))
    with pytest.raises(ValueError, match="one length"):
        metrics.si_sdr(np.zeros((2, 10)), np.ones((2, 10)))
    with pytest.raises(ValueError, match="reference is silent"):
        metrics.si_sdr(np.ones(10), np.zeros(10))
    with pytest.raises(ValueError, match="reference is silent"):
        metrics.si_sdr(np.ones(10), np.full(10, 0.5))  # a constant is silence once the mean is removed


def test_voice_free_leakage():
    rng = np.random.default_rng(1)
    voc = np.zeros(RATE * 2)
    voc[RATE // 2: RATE] = rng.standard_normal(RATE // 2)  # voice only in 0.5..1.0 s
    bg = 0.5 * rng.standard_normal(voc.size)
    mix = voc + bg
    mask = metrics.voice_free_mask(voc, RATE)
    assert not mask[RATE // 2 - 320: RATE + 320].any() and mask[: RATE // 2 - 640].all() and mask[-RATE // 2:].all()
    assert metrics.voice_free_leakage(mix, mix, voc, RATE) == pytest.approx(0.0, abs=1e-9)
    assert metrics.voice_free_leakage(voc + 0.01 * bg, mix, voc, RATE) == pytest.approx(-40.0, abs=0.5)
    assert metrics.voice_free_leakage(voc, mix, voc, RATE) < -100.0
    # A voice that never pauses leaves nothing to measure.
    assert metrics.voice_free_leakage(mix, mix, rng.standard_normal(voc.size), RATE) is None


def test_level_of_an_estimate_where_the_answer_is_silence():
    tone = np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    assert metrics.level_db(0.1 * tone, tone) == pytest.approx(-20.0, abs=1e-9)
    assert metrics.level_db(np.zeros(RATE), tone) == pytest.approx(-240.0)
    with pytest.raises(ValueError, match="mixture is silent"):
        metrics.level_db(tone, np.zeros(RATE))


def test_bss_sdr_ranks_truth_over_mixture():
    rng = np.random.default_rng(2)
    voc = rng.standard_normal(3 * RATE)
    mix = voc + rng.standard_normal(voc.size)
    good = metrics.bss_sdr(voc + 0.01 * rng.standard_normal(voc.size), voc, mix, RATE, "fast")
    bad = metrics.bss_sdr(mix, voc, mix, RATE, "fast")
    assert good > 30.0 and bad < 5.0
    with pytest.raises(ValueError, match="unknown SDR method"):
        metrics.bss_sdr(mix, voc, mix, RATE, "bsseval9")
