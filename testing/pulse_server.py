"""A private PulseAudio server with virtual devices only, for tests, benchmarks and the demo.

:class:`PrivatePulseServer` runs ``pulseaudio`` in a folder of its own, with a
4-channel ``bus`` on which one recording holds the engine's input and output
on one clock; :func:`private_pulse` points this process's clients at it for
the length of a ``with`` block. No sound card is needed (``deepiso demo`` runs
on a headless machine this way).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from deepiso.realtime.devices import DeviceError, refresh_portaudio

PULSE_RATE = 48_000
BUS_MAP = "aux0,aux1,aux2,aux3"

DEFAULT_PA = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={runtime}/native
load-module module-null-sink sink_name=fallback sink_properties=device.description=fallback rate=48000 format=float32le
load-module module-null-sink sink_name=bus channels=4 channel_map=aux0,aux1,aux2,aux3 rate=48000 format=float32le \
sink_properties=device.description=bus
load-module module-remap-sink sink_name=iso_play master=bus channels=2 master_channel_map=aux0,aux1 \
channel_map=front-left,front-right remix=no sink_properties=device.description=iso_play
load-module module-remap-sink sink_name=iso_out master=bus channels=2 master_channel_map=aux2,aux3 \
channel_map=front-left,front-right remix=no sink_properties=device.description=iso_out
load-module module-remap-source source_name=iso_in master=bus.monitor channels=2 master_channel_map=aux0,aux1 \
channel_map=front-left,front-right remix=no source_properties=device.description=iso_in
set-default-sink fallback
set-default-source fallback.monitor
"""

CONF = "enable-shm = no\nenable-memfd = no\n"
DAEMON_CONF = CONF + ("default-sample-format = float32le\ndefault-sample-rate = 48000\n"
                      "alternate-sample-rate = 48000\nexit-idle-time = 5\nflat-volumes = no\n"
                      # The tests share two cores with other work: let the server's IO thread
                      # preempt it, as a desktop session's (rtkit-granted) server does.
                      "realtime-scheduling = yes\nrealtime-priority = 9\nhigh-priority = yes\n")
CLIENT_CONF = CONF + "autospawn = no\n"


class PrivatePulseServer:
    """A private PulseAudio server in ``root`` with virtual devices only (no sound card needed).

    For tests, benchmarks and headless machines. Its devices (``DEFAULT_PA``):
    a ``fallback`` null sink (the default), and a 4-channel ``bus`` null sink
    with ``iso_play`` (remap sink on aux0/1, where a test plays), ``iso_in``
    (remap source of aux0/1, the engine's input) and ``iso_out`` (remap sink on
    aux2/3, the engine's output): one recording of ``bus.monitor`` holds the
    engine's input and output on one clock. ``env`` holds the variables a
    client needs; ``start()``/``stop()``; ``pactl``, ``parec``, ``pacat``.
    Following notes measured on PulseAudio 16: shm and memfd are off (a
    memfd bug aborts the daemon), float32 at 48 kHz, and one low-latency
    recorder keeps the null sinks out of their 2-second-block mode.
    """

    def __init__(self, root) -> None:

        self.root = root
        self.runtime = root / "run"
        self.config = root / "config"
        self.state = root / "state"
        for d in (self.runtime, self.config, self.state):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        (self.config / "daemon.conf").write_text(DAEMON_CONF)
        (self.config / "client.conf").write_text(CLIENT_CONF)
        (self.config / "default.pa").write_text(DEFAULT_PA.format(runtime=self.runtime))
        self.env = {
            "PULSE_RUNTIME_PATH": str(self.runtime),
            "PULSE_CONFIG_PATH": str(self.config),
            "PULSE_STATE_PATH": str(self.state),
            "PULSE_SERVER": f"unix:{self.runtime}/native",
            "PULSE_CLIENTCONFIG": str(self.config / "client.conf"),
        }
        self.keepers: list = []

    def _env(self) -> dict[str, str]:

        env = dict(os.environ)
        env.update(self.env)
        return env

    def start(self) -> None:

        subprocess.run(["pulseaudio", "-D", "-n", "-F", str(self.config / "default.pa"),
                        # exits 5 s after its last client: a killed owner never leaves it behind
                        "--exit-idle-time=5",
                        "--use-pid-file=yes", "--log-target=file:" + str(self.root / "pulse.log")],
                       env=self._env(), check=True, timeout=20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["pactl", "info"], env=self._env(), capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("private PulseAudio server did not start; see " + str(self.root / "pulse.log"))
        self._realtime(self.pid())
        # A null sink renders in 2-second blocks until a client asks for low
        # latency; one low-latency recorder keeps the virtual devices responsive.
        self.keepers.append(self.parec("bus.monitor", channels=4, latency_ms=10, path=None, channel_map=BUS_MAP))
        # Wait until the bus actually runs at the keeper's low latency.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sinks = self.pactl("list", "sinks").split("Sink #")
            bus = next((b for b in sinks if "Name: bus\n" in b), "")
            if "configured 10000 usec" in bus:
                break
            time.sleep(0.05)
        time.sleep(0.3)

    @staticmethod
    def _realtime(pid: int | None, priority: int = 9) -> None:
        """SCHED_FIFO for every thread of ``pid`` (root can; a desktop gets this from rtkit).

        The tests share two cores with other work; without it the server's
        timer thread is late and the measured delays say more about the load
        than about the engine.
        """

        if pid is None:
            return
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(priority))
            except OSError:
                pass

    def pid(self) -> int | None:
        try:
            return int((self.runtime / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pactl(self, *args: str) -> str:

        proc = subprocess.run(["pactl", *args], env=self._env(), capture_output=True, text=True, timeout=10)
        if proc.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def parec(self, device: str, channels: int, latency_ms: int = 10, path=None, channel_map: str | None = None):
        """Start recording ``device`` as raw float32 (to ``path`` or nowhere); returns the Popen.

        A bus of aux channels needs ``channel_map="aux0,aux1,..."``: PulseAudio maps
        channels by position name, and a default 4-channel map would get silence.
        """

        out = open(path, "wb") if path is not None else subprocess.DEVNULL  # noqa: SIM115 - closed by stop()
        extra = [f"--channel-map={channel_map}"] if channel_map else []
        proc = subprocess.Popen(["parec", "-d", device, "--raw", "--format=float32le", f"--rate={PULSE_RATE}",
                                 f"--channels={channels}", f"--latency-msec={latency_ms}", *extra],
                                stdout=out, stderr=subprocess.DEVNULL, env=self._env())
        self._realtime(proc.pid, 8)
        return proc

    def pacat(self, device: str, channels: int, data: bytes, latency_ms: int = 10, wait: bool = True):
        """Play raw float32 ``data`` on ``device``; returns the Popen.

        ``wait``: return once pacat has taken all but a pipe's worth of ``data`` (about the time it
        plays for). Otherwise a thread feeds it and this returns at once, so the caller can watch a
        stream while the clip plays; ``proc.wait()`` then tells when pacat is done.
        """
        proc = subprocess.Popen(["pacat", "-d", device, "--raw", "--format=float32le", f"--rate={PULSE_RATE}",
                                 f"--channels={channels}", f"--latency-msec={latency_ms}"],
                                stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self._env())
        self._realtime(proc.pid, 8)

        def feed() -> None:
            try:
                proc.stdin.write(data)
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):  # pacat ended (server gone): nothing to feed
                pass

        if wait:
            feed()
        else:
            threading.Thread(target=feed, daemon=True, name="deepiso-pacat").start()
        return proc

    def pacat_loop(self, device: str, seconds: float, channels: int = 2, level: float = 0.1):
        """Play white noise at ``level`` RMS on ``device`` for ``seconds`` (fed from a thread); returns the Popen."""
        proc = subprocess.Popen(["pacat", "-d", device, "--raw", "--format=float32le", f"--rate={PULSE_RATE}",
                                 f"--channels={channels}", "--latency-msec=20"],
                                stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self._env())
        self._realtime(proc.pid, 8)
        chunk = (level * np.random.default_rng(0).standard_normal((PULSE_RATE, channels))).astype(np.float32)
        data = chunk.tobytes()

        def feed() -> None:
            try:
                for _ in range(int(seconds) + 1):
                    proc.stdin.write(data)
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        threading.Thread(target=feed, daemon=True, name="deepiso-noise").start()
        return proc

    def record_through(self, stream, played, lead: float = 0.3, tail: float = 0.5, timeout: float = 10.0):
        """Play ``played`` (float32 ``(n, 2)`` at 48 kHz) on ``iso_play`` through a live ``stream``
        (``iso_in`` → ``iso_out``) and return ``bus.monitor`` as float32 ``(m, 4)``: engine input on
        channels 0/1, engine output on 2/3, one clock. The stream is started, checked while the clip
        plays, then stopped and closed."""
        path = self.root / f"bus-{time.monotonic_ns()}.raw"
        rec = self.parec("bus.monitor", 4, latency_ms=10, path=path, channel_map=BUS_MAP)
        try:
            # The recorder is also what brings the bus down to small blocks (see RouteWarmer): the
            # stream starts once it records, not while the null sink may still run in 2-second ones.
            self._wait_for_data(path, rec, timeout=3.0)
            stream.start()
            time.sleep(lead)
            # The player's own buffer is not in the measured path (input and output are recorded on
            # one clock): a deep one keeps a busy machine from starving it into lost samples.
            player = self.pacat("iso_play", 2, np.ascontiguousarray(played, np.float32).tobytes(),
                                latency_ms=200, wait=False)
            played_until = time.monotonic() + played.shape[0] / PULSE_RATE
            deadline = played_until + timeout
            # pacat may hand its data to the server and exit long before it is heard:
            # the stream is checked (as `deepiso live` does) for as long as the clip plays
            while (player.poll() is None or time.monotonic() < played_until) and time.monotonic() < deadline:
                stream.check()
                time.sleep(0.05)
            time.sleep(tail)
            stream.check()
        finally:
            stream.stop()
            stream.close()
            rec.terminate()
            rec.wait(5)
        data = np.fromfile(path, np.float32)
        return data[: data.size // 4 * 4].reshape(-1, 4)

    @staticmethod
    def _wait_for_data(path: Path, proc, timeout: float, settle: float = 0.5) -> None:
        """Wait until the recorder ``proc`` has written to ``path`` (it is connected), then ``settle`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if path.exists() and path.stat().st_size > 0:
                break
            time.sleep(0.01)
        time.sleep(settle)

    def stop(self) -> None:
        for k in self.keepers:
            k.terminate()
            k.wait(5)
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@contextmanager
def private_pulse(root: str | os.PathLike) -> Iterator[PrivatePulseServer]:
    """Run a :class:`PrivatePulseServer` in ``root`` and point this process's clients at it.

    Inside the ``with`` block the PulseAudio variables of ``os.environ`` name
    the private server and PortAudio is re-initialised to see its devices;
    on exit the server stops and the previous environment comes back.
    """
    for tool in ("pulseaudio", "pactl", "parec", "pacat"):
        if shutil.which(tool) is None:
            raise DeviceError(f"{tool} is missing: apt-get install --no-install-recommends pulseaudio "
                              "pulseaudio-utils libportaudio2 libasound2-plugins")
    server = PrivatePulseServer(Path(root))
    saved = {k: os.environ.get(k) for k in server.env}
    server.start()
    os.environ.update(server.env)
    refresh_portaudio()
    try:
        yield server
    finally:
        server.stop()
        restore_environ(saved)
        refresh_portaudio()


def restore_environ(saved: dict[str, str | None]) -> None:
    """Put back the variables of ``os.environ`` that ``saved`` holds (``None``: it was not set)."""
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def check_for(stream, seconds: float, every: float = 0.05) -> None:
    """Call ``stream.check()`` every ``every`` seconds for ``seconds``, as ``deepiso live`` does."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        stream.check()
        time.sleep(every)


def live_until_sigterm(server, args: list[str], settle: float = 2.0, timeout: float = 30.0):
    """Run ``deepiso live ARGS`` with noise playing on ``iso_play`` of ``server``, send SIGTERM ``settle``
    seconds after its stream runs; ``(returncode, seconds it took to stop, its stderr, when it was launched,
    when the signal went)``, the times on the monotonic clock."""
    import sys

    launched = time.monotonic()
    live = subprocess.Popen([sys.executable, "-m", "deepiso.realtime.cli", "live", *args],
                            stderr=subprocess.PIPE, text=True, env=server._env())
    noise = server.pacat_loop("iso_play", seconds=settle + 6, level=0.1)  # an input that delivers, as a mic
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and "Ctrl-C stops" not in (line := live.stderr.readline()):
        assert line or live.poll() is None, "deepiso live ended before its stream ran"
    time.sleep(settle)
    sent = time.monotonic()
    live.send_signal(signal.SIGTERM)
    live.wait(5)
    took = time.monotonic() - sent
    noise.terminate()
    return live.returncode, took, live.stderr.read(), launched, sent
