"""Streaming sample-rate conversion around an inner chain.

``Resample(rate, plugins)`` runs ``plugins`` at ``rate`` inside a chain at the
device's rate: each block is converted down (or up) with a
:class:`~deepiso.realtime.resampler.StreamResampler`, processed, converted
back, and queued in an output FIFO that hands out exactly as many samples as
came in. Everything is preallocated at :meth:`Resample.configure`: a block
allocates nothing.

The converters emit as many samples as each block completes, so the round
trip is short by at most a few samples on some blocks; the FIFO is pre-filled
with the largest shortfall measured for this rate pair and block size at
configure time. :attr:`Resample.latency_samples` is that pre-fill plus both
filters' group delays plus the inner chain's latency, converted to the outer
rate. Should a block ever come up shorter than measured, the missing samples
are output as zeros and as many late ones are dropped (``underruns`` counts
it), so the delay never drifts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numba
import numpy as np

from ..chain import Chain, Plugin, PluginError
from ..resampler import QUALITY, StreamResampler

QUALITIES = tuple(QUALITY)


# ----------------------------------------------------------------------------
# The output FIFO (numba, no allocation)


@numba.njit(cache=True, nogil=True)
def fifo_push(fifo, level, data):  # pragma: no cover - compiled
    """Append ``data`` (m, C) to ``fifo`` (C, cap) at ``level``; returns the samples that did not fit."""
    n_ch, cap = fifo.shape
    m = data.shape[0]
    room = min(m, cap - level)
    for c in range(n_ch):
        for i in range(room):
            fifo[c, level + i] = data[i, c]
    return m - room


@numba.njit(cache=True, nogil=True)
def fifo_pop(fifo, level, out, count):  # pragma: no cover - compiled
    """Move the first ``min(count, level)`` samples of ``fifo`` (C, cap) into ``out`` (n, C).

    Missing samples are written as zeros. Returns how many were missing.
    """
    n_ch = fifo.shape[0]
    have = min(count, level)
    for c in range(n_ch):
        for i in range(have):
            out[i, c] = fifo[c, i]
        for i in range(have, count):
            out[i, c] = 0.0
        for i in range(level - have):
            fifo[c, i] = fifo[c, i + have]
    return count - have


class Resample(Plugin):
    """Run ``plugins`` at ``rate`` Hz; ``quality`` names the filters (``resampler.QUALITY``; lower = less delay)."""

    name = "resample"

    def __init__(self, rate: int, plugins: Iterable[object] = (), quality: str = "LQ") -> None:
        if quality not in QUALITIES:
            raise PluginError(f"resample quality {quality!r} is not one of {QUALITIES}")
        if not 1000 <= int(rate) <= 768_000:
            raise PluginError(f"resample rate {rate} Hz is outside 1000..768000 Hz")
        self.rate = int(rate)
        self.quality = quality
        self.chain = Chain(plugins)
        self.underruns = 0

    def _streams(self, max_block: int) -> tuple[StreamResampler, StreamResampler]:
        down = StreamResampler(self.sample_rate, self.rate, self.channels, max_block, self.quality)
        up = StreamResampler(self.rate, self.sample_rate, self.channels, down.max_out(max_block), self.quality)
        # a whole number of outer samples for the round trip: the way back waits for the fraction
        total = down.delay_in + up.delay_out
        extra = math.ceil(total) - total
        if extra > 1e-9:
            up = StreamResampler(self.rate, self.sample_rate, self.channels, down.max_out(max_block), self.quality,
                                 extra_delay=extra)
        return down, up

    def _measure(self, sizes: list[int], max_block: int) -> int:
        """Largest shortfall (outer samples) of the round trip over ~1 s per block size."""
        worst = 0
        for size in sizes:
            down, up = self._streams(max_block)
            z = np.zeros((size, self.channels), np.float32)
            mid = np.zeros((down.max_out(size), self.channels), np.float32)
            back = np.zeros((up.max_out(mid.shape[0]), self.channels), np.float32)
            requested = produced = 0
            for _ in range(max(8, 2 * self.sample_rate // size)):
                m = down.process(z, mid)
                produced += up.process(mid[:m], back)
                requested += size
                worst = max(worst, requested - produced)
        return worst

    def configure(self, sample_rate: int, channels: int, max_block: int, block_size: int | None = None) -> None:
        super().configure(sample_rate, channels, max_block)
        sizes = [block_size] if block_size else sorted({max_block, min(max_block, 64), 1})
        self.prefill = self._measure(sizes, max_block) + 1  # +1: a block size not measured may round differently
        self._down, self._up = self._streams(max_block)
        inner_max = self._down.max_out(max_block)
        self.chain.configure(self.rate, channels, inner_max, None)
        self._mid = np.zeros((inner_max, channels), np.float32)
        self._back = np.zeros((self._up.max_out(inner_max), channels), np.float32)
        cap = self.prefill + 4 * max_block + self._back.shape[0] + 1024
        self.fifo = np.zeros((channels, cap), np.float32)
        self._discard = np.zeros((cap, channels), np.float32)
        inner = self.chain.latency_samples * sample_rate / self.rate
        filters = self._down.delay_in + self._up.delay_out
        self.latency_samples = self.prefill + round(inner + filters)
        self.reset()

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        n = inp.shape[0]
        m = self._down.process(inp, self._mid)
        if m:
            part = self._mid[:m]
            self.chain.process(part, part)
        b = self._up.process(self._mid[:m], self._back)
        if b:
            lost = fifo_push(self.fifo, self.level, self._back[:b])
            self.level += b - lost
            if self._debt:
                drop = min(self._debt, self.level)
                fifo_pop(self.fifo, self.level, self._discard[:drop], drop)
                self.level -= drop
                self._debt -= drop
        short = fifo_pop(self.fifo, self.level, out, n)
        self.level -= n - short
        if short:
            self.underruns += 1
            self._debt += short

    def reset(self) -> None:
        self._down.reset()
        self._up.reset()
        self.chain.reset()
        self.fifo.fill(0.0)
        self.level = self.prefill
        self._debt = 0

    def describe(self) -> str:
        return f"resample {self.sample_rate} → {self.rate} → {self.sample_rate} Hz ({self.quality})"
