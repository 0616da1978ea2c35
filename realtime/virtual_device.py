"""A virtual microphone on PulseAudio / PipeWire (pipewire-pulse) for call apps.

``up()`` loads two server modules:

* ``module-null-sink`` named ``deepiso``: the engine plays into it
  (``deepiso live --output deepiso``);
* ``module-remap-source`` named ``deepiso_mic`` (description "deepiso") over
  that sink's monitor: an ordinary microphone. Browser call apps hide bare
  monitor sources, so the remap is what makes it visible to them.

A null sink renders in 2-second blocks until some client asks for low latency,
which makes the first seconds of audio arrive late and in bursts.
:class:`RouteWarmer` keeps one low-latency recorder attached to the sink's
monitor while the engine plays, so the route is responsive from the start.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

from .devices import DeviceError, PulseDevice, _pactl, pulse_devices, pulse_running

SINK = "deepiso"
SOURCE = "deepiso_mic"
DESCRIPTION = "deepiso"


@dataclass
class VirtualMic:
    """What is loaded now: the sink, the microphone source and their module indices."""

    sink: PulseDevice | None
    source: PulseDevice | None
    modules: list[int]

    @property
    def up(self) -> bool:
        return self.sink is not None and self.source is not None

    def describe(self) -> str:
        if self.up:
            return (f"virtual microphone is up: play into sink '{SINK}' (deepiso live --output {SINK}); "
                    f"call apps see the microphone '{DESCRIPTION}' (source '{SOURCE}')")
        if self.sink is None and self.source is None:
            return "virtual microphone is down"
        return "virtual microphone is half up (run 'deepiso virtual-mic down' then 'up')"


def _require_server() -> None:
    if shutil.which("pactl") is None:
        raise DeviceError("the virtual microphone needs pactl (Debian: apt-get install pulseaudio-utils) and a "
                          "running PulseAudio or PipeWire server")
    if not pulse_running():
        raise DeviceError("no PulseAudio/PipeWire server is running (pactl info fails); start one or check "
                          "PULSE_SERVER")


def _our_modules() -> list[int]:
    # The short listing has the module index (pactl 16's JSON listing does not).
    ours = []
    for line in _pactl("list", "short", "modules").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        name, args = parts[1], " " + parts[2] + " "
        if (name == "module-null-sink" and f" sink_name={SINK} " in args) or (
                name == "module-remap-source" and f" source_name={SOURCE} " in args):
            ours.append(int(parts[0]))
    return ours


def status() -> VirtualMic:
    """The virtual microphone's current state on the running server."""
    _require_server()
    sink = next((d for d in pulse_devices("sink") if d.name == SINK), None)
    source = next((d for d in pulse_devices("source") if d.name == SOURCE), None)
    return VirtualMic(sink, source, _our_modules())


def up(rate: int = 48_000, channels: int = 1) -> VirtualMic:
    """Create the sink and the microphone (idempotent); float32 at ``rate`` Hz, ``channels`` channels."""
    state = status()
    if state.up:
        return state
    if state.modules:
        down()
    sink_mod = _pactl("load-module", "module-null-sink", f"sink_name={SINK}", f"rate={rate}",
                      f"channels={channels}", "format=float32le",
                      "sink_properties=device.description=deepiso-feed").strip()
    try:
        _pactl("load-module", "module-remap-source", f"source_name={SOURCE}", f"master={SINK}.monitor",
               f"channels={channels}", f"source_properties=device.description={DESCRIPTION}")
    except DeviceError:
        _pactl("unload-module", sink_mod)
        raise
    return status()


def down() -> int:
    """Remove the microphone and its sink; returns how many modules were unloaded."""
    _require_server()
    mods = _our_modules()
    for index in sorted(mods, reverse=True):  # the remap source first: it reads the sink
        _pactl("unload-module", str(index))
    return len(mods)


def needs_warmup(device: PulseDevice | None) -> bool:
    """True for sinks that only render in large blocks until a low-latency client listens."""
    return device is not None and device.kind == "sink" and ("null-sink" in device.driver
                                                              or "remap-sink" in device.driver)


class RouteWarmer:
    """Keeps a low-latency recorder (``parec --latency-msec=10``) on ``sink``'s monitor while alive."""

    def __init__(self, sink: str, latency_ms: int = 10) -> None:
        self.sink = sink
        self.latency_ms = latency_ms
        self._proc: subprocess.Popen | None = None

    def start(self, settle: float = 0.2) -> bool:
        """Start the recorder; False when ``parec`` is missing (then the route starts in large blocks)."""
        exe = shutil.which("parec")
        if exe is None:
            return False
        self._proc = subprocess.Popen([exe, "-d", f"{self.sink}.monitor", "--raw", "--channels=1",
                                       f"--latency-msec={self.latency_ms}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(settle)
        return self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> RouteWarmer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
