"""The plugin host: a chain of plugins run block by block inside an audio callback.

Plugins and the chain that runs them are defined in :mod:`deepiso.realtime.chain`.
:class:`Host` owns the chain and is what a backend calls from its audio
callback. Real-time rules it keeps, and that plugins must keep too:

* no array buffer is allocated in :meth:`Host.process` (it uses two ping-pong
  buffers allocated by :meth:`Host.configure`; only the tiny Python objects of
  slicing exist per block), no I/O, no logging, no lock;
* bad input never reaches the plugins: NaN/Inf samples become 0 and samples
  beyond ``±limit`` are clipped, and the block is counted as an input fault;
* a plugin that raises is counted, its output for that block is its input
  (plugins without latency) or silence (plugins with latency, so timing never
  jumps), and it is reset; one that keeps failing is bypassed for good;
* a non-finite chain output becomes silence, the chain is reset, and the
  block counts as an output fault.

Everything the callback counts is read outside it with :meth:`Host.stats`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numba
import numpy as np

from .chain import Chain, PluginError, _plugin_name
from .plugins.resample import Resample

#: Samples beyond this magnitude are clipped and counted (+24 dBFS): real audio
#: never gets there, a broken driver or a wild plugin does.
DEFAULT_LIMIT = 16.0
#: What a live host writes to a device is clipped to full scale (``Host(output_limit=FULL_SCALE)``): a
#: device, a virtual microphone or a 16-bit call client cannot hold more, and a louder sample is a click,
#: not a voice. Files keep the engine's range (a float stem may exceed 1).
FULL_SCALE = 1.0


# ----------------------------------------------------------------------------
# Kernels (numba, no allocation)


@numba.njit(cache=True, nogil=True)
def _sanitize_copy(src, dst, limit):  # pragma: no cover - compiled
    # src (n, C) any float → dst (n, C) float32; NaN/Inf → 0, |x| > limit → ±limit.
    bad = 0
    n, c = src.shape
    for i in range(n):
        for j in range(c):
            v = src[i, j]
            if not math.isfinite(v):
                dst[i, j] = 0.0
                bad += 1
            elif v > limit:
                dst[i, j] = limit
                bad += 1
            elif v < -limit:
                dst[i, j] = -limit
                bad += 1
            else:
                dst[i, j] = v
    return bad


@numba.njit(cache=True, nogil=True)
def _finish(src, dst, limit):  # pragma: no cover - compiled
    # Copy src → dst clipping to ±limit; returns the number of non-finite
    # samples (then the caller silences the block) and clipped ones.
    nonfinite = 0
    clipped = 0
    n, c = src.shape
    for i in range(n):
        for j in range(c):
            v = src[i, j]
            if not math.isfinite(v):
                nonfinite += 1
                dst[i, j] = 0.0
            elif v > limit:
                clipped += 1
                dst[i, j] = limit
            elif v < -limit:
                clipped += 1
                dst[i, j] = -limit
            else:
                dst[i, j] = v
    return nonfinite, clipped


def compiled_kernels() -> int:
    """How many compiled signatures the engine's numba kernels hold now, over every loaded module.

    The host compiles every kernel before a stream starts; a count that grows while a stream runs
    means a kernel compiled inside the audio callback.
    """
    import sys

    count = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(__name__.rpartition(".")[0]):
            continue
        for value in vars(module).values():
            if isinstance(value, numba.core.registry.CPUDispatcher):
                count += len(value.signatures)
    return count


# ----------------------------------------------------------------------------
# Host


@dataclass
class HostStats:
    """A snapshot of what the callback counted (read outside the callback)."""

    sample_rate: int
    channels: int
    latency_samples: int
    blocks: int
    frames: int
    xruns: int
    input_faults: int
    output_faults: int
    plugin_faults: dict[str, int]
    bypassed: list[str]
    errors: list[str] = field(default_factory=list)
    cpu_load: float = 0.0
    cpu_peak: float = 0.0
    late_blocks: int = 0
    clipped: int = 0  # output samples clipped to full scale

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def faults(self) -> int:
        return self.input_faults + self.output_faults + sum(self.plugin_faults.values())


class Host:
    """Runs a chain of plugins on ``(n, channels)`` float32 blocks at ``sample_rate``.

    If a plugin has a ``native_rate`` different from ``sample_rate`` (the
    isolator runs at its model's rate), the whole chain runs inside a
    :class:`~deepiso.realtime.plugins.resample.Resample` plugin at that rate;
    its latency is part of :attr:`latency_samples`.

    ``block_size``: the fixed number of frames per callback, or ``None`` for
    blocks of any size up to ``max_block``. Larger blocks are split.
    """

    def __init__(self, plugins: Iterable[object], sample_rate: int, channels: int, max_block: int = 4096,
                 block_size: int | None = None, limit: float = DEFAULT_LIMIT,
                 resample_quality: str = "LQ", output_limit: float = DEFAULT_LIMIT) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 1000 <= sample_rate <= 768_000:
            raise PluginError(f"sample rate {sample_rate!r} Hz is not supported (1000..768000)")
        if channels < 1:
            raise PluginError(f"channels must be >= 1, got {channels}")
        if block_size is not None:
            if block_size < 1:
                raise PluginError(f"block size must be >= 1, got {block_size}")
            max_block = max(max_block, block_size)
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_block = max_block
        self.block_size = block_size
        self.limit = float(limit)  # input samples beyond it are absurd (counted as input faults)
        self.output_limit = float(output_limit)
        plugins = list(plugins)
        self.user_plugins = plugins
        rates = {int(r) for p in plugins if (r := getattr(p, "native_rate", None))}
        if len(rates) > 1:
            raise PluginError(f"plugins need different sample rates {sorted(rates)}; one chain runs at one rate")
        self.resampler = None
        if rates and (rate := rates.pop()) != sample_rate:
            self.resampler = Resample(rate, plugins, quality=resample_quality)
            plugins = [self.resampler]
        self.chain = Chain(plugins)
        self._work = np.zeros((max_block, channels), np.float32)
        self._reset_counters()
        self.chain.configure(sample_rate, channels, max_block, block_size)
        self._warm_up()

    # ------------------------------------------------------------ setup
    def _reset_counters(self) -> None:
        self.blocks = 0
        self.frames = 0
        self.xruns = 0
        self.input_faults = 0
        self.output_faults = 0
        self.clipped = 0
        self.late_blocks = 0
        self._load = 0.0
        self._load_peak = 0.0

    def _warm_up(self, seconds: float = 0.25) -> None:
        """Run every path the callback can take once, so nothing compiles after the stream starts.

        Silence alone skips the model (a silent context never runs it) and would leave the
        mask kernels to compile in the callback at the first voiced frame: seconds of xruns
        on a fresh install. So the warm-up feeds silence, then a voice-like signal long enough
        to fill the awareness context and run the model, each through writable and read-only
        input (drivers hand the callback read-only buffers, which numba compiles separately).
        Kernels compile per type, not per value: bad samples take no path of their own.
        """
        n = self.block_size or min(self.max_block, 512)
        c = self.channels
        out = np.zeros((n, c), np.float32)
        t = np.arange(max(n, int(seconds * self.sample_rate))) / self.sample_rate
        voiced = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
                  + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
        signal = np.concatenate([np.zeros(n, np.float32), voiced])
        signal = np.ascontiguousarray(np.repeat(signal[:, None], c, axis=1))
        for writable in (True, False):
            for a in range(0, signal.shape[0] - n + 1, n):
                block = signal[a : a + n].copy()
                block.flags.writeable = writable
                self.process(block, out)
            self.reset()
        self.reset()
        self._reset_counters()
        for slot in self.chain.slots + (self.resampler.chain.slots if self.resampler else []):
            slot.faults = slot.consecutive = 0
            slot.bypassed = False
            slot.last_error = None

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency of the chain (resampling included), samples at the host's rate."""
        return self.chain.latency_samples

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate

    def reset(self) -> None:
        """Zero every plugin's state (call outside the callback, or from it after a fault)."""
        self.chain.reset()

    # ------------------------------------------------------------ callback
    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        """The audio callback body: ``inp`` → chain → ``out``, both ``(n, channels)``; ``out`` may be ``inp``.

        Never raises for bad samples or failing plugins; allocates no array buffers.
        """
        t0 = time.perf_counter()
        n = inp.shape[0]
        step = self.max_block
        for a in range(0, n, step):
            b = min(n, a + step)
            self._process_block(inp[a:b], out[a:b])
        self.blocks += 1
        self.frames += n
        elapsed = time.perf_counter() - t0
        if n:
            load = elapsed * self.sample_rate / n
            self._load = 0.9 * self._load + 0.1 * load
            if load > self._load_peak:
                self._load_peak = load
            if load > 1.0:
                self.late_blocks += 1

    def _process_block(self, inp: np.ndarray, out: np.ndarray) -> None:
        work = self._work[: inp.shape[0]]
        if _sanitize_copy(inp, work, self.limit):
            self.input_faults += 1
        self.chain.process(work, work)
        nonfinite, clipped = _finish(work, out, self.output_limit)
        self.clipped += clipped
        if nonfinite:
            out.fill(0.0)
            self.output_faults += 1
            self.chain.reset()

    def count_xrun(self, count: int = 1) -> None:
        """Backends call this when the device reports an over- or underflow."""
        self.xruns += count

    # ------------------------------------------------------------ reporting
    def stats(self) -> HostStats:
        """Snapshot of the counters (outside the callback)."""
        slots = self.chain.slots
        if self.resampler is not None:
            slots = slots + self.resampler.chain.slots
        errors = [f"{s.name}: {type(s.last_error).__name__}: {s.last_error}" for s in slots
                  if s.last_error is not None]
        return HostStats(
            sample_rate=self.sample_rate, channels=self.channels, latency_samples=self.latency_samples,
            blocks=self.blocks, frames=self.frames, xruns=self.xruns, input_faults=self.input_faults,
            output_faults=self.output_faults,
            plugin_faults={s.name: s.faults for s in slots if s.name != "resample" or s.faults},
            bypassed=[s.name for s in slots if s.bypassed], errors=errors,
            cpu_load=self._load, cpu_peak=self._load_peak, late_blocks=self.late_blocks, clipped=self.clipped,
        )

    def describe(self) -> str:
        names = " → ".join(_plugin_name(p) for p in self.user_plugins) or "(empty)"
        return (f"{names} at {self.sample_rate} Hz, {self.channels} ch, "
                f"latency {self.latency_samples} samples = {self.latency_ms:.2f} ms")

    def run_offline(self, x: np.ndarray, block: int | None = None, flush: bool = False) -> np.ndarray:
        """Process a whole ``(samples, channels)`` signal as a device would hand it over, as fast as it goes.

        Blocks of ``block`` samples (default: the fixed block size, else ``max_block``). Without
        ``flush`` the output has the input's shape and comes :attr:`latency_samples` late. With
        ``flush``, zeros follow the signal in whole blocks until its last sample is out, and the
        output is time-aligned with ``x``: the latency is taken off.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = block or self.block_size or self.max_block
        lat = self.latency_samples if flush else 0
        n = x.shape[0]
        if flush:
            size = -(-(n + lat) // step) * step
            x = np.concatenate([x, np.zeros((size - n, x.shape[1]), np.float32)])
        out = np.empty_like(x)
        for a in range(0, x.shape[0], step):
            self.process(x[a : a + step], out[a : a + step])
        return out[lat : lat + n]
