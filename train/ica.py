"""The report's baseline: blind source separation by ICA over the stereo channels.

FastICA (Hyvärinen's fixed-point iteration with the log-cosh contrast,
deflation with Gram-Schmidt, as in the report's appendix) in plain numpy.
With two channels it finds at most two independent components; when the
voice sits in the centre of the mix (the same in both channels) it cannot
separate it, which is why it stays a baseline.
"""

from __future__ import annotations

import numpy as np


def whiten(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and whiten ``x`` ``(channels, samples)``: ``(z, whitening matrix K, mean)`` with ``z = K (x - mean)``."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=1, keepdims=True)
    xc = x - mean
    cov = xc @ xc.T / xc.shape[1]
    d, e = np.linalg.eigh(cov)
    d = np.maximum(d, 1e-12 * max(d.max(), 1e-30))
    k = (e / np.sqrt(d)).T  # D^-1/2 E^T
    return k @ xc, k, mean


def fastica(x: np.ndarray, n_components: int | None = None, max_iter: int = 200, tol: float = 1e-6,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Independent components of ``x`` ``(channels, samples)``.

    Returns ``(sources (n_components, samples), mixing (channels, n_components))``
    such that ``x ≈ mixing @ sources + mean``. Sources have unit variance;
    their order and sign are arbitrary (ICA's ambiguity).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"fastica needs (channels, samples) with samples >= 2, got {x.shape}")
    n = n_components or x.shape[0]
    z, k, _ = whiten(x)
    z = z[:n] if n < z.shape[0] else z
    rng = np.random.default_rng(seed)
    w_all = np.zeros((n, z.shape[0]))
    for i in range(n):
        w = rng.standard_normal(z.shape[0])
        w /= np.linalg.norm(w)
        for _ in range(max_iter):
            wx = w @ z
            g, g_prime = np.tanh(wx), 1.0 - np.tanh(wx) ** 2
            w_new = (z * g).mean(axis=1) - g_prime.mean() * w
            w_new -= w_all[:i].T @ (w_all[:i] @ w_new)  # deflation: orthogonal to the found ones
            w_new /= np.linalg.norm(w_new) + 1e-30
            converged = abs(abs(w_new @ w) - 1.0) < tol
            w = w_new
            if converged:
                break
        w_all[i] = w
    unmix = w_all @ k[: z.shape[0]]
    sources = w_all @ z
    mixing = np.linalg.pinv(unmix)
    return sources, mixing


def ica_baseline(mixture: np.ndarray, reference: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """The report's baseline on a stereo mixture ``(samples, 2)`` → a vocal estimate ``(samples,)``.

    ICA cannot say which component is the voice: with ``reference`` (the true
    vocals, ``(samples,)`` or ``(samples, C)``, for evaluation) the component
    most correlated with it is returned, scaled by least squares; without it
    the second component, as the report did.
    """
    mixture = np.asarray(mixture, dtype=np.float64)
    if mixture.ndim != 2 or mixture.shape[1] < 2:
        raise ValueError(f"ICA needs a stereo (samples, 2) mixture, got shape {mixture.shape}")
    sources, _ = fastica(mixture.T, seed=seed)
    if reference is None:
        return sources[min(1, len(sources) - 1)].astype(np.float32)
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref.mean(axis=1) if ref.ndim == 2 else ref
    best = max(range(len(sources)), key=lambda i: abs(np.dot(sources[i], ref)))
    s = sources[best]
    scale = np.dot(s, ref) / max(np.dot(s, s), 1e-30)
    return (scale * s).astype(np.float32)
