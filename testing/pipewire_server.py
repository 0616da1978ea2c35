"""A private PipeWire server (with WirePlumber and its pulse server) with the same virtual devices.

:class:`PrivatePipeWire` runs ``dbus-daemon``, ``pipewire``, ``wireplumber`` and ``pipewire-pulse`` in a
runtime folder of its own and loads the devices of :class:`~deepiso.testing.pulse_server.PrivatePulseServer`
(the 4-channel ``bus`` with ``iso_play``, ``iso_in`` and ``iso_out``) through the pulse server, so the same
recordings and players work on it; its JACK API (``pipewire-jack``) sees them as ports.
:func:`private_pipewire` points this process's clients at it for the length of a ``with`` block.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deepiso.realtime.devices import DeviceError

from .pulse_server import BUS_MAP, PrivatePulseServer, restore_environ

#: The devices both servers get (``DEFAULT_PA``'s), as pactl arguments.
MODULES = [
    ("module-null-sink", "sink_name=fallback", "sink_properties=device.description=fallback", "rate=48000"),
    ("module-null-sink", "sink_name=bus", "channels=4", f"channel_map={BUS_MAP}", "rate=48000",
     "sink_properties=device.description=bus"),
    ("module-remap-sink", "sink_name=iso_play", "master=bus", "channels=2", "master_channel_map=aux0,aux1",
     "channel_map=front-left,front-right", "remix=no", "sink_properties=device.description=iso_play"),
    ("module-remap-sink", "sink_name=iso_out", "master=bus", "channels=2", "master_channel_map=aux2,aux3",
     "channel_map=front-left,front-right", "remix=no", "sink_properties=device.description=iso_out"),
    ("module-remap-source", "source_name=iso_in", "master=bus.monitor", "channels=2",
     "master_channel_map=aux0,aux1", "channel_map=front-left,front-right", "remix=no",
     "source_properties=device.description=iso_in"),
]
TOOLS = ("dbus-daemon", "pipewire", "wireplumber", "pipewire-pulse", "pactl", "parec", "pacat")


class PrivatePipeWire(PrivatePulseServer):
    """PipeWire 0.3 in ``root``, with a private session bus; the devices and tools of the pulse server."""

    def __init__(self, root) -> None:
        self.root = Path(root)
        self.runtime = self.root / "run"
        self.runtime.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runtime, 0o700)
        self.env = {"XDG_RUNTIME_DIR": str(self.runtime), "PIPEWIRE_RUNTIME_DIR": str(self.runtime),
                    "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime}/bus",
                    "PULSE_SERVER": f"unix:{self.runtime}/pulse/native"}
        self.keepers: list = []
        self.procs: list[subprocess.Popen] = []

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        env.update(self.env)
        return env

    def start(self) -> None:
        log = open(self.root / "pipewire.log", "w")  # noqa: SIM115 - lives as long as the server
        env = self._env()
        for cmd, wait in ((["dbus-daemon", "--session", f"--address={env['DBUS_SESSION_BUS_ADDRESS']}",
                            "--nofork", "--nopidfile"], 0.3), (["pipewire"], 1.0), (["wireplumber"], 1.0),
                          (["pipewire-pulse"], 1.0)):
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log))
            time.sleep(wait)
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pipewire-pulse did not start; see {self.root / 'pipewire.log'}")
            time.sleep(0.1)
        for module in MODULES:
            self.pactl("load-module", *module)
        self.pactl("set-default-sink", "fallback")
        self.keepers.append(self.parec("bus.monitor", channels=4, latency_ms=10, path=None, channel_map=BUS_MAP))
        time.sleep(0.5)

    def pid(self) -> int | None:
        return self.procs[1].pid if len(self.procs) > 1 else None  # the graph itself: pipewire

    def stop(self) -> None:
        for k in self.keepers:
            k.terminate()
            k.wait(5)
        self.keepers = []
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []


@contextmanager
def private_pipewire(root: str | os.PathLike) -> Iterator[PrivatePipeWire]:
    """Run a :class:`PrivatePipeWire` in ``root`` and point this process's clients (pulse and JACK) at it."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise DeviceError(f"{', '.join(missing)} missing: apt-get install --no-install-recommends pipewire "
                          "pipewire-pulse pipewire-jack wireplumber dbus pulseaudio-utils")
    server = PrivatePipeWire(Path(root))
    saved = {k: os.environ.get(k) for k in (*server.env, "PULSE_RUNTIME_PATH", "PULSE_CONFIG_PATH",
                                            "PULSE_STATE_PATH", "PULSE_CLIENTCONFIG")}
    server.start()
    for k in saved:
        os.environ.pop(k, None)
    os.environ.update(server.env)
    try:
        yield server
    finally:
        server.stop()
        restore_environ(saved)
