"""How good a vocal estimate is: the one set of measures the demo, the model cards and the benchmarks share.

All functions take mono float arrays ``(n,)`` at one sample rate and return dB.

* :func:`si_sdr` — scale-invariant signal-to-distortion ratio (Le Roux et al.
  2019): both signals made zero-mean, the reference scaled to fit the
  estimate best, then target energy over residual energy. Neither gain nor a
  DC offset changes it. :func:`si_sdr_improvement` subtracts the mixture's
  own SI-SDR, so 0 dB means "no better than doing nothing".
* :func:`voice_free_leakage` — what is left where no one speaks: the energy of
  the estimate over the energy of the mixture in the 20 ms frames where the
  true voice is 60 dB under its loudest frame (:func:`voice_free_mask`). A
  perfect isolator scores very negative; passing the mixture through scores 0.
* :func:`level_db` — the estimate's energy over the input's, over the whole
  signal: for inputs with no voice at all (a ringtone, a tone), where the
  right output is silence and SI-SDR has no reference.
* :func:`bss_sdr` — BSSEval v4 SDR over 1 s windows (``museval``, or
  ``fast_bss_eval``), as MUSDB18 results are reported; needs the ``bench``
  extra.
"""

from __future__ import annotations

import warnings

import numpy as np

#: Energies below this count as zero in the ratios (keeps a perfect estimate finite).
EPS = 1e-12


def _pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, np.float64)
    ref = np.asarray(reference, np.float64)
    if est.ndim != 1 or est.shape != ref.shape:
        raise ValueError(f"estimate {est.shape} and reference {ref.shape} must be 1-D and of one length")
    return est, ref


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR of ``estimate`` against ``reference``, dB (both zero-mean first).

    Raises :class:`ValueError` for arrays of different shapes and for a silent
    (constant) reference, whose SI-SDR is undefined: score such input with
    :func:`level_db` instead.
    """
    est, ref = _pair(estimate, reference)
    est = est - est.mean() if est.size else est
    ref = ref - ref.mean() if ref.size else ref
    energy = float(np.dot(ref, ref))
    if energy <= EPS:
        raise ValueError("the reference is silent: SI-SDR is undefined (measure the level of the estimate instead)")
    target = float(np.dot(est, ref)) / energy * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + EPS) / (np.dot(noise, noise) + EPS)))


def si_sdr_improvement(estimate: np.ndarray, mixture: np.ndarray, reference: np.ndarray) -> float:
    """SI-SDR of ``estimate`` minus that of the unprocessed ``mixture``, both against ``reference`` (dB)."""
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


def voice_free_mask(vocals: np.ndarray, rate: int, frame_s: float = 0.02, below_db: float = 60.0) -> np.ndarray:
    """Per-sample bool ``(n,)``: True in 20 ms frames where ``vocals`` is ``below_db`` under its loudest frame.

    Frames next to a voiced frame are not voice-free (a margin for onsets and tails).
    """
    n = vocals.shape[0]
    hop = max(1, int(frame_s * rate))
    frames = n // hop
    if frames == 0:
        return np.zeros(n, bool)
    energy = np.mean(np.square(vocals[: frames * hop].astype(np.float64)).reshape(frames, hop), axis=1)
    voiced = energy > energy.max() * 10 ** (-below_db / 10)
    grown = voiced.copy()
    grown[1:] |= voiced[:-1]
    grown[:-1] |= voiced[1:]
    mask = np.zeros(n, bool)
    mask[: frames * hop] = np.repeat(~grown, hop)
    return mask


def voice_free_leakage(estimate: np.ndarray, mixture: np.ndarray, vocals: np.ndarray, rate: int,
                       min_seconds: float = 0.2) -> float | None:
    """Energy of ``estimate`` over that of ``mixture`` where ``vocals`` is silent (dB).

    ``None`` when the voice-free stretches add up to less than ``min_seconds``, or the mixture is silent there.
    """
    mask = voice_free_mask(vocals, rate)
    if mask.sum() < min_seconds * rate:
        return None
    e = float(np.sum(np.square(estimate[mask], dtype=np.float64)))
    m = float(np.sum(np.square(mixture[mask], dtype=np.float64)))
    if m <= 0:
        return None
    return float(10 * np.log10((e + EPS * m) / m))


def level_db(estimate: np.ndarray, mixture: np.ndarray) -> float:
    """Energy of ``estimate`` over the energy of ``mixture``, whole signals (dB); an all-zero estimate gives -240."""
    est, mix = _pair(estimate, mixture)
    m = float(np.dot(mix, mix))
    if m <= 0:
        raise ValueError("the mixture is silent: there is nothing to measure the estimate against")
    return float(10 * np.log10(max(float(np.dot(est, est)) / m, 1e-24)))


def bss_sdr(estimate: np.ndarray, vocals: np.ndarray, mixture: np.ndarray, rate: int,
            method: str = "museval") -> float | None:
    """Vocal SDR (dB), BSSEval v4 over 1 s windows, median over windows with an audible reference.

    ``method``: ``"museval"`` (``museval.evaluate``, the MUSDB18 reference code)
    or ``"fast"`` (``fast_bss_eval.sdr``, filter length 512, the same windows).
    The accompaniment estimate is ``mixture - estimate``. ``None`` when no window has a voice.
    """
    if method not in ("museval", "fast"):
        raise ValueError(f"unknown SDR method {method!r}; choose museval or fast")
    refs = np.stack([vocals, mixture - vocals]).astype(np.float64)
    ests = np.stack([estimate, mixture - estimate]).astype(np.float64)
    # BSSEval refuses an all-zero estimate (the mixture as the vocal estimate leaves a zero
    # accompaniment); a -200 dB dither keeps the system determined and changes no score.
    dither = 1e-10 * np.random.default_rng(0).standard_normal(ests.shape[1])
    for k in range(2):
        if not np.any(ests[k]):
            ests[k] = dither
    if method == "museval":
        import museval

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sdr, _isr, _sir, _sar = museval.evaluate(refs[..., None], ests[..., None], win=rate, hop=rate)
        values = np.asarray(sdr[0], np.float64)
    else:
        import fast_bss_eval

        found = []
        for a in range(0, refs.shape[1] - rate + 1, rate):
            r, e = refs[:, a: a + rate], ests[:, a: a + rate]
            if np.sum(r[0] ** 2) < 1e-8 * rate:  # museval leaves silent-reference windows out too
                continue
            found.append(float(fast_bss_eval.sdr(r, e, filter_length=512, load_diag=1e-10)[0]))
        values = np.asarray(found, np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None
