"""The audio devices a stream can open, and what the user typed to name them.

* PulseAudio / PipeWire sinks and sources, listed through ``pactl``
  (:func:`pulse_running`, :func:`pulse_devices`);
* PortAudio devices as ``sounddevice`` or PyAudio see them
  (:func:`portaudio_devices`, :func:`refresh_portaudio`);
* :func:`resolve_device` and :func:`resolve_pulse_device` turn a PortAudio
  index, (part of) a PortAudio device name, or (part of) a PulseAudio/PipeWire
  sink or source name or description into an :class:`Endpoint`.

A PulseAudio device is opened through PortAudio's ``pulse`` ALSA device with
``PULSE_SINK``/``PULSE_SOURCE`` set while the stream opens (the ALSA plugin
reads them then, see :func:`_pulse_env`), so one process can use any sink and
source. :class:`DeviceError` is what every device problem raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass


class DeviceError(Exception):
    """A device that is missing, ambiguous, busy, gone, or cannot run as asked."""


# ----------------------------------------------------------------------------
# PulseAudio / PipeWire (through pactl)


def _pactl(*args: str, timeout: float = 5.0) -> str:
    exe = shutil.which("pactl")
    if exe is None:
        raise DeviceError("pactl is not installed (Debian: apt-get install pulseaudio-utils)")
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"pactl {' '.join(args)} did not answer within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise DeviceError(f"pactl {' '.join(args)}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout


def pulse_server_name() -> str | None:
    """The name of the PulseAudio (or PipeWire-pulse) server that answers, or None when none does."""
    if shutil.which("pactl") is None:
        return None
    try:
        info = _pactl("info", timeout=3.0)
    except DeviceError:
        return None
    return next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("Server Name:")), "")


def pulse_running() -> bool:
    """True when a PulseAudio (or PipeWire-pulse) server answers."""
    return pulse_server_name() is not None


@dataclass(frozen=True)
class PulseDevice:
    kind: str  # "sink" (output) or "source" (input)
    name: str
    description: str
    channels: int
    rate: int
    driver: str
    monitor_of: str | None = None

    @property
    def is_monitor(self) -> bool:
        return self.monitor_of is not None


def pulse_devices(kind: str) -> list[PulseDevice]:
    """Sinks (``kind="sink"``) or sources (``"source"``) of the running server."""
    data = json.loads(_pactl("--format=json", "list", kind + "s") or "[]")
    found = []
    for d in data:
        spec = str(d.get("sample_specification", ""))
        parts = spec.split()
        channels = int(parts[1].rstrip("ch")) if len(parts) > 1 and parts[1].rstrip("ch").isdigit() else 0
        rate = int(parts[2].rstrip("Hz")) if len(parts) > 2 and parts[2].rstrip("Hz").isdigit() else 0
        monitor = d.get("monitor_of_sink")
        found.append(PulseDevice(kind, str(d.get("name", "")), str(d.get("description", "")), channels, rate,
                                 str(d.get("driver", "")), None if monitor in (None, "n/a") else str(monitor)))
    return found


# ----------------------------------------------------------------------------
# PortAudio device lists


@dataclass(frozen=True)
class PortAudioDevice:
    index: int
    name: str
    host_api: str
    max_input: int
    max_output: int
    default_rate: float


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as exc:  # the PortAudio library itself is missing
        raise DeviceError(f"PortAudio is not available ({exc}); Debian: apt-get install libportaudio2") from None
    return sd


def refresh_portaudio() -> None:
    """Re-scan PortAudio devices (sounddevice caches the list from import time)."""
    sd = _sounddevice()
    with contextlib.suppress(Exception):
        sd._terminate()
        sd._initialize()


def portaudio_devices(backend: str = "sounddevice") -> list[PortAudioDevice]:
    """PortAudio's devices as the given backend sees them."""
    if backend == "pyaudio":
        pa = _pyaudio_instance()
        try:
            out = []
            for i in range(pa.get_device_count()):
                d = pa.get_device_info_by_index(i)
                api = pa.get_host_api_info_by_index(d["hostApi"])["name"]
                out.append(PortAudioDevice(i, d["name"], api, int(d["maxInputChannels"]),
                                           int(d["maxOutputChannels"]), float(d["defaultSampleRate"])))
            return out
        finally:
            pa.terminate()
    sd = _sounddevice()
    apis = sd.query_hostapis()
    return [PortAudioDevice(i, d["name"], apis[d["hostapi"]]["name"], int(d["max_input_channels"]),
                            int(d["max_output_channels"]), float(d["default_samplerate"]))
            for i, d in enumerate(sd.query_devices())]


def _pyaudio_instance():
    try:
        import pyaudio
    except ImportError:
        raise DeviceError("the pyaudio backend needs PyAudio: pip install 'deepiso[pyaudio]'") from None
    # PyAudio prints ALSA's probing chatter on stderr; it is noise for the user.
    with _quiet_stderr():
        return pyaudio.PyAudio()


@contextlib.contextmanager
def _quiet_stderr():
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


# ----------------------------------------------------------------------------
# Resolving what the user typed


@dataclass(frozen=True)
class Endpoint:
    """A resolved device: a PortAudio index, plus the PulseAudio sink/source when it goes through ``pulse``."""

    index: int | None
    label: str
    pulse: PulseDevice | None = None
    #: PortAudio's ``pulse`` device (ALSA's pulse plugin), a named sink/source or the server's default
    via_pulse: bool = False

    def __post_init__(self) -> None:
        if self.pulse is not None:
            object.__setattr__(self, "via_pulse", True)


def _int_or_str(value: str | int | None) -> str | int | None:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _pick(what: str, value: str, matches: list, describe: Callable) -> object | None:
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = "; ".join(describe(m) for m in matches[:8])
        raise DeviceError(f"{what} {value!r} is ambiguous, it matches: {names}")
    return None


def resolve_device(value: str | int | None, kind: str, backend: str = "sounddevice") -> Endpoint:
    """Find the device the user means. ``kind``: ``"input"`` or ``"output"``.

    Raises :class:`DeviceError` naming the value for a missing or ambiguous device.
    """
    what = f"{kind} device"
    value = _int_or_str(value)
    pa_devices = portaudio_devices(backend)
    has = (lambda d: d.max_input > 0) if kind == "input" else (lambda d: d.max_output > 0)
    usable = [d for d in pa_devices if has(d)]
    pulse_pa = next((d for d in usable if d.name == "pulse"), None)

    if isinstance(value, int):
        dev = next((d for d in pa_devices if d.index == value), None)
        if dev is None:
            raise DeviceError(f"there is no {what} number {value}; run 'deepiso devices' to list them")
        if not has(dev):
            raise DeviceError(f"device {value} ({dev.name}) has no {kind} channels")
        return Endpoint(dev.index, dev.name, via_pulse=dev.name == "pulse")

    if value is None or value == "":
        if pulse_pa is not None and pulse_running():
            return Endpoint(pulse_pa.index, "default (PulseAudio)", via_pulse=True)
        if not usable:
            raise DeviceError(f"no {what} found (no sound card, and no PulseAudio/PipeWire server running)")
        return Endpoint(None, "default")

    text = str(value)
    if pulse_pa is not None and pulse_running():
        hit = _match_pulse(text, kind)
        if hit is not None:
            return Endpoint(pulse_pa.index, f"{hit.description or hit.name} ({hit.kind} {hit.name})", hit)
    exact = [d for d in usable if d.name == text]
    loose = [d for d in usable if text.lower() in d.name.lower()]
    hit = _pick(what, text, exact, lambda d: f"{d.index} {d.name}") or _pick(
        what, text, loose, lambda d: f"{d.index} {d.name}")
    if hit is not None:
        return Endpoint(hit.index, hit.name, via_pulse=hit.name == "pulse")  # type: ignore[attr-defined]
    raise DeviceError(f"no {what} matches {text!r}; run 'deepiso devices' to list them")


def _match_pulse(text: str, kind: str) -> PulseDevice | None:
    """The PulseAudio source (``kind="input"``) or sink named or described by ``text`` (exact, then part)."""
    what = f"{kind} device"
    pulse_kind = "source" if kind == "input" else "sink"
    pdevs = pulse_devices(pulse_kind)
    exact = [d for d in pdevs if d.name == text or d.description == text]
    loose = [d for d in pdevs if text.lower() in d.name.lower() or text.lower() in d.description.lower()]
    if kind == "input" and len(loose) > 1:  # a sink's monitor should not shadow a real source
        loose = [d for d in loose if not d.is_monitor] or loose
    return _pick(what, text, exact, lambda d: d.name) or _pick(what, text, loose, lambda d: d.name)


def resolve_pulse_device(value: str | int | None, kind: str) -> Endpoint:
    """A PulseAudio/PipeWire source or sink for the native backend (``None``: the server's default)."""
    if not pulse_running():
        raise DeviceError("no PulseAudio/PipeWire server is running (the pulse backend needs one)")
    if value is None or value == "":
        return Endpoint(None, f"default {'source' if kind == 'input' else 'sink'}", via_pulse=True)
    if isinstance(_int_or_str(value), int):
        raise DeviceError(f"there is no {kind} device number {value} for the pulse backend: it takes "
                          "PulseAudio/PipeWire names (or use --backend sounddevice); run 'deepiso devices'")
    hit = _match_pulse(str(value), kind)
    if hit is None:
        raise DeviceError(f"no {kind} device matches {value!r} (a PulseAudio/PipeWire "
                          f"{'source' if kind == 'input' else 'sink'}); run 'deepiso devices' to list them")
    return Endpoint(None, f"{hit.description or hit.name} ({hit.kind} {hit.name})", hit)


@contextlib.contextmanager
def _pulse_env(inp: Endpoint | None, out: Endpoint | None, latency_s: float | None = None):
    """Point the ALSA ``pulse`` device at the chosen source/sink while a stream opens or starts.

    ``latency_s`` sets the server-side buffering (``PULSE_LATENCY_MSEC``). The
    plugin connects to the server anew each time PortAudio prepares the PCM,
    which it does at every start, so a stream applies this around its
    starts and restarts too (:meth:`~deepiso.realtime.streams.LiveStream._server_env`), not only while
    it opens.
    """
    saved = {k: os.environ.get(k) for k in ("PULSE_SOURCE", "PULSE_SINK", "PULSE_LATENCY_MSEC")}
    try:
        if latency_s is not None and any(ep is not None and ep.via_pulse for ep in (inp, out)):
            os.environ["PULSE_LATENCY_MSEC"] = str(max(1, round(1000 * latency_s)))
        if inp is not None and inp.pulse is not None:
            os.environ["PULSE_SOURCE"] = inp.pulse.name
        if out is not None and out.pulse is not None:
            os.environ["PULSE_SINK"] = out.pulse.name
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pulse_endpoint_gone(*endpoints: Endpoint | None) -> str | None:
    """The name of a PulseAudio sink/source among ``endpoints`` that no longer exists, if any."""
    for ep in endpoints:
        if ep is None or ep.pulse is None:
            continue
        try:
            names = {d.name for d in pulse_devices(ep.pulse.kind)}
        except DeviceError:
            return ep.pulse.name
        if ep.pulse.name not in names:
            return ep.pulse.name
    return None
