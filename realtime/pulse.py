"""A native PulseAudio client (libpulse through ctypes) for live streams: the ``pulse`` backend.

PipeWire's ``pipewire-pulse`` speaks the same protocol, so this one backend
serves both servers of current Linux desktops. It replaces PortAudio's path
through ALSA's ``pulse`` plugin, which polls the plugin's mainloop thread in a
loop (one core at ~97 % on PulseAudio and PipeWire alike), drops the stream
when that poll times out, and grows the round trip by a buffer at each xrun.

How it runs. One audio thread owns a plain ``pa_mainloop``; there is no
mainloop thread, no lock and no busy wait. The thread sleeps in ``poll()``
until the server sends a fragment of input, copies whole fragments into a
staging buffer, runs :meth:`Host.process` on each complete block, clips and
writes the block to the playback stream, and goes back to sleep. Both streams
ask the server for low latency (``PA_STREAM_ADJUST_LATENCY``): the record
stream for one block per fragment, the playback stream for a target length
(``tlength``) that sets the output buffer.

The delay holds by construction:

* the playback stream starts (and, after an underflow, restarts) only once it
  holds ``tlength`` (``prebuf = tlength``), so its share of the delay returns
  to its nominal value by itself;
* input that piles up (the thread was late, the server stalled) is dropped down
  to one block once it exceeds ``backlog``, and an output buffer that stays
  overfull (late input that arrived in a burst) is flushed back to its length:
  a *resync*, counted and reported, never a growing delay;
* smaller creeps (an underflow refilled, a server that changed its quantum) are
  trimmed: the server's share of the delay is watched in quarter-second
  windows, and when a window's floor is a whole block or more above the one the
  stream settled at (the median floor of its first second), whole output blocks
  are left out to bring it back (``trims``), never below that floor. An
  underflow soon after a trim shows the floor was too low to hold: the next
  trims stop a block higher.

Named devices are opened with ``PA_STREAM_DONT_MOVE``: when the virtual
microphone (or any named device) disappears, the server ends the stream rather
than moving it to the speakers, and the stream ends with a message. A server
that goes away is reconnected to, with a message, for :data:`RECONNECT_SECONDS`.

Only the standard library: libpulse itself comes with every PulseAudio or
PipeWire install (Debian: ``libpulse0``).

Why not a binding from PyPI. ``soundcard`` (libpulse through cffi) runs a
threaded mainloop whose lock every call takes, and gives a recorder and a
player as two blocking objects, so a duplex needs two threads and a queue
between them (44-52 ms measured for that shape here, against 16-17 for a
duplex); its streams can be moved, so a removed virtual microphone would be
replaced by the speakers. ``pasimple`` (``pa_simple``) has the same two
blocking halves and neither ``DONT_MOVE`` nor underflow reports. JACK-Client
needs a JACK server, or PipeWire's JACK layer, which a PulseAudio desktop does
not have. The calls made here are few (about 30) and stable since libpulse 1.0.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------
# libpulse: the few calls this client makes (pulse/def.h, stream.h, context.h, mainloop.h)

PA_SAMPLE_FLOAT32LE = 5
PA_CONTEXT_NOAUTOSPAWN = 0x1
PA_CONTEXT_READY, PA_CONTEXT_FAILED, PA_CONTEXT_TERMINATED = 4, 5, 6
PA_STREAM_READY, PA_STREAM_FAILED, PA_STREAM_TERMINATED = 2, 3, 4
PA_STREAM_INTERPOLATE_TIMING = 0x0002
PA_STREAM_AUTO_TIMING_UPDATE = 0x0008
PA_STREAM_DONT_MOVE = 0x0200
PA_STREAM_ADJUST_LATENCY = 0x2000
PA_SEEK_RELATIVE = 0
PA_ERR_NOENTITY = 5
NO_VALUE = 0xFFFFFFFF  # (uint32_t) -1: "let the server choose"


class PulseError(Exception):
    """libpulse is missing, the server cannot be reached, or a stream failed."""


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [("maxlength", ctypes.c_uint32), ("tlength", ctypes.c_uint32), ("prebuf", ctypes.c_uint32),
                ("minreq", ctypes.c_uint32), ("fragsize", ctypes.c_uint32)]


_NOTIFY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)  # pa_stream_notify_cb_t
# pa_sink_info_cb_t / pa_source_info_cb_t: (context, info, eol, userdata)
_INFO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)


class _ServerInfoHead(ctypes.Structure):
    """The first fields of ``pa_server_info`` (only read, never allocated here)."""

    _fields_ = [("user_name", ctypes.c_char_p), ("host_name", ctypes.c_char_p),
                ("server_version", ctypes.c_char_p), ("server_name", ctypes.c_char_p)]


_SERVER_INFO = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_ServerInfoHead), ctypes.c_void_p)
_lib: ctypes.CDLL | None = None


def _libpulse() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("pulse") or "libpulse.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise PulseError("libpulse is not installed (Debian/Ubuntu: apt-get install libpulse0)") from None
    p, i, u32, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
    sigs = {
        "pa_mainloop_new": (p, []), "pa_mainloop_get_api": (p, [p]), "pa_mainloop_free": (None, [p]),
        "pa_mainloop_prepare": (i, [p, i]), "pa_mainloop_poll": (i, [p]), "pa_mainloop_dispatch": (i, [p]),
        "pa_mainloop_iterate": (i, [p, i, p]), "pa_mainloop_wakeup": (None, [p]),
        "pa_context_new": (p, [p, ctypes.c_char_p]), "pa_context_connect": (i, [p, ctypes.c_char_p, i, p]),
        "pa_context_get_state": (i, [p]), "pa_context_get_server_info": (p, [p, _SERVER_INFO, p]),
        "pa_context_errno": (i, [p]), "pa_context_disconnect": (None, [p]),
        "pa_context_unref": (None, [p]), "pa_strerror": (ctypes.c_char_p, [i]),
        "pa_stream_new": (p, [p, ctypes.c_char_p, ctypes.POINTER(_SampleSpec), p]),
        "pa_stream_connect_record": (i, [p, ctypes.c_char_p, ctypes.POINTER(_BufferAttr), u32]),
        "pa_stream_connect_playback": (i, [p, ctypes.c_char_p, ctypes.POINTER(_BufferAttr), u32, p, p]),
        "pa_stream_get_state": (i, [p]), "pa_stream_disconnect": (i, [p]), "pa_stream_unref": (None, [p]),
        "pa_stream_readable_size": (sz, [p]), "pa_stream_writable_size": (sz, [p]),
        "pa_stream_peek": (i, [p, ctypes.POINTER(p), ctypes.POINTER(sz)]), "pa_stream_drop": (i, [p]),
        "pa_stream_write": (i, [p, p, sz, p, ctypes.c_int64, i]),
        "pa_stream_get_latency": (i, [p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(i)]),
        "pa_stream_get_buffer_attr": (ctypes.POINTER(_BufferAttr), [p]),
        "pa_stream_get_device_name": (ctypes.c_char_p, [p]),
        "pa_stream_set_underflow_callback": (None, [p, _NOTIFY, p]),
        "pa_stream_flush": (p, [p, p, p]), "pa_operation_unref": (None, [p]),
        "pa_context_get_sink_info_by_name": (p, [p, ctypes.c_char_p, _INFO, p]),
        "pa_context_get_source_info_by_name": (p, [p, ctypes.c_char_p, _INFO, p]),
        "pa_stream_set_overflow_callback": (None, [p, _NOTIFY, p]),
    }
    for fn, (res, args) in sigs.items():
        try:
            f = getattr(lib, fn)
        except AttributeError:
            raise PulseError(f"{name} has no {fn}: libpulse is too old (needs 1.0 or later)") from None
        f.restype, f.argtypes = res, args
    _lib = lib
    return lib


def _strerror(code: int) -> str:
    text = _libpulse().pa_strerror(code)
    return text.decode(errors="replace") if text else f"error {code}"


# ----------------------------------------------------------------------------
# Settings

#: What the stream writes peaks at -1 dBFS: the server resamples a stream whose rate is not its own
#: (the default model runs at 44.1 kHz, desktop servers at 48 kHz), and the resampler's overshoot
#: took samples clipped at 0 dBFS to +0.2..+0.5 dBFS (1.02-1.06) on the device, which a 16-bit call
#: client clips. -1 dBFS is the true-peak ceiling of broadcast practice (EBU R 128) for the same reason.
CEILING = 10 ** (-1 / 20)
#: A stream not given a block delivers this many frames per callback.
DEFAULT_BLOCK = 256
#: Output buffer (``tlength``) for ``latency="low"``: two blocks and at least 12 ms; the server's
#: share of the round trip is about this (pass-through at block 256, 48 kHz: 13.8 ms measured).
LOW_OUTPUT_S = 0.012
#: The same on PipeWire's pulse server, which carries a client's output a quantum further: at 12 ms
#: its output underflowed about twice a minute with a browser recording, at 16 ms none in the same
#: runs (benchmarks/live.py, 2 x 60 s each), for 2.7 ms more delay.
PIPEWIRE_LOW_OUTPUT_S = 0.016
HIGH_OUTPUT_S = 0.060
#: Input allowed to pile up before it is dropped down to one block (a resync), beyond one block.
BACKLOG_S = 0.020
#: The output buffer may hold this much beyond its length (a server's quantum, a burst of late
#: input) for OVERFULL_S before it is flushed back to its length.
OVERFULL_EXTRA_S = 0.050
OVERFULL_S = 0.2
#: The delay is watched in windows this long; a window whose least delay is a block plus
#: TRIM_SLACK_S or more above the settled one leaves out as many whole output blocks as fit above it.
#: Trims that left out a fraction of a block more (down to 0.4 of a block under the settled floor)
#: set off an underflow, a refill and the next trim, up to 14 times in 20 s on PipeWire. Trims from
#: half a block of creep down to 1 ms above the floor held the delay 3-5 ms lower, but underflowed 21
#: times against 7 on PulseAudio and 12 against 1 on PipeWire (10-minute soaks with a browser).
WINDOW_S = 0.25
TRIM_SLACK_S = 0.001
#: The settled floor: the median floor of this many windows after the first (the start-up).
SETTLE_WINDOWS = 4
#: An underflow within this long of a trim raises the floor trims stop at by one block (at most
#: MAX_RAISES times): the trimmed level could not be held.
TRIM_UNDERFLOW_S = 2.0
MAX_RAISES = 2
#: A raise is taken back, one block at a time, after this long without an underflow: most underflows
#: on a busy or virtual machine come from stalls of the machine itself (benchmarks/stalls.py), which a
#: higher level does not prevent, and a raise kept for good left the rest of a soak 5.8-11.6 ms later.
RAISE_HOLD_S = 60.0
#: No input for this long: the server is announced as not answering (the stream keeps waiting).
QUIET_S = 0.5
#: No input for this long, or a lost connection not back within it: the stream ends with an error.
RECONNECT_SECONDS = 10.0
#: How long connecting to the server or a stream may take.
CONNECT_TIMEOUT_S = 5.0
#: The server asks for output in pieces of a block divided by this: with whole blocks the sink ran at
#: its minimum latency and woke the audio thread ~9000 times a second (block 256 at 48 kHz: 12.6 % of a
#: core for a pass-through), with half blocks ~2400 times (3.8 %).
MINREQ_DIV = 2
#: The poll wakes at least this often (µs) to look at stop requests and the clock.
POLL_TIMEOUT_US = 100_000


def output_buffer_s(latency: str | float, block: int, rate: int, server: str = "") -> float:
    """The playback buffer (``tlength``) in seconds for ``latency`` (``"low"``, ``"high"`` or seconds)
    on ``server`` (its name, as the server gives it: "low" is longer on PipeWire)."""
    if latency == "low":
        return max(2 * block / rate, PIPEWIRE_LOW_OUTPUT_S if "PipeWire" in server else LOW_OUTPUT_S)
    if latency == "high":
        return max(4 * block / rate, HIGH_OUTPUT_S)
    value = float(latency)
    if not 0.001 <= value <= 2.0:
        raise PulseError(f"latency {value!r} s is outside 0.001..2 s")
    return max(value, 2 * block / rate)


@dataclass
class PulseCounters:
    """What the audio thread counts (read from any thread)."""

    underflows: int = 0  # the playback buffer ran empty: the server played silence
    overflows: int = 0  # the playback buffer overflowed (should never happen: writes are bounded)
    dropped_input_frames: int = 0  # input dropped to hold the delay
    dropped_output_frames: int = 0  # output dropped to hold the delay (input that came late, in a burst)
    resyncs: int = 0  # episodes of any of these (a run of drops with no block written between them, a trim)
    trims: int = 0  # times output blocks were left out to bring a delay that crept up back to its baseline
    holes: int = 0  # input fragments the server marked as lost (played as silence)
    reconnects: int = 0
    wakeups: int = 0  # times the audio thread woke from poll()
    thread_cpu_s: float = 0.0  # CPU time of the audio thread
    compute_s: float = 0.0  # of which in Host.process
    wall_s: float = 0.0  # since the audio thread started


class _Connection:
    """The record and the playback stream, each on a connection of its own, on one mainloop.

    One connection per stream, not both on one: PipeWire's pulse server runs a client's streams
    together, and with both on one connection its playback underflowed one to three times a second
    and the round trip drifted from 42 to 85 ms; apart, pass-through held 11.3 ms with none (block
    256 at 48 kHz). PulseAudio measures the same either way (12.5 and 14.1 ms). Everything runs on
    the mainloop that the audio thread owns.
    """

    def __init__(self, rate: int, channels: int, source: str | None, sink: str | None, block: int,
                 latency: str | float, name: str, on_underflow, on_overflow) -> None:
        self.lib = _libpulse()
        self.main = None
        self.contexts: list = []  # [record's, playback's]
        self.rec = self.play = None
        self.frame_bytes = 4 * channels
        # latency_s() runs at every wakeup of the audio thread: its out-parameters are made once
        self._usec, self._negative = ctypes.c_uint64(0), ctypes.c_int(0)
        self._usec_ref, self._negative_ref = ctypes.byref(self._usec), ctypes.byref(self._negative)
        try:
            self._open(rate, channels, source, sink, block, latency, name, on_underflow, on_overflow)
        except BaseException:
            self.close()
            raise

    def _connect_context(self, name: str):
        lib = self.lib
        ctx = lib.pa_context_new(lib.pa_mainloop_get_api(self.main), name.encode())
        if not ctx:
            raise PulseError("cannot create a PulseAudio context")
        self.contexts.append(ctx)
        if lib.pa_context_connect(ctx, None, PA_CONTEXT_NOAUTOSPAWN, None) < 0:
            raise PulseError(f"cannot connect to the audio server: {self._ctx_error(ctx)}")
        self._wait(lambda: lib.pa_context_get_state(ctx) == PA_CONTEXT_READY, "connect to the audio server")
        return ctx

    def _open(self, rate, channels, source, sink, block, latency, name, on_underflow, on_overflow) -> None:
        lib = self.lib
        self.main = lib.pa_mainloop_new()
        if not self.main:
            raise PulseError("cannot create a PulseAudio mainloop")
        rec_ctx = self._connect_context(f"{name} input")
        # Asked first, because a server need not refuse a stream on a missing device at once (PipeWire
        # leaves it waiting for one to appear), and a missing named device is final, not a retry.
        for kind, device in (("source", source), ("sink", sink)):
            if device and not self._exists(rec_ctx, kind, device):
                raise DeviceGone(f"{'input' if kind == 'source' else 'output'} device {device!r} does not exist")
        play_ctx = self._connect_context(f"{name} output")
        self.server_name = self._server_name(play_ctx)
        self.output_s = output_buffer_s(latency, block, rate, self.server_name)
        spec = _SampleSpec(PA_SAMPLE_FLOAT32LE, rate, channels)
        block_bytes = block * self.frame_bytes
        out_bytes = round(self.output_s * rate) * self.frame_bytes
        flags = PA_STREAM_ADJUST_LATENCY | PA_STREAM_AUTO_TIMING_UPDATE | PA_STREAM_INTERPOLATE_TIMING
        self.rec = lib.pa_stream_new(rec_ctx, f"{name} input".encode(), ctypes.byref(spec), None)
        self.play = lib.pa_stream_new(play_ctx, f"{name} output".encode(), ctypes.byref(spec), None)
        if not self.rec or not self.play:
            raise PulseError(f"cannot create streams: {self._ctx_error(rec_ctx)}")
        rec_attr = _BufferAttr(NO_VALUE, NO_VALUE, NO_VALUE, NO_VALUE, block_bytes)
        minreq = max(self.frame_bytes, block_bytes // MINREQ_DIV)
        play_attr = _BufferAttr(NO_VALUE, out_bytes, out_bytes, minreq, NO_VALUE)
        # Callbacks run in the audio thread, inside dispatch; kept referenced for the streams' lifetime.
        self._callbacks = (_NOTIFY(lambda s, u: on_underflow()), _NOTIFY(lambda s, u: on_overflow()))
        lib.pa_stream_set_underflow_callback(self.play, self._callbacks[0], None)
        lib.pa_stream_set_overflow_callback(self.play, self._callbacks[1], None)
        streams = ((self.rec, rec_ctx, source, "input"), (self.play, play_ctx, sink, "output"))
        for stream, ctx, device, what in streams:
            dev = device.encode() if device else None
            f = flags | (PA_STREAM_DONT_MOVE if device else 0)  # a named device is never swapped for another
            if stream is self.rec:
                r = lib.pa_stream_connect_record(stream, dev, ctypes.byref(rec_attr), f)
            else:
                r = lib.pa_stream_connect_playback(stream, dev, ctypes.byref(play_attr), f, None, None)
            if r < 0:
                raise self._stream_error(ctx, what, device)
        for stream, ctx, device, what in streams:
            self._wait(lambda s=stream, c=ctx, w=what, d=device: self._stream_ready(s, c, w, d),
                       f"open the {what} stream")
        self.device_names = (self._device_name(self.rec), self._device_name(self.play))
        attr = lib.pa_stream_get_buffer_attr(self.play).contents
        self.output_bytes = int(attr.tlength)
        # PulseAudio starts a playback stream once it holds ``prebuf`` (the output's length) by itself.
        self.primed = "PipeWire" not in self.server_name  # False: silence goes before the first block

    def prime(self, block_bytes: int) -> None:
        """Before the first block of audio: silence up to one block short of the output's length.

        PipeWire's pulse server starts playing at once, and from a buffer of one block it underflows at
        the first jitter (PulseAudio waits for ``prebuf``, and a primed start underflowed there once in
        every launch). Written with the first block, not at connect: a source that takes its time to
        start would underflow it.
        """
        self._write_silence(max(self.output_bytes - block_bytes, 0))
        self.primed = True

    def _write_silence(self, nbytes: int) -> None:
        nbytes -= nbytes % self.frame_bytes
        if nbytes > 0:
            zeros = ctypes.create_string_buffer(nbytes)
            if self.lib.pa_stream_write(self.play, zeros, nbytes, None, 0, PA_SEEK_RELATIVE) < 0:
                raise PulseError(f"writing output failed: {self.error_text()}")

    def _exists(self, ctx, kind: str, name: str) -> bool:
        """Whether the server has a sink or source of that name (introspection, answered in this thread)."""
        found: list[bool] = []

        def answer(c, info, eol, userdata) -> None:
            if eol == 0 and info:
                found.append(True)
            elif not found:
                found.append(False)  # eol < 0: no such entity; eol > 0 with nothing before it

        callback = _INFO(answer)
        query = self.lib.pa_context_get_sink_info_by_name if kind == "sink" else \
            self.lib.pa_context_get_source_info_by_name
        op = query(ctx, name.encode(), callback, None)
        if not op:
            raise PulseError(f"cannot ask the server for {kind} {name!r}: {self._ctx_error(ctx)}")
        try:
            self._wait(lambda: bool(found), f"look up {kind} {name!r}")
        finally:
            self.lib.pa_operation_unref(op)
        return found[0]

    def _server_name(self, ctx) -> str:
        """The server's name: "pulseaudio", or "PulseAudio (on PipeWire 0.3.65)"."""
        names: list[str] = []

        def answer(c, info, userdata) -> None:
            names.append(info.contents.server_name.decode(errors="replace") if info and info.contents.server_name
                         else "")

        callback = _SERVER_INFO(answer)
        op = self.lib.pa_context_get_server_info(ctx, callback, None)
        if not op:
            return ""
        try:
            self._wait(lambda: bool(names), "ask the server its name")
        finally:
            self.lib.pa_operation_unref(op)
        return names[0]

    def _ctx_error(self, ctx) -> str:
        return _strerror(self.lib.pa_context_errno(ctx)) if ctx else "no connection"

    def error_text(self) -> str:
        """The first error any of the connections holds."""
        for ctx in self.contexts:
            code = self.lib.pa_context_errno(ctx)
            if code:
                return _strerror(code)
        return "no error reported"

    def _stream_error(self, ctx, what: str, device: str | None) -> PulseError:
        code = self.lib.pa_context_errno(ctx)
        if code == PA_ERR_NOENTITY and device:
            return DeviceGone(f"{what} device {device!r} does not exist")
        return PulseError(f"cannot open the {what} stream{f' on {device!r}' if device else ''}: {_strerror(code)}")

    def _stream_ready(self, stream, ctx, what: str, device: str | None) -> bool:
        state = self.lib.pa_stream_get_state(stream)
        if state in (PA_STREAM_FAILED, PA_STREAM_TERMINATED):
            raise self._stream_error(ctx, what, device)
        return state == PA_STREAM_READY

    def _device_name(self, stream) -> str:
        name = self.lib.pa_stream_get_device_name(stream)
        return name.decode(errors="replace") if name else "?"

    def _wait(self, done, what: str) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        lib = self.lib
        while not done():
            for ctx in self.contexts:
                if lib.pa_context_get_state(ctx) in (PA_CONTEXT_FAILED, PA_CONTEXT_TERMINATED):
                    raise PulseError(f"cannot {what}: {self._ctx_error(ctx)}")
            if time.monotonic() > deadline:
                raise PulseError(f"cannot {what}: no answer within {CONNECT_TIMEOUT_S:.0f} s")
            lib.pa_mainloop_prepare(self.main, POLL_TIMEOUT_US)
            lib.pa_mainloop_poll(self.main)
            lib.pa_mainloop_dispatch(self.main)

    def failure(self) -> PulseError | None:
        """Why a connection or a stream ended, or None while all run."""
        lib = self.lib
        for ctx in self.contexts:
            if lib.pa_context_get_state(ctx) != PA_CONTEXT_READY:
                return PulseError(f"lost the audio server: {self._ctx_error(ctx)}")
        for stream, ctx, what in ((self.rec, self.contexts[0], "input"), (self.play, self.contexts[1], "output")):
            if lib.pa_stream_get_state(stream) != PA_STREAM_READY:
                return StreamEnded(f"the server ended the {what} stream ({self._ctx_error(ctx)})")
        return None

    def latency_s(self, stream) -> float:
        """The stream's latency as the server reports it (interpolated: no round trip), seconds."""
        usec, neg = self._usec, self._negative
        if self.lib.pa_stream_get_latency(stream, self._usec_ref, self._negative_ref) < 0:
            return math.nan
        return (-1 if neg.value else 1) * usec.value / 1e6

    def flush(self, stream) -> None:
        op = self.lib.pa_stream_flush(stream, None, None)
        if op:
            self.lib.pa_operation_unref(op)

    def close(self) -> None:
        lib = self.lib
        for stream in (self.rec, self.play):
            if stream:
                lib.pa_stream_disconnect(stream)
                lib.pa_stream_unref(stream)
        self.rec = self.play = None
        for ctx in self.contexts:
            lib.pa_context_disconnect(ctx)
            lib.pa_context_unref(ctx)
        self.contexts = []
        if self.main:
            lib.pa_mainloop_free(self.main)
            self.main = None


class DeviceGone(PulseError):
    """A named device does not exist (any more)."""


class StreamEnded(PulseError):
    """The server ended one of the streams (its device was removed, or the server was told to)."""


class PulseDuplex:
    """Runs ``process(inp, out)`` on ``(block, channels)`` float32 blocks from ``source`` to ``sink``.

    ``source``/``sink``: PulseAudio device names, or None for the server's
    defaults (which may move with the user's choice; named devices never do).
    ``process`` is called from the audio thread only; ``inp`` is a read-only
    view, ``out`` a preallocated buffer that is clipped to ±CEILING (-1 dBFS) and written.
    ``on_start`` runs in the audio thread before its first block (priority).
    Events for the user (resyncs, reconnections, the end) collect in
    :attr:`events`; :attr:`error` is set when the stream ended for good.
    """

    def __init__(self, process, rate: int, channels: int, block: int, source: str | None, sink: str | None,
                 latency: str | float = "low", name: str = "deepiso", on_start=None) -> None:
        if not 16 <= block <= 16384:
            raise PulseError(f"block {block} is outside 16..16384")
        if not 1 <= channels <= 32:
            raise PulseError(f"channels {channels} is outside 1..32")
        self.process = process
        self.rate, self.channels, self.block = rate, channels, block
        self.source, self.sink, self.name = source, sink, name
        self.latency_spec = latency
        self.output_s = output_buffer_s(latency, block, rate)  # on PulseAudio; set again once connected
        self.backlog_frames = block + round(BACKLOG_S * rate)
        self.raise_hold_s = RAISE_HOLD_S
        self.on_start = on_start
        self.counters = PulseCounters()
        self._underflow_at = -math.inf  # when the playback buffer last ran empty (time.monotonic)
        self._started_at = time.monotonic()  # set again when the audio thread starts
        #: when the playback buffer ran empty, seconds into the stream (the first 64)
        self.underflow_times: list[float] = []
        #: when the audio thread started moving audio, on the system-wide monotonic clock (``time.monotonic``)
        self.started_monotonic = self._started_at
        self.events: collections.deque[str] = collections.deque(maxlen=256)
        self.error: str | None = None
        self.blocks = 0
        self.latency = (0.0, 0.0)  # (input, output) as the server reports it, seconds
        self.device_names: tuple[str, str] = ("?", "?")
        fb = channels
        # Staging for whole input fragments: the oldest samples at the front. Room for 2 s plus a fragment.
        self._stage = np.zeros(2 * rate * fb + 65536, np.float32)
        self._staged = 0  # samples (frames × channels) in _stage
        self._in = self._stage[: block * fb].reshape(block, channels)
        self._in.flags.writeable = False
        self._out = np.zeros((block, channels), np.float32)
        self._conn: _Connection | None = None
        self.granted_output_s = 0.0  # the output buffer (tlength) the server granted, once connected
        self._conn_lock = threading.Lock()  # close() wakes a mainloop the audio thread may be freeing
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None

    # ------------------------------------------------------------ control (any thread)
    def open(self) -> None:
        """Connect and open both streams (raises :class:`PulseError`); the thread then runs until close."""
        self._thread = threading.Thread(target=self._run, name="deepiso-audio", daemon=True)
        self._thread.start()
        self._ready.wait(CONNECT_TIMEOUT_S * 3)
        if self._open_error is not None:
            self._thread.join(1.0)
            raise self._open_error
        if not self._ready.is_set():
            self.close()
            raise PulseError("the audio server did not answer")

    def close(self, timeout: float = 2.0) -> None:
        self._halt.set()
        with self._conn_lock:
            conn = self._conn
            if conn is not None and conn.main:
                conn.lib.pa_mainloop_wakeup(conn.main)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------ the audio thread
    def _connect(self) -> _Connection:
        return _Connection(self.rate, self.channels, self.source, self.sink, self.block, self.latency_spec,
                           self.name, self._underflow, self._overflow)

    def _underflow(self) -> None:
        self.counters.underflows += 1
        self._underflow_at = time.monotonic()
        if len(self.underflow_times) < 64:
            self.underflow_times.append(round(self._underflow_at - self._started_at, 2))

    def _overflow(self) -> None:
        self.counters.overflows += 1

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 - handed to open()
            self._open_error = exc
            self._ready.set()
            return
        with self._conn_lock:
            self._conn = conn
        self.device_names = conn.device_names
        self.output_s = conn.output_s
        self.granted_output_s = conn.output_bytes / conn.frame_bytes / self.rate
        if self.on_start is not None:
            self.on_start()
        self._ready.set()
        t_cpu0, t_wall0 = time.thread_time(), time.monotonic()
        self._started_at = self.started_monotonic = t_wall0
        try:
            while not self._halt.is_set():
                try:
                    self._pump(self._conn)
                except DeviceGone as exc:
                    self._end(str(exc))
                    return
                except PulseError as exc:
                    if self._halt.is_set():
                        return
                    if not self._reconnect(str(exc)):
                        return
                finally:
                    c = self.counters
                    c.thread_cpu_s = time.thread_time() - t_cpu0
                    c.wall_s = time.monotonic() - t_wall0
        finally:
            self._drop_connection()

    def _drop_connection(self) -> None:
        with self._conn_lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def _end(self, message: str) -> None:
        self.error = message
        self.events.append(message)

    def _reconnect(self, reason: str) -> bool:
        """Reconnect after a lost server or an ended stream; False (and :attr:`error`) when it cannot."""
        self.events.append(f"{reason}; reconnecting")
        self._drop_connection()
        deadline = time.monotonic() + RECONNECT_SECONDS
        last = reason
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                conn = self._connect()
            except DeviceGone as exc:  # the server is back, the named device is not: never use another
                self._end(f"{exc}; stopped (no other device is used in its place)")
                return False
            except PulseError as exc:
                last = str(exc)
                self._halt.wait(0.2)
                continue
            with self._conn_lock:
                self._conn = conn
            self._staged = 0
            self.counters.reconnects += 1
            self.events.append(f"reconnected to the audio server ({self._conn.device_names[0]} → "
                               f"{self._conn.device_names[1]})")
            return True
        if not self._halt.is_set():
            self._end(f"{reason}; could not reconnect within {RECONNECT_SECONDS:.0f} s ({last})")
        return False

    def _pump(self, conn: _Connection) -> None:
        """Move audio until halted; raises :class:`PulseError` when the connection or a stream ends."""
        lib, main, rec, play = conn.lib, conn.main, conn.rec, conn.play
        fb = conn.frame_bytes
        ch, block = self.channels, self.block
        need = block * ch  # samples per block
        block_bytes = block * fb
        stage = self._stage
        stage_ptr = stage.ctypes.data
        capacity = stage.size
        out, out_ptr = self._out, self._out.ctypes.data
        inp = self._in
        process = self.process
        data, nbytes = ctypes.c_void_p(), ctypes.c_size_t()
        data_ref, nbytes_ref = ctypes.byref(data), ctypes.byref(nbytes)
        c = self.counters
        backlog = self.backlog_frames * ch
        last_input = time.monotonic()
        announced = flowing = False
        since: float | None = None  # when the output first held more than ``overfull``
        window_min, window_end, windows = math.inf, time.monotonic() + WINDOW_S, 0
        settling: list[float] = []  # the floors of the windows the baseline is the median of
        baseline: float | None = None  # the server's share of the delay once settled, seconds
        block_s = block / self.rate
        trim_above = block_s + TRIM_SLACK_S
        trimmed_at, raises = -math.inf, 0  # the last trim; blocks the baseline is raised by now
        raised_at = -math.inf  # the last raise, or the last step back down
        skip = 0  # output blocks still to leave out
        overfull = self.output_s + OVERFULL_EXTRA_S
        dropping = False  # within one resync: consecutive drops are one episode
        next_latency = 0.0
        while not self._halt.is_set():
            # Sleep until the server sends something (or the poll times out).
            if lib.pa_mainloop_prepare(main, POLL_TIMEOUT_US) < 0 or lib.pa_mainloop_poll(main) < 0 \
                    or lib.pa_mainloop_dispatch(main) < 0:
                raise PulseError("the audio server's connection failed")
            c.wakeups += 1
            failure = conn.failure()
            if failure is not None:  # reconnecting tells a gone named device from a lost server
                raise failure
            got = False
            while lib.pa_stream_readable_size(rec) > 0:
                if lib.pa_stream_peek(rec, data_ref, nbytes_ref) < 0:
                    raise PulseError(f"reading input failed: {conn.error_text()}")
                size = nbytes.value // 4
                if size == 0:
                    break
                if size > capacity - self._staged:  # far behind: keep the newest
                    drop = min(self._staged, size - (capacity - self._staged))
                    self._shift(drop)
                    if size > capacity:
                        lib.pa_stream_drop(rec)
                        continue
                dst = stage_ptr + 4 * self._staged
                if data.value:
                    ctypes.memmove(dst, data.value, 4 * size)
                else:  # a hole: input the server lost
                    ctypes.memset(dst, 0, 4 * size)
                    c.holes += 1
                self._staged += size
                lib.pa_stream_drop(rec)
                got = True
            now = time.monotonic()
            if got:
                last_input = now
                flowing = True  # a device that never delivered yet (an idle null sink) is not announced
                if announced:
                    self.events.append("input is back")
                    announced = False
            elif not announced and flowing and now - last_input > QUIET_S:
                self.events.append(f"no audio from the server for {now - last_input:.1f} s; waiting")
                announced = True
            elif now - last_input > RECONNECT_SECONDS:
                raise PulseError(f"no audio from the server for {RECONNECT_SECONDS:.0f} s")
            if self._staged > backlog:  # late: drop the backlog down to the newest block
                extra = (self._staged - need) // ch * ch
                self._shift(extra)
                c.dropped_input_frames += extra // ch
                if not dropping:
                    c.resyncs += 1
                    dropping = True
                    self.events.append(f"resync: {1000 * extra / ch / self.rate:.0f} ms of late input dropped")
            while self._staged >= need:
                t0 = time.perf_counter()
                process(inp, out)
                np.clip(out, -CEILING, CEILING, out=out)
                c.compute_s += time.perf_counter() - t0
                self._shift(need)
                self.blocks += 1
                if skip:  # the delay crept above its baseline: these blocks make up for it
                    skip -= 1
                    c.dropped_output_frames += block
                    continue
                if not conn.primed:
                    conn.prime(block_bytes)
                if lib.pa_stream_write(play, out_ptr, block_bytes, None, 0, PA_SEEK_RELATIVE) < 0:
                    raise PulseError(f"writing output failed: {conn.error_text()}")
                dropping = False
            if got:
                # The server's own share of the delay (input queued + output queued + the devices'
                # latency) is watched window by window: its least value in a window is the floor under
                # the jitter of fragments and writes. When a window's floor sits well above
                # the floor the stream settled at (an underflow refilled, a server changed its quantum),
                # the whole output blocks above it are left out: the delay comes back within a block.
                queued = conn.latency_s(play)
                total = conn.latency_s(rec) + queued
                if total < window_min:
                    window_min = total
                if now >= window_end:
                    underflow_at = self._underflow_at
                    if baseline is None:
                        windows += 1
                        if windows >= 2:  # the first window is the start-up
                            settling.append(window_min)
                        if len(settling) == SETTLE_WINDOWS:
                            baseline = sorted(settling)[SETTLE_WINDOWS // 2]
                    elif trimmed_at < underflow_at < trimmed_at + TRIM_UNDERFLOW_S and raises < MAX_RAISES:
                        # the level the last trim left could not be held: stop a block higher
                        baseline += block_s
                        raises += 1
                        trimmed_at, raised_at = -math.inf, now
                        self.events.append(f"underflow after a trim: trims now stop {1000 * raises * block_s:.1f} "
                                           f"ms higher")
                    elif raises and now - max(raised_at, underflow_at) > self.raise_hold_s:
                        # quiet since: back down a block (the next window trims to it)
                        baseline -= block_s
                        raises -= 1
                        raised_at = now
                        self.events.append(f"no underflow for {self.raise_hold_s:.0f} s: trims stop "
                                           f"{1000 * raises * block_s:.1f} ms higher" if raises else
                                           f"no underflow for {self.raise_hold_s:.0f} s: trims stop at the "
                                           f"settled delay again")
                    elif window_min > baseline + trim_above:
                        # whole blocks above the baseline: never below it
                        skip = int((window_min - baseline) / block_s)
                        trimmed_at = now
                        c.trims += 1
                        c.resyncs += 1
                        self.events.append(f"resync: delay {1000 * (window_min - baseline):+.1f} ms over its "
                                           f"start, {skip} block(s) left out")
                    window_min, window_end = math.inf, now + WINDOW_S
                # Late input that came in a burst (the thread or the server stalled) fills the output
                # beyond its length: once it has stayed too long for OVERFULL_S, the output is flushed
                # and refills to its length (``prebuf``), the nominal delay.
                if queued > overfull:
                    if since is None:
                        since = now
                    elif now - since >= OVERFULL_S:
                        conn.flush(play)
                        c.dropped_output_frames += round(queued * self.rate)
                        c.resyncs += 1
                        self.events.append(f"resync: {1000 * queued:.0f} ms of queued output flushed")
                        since = None
                else:
                    since = None
            if now >= next_latency:
                next_latency = now + 0.25
                self.latency = (conn.latency_s(rec), conn.latency_s(play))

    def _shift(self, count: int) -> None:
        """Drop the oldest ``count`` staged samples (allocation-free)."""
        rest = self._staged - count
        if rest > 0:
            base = self._stage.ctypes.data
            ctypes.memmove(base, base + 4 * count, 4 * rest)
        self._staged = max(rest, 0)
