"""JACK streams: PipeWire through its JACK API (``pipewire-jack``), or a JACK server.

A JACK client's block is the graph's cycle (the *quantum*): the server calls the client
(:class:`deepiso.realtime.streams.JackStream`) in its real-time thread with one block of input and takes
the block of output in the same cycle. Nothing
is queued between the client and the graph, so the round trip is the algorithmic latency plus a cycle or
two, and no buffer can creep. Through PipeWire's pulse server a client's audio travels a quantum further
in each direction (``docs/live.md``); through its JACK API it does not.

On PipeWire the stream asks for a quantum of ``--blocksize`` (``PIPEWIRE_LATENCY``, default 256) and runs
at the graph's rate: a model at another rate is resampled by the isolator. Devices are named as the server
names them: ``--input iso_in`` is the ports ``iso_in:capture_*`` (or ``NAME.monitor``: ``NAME:monitor_*``),
``--output deepiso`` the ports ``deepiso:playback_*``; without a name, the physical ports. JACK never moves
a connection to another device: when a named device goes away the stream stops with a message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import socket
import threading
from typing import Any

from .devices import DeviceError, pulse_devices, pulse_running, pulse_server_name, resolve_pulse_device

#: Where PipeWire's libjack lives (not on the loader's path: Debian keeps JACK2's there).
PIPEWIRE_LIBJACK = ("/usr/lib/*/pipewire-0.3/jack/libjack.so.0", "/usr/lib64/pipewire-0.3/jack/libjack.so.0",
                    "/usr/lib/pipewire-0.3/jack/libjack.so.0")
DEFAULT_BLOCK = 256
#: No cycle for this long: the user is told the server is not calling; for this long: the stream ends.
QUIET_S = 0.5
GONE_S = 10.0
#: No cycle for this long: PipeWire's socket is asked whether the server is still there.
ASK_S = 0.2
#: How long a device the audio server knows may take to show its ports in the JACK graph.
PORTS_WAIT_S = 2.0
#: How long stopping waits for a cycle inside the chain to finish.
STOP_WAIT_S = 0.5
#: Output ceiling, as the pulse backend's (-1 dBFS).
CEILING = 10 ** (-1 / 20)
_INSTALL = ("the jack backend needs the JACK-Client package and a libjack: on PipeWire "
            "`apt-get install pipewire-jack`, on a JACK server libjack itself")

_lock = threading.Lock()
_module: Any = None


def pipewire_running() -> bool:
    """Whether a PipeWire server's socket is where this process's clients look for it."""
    runtime = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    return bool(runtime) and os.path.exists(os.path.join(runtime, os.environ.get("PIPEWIRE_REMOTE", "pipewire-0")))


def pipewire_gone() -> bool:
    """Whether the PipeWire server this process's clients were given has gone away: its socket refuses
    (or lost) connections. A server that is only stopped (a stall, SIGSTOP) still takes them."""
    runtime = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:
        return False
    path = os.path.join(runtime, os.environ.get("PIPEWIRE_REMOTE", "pipewire-0"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        try:
            probe.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return True
        except OSError:  # a full backlog, a timeout: busy, not gone
            return False
    return False


def pipewire_libjack() -> str | None:
    """The path of PipeWire's libjack (package ``pipewire-jack``), or None."""
    return next(iter(sorted(p for pattern in PIPEWIRE_LIBJACK for p in glob.glob(pattern))), None)


def usable_on_pipewire(samplerate: int | None = None) -> bool:
    """Whether a PipeWire server runs here with its JACK API at hand (its libjack, JACK-Client) and its
    graph at ``samplerate`` (any, when None): where ``backend="auto"`` takes the jack backend. Where a pulse
    server answers, it must be PipeWire's (``PULSE_SERVER`` may name a PulseAudio beside it)."""
    if not pipewire_running() or pipewire_libjack() is None:
        return False
    name = pulse_server_name()
    if name is not None and "PipeWire" not in name:
        return False
    try:
        return samplerate is None or graph_rate() == samplerate
    except DeviceError:
        return False


def load_jack() -> Any:
    """The ``jack`` module (JACK-Client), bound to PipeWire's libjack where a PipeWire server runs.

    JACK-Client opens the library ``ctypes.util.find_library("jack")`` names; while it is imported that
    name is PipeWire's library, by path. By path, not by soname: PortAudio links JACK2's ``libjack.so.0``,
    and where it was loaded first the soname would find that one. Raises :class:`DeviceError` with what
    to install when either is missing.
    """
    global _module
    with _lock:
        if _module is not None:
            return _module
        path = pipewire_libjack() if pipewire_running() else None
        real = ctypes.util.find_library
        if path:
            ctypes.util.find_library = lambda name: path if name == "jack" else real(name)
        try:
            import jack
        except (ImportError, OSError) as exc:
            raise DeviceError(f"{_INSTALL} ({exc})") from None
        finally:
            ctypes.util.find_library = real
        _module = jack
        return jack


def _client(name: str, block: int | None) -> Any:
    jack = load_jack()
    if pipewire_running():
        os.environ["PIPEWIRE_LATENCY"] = f"{block or DEFAULT_BLOCK}/48000"  # the quantum this client asks for
    try:
        return jack.Client(name, no_start_server=True)
    except jack.JackError as exc:
        raise DeviceError(f"no JACK server answered (is PipeWire or JACK running?): {exc}") from None


def graph_rate() -> int:
    """The rate the JACK graph runs at (a client opened and closed)."""
    client = _client("deepiso-probe", None)
    try:
        return int(client.samplerate)
    finally:
        client.close()


def jack_names(value: str | None, kind: str) -> tuple[list[str], bool] | None:
    """The JACK client names device ``value`` may have, and whether its monitor ports are meant.

    PipeWire names a node's JACK client after its description (or, without one, its name and class):
    where its pulse server answers, the device is looked up there as the pulse backend does (by name or
    description; ``None``: the server's default) and both are candidates. Elsewhere the name is taken
    as the JACK client's; ``None`` means the physical ports.
    """
    if not pulse_running():
        return None if value is None else ([value], False)
    d = resolve_pulse_device(value, kind).pulse
    if d is None:
        return None
    if kind == "input" and d.is_monitor:  # a sink's monitor: the sink's client, its monitor ports
        sink = d.monitor_of or d.name.removesuffix(".monitor")
        sinks = [s for s in pulse_devices("sink") if s.name == sink]
        return [*(s.description for s in sinks if s.description), sink], True
    return [n for n in (d.description, d.name) if n], False


def device_ports(client: Any, names: tuple[list[str], bool] | None, kind: str, label: str | None) -> list[Any]:
    """The ports of a device (:func:`jack_names`): for ``"input"`` the ones it sends audio from (capture, or
    monitor), for ``"output"`` the ones it takes audio on (playback); physical ones for ``None``."""
    sending = kind == "input"
    ports = client.get_ports(is_audio=True, is_output=sending, is_input=not sending)
    if names is None:
        found = [p for p in ports if p.is_physical]
        if not found:
            raise DeviceError(f"no physical {kind} device in the JACK graph: name one (--{kind} NAME)")
        return found
    candidates, monitor = names
    role = "monitor" if monitor else ("capture" if sending else "playback")
    for name in candidates:
        found = [p for p in ports if p.shortname.startswith(role + "_")
                 and (p.name.split(":", 1)[0] == name or p.name.split(":", 1)[0].startswith(name + " "))]
        if found:
            return found
    raise DeviceError(f"{kind} device {label or candidates[0]!r} does not exist in the JACK graph")
