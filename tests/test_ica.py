"""The report's ICA baseline recovers the sources of a synthetic linear mixture."""

import numpy as np
import pytest

from deepiso.train.ica import fastica, ica_baseline, whiten


def _sources(n: int = 20_000) -> np.ndarray:
    t = np.arange(n) / 8000
    s1 = np.sign(np.sin(2 * np.pi * 3 * t))  # square wave (sub-Gaussian)
    s2 = np.random.default_rng(0).laplace(size=n)  # super-Gaussian, speech-like
    return np.stack([s1, s2])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return abs(np.corrcoef(a, b)[0, 1])


def test_whitening_gives_identity_covariance():
    x = np.array([[2.0, 1.0], [1.0, 3.0]]) @ _sources()
    z, _, _ = whiten(x)
    np.testing.assert_allclose(z @ z.T / z.shape[1], np.eye(2), atol=1e-8)


def test_fastica_recovers_a_linear_mixture():
    s = _sources()
    a = np.array([[1.0, 0.6], [0.4, 1.0]])
    x = a @ s
    est, mixing = fastica(x, seed=3)
    # every true source matches one estimate almost perfectly (up to order, sign, scale)
    for i in range(2):
        assert max(_corr(s[i], est[j]) for j in range(2)) > 0.99
    # the mixing matrix reproduces the data
    np.testing.assert_allclose(mixing @ est + x.mean(axis=1, keepdims=True), x, atol=1e-6)


def test_baseline_picks_the_voice_with_a_reference_and_fails_on_a_centred_voice():
    s = _sources()
    voice, music = s[1] * 0.2, s[0] * 0.2
    panned = np.stack([voice + 0.9 * music, 0.3 * voice + 0.5 * music], axis=1)
    est = ica_baseline(panned, reference=voice)
    sdr = 10 * np.log10(np.sum(voice**2) / np.sum((est - voice) ** 2))
    assert sdr > 20
    # voice in the centre, music only left/right differently: still a 2x2 mix, separable
    # but an identical mix in both channels is not: the report's limitation
    mono = np.stack([voice + music, voice + music], axis=1)
    est_mono = ica_baseline(mono, reference=voice)
    sdr_mono = 10 * np.log10(np.sum(voice**2) / np.sum((est_mono - voice) ** 2))
    assert sdr_mono < 5


def test_bad_input():
    with pytest.raises(ValueError, match="stereo"):
        ica_baseline(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="channels, samples"):
        fastica(np.zeros(10))
