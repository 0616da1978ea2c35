"""Streaming sample-rate conversion around an inner chain (python-soxr).

``Resample(rate, plugins)`` runs ``plugins`` at ``rate`` inside a chain at the
device's rate: each block is converted down (or up) with
``soxr.ResampleStream``, processed, converted back, and queued in an output
FIFO that hands out exactly as many samples as came in.

soxr emits its output in bursts (its filters work on internal chunks), so the
FIFO is pre-filled with the largest shortfall measured for this rate pair and
block size at :meth:`Resample.configure`. That pre-fill is the latency the
conversion adds; :attr:`Resample.latency_samples` is pre-fill + the inner
chain's latency, converted to the outer rate. Should a burst ever come later
than measured, the missing samples are output as zeros and as many late ones
are dropped (``underruns`` counts it), so the delay never drifts.

Real-time note: ``soxr.ResampleStream.resample_chunk`` returns a new array per
call (python-soxr has no output-buffer argument); this plugin is the only
place where a block allocates memory, and it is only in the chain when the
device cannot run at the model's rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import soxr

from ..host import Chain, Plugin, PluginError, fifo_pop, fifo_push

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class Resample(Plugin):
    """Run ``plugins`` at ``rate`` Hz; ``quality`` is a soxr quality (lower = less latency)."""

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

    def _streams(self) -> tuple[soxr.ResampleStream, soxr.ResampleStream]:
        return (soxr.ResampleStream(self.sample_rate, self.rate, self.channels, "float32", self.quality),
                soxr.ResampleStream(self.rate, self.sample_rate, self.channels, "float32", self.quality))

    def _measure(self, sizes: list[int]) -> tuple[int, int]:
        """Largest shortfall (outer samples) and largest inner chunk over ~1 s per block size."""
        worst, biggest = 0, 1
        for size in sizes:
            down, up = self._streams()
            z = np.zeros((size, self.channels), np.float32)
            requested = produced = 0
            for _ in range(max(8, 2 * self.sample_rate // size)):
                mid = down.resample_chunk(z)
                biggest = max(biggest, mid.shape[0])
                produced += up.resample_chunk(mid).shape[0]
                requested += size
                worst = max(worst, requested - produced)
        return worst, biggest

    def configure(self, sample_rate: int, channels: int, max_block: int, block_size: int | None = None) -> None:
        super().configure(sample_rate, channels, max_block)
        sizes = [block_size] if block_size else sorted({max_block, min(max_block, 64)})
        shortfall, biggest = self._measure(sizes)
        self.prefill = shortfall + 2  # +2: soxr's rounding can move a sample between chunks
        inner_max = max(biggest, math.ceil(max_block * self.rate / sample_rate) + 16)
        self.chain.configure(self.rate, channels, inner_max, None)
        self._inner_max = inner_max
        self._down, self._up = self._streams()
        cap = self.prefill + 4 * max_block + 4 * math.ceil(biggest * sample_rate / self.rate) + 1024
        self.fifo = np.zeros((channels, cap), np.float32)
        self._discard = np.zeros((cap, channels), np.float32)
        inner = self.chain.latency_samples * sample_rate / self.rate
        self.latency_samples = self.prefill + round(inner)
        self.reset()

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        n = inp.shape[0]
        mid = self._down.resample_chunk(inp)
        for a in range(0, mid.shape[0], self._inner_max):
            part = mid[a : a + self._inner_max]
            self.chain.process(part, part)
        back = self._up.resample_chunk(mid)
        if back.shape[0]:
            lost = fifo_push(self.fifo, self.level, back)
            self.level += back.shape[0] - lost
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
        self._down.clear()
        self._up.clear()
        self.chain.reset()
        self.fifo.fill(0.0)
        self.level = self.prefill
        self._debt = 0

    def describe(self) -> str:
        return f"resample {self.sample_rate} → {self.rate} → {self.sample_rate} Hz ({self.quality})"
