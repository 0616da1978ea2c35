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

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .backends import DeviceError, PulseDevice, _pactl, pulse_devices, pulse_running

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


# ----------------------------------------------------------------------------
# A private server (tests, benchmarks, headless machines)

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
        import threading

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
        import threading

        import numpy as np

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
        import numpy as np

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


def chirp(rate: int = PULSE_RATE, seconds: float = 0.04, f0: float = 300.0, f1: float = 3000.0):
    """A Hann-windowed linear chirp (float32), the probe :func:`chirp_lags` times."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (0.5 * np.sin(phase) * np.hanning(t.size)).astype(np.float32)


def chirp_signal(seconds: float, times, rate: int = PULSE_RATE):
    """Stereo float32 ``(n, 2)`` silence with a :func:`chirp` starting at each of ``times`` (seconds)."""
    import numpy as np

    x = np.zeros((int(seconds * rate), 2), np.float32)
    c = chirp(rate)
    for t in times:
        i = int(t * rate)
        x[i : i + c.size] += c[:, None]
    return x


#: Beyond this no engine output goes (the host clips at ±16): a sample past it is garbage a driver wrote.
GARBAGE_LEVEL = 16.0


def _garbage(x):
    """Mask of the samples of ``x`` that are not finite or beyond :data:`GARBAGE_LEVEL`."""
    import numpy as np

    return ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > GARBAGE_LEVEL)


def garbage_samples(recording) -> int:
    """How many samples of a recording are not finite or beyond :data:`GARBAGE_LEVEL`."""
    import numpy as np

    return int(_garbage(np.asarray(recording)).sum())


def chirp_lags(recording, rate: int = PULSE_RATE) -> list[int]:
    """Delay in samples of every chirp from the engine's input (channel 0 of a
    :meth:`PrivatePulseServer.record_through` recording) to its output (channel 2).

    Garbage samples (:func:`garbage_samples`; PortAudio's ALSA path has written
    one of 1.6e29 right after a stream started) are zeroed first: one of them
    would otherwise outweigh every chirp in the correlation."""
    import numpy as np

    c = chirp(rate)
    recording = np.asarray(recording, np.float64)
    recording = np.where(_garbage(recording), 0.0, recording)

    def onsets(sig):
        corr = np.correlate(sig, c, mode="valid")
        if corr.size == 0 or corr.max() <= 0:
            return np.zeros(0, np.int64)
        threshold, i, peaks = 0.5 * float(corr.max()), 0, []
        while i < corr.size:
            if corr[i] > threshold:
                j = i + int(np.argmax(corr[i : i + c.size]))
                peaks.append(j)
                i = j + c.size
            else:
                i += 1
        return np.array(peaks, np.int64)

    src, dst = onsets(recording[:, 0]), onsets(recording[:, 2])
    lags = []
    for s in src:
        after = dst[(dst >= s) & (dst < s + rate // 4)]
        if after.size:
            lags.append(int(after[0] - s))
    return lags


@contextmanager
def private_pulse(root: str | os.PathLike) -> Iterator[PrivatePulseServer]:
    """Run a :class:`PrivatePulseServer` in ``root`` and point this process's clients at it.

    Inside the ``with`` block the PulseAudio variables of ``os.environ`` name
    the private server and PortAudio is re-initialised to see its devices;
    on exit the server stops and the previous environment comes back.
    """
    from .backends import refresh_portaudio

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
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        refresh_portaudio()
