"""Plugins and the chain that runs them, block by block, with per-plugin fault isolation.

A plugin is a small object (see :class:`Plugin`)::

    configure(sample_rate, channels, max_block)   # allocate everything here
    process(inp, out)                             # (n, channels) float32, n <= max_block; out may be inp
    reset()                                       # zero the streaming state
    latency_samples                               # delay it adds, samples at the host's rate

A :class:`Chain` runs plugins in order over two preallocated ping-pong
buffers. A plugin that raises is counted, its output for that block is its
input (plugins without latency) or silence (plugins with latency, so timing
never jumps), and it is reset; one that keeps failing is bypassed for good.
The :class:`~deepiso.realtime.host.Host` runs one chain inside an audio
callback; :class:`~deepiso.realtime.plugins.resample.Resample` runs one at
another sample rate.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: A plugin that fails this many blocks in a row is bypassed until :meth:`~deepiso.realtime.host.Host.reset`.
MAX_CONSECUTIVE_FAULTS = 32


class PluginError(Exception):
    """A plugin that cannot be created or configured as asked."""


class Plugin:
    """Base class for plugins (duck typing works too: only the four members matter).

    Subclasses allocate their buffers in :meth:`configure`, never in
    :meth:`process`. ``latency_samples`` is valid after :meth:`configure`, in
    samples at the host's rate. ``native_rate`` (optional) is the sample rate
    the plugin must run at; the host resamples around it when the device runs
    at another rate.
    """

    name: str = "plugin"
    latency_samples: int = 0
    native_rate: int | None = None

    def configure(self, sample_rate: int, channels: int, max_block: int, block_size: int | None = None) -> None:
        """Prepare for blocks of at most ``max_block`` frames of ``channels`` channels.

        ``block_size`` is a hint: when every block has exactly that many frames
        (a device with a fixed block size), a plugin may use it to lower its
        latency. ``None`` means blocks of any size.
        """
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_block = max_block

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        """Process ``inp`` into ``out``; both ``(n, channels)`` float32, ``out`` may be ``inp``."""
        if out is not inp:
            out[...] = inp

    def reset(self) -> None:
        """Zero all streaming state (the latency stays the same)."""

    def connect(self, upstream: Sequence[object]) -> None:
        """Called once after :meth:`configure` with the plugins before this one in its chain."""

    def describe(self) -> str:
        return self.name


def _accepts_block_size(plugin: object) -> bool:
    try:
        params = inspect.signature(plugin.configure).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False
    return "block_size" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _plugin_name(plugin: object) -> str:
    return str(getattr(plugin, "name", type(plugin).__name__))


@dataclass
class _Slot:
    plugin: object
    name: str
    mute_on_fault: bool = False
    faults: int = 0
    consecutive: int = 0
    bypassed: bool = False
    last_error: BaseException | None = None


class Chain:
    """Plugins run in order over ping-pong buffers, with per-plugin fault isolation.

    ``process(inp, out)``: ``inp`` is read, ``out`` written, both ``(n, C)``
    float32 with ``n <= max_block``; ``out`` may be ``inp``. The chain's
    latency is the sum of its plugins' latencies.
    """

    def __init__(self, plugins: Iterable[object]) -> None:
        self.slots = [_Slot(p, _plugin_name(p)) for p in plugins]
        self.sample_rate = 0
        self.channels = 0
        self.max_block = 0
        self._a = np.zeros((0, 0), np.float32)
        self._b = np.zeros((0, 0), np.float32)

    @property
    def plugins(self) -> list[object]:
        return [s.plugin for s in self.slots]

    def configure(self, sample_rate: int, channels: int, max_block: int, block_size: int | None = None) -> None:
        self.sample_rate, self.channels, self.max_block = sample_rate, channels, max_block
        self._a = np.zeros((max_block, channels), np.float32)
        self._b = np.zeros((max_block, channels), np.float32)
        for i, slot in enumerate(self.slots):
            p = slot.plugin
            try:
                if _accepts_block_size(p):
                    p.configure(sample_rate, channels, max_block, block_size=block_size)  # type: ignore[attr-defined]
                else:
                    p.configure(sample_rate, channels, max_block)  # type: ignore[attr-defined]
                connect = getattr(p, "connect", None)
                if connect is not None:
                    connect([s.plugin for s in self.slots[:i]])
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {slot.name!r} cannot run at {sample_rate} Hz, {channels} channel(s), "
                                  f"blocks up to {max_block}: {exc}") from exc
            # A plugin with latency outputs silence on a fault so that its timing never jumps.
            slot.mute_on_fault = int(getattr(p, "latency_samples", 0) or 0) > 0
            slot.faults = slot.consecutive = 0
            slot.bypassed = False
            slot.last_error = None

    @property
    def latency_samples(self) -> int:
        return sum(int(getattr(s.plugin, "latency_samples", 0) or 0) for s in self.slots)

    def reset(self) -> None:
        for slot in self.slots:
            slot.consecutive = 0
            slot.bypassed = False
            try:
                slot.plugin.reset()  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - counted, never raised into the callback
                slot.faults += 1
                slot.last_error = exc

    def process(self, inp: np.ndarray, out: np.ndarray) -> None:
        n = inp.shape[0]
        src = inp
        spare_a, spare_b = self._a[:n], self._b[:n]
        for slot in self.slots:
            if slot.bypassed:
                continue
            dst = spare_a if src is not spare_a else spare_b
            try:
                slot.plugin.process(src, dst)  # type: ignore[attr-defined]
                slot.consecutive = 0
            except Exception as exc:  # noqa: BLE001 - the callback must survive any plugin
                slot.faults += 1
                slot.consecutive += 1
                slot.last_error = exc
                if slot.mute_on_fault:
                    dst.fill(0.0)
                else:
                    dst[...] = src
                try:
                    slot.plugin.reset()  # type: ignore[attr-defined]
                except Exception as exc2:  # noqa: BLE001
                    slot.last_error = exc2
                    slot.bypassed = True
                if slot.consecutive >= MAX_CONSECUTIVE_FAULTS:
                    slot.bypassed = True
            src = dst
        if src is not out:
            out[...] = src
