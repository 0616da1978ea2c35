"""Audio streams that drive a :class:`~deepiso.realtime.host.Host`.

* ``jack`` (the default on PipeWire, with ``pipewire-jack``): a JACK client the
  server calls in its own real-time thread once a cycle, one block in and one
  out (:mod:`deepiso.realtime.jack_stream`, :class:`JackStream`).
* ``pulse`` (the default on PulseAudio, and on PipeWire without its libjack): a
  native libpulse client whose audio thread sleeps between blocks and holds the
  delay by itself (:mod:`deepiso.realtime.pulse`, :class:`PulseStream`).
* ``sounddevice`` and ``pyaudio``: a duplex PortAudio stream whose callback
  calls :meth:`Host.process` on the device's buffers and counts the
  over/underflows PortAudio reports as xruns: for bare ALSA, macOS and Windows.
* ``file``: the same host over an array or a file, paced like a device or as
  fast as it goes (:class:`ArrayStream`; a whole signal at once without a
  thread: :meth:`Host.run_offline <deepiso.realtime.host.Host.run_offline>`).

Devices are named and resolved in :mod:`deepiso.realtime.devices`.

Every stream is watched from outside the callback (:meth:`LiveStream.check`):
a device that stops delivering audio (unplugged, its server module unloaded)
ends the stream with :class:`DeviceError` instead of hanging.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import jack_cycle as jc
from . import jack_stream as js
from .devices import (
    DeviceError,
    Endpoint,
    _pulse_endpoint_gone,
    _pulse_env,
    _pyaudio_instance,
    _quiet_stderr,
    _sounddevice,
    pulse_running,
    refresh_portaudio,
    resolve_device,
    resolve_pulse_device,
)
from .host import Host
from .priority import raise_helper_threads, raise_thread_priority

BACKENDS = ("pulse", "sounddevice", "pyaudio", "file")
#: ``"auto"`` picks a native client wherever a PulseAudio or PipeWire server answers (:func:`pick_backend`).
LIVE_BACKENDS = ("auto", "pulse", "jack", "sounddevice", "pyaudio")
LATENCIES = ("low", "high")

#: A stream that has not called back for this long (seconds, beyond its own
#: buffering) is considered gone.
STALL_SECONDS = 2.0

#: How often a stream whose driver thread died is restarted before giving up.
MAX_RESTARTS = 3
#: Seconds without a new xrun after which a duplex stream may be restarted to win its delay back
#: (an xrun leaves PulseAudio's round trip longer for the rest of a run; measured: 34 ms → 233 ms
#: after two 80 ms stalls, back to 34-41 ms with a restart costing 30-55 ms of audio each). Off by
#: default: on a saturated machine PortAudio's ALSA path has played garbage right after a restart.
RESYNC_QUIET_S = 0.3
#: Least time between two such restarts, and how long xruns right after one are not counted
#: (starting a stream can underflow once).
RESYNC_MIN_INTERVAL_S = 2.0
RESYNC_GRACE_S = 0.5
#: How often ``check()`` looks for new audio helper threads (a restarted stream has new ones).
HELPER_SCAN_S = 1.0


class LiveStream:
    """A running (or runnable) stream that drives ``host``.

    ``start()``, ``stop()``, ``close()``; ``check()`` (call it a few times a
    second from the main thread) raises :class:`DeviceError` if the device
    failed or stopped delivering audio. ``device_latency`` is the (input,
    output) latency in seconds the driver reports.
    """

    backend = "none"
    can_restart = False

    def __init__(self, host: Host, samplerate: int, blocksize: int | None, channels: int) -> None:
        self.host = host
        #: quiet seconds after an xrun before a delay-resetting restart; None or 0 = never
        self.resync_after: float | None = None
        self.resyncs = 0
        self._xruns_seen = 0
        self._last_xrun_at: float | None = None
        self._last_resync_at = -math.inf
        self._grace_until = 0.0
        self.samplerate = samplerate
        self.blocksize = blocksize
        self.channels = channels
        self.device_latency = (0.0, 0.0)
        self.io_delay = 0.0  # seconds, ADC → DAC of the latest block as the driver reports it
        self.error: str | None = None
        self.restarts = 0
        self._died: str | None = None  # set when the driver's stream ended on its own
        self._stuck = False  # a driver call hung: never touch the driver stream again
        self._endpoints: tuple[Endpoint | None, ...] = ()
        #: the server-side latency (s) the stream asks PulseAudio for at each start; None: the plugin's own
        self._server_latency: float | None = None
        self._started_at: float | None = None
        self._last_blocks = -1
        self._last_progress = 0.0
        self._helpers_seen: set[int] = set()
        self._helpers_checked_at = -math.inf
        #: audio helper threads given real-time priority so far (see :func:`raise_helper_threads`)
        self.helper_threads_raised = 0

    @property
    def active(self) -> bool:
        raise NotImplementedError

    def pop_events(self) -> list[str]:
        """Messages for the user since the last call (resyncs, reconnections); main thread only."""
        return []

    def start(self) -> None:
        self._started_at = self._last_progress = time.monotonic()
        self._last_blocks = self.host.blocks
        self._raise_helpers(self._started_at)

    def _raise_helpers(self, now: float) -> None:
        """Real-time priority for audio helper threads that appeared since the last look."""
        self._helpers_checked_at = now
        self.helper_threads_raised += raise_helper_threads(self._helpers_seen)

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency of the chain + the latency the driver reports, in samples."""
        return self.host.latency_samples + round(sum(self.device_latency) * self.samplerate)

    def check(self) -> None:
        """Raise :class:`DeviceError` if the stream has failed or stalled.

        A stream whose driver thread died (PortAudio's ALSA poll can time out
        on a loaded machine) is restarted, at most :data:`MAX_RESTARTS` times;
        ``restarts`` counts them. A device that is gone fails to restart, or
        stalls, and then this raises.
        """
        if self.error:
            raise DeviceError(self.error)
        if self._started_at is None:
            return
        now = time.monotonic()
        if now - self._helpers_checked_at >= HELPER_SCAN_S:  # a (re)opened stream has new ones
            self._raise_helpers(now)
        if self._died is not None:
            reason, self._died = self._died, None
            if self.restarts >= MAX_RESTARTS:
                self.error = f"{reason}; gave up after {self.restarts} restarts"
                raise DeviceError(self.error)
            self.restarts += 1
            try:
                self._restart()
            except Exception as exc:  # noqa: BLE001 - any driver failure here means the device is gone
                self.error = f"{reason}; restarting it failed: {exc}"
                raise DeviceError(self.error) from None
            self._last_progress = time.monotonic()
            return
        if self.resync_after and self.can_restart:
            self._maybe_resync(now)
        if self.host.blocks != self._last_blocks:
            self._last_blocks = self.host.blocks
            self._last_progress = now
            return
        allowance = STALL_SECONDS + sum(self.device_latency) + (self.blocksize or 2048) / self.samplerate
        if now - self._last_progress > allowance:
            self.error = (f"the audio device stopped delivering audio for {now - self._last_progress:.1f} s "
                          "(disconnected or taken away?)")
            raise DeviceError(self.error)

    def _restart(self) -> None:
        raise DeviceError("this stream cannot restart")

    def _maybe_resync(self, now: float) -> None:
        """Restart the stream once xruns have stopped for :attr:`resync_after` seconds (see ``RESYNC_QUIET_S``).

        The engine's own delay never changes; the driver's round trip grows by
        a buffer at each underflow and only a restart empties it. Xruns in the
        first ``RESYNC_GRACE_S`` after a restart are its own and do not count.
        """
        xruns = self.host.xruns
        if now < self._grace_until:
            self._xruns_seen = xruns
            return
        if xruns != self._xruns_seen:
            self._xruns_seen = xruns
            self._last_xrun_at = now
            return
        if self._last_xrun_at is None or now - self._last_xrun_at < self.resync_after \
                or now - self._last_resync_at < RESYNC_MIN_INTERVAL_S:
            return
        self._last_xrun_at = None
        began = time.monotonic()
        try:
            self._restart()
        except Exception as exc:  # noqa: BLE001 - any driver failure here means the device is gone
            self.error = f"restarting the stream after xruns failed: {exc}"
            raise DeviceError(self.error) from None
        self.resyncs += 1
        self._last_resync_at = now + (time.monotonic() - began)  # on the caller's clock
        self._last_progress = time.monotonic()
        self._grace_until = self._last_resync_at + RESYNC_GRACE_S

    def _driver_call(self, fn: Callable[[], object], what: str) -> None:
        """Call the driver with a timeout; a call that hangs marks the stream stuck (never touched again)."""
        if self._stuck:
            raise DeviceError("the audio driver is stuck")
        finished, exc = _call_with_timeout(fn)
        if not finished:
            self._stuck = True
            raise DeviceError(f"the audio driver did not {what} the stream in time")
        if exc is not None:
            raise DeviceError(f"cannot {what} the audio stream: {exc}")

    def _server_env(self):
        """:func:`_pulse_env` for this stream's endpoints and server latency (around a driver start)."""
        inp, out = (tuple(self._endpoints) + (None, None))[:2]
        return _pulse_env(inp, out, self._server_latency)

    def _restart_driver(self, stop: Callable[[], object], start: Callable[[], object]) -> None:
        gone = _pulse_endpoint_gone(*self._endpoints)
        if gone is not None:
            raise DeviceError(f"device {gone!r} is gone")
        self._driver_call(stop, "stop")
        with self._server_env():
            self._driver_call(start, "start")



def suggested_latency(latency: str | float, blocksize: int | None, samplerate: int) -> str | float:
    """The device latency to ask PortAudio for, in seconds (or ``"high"``).

    ``"low"`` is two blocks plus 10 ms, at least 20 ms: PortAudio's own "low"
    (16 ms output over PulseAudio) underflows about once a second on a busy
    machine, and every underflow in a duplex stream leaves the round trip one
    buffer longer for the rest of the run. A number is used as given.
    """
    if latency == "low":
        block = (blocksize or 256) / samplerate
        return max(0.020, 2 * block + 0.010)
    if latency == "high":
        return "high"
    value = float(latency)
    if not 0.0 < value <= 2.0:
        raise DeviceError(f"latency {latency!r} s is outside 0..2 s")
    return value


def _call_with_timeout(fn: Callable[[], object], timeout: float = 3.0) -> tuple[bool, BaseException | None]:
    """Run a driver call that may block forever on a dead device in a daemon thread.

    Returns ``(finished, exception)``; ``finished`` is False when it did not
    return within ``timeout`` seconds (the thread is left behind, stuck in the driver).
    """
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True, name="deepiso-driver-call").start()
    finished = done.wait(timeout)
    return finished, (failure[0] if failure else None)



#: Through ALSA's pulse plugin, the ALSA buffer (s) a sounddevice stream asks PortAudio for: two blocks when
#: that falls in this range, else the latency the server is asked for. Measured at 44.1 kHz (`python -m
#: benchmarks.latency --soak-seconds 0 --backends sounddevice --repeats N`): at block 256 an ALSA buffer of
#: 17.4 or 21.6 ms gave xruns at every start and garbage samples in half the runs, 5.8 or 11.6 ms neither in
#: 13 of 13; at block 512, 23.2 ms gave 1-2 xruns a run and 33.2 ms none in 4 of 4; at block 128, 5.8 ms gave
#: hundreds of xruns a run and 20 ms 4.
PULSE_ALSA_BUFFER_S = (0.010, 0.015)


def alsa_latency(wanted: str | float, blocksize: int | None, samplerate: int, through_pulse: bool) -> str | float:
    """The latency a sounddevice stream asks PortAudio for, given the one it asks the server for (``wanted``).

    Through PulseAudio the server holds the buffer it is asked for, so PortAudio's ALSA buffer can stay at
    two blocks where that was measured clean (:data:`PULSE_ALSA_BUFFER_S`); anywhere else ``wanted``.
    """
    if not through_pulse or not isinstance(wanted, float):
        return wanted
    two_blocks = 2 * (blocksize or 256) / samplerate
    low, high = PULSE_ALSA_BUFFER_S
    return two_blocks if low <= two_blocks <= min(high, wanted) else wanted


class SoundDeviceStream(LiveStream):
    """Duplex ``sounddevice.Stream``; the callback runs :meth:`Host.process` on PortAudio's buffers."""

    backend = "sounddevice"
    can_restart = True

    def __init__(self, host: Host, inp: Endpoint, out: Endpoint, samplerate: int, blocksize: int | None,
                 channels: int, latency: str | float = "low") -> None:
        super().__init__(host, samplerate, blocksize, channels)
        sd = _sounddevice()
        process, count_xrun = host.process, host.count_xrun
        self.realtime_priority: bool | None = None

        def callback(indata, outdata, frames, t, status) -> None:  # the audio thread
            if self.realtime_priority is None:
                self.realtime_priority = raise_thread_priority()
            if status:
                count_xrun()
            # What the driver says this block's round trip is (ADC → DAC).
            self.io_delay = t.outputBufferDacTime - t.inputBufferAdcTime
            process(indata, outdata)

        def finished() -> None:
            if self._stream is not None and self._wanted and not self._closing and not self._restarting:
                self._died = "the audio stream ended unexpectedly (device gone?)"

        self._wanted = False
        self._closing = False
        self._restarting = False
        self._stream = None
        wanted = suggested_latency(latency, blocksize, samplerate)
        self._server_latency = wanted if isinstance(wanted, float) else None
        device_latency = alsa_latency(wanted, blocksize, samplerate, inp.via_pulse or out.via_pulse)
        try:
            with _pulse_env(inp, out, self._server_latency):
                self._stream = sd.Stream(samplerate=samplerate, blocksize=blocksize or 0,
                                         device=(inp.index, out.index), channels=channels, dtype="float32",
                                         latency=device_latency, callback=callback, finished_callback=finished)
        except sd.PortAudioError as exc:
            raise DeviceError(_portaudio_message(exc, inp, out, samplerate, channels)) from None
        except ValueError as exc:
            raise DeviceError(f"cannot open {inp.label} → {out.label}: {exc}") from None
        self.device_latency = tuple(float(x) for x in self._stream.latency)  # type: ignore[assignment]
        self._endpoints = (inp, out)

    @property
    def active(self) -> bool:
        return bool(self._stream is not None and self._stream.active)

    @property
    def cpu_load(self) -> float:
        return float(self._stream.cpu_load) if self._stream is not None else 0.0

    def start(self) -> None:
        sd = _sounddevice()
        self._wanted = True
        try:
            with self._server_env():
                self._stream.start()  # type: ignore[union-attr]
        except sd.PortAudioError as exc:
            raise DeviceError(f"cannot start the audio stream: {exc}") from None
        super().start()

    def _restart(self) -> None:
        self._restarting = True
        try:
            self._restart_driver(self._stream.abort, self._stream.start)  # type: ignore[union-attr]
        finally:
            self._restarting = False

    def stop(self) -> None:
        self._wanted = False
        if self._stream is not None and not self._stuck:
            try:
                self._driver_call(self._stream.abort, "stop")
            except DeviceError as exc:
                self.error = self.error or str(exc)

    def close(self) -> None:
        self._wanted = False
        self._closing = True
        if self._stream is not None and not self._stuck:
            try:
                self._driver_call(self._stream.close, "close")
            except DeviceError as exc:
                self.error = self.error or str(exc)
        self._stream = None


def _portaudio_message(exc: Exception, inp: Endpoint, out: Endpoint, rate: int, channels: int) -> str:
    text = str(exc)
    low = text.lower()
    where = f"{inp.label} → {out.label}"
    if "sample rate" in low or "samplerate" in low:
        return f"{where}: the device does not support {rate} Hz ({text})"
    if "channel" in low:
        return f"{where}: the device does not support {channels} channel(s) ({text})"
    if "busy" in low or "unavailable" in low:
        return f"{where}: the device is busy or unavailable ({text})"
    return f"cannot open {where}: {text}"


class PyAudioStream(LiveStream):
    """Duplex PyAudio stream.

    PyAudio always asks PortAudio for the device's default low latency; over
    PulseAudio the requested latency is passed to the server instead.

    The callback reads the input bytes through a zero-copy NumPy view and
    returns a preallocated output buffer, so it allocates no audio buffers.
    """

    backend = "pyaudio"
    can_restart = True

    def __init__(self, host: Host, inp: Endpoint, out: Endpoint, samplerate: int, blocksize: int | None,
                 channels: int, latency: str | float = "low") -> None:
        super().__init__(host, samplerate, blocksize, channels)
        import pyaudio

        self._pa = _pyaudio_instance()
        max_frames = host.max_block if blocksize is None else blocksize
        self._out = np.zeros((max(max_frames, 8192), channels), np.float32)
        out_buf = self._out
        process, count_xrun = host.process, host.count_xrun
        cont = pyaudio.paContinue
        in_dtype = np.float32
        self.realtime_priority: bool | None = None

        def callback(in_data, frame_count, time_info, status):  # the audio thread
            if self.realtime_priority is None:
                self.realtime_priority = raise_thread_priority()
            if status:
                count_xrun()
            self.io_delay = time_info["output_buffer_dac_time"] - time_info["input_buffer_adc_time"]
            x = np.frombuffer(in_data, dtype=in_dtype).reshape(frame_count, channels)
            y = out_buf[:frame_count]
            process(x, y)
            return y, cont

        self._wanted = False
        try:
            wanted = suggested_latency(latency, blocksize, samplerate)
            self._server_latency = wanted if isinstance(wanted, float) else None
            with _pulse_env(inp, out, self._server_latency), _quiet_stderr():
                self._stream = self._pa.open(
                    rate=samplerate, channels=channels, format=pyaudio.paFloat32, input=True, output=True,
                    input_device_index=inp.index, output_device_index=out.index,
                    frames_per_buffer=blocksize or pyaudio.paFramesPerBufferUnspecified,
                    start=False, stream_callback=callback)
        except (OSError, ValueError) as exc:
            self._pa.terminate()
            raise DeviceError(_portaudio_message(exc, inp, out, samplerate, channels)) from None
        self.device_latency = (float(self._stream.get_input_latency()), float(self._stream.get_output_latency()))
        self._endpoints = (inp, out)

    @property
    def active(self) -> bool:
        try:
            return bool(self._stream is not None and self._stream.is_active())
        except OSError:
            return False

    @property
    def cpu_load(self) -> float:
        try:
            return float(self._stream.get_cpu_load())
        except (OSError, AttributeError):
            return 0.0

    def start(self) -> None:
        self._wanted = True
        try:
            with self._server_env():
                self._stream.start_stream()
        except OSError as exc:
            raise DeviceError(f"cannot start the audio stream: {exc}") from None
        super().start()

    def check(self) -> None:
        if self._wanted and self._stream is not None and not self.active and not self.error:
            self._died = "the audio stream ended unexpectedly (device gone?)"
        super().check()

    def _restart(self) -> None:
        self._restart_driver(self._stream.stop_stream, self._stream.start_stream)

    def stop(self) -> None:
        self._wanted = False
        if self._stream is not None and not self._stuck:
            try:
                self._driver_call(self._stream.stop_stream, "stop")
            except DeviceError as exc:
                self.error = self.error or str(exc)

    def close(self) -> None:
        self._wanted = False
        if self._stream is not None and not self._stuck:
            try:
                self._driver_call(self._stream.close, "close")
                self._driver_call(self._pa.terminate, "terminate")
            except DeviceError as exc:
                self.error = self.error or str(exc)
        self._stream = None


class PulseStream(LiveStream):
    """A native PulseAudio/PipeWire client (:mod:`deepiso.realtime.pulse`): no PortAudio, no ALSA plugin.

    The audio thread sleeps in ``poll()`` between blocks and holds the delay by
    itself (late input is dropped, the output buffer refills to its length after
    an underflow); :attr:`resyncs` counts the drops. Named devices never move:
    when one disappears the stream ends with :class:`DeviceError` within a block.
    A lost server is reconnected to for ``RECONNECT_SECONDS``, with a message.
    ``device_latency`` is the (input, output) latency the server reports.
    """

    backend = "pulse"

    def __init__(self, host: Host, inp: Endpoint, out: Endpoint, samplerate: int, blocksize: int | None,
                 channels: int, latency: str | float = "low") -> None:
        from . import pulse

        block = blocksize or pulse.DEFAULT_BLOCK
        super().__init__(host, samplerate, block, channels)
        self.realtime_priority: bool | None = None

        def on_start() -> None:  # in the audio thread
            self.realtime_priority = raise_thread_priority()

        try:
            self._duplex = pulse.PulseDuplex(host.process, samplerate, channels, block,
                                             inp.pulse.name if inp.pulse else None,
                                             out.pulse.name if out.pulse else None, latency, on_start=on_start)
        except pulse.PulseError as exc:
            raise DeviceError(str(exc)) from None
        self._endpoints = (inp, out)
        self.device_latency = (block / samplerate, self._duplex.output_s)  # nominal until the server reports
        self._xruns_synced = 0
        self._events_seen = 0

    @property
    def active(self) -> bool:
        return self._duplex.running

    @property
    def counters(self):
        return self._duplex.counters

    @property
    def underflow_times(self) -> list[float]:
        """When the output ran empty, seconds into the stream (the first 64)."""
        return list(self._duplex.underflow_times)

    @property
    def started_monotonic(self) -> float:
        """When the stream started, on the system-wide monotonic clock: other processes' times line up with it."""
        return self._duplex.started_monotonic

    @property
    def output_s(self) -> float:
        """The output buffer (``tlength``) asked of the server for ``latency``, seconds."""
        return self._duplex.output_s

    @property
    def granted_output_s(self) -> float:
        """The output buffer the server granted: with ``ADJUST_LATENCY`` it keeps part of it in its own."""
        return self._duplex.granted_output_s

    @property
    def thread_cpu(self) -> float:
        """The audio thread's CPU time as a share of one core."""
        c = self._duplex.counters
        return c.thread_cpu_s / c.wall_s if c.wall_s > 0 else 0.0

    @property
    def compute_cpu(self) -> float:
        """The share of one core spent in :meth:`Host.process` (the model and plugins)."""
        c = self._duplex.counters
        return c.compute_s / c.wall_s if c.wall_s > 0 else 0.0

    def start(self) -> None:
        from .pulse import PulseError

        try:
            self._duplex.open()
        except PulseError as exc:
            raise DeviceError(str(exc)) from None
        super().start()

    def pop_events(self) -> list[str]:
        events = list(self._duplex.events)
        self._duplex.events.clear()
        return events

    def check(self) -> None:
        d = self._duplex
        c = d.counters
        xruns = c.underflows + c.overflows
        if xruns > self._xruns_synced:
            self.host.count_xrun(xruns - self._xruns_synced)
            self._xruns_synced = xruns
        self.resyncs = c.resyncs
        self.restarts = c.reconnects
        if all(math.isfinite(v) for v in d.latency) and d.blocks:
            self.device_latency = d.latency
        if d.error:
            self.error = d.error
        if self.error:
            raise DeviceError(self.error)
        if self._started_at is not None and not d.running:
            self.error = "the audio thread ended"
            raise DeviceError(self.error)

    def stop(self) -> None:
        self._duplex.close()

    def close(self) -> None:
        self._duplex.close()


class JackStream(LiveStream):
    """A JACK client: PipeWire through its JACK API, or a JACK server (:mod:`deepiso.realtime.jack_stream`).

    The server calls a native callback in its real-time thread once a cycle, one block in and one out, at
    the graph's rate; it hands the block to the chain's thread and takes its output back in the same
    cycle (:mod:`deepiso.realtime.jack_cycle`); nothing is queued in between. Devices as
    :func:`~deepiso.realtime.jack_stream.jack_names` finds them; a device that goes away ends the stream with
    :class:`DeviceError`.
    """

    backend = "jack"

    def __init__(self, host: Host, inp: Endpoint | str | None, out: Endpoint | str | None, samplerate: int,
                 blocksize: int | None, channels: int, latency: str | float = "low") -> None:
        self.inp_name = inp.name if isinstance(inp, Endpoint) else inp
        self.out_name = out.name if isinstance(out, Endpoint) else out
        self._on_pipewire = js.pipewire_running()  # the server's socket can then be asked whether it is there
        self.client = js._client("deepiso", blocksize)
        rate, block = int(self.client.samplerate), int(self.client.blocksize)
        if rate != samplerate:
            self.client.close()
            raise DeviceError(f"the JACK graph runs at {rate} Hz, not {samplerate} Hz (--samplerate {rate})")
        super().__init__(host, rate, block, channels)
        try:
            names = js.jack_names(self.inp_name, "input"), js.jack_names(self.out_name, "output")
            deadline = time.monotonic() + js.PORTS_WAIT_S
            while True:  # a device the server has just made shows its ports in the graph a moment later
                try:
                    self.sources = js.device_ports(self.client, names[0], "input", self.inp_name)
                    self.sinks = js.device_ports(self.client, names[1], "output", self.out_name)
                    break
                except DeviceError:
                    if names == (None, None) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        except DeviceError:
            self.client.close()
            raise
        self._ins = [self.client.inports.register(f"in_{i + 1}") for i in range(channels)]
        self._outs = [self.client.outports.register(f"out_{j + 1}") for j in range(len(self.sinks))]
        jack = js.load_jack()

        def address(ptr: Any) -> int:
            return int(jack._ffi.cast("uintptr_t", ptr))

        try:  # the callback is native code: it never takes the interpreter lock (jack_cycle.py)
            self._worker = jc.CycleWorker(jack._libname, address(self.client._ptr),
                                          [address(p._ptr) for p in self._ins], [address(p._ptr) for p in self._outs],
                                          max(block, 8192), rate, self.host.process, channels, js.CEILING)
            if jack._lib.jack_set_process_callback(
                    self.client._ptr, jack._ffi.cast("JackProcessCallback", self._worker.callback.address),
                    jack._ffi.cast("void *", self._worker.arg)) != 0:
                raise DeviceError("the JACK server refused the process callback")
        except Exception:
            self.client.close()
            raise
        self._xruns_synced = 0
        self._events: list[str] = []
        self._waiting = False
        self.realtime_priority: bool | None = None
        self._device_port_names = {p.name for p in self.sinks} | {p.name for p in self.sources}
        self.client.set_xrun_callback(self._xrun)
        self.client.set_shutdown_callback(self._shutdown)
        self.client.set_port_registration_callback(self._port_change, only_available=False)
        # the cycle: through PipeWire's JACK API the round trip is one quantum (tests/test_jack_backend.py)
        self.device_latency = (block / rate, 0.0)
        self._running = False
        self._server_xruns = 0

    # ------------------------------------------------------------ what the native callback counted
    @property
    def xruns(self) -> int:
        """Cycles the graph went on without this client, cycles the chain was late for, and xruns the
        server reported."""
        return self._worker.counter(jc.XRUNS) + self._server_xruns

    @property
    def missed_cycles(self) -> int:
        """Cycles with no output from the chain: the graph went on without the client, or it was late."""
        return self._worker.counter(jc.MISSED) + self._worker.counter(jc.DROPPED)

    @property
    def late_cycles(self) -> int:
        """Cycles the chain did not finish within the callback's budget (each is silent)."""
        return self._worker.counter(jc.LATE)

    @property
    def faults(self) -> int:
        return self._worker.faults

    @property
    def xrun_times(self) -> list[float]:
        """Seconds into the stream of the first xruns (up to 64)."""
        if self._started_at is None:
            return []
        return [round(t - self._started_at, 2) for t in self._worker.xrun_times()]

    # ------------------------------------------------------------ the server's other thread
    def _xrun(self, delay: float) -> None:
        self._server_xruns += 1

    def _shutdown(self, status: Any, reason: str) -> None:
        self.error = f"the JACK server shut the stream down: {reason}"

    def _port_change(self, port: Any, register: bool) -> None:
        if not register and port.name in self._device_port_names and self._running:
            kind = "output" if port.name in {p.name for p in self.sinks} else "input"
            name = self.out_name if kind == "output" else self.inp_name
            self.error = f"{kind} device {name!r} is gone; stopped (no other device is used in its place)"

    # ------------------------------------------------------------ control
    @property
    def active(self) -> bool:
        return self._running and self.error is None

    def start(self) -> None:
        jack = js.load_jack()
        try:
            self.client.activate()
            n = len(self.sources)
            for i, port in enumerate(self._ins):
                self.client.connect(self.sources[i % n], port)
            for port, sink in zip(self._outs, self.sinks, strict=True):
                self.client.connect(port, sink)
        except jack.JackError as exc:
            self.close()
            raise DeviceError(f"cannot connect the JACK ports: {exc}") from None
        self._running = True
        self._worker.start(self._raise_worker)
        super().start()

    def _raise_worker(self) -> None:  # in the chain's thread, as it starts
        self.realtime_priority = bool(self.client.realtime) and raise_thread_priority()

    @property
    def started_monotonic(self) -> float:
        """When the stream started, on the monotonic clock (``xrun_times`` count from here)."""
        return self._started_at or 0.0

    @property
    def thread_cpu(self) -> float:
        """The CPU of the audio path as a share of one core: the server's thread that calls this client
        (cycle to cycle) and the chain's thread."""
        wall = time.monotonic() - self._started_at if self._started_at else 0.0
        return (self._worker.callback_cpu_s + self._worker.thread_cpu_s) / wall if wall > 0 else 0.0

    @property
    def compute_cpu(self) -> float:
        """The share of one core spent in :meth:`Host.process` (the model and plugins)."""
        wall = time.monotonic() - self._started_at if self._started_at else 0.0
        return self._worker.compute_s / wall if wall > 0 else 0.0

    def pop_events(self) -> list[str]:
        events, self._events = self._events, []
        return events

    def check(self) -> None:
        """Raise :class:`DeviceError` when a device went away or the server is gone for good.

        The server calls this client, not the other way round: a server that stalls (stopped, or a
        machine too busy) only delays the next cycle, and the stream waits for it, saying so, for up to
        :data:`GONE_S`. Nothing queues up meanwhile, so it comes back at its nominal delay. A PipeWire
        server whose socket refuses connections has gone (exited, restarting): that ends the stream at once.
        """
        if self.xruns > self._xruns_synced:
            self.host.count_xrun(self.xruns - self._xruns_synced)
            self._xruns_synced = self.xruns
        if self.error:
            raise DeviceError(self.error)
        if self._started_at is None:
            return
        now = time.monotonic()
        if self.host.blocks != self._last_blocks:
            if self._waiting:
                self._events.append("the JACK server runs again")
                self._waiting = False
            self._last_blocks, self._last_progress = self.host.blocks, now
            return
        quiet = now - self._last_progress
        if quiet > js.ASK_S and self._on_pipewire and js.pipewire_gone():
            self.error = f"the PipeWire server is gone (no cycle for {quiet:.1f} s, its socket refuses)"
            raise DeviceError(self.error)
        if quiet > js.QUIET_S and not self._waiting:
            self._events.append(f"no cycle from the JACK server for {quiet:.1f} s; waiting")
            self._waiting = True
        if quiet > js.GONE_S:
            self.error = f"no cycle from the JACK server for {quiet:.0f} s (stopped or gone)"
            raise DeviceError(self.error)

    def stop(self) -> None:
        if self._running:
            # PipeWire's JACK API stops a client by cancelling its thread (pthread_cancel) wherever it is:
            # the native callback holds nothing there. The chain's thread finishes its cycle first.
            self._running = False
            self._worker.stop(js.STOP_WAIT_S)
            try:
                self.client.deactivate()
            except Exception:  # noqa: BLE001 - a server already gone
                pass

    def close(self) -> None:
        self.stop()
        try:
            self.client.close()
        except Exception:  # noqa: BLE001
            pass
        self._worker.close()


class ArrayStream(LiveStream):
    """Drives the host over an in-memory signal from a thread, like a device would.

    ``x``: ``(samples, channels)`` float32 input; the output accumulates in
    :attr:`output` (same shape). ``realtime=True`` paces blocks at the sample
    rate (a simulated device); ``False`` runs as fast as possible.
    ``blocksize=None`` uses random block sizes between 1 and ``host.max_block``
    (what a variable-block driver does).
    """

    backend = "file"

    def __init__(self, host: Host, x: np.ndarray, samplerate: int, blocksize: int | None = 256,
                 realtime: bool = False, seed: int = 0) -> None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != host.channels:
            raise DeviceError(f"input has shape {x.shape}, the host needs (samples, {host.channels})")
        super().__init__(host, samplerate, blocksize, host.channels)
        self.x = x
        self.output = np.zeros_like(x)
        self.realtime = realtime
        self.position = 0
        self._rng = np.random.default_rng(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        t0 = time.monotonic()
        n = self.x.shape[0]
        while self.position < n and not self._stop.is_set():
            size = self.blocksize or int(self._rng.integers(1, self.host.max_block + 1))
            a, b = self.position, min(n, self.position + size)
            self.host.process(self.x[a:b], self.output[a:b])
            self.position = b
            if self.realtime:
                ahead = b / self.samplerate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
                elif ahead < -0.05:
                    self.host.count_xrun()  # the engine fell behind a real device's clock
                    t0 = time.monotonic() - b / self.samplerate

    def start(self) -> None:
        super().start()
        self._thread = threading.Thread(target=self._run, name="deepiso-file", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
        self.wait(5.0)

    def close(self) -> None:
        self.stop()


def pick_backend(samplerate: int | None = None) -> str:
    """What ``backend="auto"`` opens: ``"jack"`` on PipeWire with its JACK API (``pipewire-jack``) and a graph at
    ``samplerate`` (any, when None), where the engine runs inside the graph a quantum from it; else ``"pulse"``
    where a PulseAudio/PipeWire server answers and libpulse loads; else ``"sounddevice"``."""
    if js.usable_on_pipewire(samplerate):
        return "jack"
    if pulse_running():
        from .pulse import PulseError, _libpulse

        try:
            _libpulse()
        except PulseError:
            return "sounddevice"
        return "pulse"
    return "sounddevice"


def open_stream(host: Host, backend: str = "auto", input: str | int | None = None,
                output: str | int | None = None, samplerate: int = 48_000, blocksize: int | None = None,
                latency: str | float = "low", resync_after: float | None = None) -> LiveStream:
    """Open a duplex device stream that runs ``host`` (not started yet).

    ``backend``: ``"auto"`` (:func:`pick_backend`: ``jack`` on PipeWire, the native ``pulse`` client on
    PulseAudio, else ``sounddevice``), ``"pulse"``, ``"jack"`` (PipeWire's JACK API, or a JACK server; the graph's
    rate), ``"sounddevice"`` or ``"pyaudio"``.

    ``resync_after``: restart the stream after an xrun once that many seconds
    pass without another, which resets the round trip the xrun lengthened
    (``None`` or 0: never, the default; ``RESYNC_QUIET_S`` is a good value).
    """
    if resync_after is not None and not 0.0 <= resync_after <= 60.0:
        raise DeviceError(f"resync_after {resync_after!r} s is outside 0..60 s")
    if backend not in LIVE_BACKENDS:
        raise DeviceError(f"backend {backend!r} is not one of {', '.join(LIVE_BACKENDS)}")
    if backend == "auto":
        backend = pick_backend(samplerate)
    if latency not in LATENCIES:
        try:
            float(latency)
        except (TypeError, ValueError):
            raise DeviceError(f"latency {latency!r} is neither one of {LATENCIES} nor seconds") from None
    if backend == "pulse":
        inp, out = resolve_pulse_device(input, "input"), resolve_pulse_device(output, "output")
        return PulseStream(host, inp, out, samplerate, blocksize, host.channels, latency)
    if backend == "jack":
        if isinstance(input, int) or isinstance(output, int):
            raise DeviceError("the jack backend takes devices by name (the JACK client of their ports)")
        return JackStream(host, input, output, samplerate, blocksize, host.channels, latency)
    if backend == "sounddevice":
        refresh_portaudio()  # devices appear (virtual mic) and servers start after import
    inp = resolve_device(input, "input", backend)
    out = resolve_device(output, "output", backend)
    cls = SoundDeviceStream if backend == "sounddevice" else PyAudioStream
    stream = cls(host, inp, out, samplerate, blocksize, host.channels, latency)
    stream.resync_after = resync_after
    return stream
