"""Timing the engine's delay with chirps.

:func:`chirp_signal` places short chirps at irregular times; played through a
live stream on a :class:`~deepiso.testing.pulse_server.PrivatePulseServer`
bus, :func:`chirp_lags` finds each one in the engine's input and output and
returns the delay between them in samples. :func:`garbage_samples` counts what
no engine output holds (not finite, or beyond the host's clip level).
"""

from __future__ import annotations

import numpy as np

from .pulse_server import PULSE_RATE


def chirp(rate: int = PULSE_RATE, seconds: float = 0.04, f0: float = 300.0, f1: float = 3000.0):
    """A Hann-windowed linear chirp (float32), the probe :func:`chirp_lags` times."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (0.5 * np.sin(phase) * np.hanning(t.size)).astype(np.float32)


def chirp_signal(seconds: float, times, rate: int = PULSE_RATE):
    """Stereo float32 ``(n, 2)`` silence with a :func:`chirp` starting at each of ``times`` (seconds)."""
    x = np.zeros((int(seconds * rate), 2), np.float32)
    c = chirp(rate)
    for t in times:
        i = int(t * rate)
        x[i : i + c.size] += c[:, None]
    return x


#: Beyond this no engine output goes (the host clips at ±16): a sample past it is garbage a driver wrote.
GARBAGE_LEVEL = 16.0


def _garbage(x):
    """Mask of the samples of ``x`` that are not finite or beyond :data:`GARBAGE_LEVEL`."""
    return ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > GARBAGE_LEVEL)


def garbage_samples(recording) -> int:
    """How many samples of a recording are not finite or beyond :data:`GARBAGE_LEVEL`."""
    return int(_garbage(np.asarray(recording)).sum())


def chirp_lags(recording, rate: int = PULSE_RATE) -> list[int]:
    """Delay in samples of every chirp from the engine's input (channel 0 of a
    :meth:`~deepiso.testing.pulse_server.PrivatePulseServer.record_through`
    recording) to its output (channel 2).

    Garbage samples (:func:`garbage_samples`; PortAudio's ALSA path has written
    one of 1.6e29 right after a stream started) are zeroed first: one of them
    would otherwise outweigh every chirp in the correlation."""
    c = chirp(rate)
    recording = np.asarray(recording, np.float64)
    recording = np.where(_garbage(recording), 0.0, recording)

    def onsets(sig):
        corr = np.correlate(sig, c, mode="valid")
        if corr.size == 0 or corr.max() <= 0:
            return np.zeros(0, np.int64)
        threshold, i, peaks = 0.5 * float(corr.max()), 0, []
        while i < corr.size:
            if corr[i] > threshold:
                j = i + int(np.argmax(corr[i : i + c.size]))
                peaks.append(j)
                i = j + c.size
            else:
                i += 1
        return np.array(peaks, np.int64)

    src, dst = onsets(recording[:, 0]), onsets(recording[:, 2])
    lags = []
    for s in src:
        after = dst[(dst >= s) & (dst < s + rate // 4)]
        if after.size:
            lags.append(int(after[0] - s))
    return lags
