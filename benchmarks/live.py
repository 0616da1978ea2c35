"""The live path as a user meets it: launches, a long run with a browser on the virtual mic, faults.

Runs ``deepiso live`` (the default model) as a user would, through a private
audio server at 48 kHz with virtual devices: on PulseAudio (``pulseaudio``: the
default backend takes the native pulse client there), on PipeWire through its
JACK API (``pipewire-jack``: the default backend there, with ``pipewire-jack``
installed) and on PipeWire through its pulse server (``pipewire``:
``--backend pulse``):

1. ``--launches`` consecutive launches, each stopped by Ctrl-C (SIGINT) or
   SIGTERM in turn: did the stream start, how long did stopping take; and
   ``--stops`` streams started and stopped in one process beside a thread
   that holds Python's interpreter lock as much as it can: does every stop return;
0. a pass-through run (``--model none``): the server's own share of the delay;
2. a soak (``--soak-seconds``) with a voice+music loop going in and headless
   Chromium recording the engine's output as a microphone ("deepiso-call",
   chosen by id, processing off): xruns, resyncs, the delay through the server
   second by second (input and output recorded on one clock), the audio
   thread's CPU against the model's compute;
3. the same with one core kept busy by another process (``--busy-seconds``);
4. faults: the output device unloaded, the virtual microphone removed (nothing
   may reach the speakers), the server stopped for 2 s, non-finite input.

The engine runs the isolator with ``--mix mixture`` (vocals + instrumental): the
model does all its work, and the output is the input delayed, so the delay can
be read off the voice+music loop by cross-correlation.

Writes ``benchmarks/results/live.json``. Takes about 2 × (soak + busy + 2 min).

    python -m benchmarks.live [--servers pulseaudio,pipewire,pipewire-jack] [--soak-seconds 600] [--launches 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from deepiso.realtime.demo import load_clip
from deepiso.testing.pipewire_server import PrivatePipeWire
from deepiso.testing.pulse_server import PULSE_RATE, PrivatePulseServer

from .stalls import GraphWitness, StallProbe, shared_xruns
from .stalls import summary as stall_summary

RESULTS = Path(__file__).resolve().parent / "results" / "live.json"
RATE = PULSE_RATE
#: The call app's microphone on the engine's output (aux2), on both servers beside the tests' devices.
CALL_MIC = ("module-remap-source", "source_name=call_mic", "master=bus.monitor", "channels=1",
            "master_channel_map=aux2", "channel_map=mono", "remix=no",
            "source_properties=device.description=deepiso-call")

PAGE = """<!doctype html><script>
(async () => {
  const devs = await navigator.mediaDevices.enumerateDevices();
  const mic = devs.find(d => d.kind === 'audioinput' && d.label.includes('deepiso-call'));
  if (!mic) { console.log('DEEPISO no-device ' + JSON.stringify(devs.map(d => d.label))); return; }
  const stream = await navigator.mediaDevices.getUserMedia({audio: {deviceId: {exact: mic.deviceId},
      echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
  const ctx = new AudioContext({sampleRate: 48000});
  const src = ctx.createMediaStreamSource(stream);
  const an = ctx.createAnalyser(); an.fftSize = 4096; src.connect(an);
  const buf = new Float32Array(an.fftSize);
  console.log('DEEPISO capturing ' + stream.getAudioTracks()[0].label);
  setInterval(() => { an.getFloatTimeDomainData(buf); let s = 0; for (const v of buf) s += v * v;
    console.log('DEEPISO rms ' + Math.sqrt(s / buf.length).toFixed(5)); }, 1000);
})();
</script>"""


def stops(server, count: int, per_stop_s: float = 10.0) -> dict:
    """``count`` streams (the backend ``deepiso live`` takes there) started and stopped in one process, beside
    a thread that holds the interpreter lock as much as it can: does every stop return, and how fast."""
    player = _loop_player(server, 4 * count)
    proc = subprocess.Popen([sys.executable, "-c", _STOPS, str(count), getattr(server, "backend", None) or "auto"],
                            env=server.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    times: list[float] = []
    backend, hung = None, False
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for ln in proc.stdout:
            lines.put(ln)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        while len(times) < count:
            try:
                line = lines.get(timeout=per_stop_s + 30.0 * (backend is None))
            except queue.Empty:
                hung = True
                break
            if line is None:
                break
            if line.startswith("backend "):
                backend = line.split()[1]
            elif line.startswith("stop "):
                times.append(float(line.split()[1]))
    finally:
        proc.kill()
        proc.wait()
        player.terminate()
    ms = np.array(times) * 1000 if times else np.zeros(1)
    return {"backend": backend, "asked": count, "stopped": len(times), "hung": hung,
            "stop_ms": {"median": round(float(np.median(ms)), 1), "p99": round(float(np.percentile(ms, 99)), 1),
                        "max": round(float(ms.max()), 1)}}


# ----------------------------------------------------------------------------
# Servers


class PulseAudio:
    name = "pulseaudio"

    def __init__(self, root: Path) -> None:
        self.server = PrivatePulseServer(root)
        self.env = dict(os.environ, **self.server.env)
        self.root = root

    def start(self) -> None:
        self.server.start()
        self.pactl("load-module", *CALL_MIC)

    def pid(self) -> int | None:
        return self.server.pid()

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, check=True,
                              timeout=10).stdout

    def stop(self) -> None:
        self.server.stop()


class PipeWire(PulseAudio):
    """PipeWire, WirePlumber and pipewire-pulse in a private runtime folder, with a private session bus."""

    name = "pipewire"
    backend = "pulse"  # through pipewire-pulse (auto takes the jack backend on PipeWire)

    def __init__(self, root: Path) -> None:
        self.server = PrivatePipeWire(root)
        self.env = self.server._env()
        self.root = root


class PipeWireJack(PipeWire):
    """The same PipeWire server, the engine on its JACK API (what the default backend takes on PipeWire)."""

    name = "pipewire-jack"
    backend = None
    jack = True


SERVERS = {"pulseaudio": PulseAudio, "pipewire": PipeWire, "pipewire-jack": PipeWireJack}


# ----------------------------------------------------------------------------
# Helpers

#: The child of :func:`stops`: ``count`` streams opened, run for a moment and closed in one process, with a
#: thread beside them that holds the interpreter lock as much as it can; a line per close.
_STOPS = r"""
import sys, threading, time
from deepiso.realtime.host import Host
from deepiso.realtime.plugins.basic import Gain
from deepiso.realtime.streams import open_stream, pick_backend
count, backend = int(sys.argv[1]), sys.argv[2]
backend = pick_backend(48000) if backend == "auto" else backend
def hog():
    while True:
        sum(range(1000))
threading.Thread(target=hog, daemon=True).start()
print("backend", backend, flush=True)
for i in range(count):
    s = open_stream(Host([Gain(0.0)], 48000, 1, block_size=256), backend, "iso_in", "iso_out", 48000, 256)
    s.start()
    time.sleep(0.05 + (i % 5) * 0.013)
    t = time.monotonic()
    s.close()
    print("stop", round(time.monotonic() - t, 4), flush=True)
"""


def _live(server, *args: str, stats: Path) -> subprocess.Popen:
    backend = getattr(server, "backend", None)
    cmd = [sys.executable, "-m", "deepiso.realtime.cli", "live", "--input", "iso_in", "--quiet",
           "--stats-json", str(stats), *(("--backend", backend) if backend else ()), *args]
    return subprocess.Popen(cmd, env=server.env, stderr=subprocess.PIPE, text=True)


def _wait_started(proc: subprocess.Popen, timeout: float = 30.0) -> tuple[bool, list[str]]:
    lines: list[str] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            return False, lines
        lines.append(line.rstrip())
        if "Ctrl-C stops" in line:
            return True, lines
    return False, lines


def _drain(proc: subprocess.Popen, into: list[str]) -> threading.Thread:
    def run() -> None:
        for line in proc.stderr:
            into.append(line.rstrip())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _loop_player(server, seconds: float, level: float = 1.0) -> subprocess.Popen:
    """The demo clip (voice over music) looped on ``iso_play`` for ``seconds``."""
    mixture, _ = load_clip(RATE)
    data = np.repeat((level * mixture)[:, None], 2, axis=1).astype(np.float32).tobytes()
    proc = subprocess.Popen(["pacat", "-d", "iso_play", "--raw", "--format=float32le", f"--rate={RATE}",
                             "--channels=2", "--latency-msec=100"], stdin=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=server.env)
    reps = int(seconds / (mixture.size / RATE)) + 1

    def feed() -> None:
        try:
            for _ in range(reps):
                proc.stdin.write(data)
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    threading.Thread(target=feed, daemon=True).start()
    return proc


def _bus_recorder(server, path: Path) -> subprocess.Popen:
    """aux0 (the engine's input) and aux2 (its output) of the bus, one clock, float32 stereo."""
    return subprocess.Popen(["parec", "-d", "bus.monitor", "--raw", "--format=float32le", f"--rate={RATE}",
                             "--channels=2", "--channel-map=aux0,aux2", "--latency-msec=10"],
                            stdout=open(path, "wb"), stderr=subprocess.DEVNULL, env=server.env)  # noqa: SIM115


def delays(path: Path, window_s: float = 1.0, max_lag_s: float = 0.5, floor: float = 1e-3) -> list[float | None]:
    """The delay (ms) of the output behind the input, window by window (None: no signal in the window)."""
    x = np.fromfile(path, np.float32)
    x = x[: x.size // 2 * 2].reshape(-1, 2)
    w, m = int(window_s * RATE), int(max_lag_s * RATE)
    out: list[float | None] = []
    for a in range(m, x.shape[0] - w, w):
        ref, seg = x[a - m : a + w, 0], x[a : a + w, 1]
        if np.sqrt(np.mean(seg ** 2)) < floor or np.sqrt(np.mean(ref ** 2)) < floor:
            out.append(None)
            continue
        n = 1 << int(np.ceil(np.log2(ref.size + seg.size)))
        corr = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(seg, n)), n)[: m + 1]
        lag = m - int(np.argmax(corr))  # corr[k] = sum ref[i + k] seg[i] peaks where k = m - delay
        out.append(round(1000 * lag / RATE, 2))
    return out


def _stats(values: list[float | None]) -> dict:
    v = np.array([d for d in values if d is not None], float)
    if not v.size:
        return {"windows": 0}
    return {"windows": int(v.size), "median_ms": round(float(np.median(v)), 2),
            "p99_ms": round(float(np.percentile(v, 99)), 2), "max_ms": round(float(v.max()), 2),
            "min_ms": round(float(v.min()), 2)}


# ----------------------------------------------------------------------------
# 1. launches


def launches(server, count: int, tmp: Path) -> dict:
    rows = []
    for i in range(count):
        sig = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
        stats = tmp / f"launch-{i}.json"
        player = _loop_player(server, 6)
        proc = _live(server, "--output", "iso_out", stats=stats)
        started, lines = _wait_started(proc)
        row: dict = {"signal": sig.name, "started": started}
        if started:
            time.sleep(2.0)
            t0 = time.monotonic()
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            row["stop_s"] = round(time.monotonic() - t0, 3)
        else:
            proc.kill()
            proc.wait()
        lines += [ln.rstrip() for ln in proc.stderr]
        player.terminate()
        row["exit"] = proc.returncode
        if stats.exists():
            s = json.loads(stats.read_text())
            row.update(backend=s.get("backend"), blocks=s["blocks"], xruns=s["xruns"], resyncs=s["resyncs"],
                       error=s["error"], stopped_by=s.get("stopped_by"))
        row["ok"] = bool(started and row["exit"] == 0 and row.get("blocks", 0) > 100 and not row.get("error")
                         and row.get("stop_s", 9) < 1.0)
        if not row["ok"]:
            row["stderr"] = lines[-8:]
        rows.append(row)
        print(f"  launch {i + 1}/{count}: {row}", flush=True)
    stops = [r["stop_s"] for r in rows if "stop_s" in r]
    return {"launches": count, "ok": sum(r["ok"] for r in rows), "max_stop_s": max(stops) if stops else None,
            "xruns": sum(r.get("xruns", 0) for r in rows), "rows": rows}


# ----------------------------------------------------------------------------
# 2 + 3. soak, with a browser on the call mic, optionally with a busy core


def _browser(server, tmp: Path) -> subprocess.Popen | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    page = tmp / "call.html"
    page.write_text(PAGE)
    return subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream",
                             "--autoplay-policy=no-user-gesture-required", "--enable-logging=stderr", "--v=0",
                             f"--user-data-dir={tmp / 'chromium'}", page.as_uri()],
                            env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def soak(server, seconds: float, tmp: Path, busy: bool = False, browser: bool = True, model: str = "default") -> dict:
    stats = tmp / f"soak-{int(busy)}-{model}.json"
    rec_path = tmp / f"soak-{int(busy)}-{model}.raw"
    rec = _bus_recorder(server, rec_path)
    player = _loop_player(server, seconds + 10)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    probe = StallProbe()
    probe.start()
    witness = GraphWitness(server.env) if getattr(server, "jack", False) else None
    if witness is not None:
        witness.start()
    mode = ("--mix", "mixture") if model != "none" else ("--samplerate", str(RATE))
    proc = _live(server, "--output", "iso_out", "--model", model, *mode, "--duration", str(seconds), stats=stats)
    started, lines = _wait_started(proc)
    drain = _drain(proc, lines)
    chrome = _browser(server, tmp) if browser else None
    chrome_lines: list[str] = []
    if chrome is not None:
        _drain(chrome, chrome_lines)
    cpu0 = _proc_cpu(proc.pid)
    t0 = time.monotonic()
    proc.wait(seconds + 60)
    wall = time.monotonic() - t0
    cpu = (_proc_cpu(proc.pid) if proc.poll() is None else None) or cpu0
    drain.join(2)
    stalls = probe.stop()
    graph = witness.stop() if witness is not None else None
    for p in (chrome, hog, player, rec):
        if p is not None:
            p.terminate()
            p.wait(10)
    s = json.loads(stats.read_text()) if stats.exists() else {}
    d = delays(rec_path)
    rec_path.unlink(missing_ok=True)
    rms = [float(ln.split("DEEPISO rms ")[1].split('"')[0]) for ln in chrome_lines if "DEEPISO rms " in ln]
    out = {
        "seconds": seconds, "busy_core": busy, "backend": s.get("backend"), "started": started,
        "exit": proc.returncode,
        "blocks": s.get("blocks"), "xruns": s.get("xruns"), "resyncs": s.get("resyncs"),
        "underflows": s.get("underflows"), "underflow_times_s": s.get("underflow_times_s"),
        "missed_cycles": s.get("missed_cycles"), "late_cycles": s.get("late_cycles"),
        "xrun_times_s": s.get("xrun_times_s"),
        # the browser opens its microphone a few seconds in: the steady state is what follows
        "underflows_after_30_s": sum(t > 30 for t in s.get("underflow_times_s") or []),
        "dropped_input_frames": s.get("dropped_input_frames"),
        "dropped_output_frames": s.get("dropped_output_frames"), "error": s.get("error"),
        "audio_thread_cpu": s.get("audio_thread_cpu"), "compute_cpu": s.get("compute_cpu"),
        "algorithmic_ms": s.get("algorithmic_latency_ms"), "clipped_samples": s.get("clipped_samples"),
        "delay": _stats(d), "delay_per_minute_median_ms": _per_minute(d), "events": s.get("events", [])[:20],
        "process_cpu_s": cpu, "wall_s": round(wall, 1),
        # the machine's own stalls, and the underflows that came with one
        "platform_stalls": stall_summary(stalls, s.get("started_monotonic_s"),
                                         s["xrun_times_s"] if "xrun_times_s" in s else s.get("underflow_times_s"),
                                         wall, probe.realtime, "xruns" if "xrun_times_s" in s else "underflows"),
    }
    if graph is not None and s.get("started_monotonic_s"):
        # a cycle the whole graph missed (the machine stalled) against one the engine alone missed
        out["graph_witness"] = shared_xruns(s.get("xrun_times_s") or [], s["started_monotonic_s"], graph)
    if chrome is not None:
        out["browser"] = {"capturing": any("DEEPISO capturing" in ln for ln in chrome_lines),
                          "seconds_reported": len(rms), "seconds_with_signal": sum(r > 1e-3 for r in rms),
                          "problems": [ln for ln in chrome_lines if "DEEPISO no-device" in ln][:2]}
    if out["audio_thread_cpu"] and out["compute_cpu"]:
        out["thread_to_compute"] = round(out["audio_thread_cpu"] / out["compute_cpu"], 2)
    return out


def _per_minute(d: list[float | None]) -> list[float | None]:
    out = []
    for a in range(0, len(d), 60):
        v = [x for x in d[a : a + 60] if x is not None]
        out.append(round(float(np.median(v)), 1) if v else None)
    return out


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------
# 4. faults


def _run_until_exit(proc: subprocess.Popen, after: float, timeout: float = 5.0) -> float | None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
    return round(time.monotonic() - after, 3)


def faults(server, tmp: Path) -> dict:
    out = {}
    # a) the output device unloaded
    module = server.pactl("load-module", "module-null-sink", "sink_name=vanishing", "rate=48000").strip()
    player = _loop_player(server, 10)
    proc = _live(server, "--output", "vanishing", stats=tmp / "f1.json")
    started, lines = _wait_started(proc)
    time.sleep(1.0)
    server.pactl("unload-module", module)
    took = _run_until_exit(proc, time.monotonic())
    err = [ln.rstrip() for ln in proc.stderr]
    out["output_unloaded"] = {"started": started, "exit": proc.returncode, "exit_after_s": took,
                              "message": next((ln for ln in err if "deepiso live:" in ln and "gone" in ln
                                               or "does not exist" in ln), err[-2:])}
    # b) the virtual microphone removed: nothing may reach the default sink (the speakers)
    env = server.env
    subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "virtual-mic", "up"], env=env, check=True,
                   capture_output=True)
    spk = tmp / "speakers.raw"
    spk_rec = subprocess.Popen(["parec", "-d", "fallback.monitor", "--raw", "--format=float32le",
                                f"--rate={RATE}", "--channels=1", "--latency-msec=10"], stdout=open(spk, "wb"),  # noqa: SIM115
                               stderr=subprocess.DEVNULL, env=env)
    proc = _live(server, "--output", "deepiso", stats=tmp / "f2.json")
    started, _ = _wait_started(proc)
    time.sleep(1.0)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", "virtual-mic", "down"], env=env, check=True,
                   capture_output=True)
    took = _run_until_exit(proc, t0)
    time.sleep(0.5)
    spk_rec.terminate()
    spk_rec.wait(5)
    leaked = np.fromfile(spk, np.float32)
    err = [ln.rstrip() for ln in proc.stderr]
    out["virtual_mic_removed"] = {"started": started, "exit": proc.returncode, "exit_after_s": took,
                                  "speaker_samples_recorded": int(leaked.size),
                                  "speaker_peak": float(np.abs(leaked).max()) if leaked.size else 0.0,
                                  "message": [ln for ln in err if "deepiso live:" in ln][-2:]}
    player.terminate()
    # c) the server stopped for 2 s, then the delay after it
    rec_path = tmp / "stall.raw"
    rec = _bus_recorder(server, rec_path)
    player = _loop_player(server, 20)
    proc = _live(server, "--output", "iso_out", "--mix", "mixture", "--duration", "12", stats=tmp / "f3.json")
    started, lines = _wait_started(proc)
    drain = _drain(proc, lines)
    time.sleep(4.0)
    pid = server.pid()
    os.kill(pid, signal.SIGSTOP)
    time.sleep(2.0)
    os.kill(pid, signal.SIGCONT)
    proc.wait(30)
    drain.join(2)
    rec.terminate()
    rec.wait(5)
    player.terminate()
    d = delays(rec_path)
    s = json.loads((tmp / "f3.json").read_text()) if (tmp / "f3.json").exists() else {}
    out["server_stopped_2s"] = {"started": started, "exit": proc.returncode, "error": s.get("error"),
                                "resyncs": s.get("resyncs"), "delay_before_ms": _stats(d[:3]),
                                "delay_after_ms": _stats(d[-4:]), "delay_per_second_ms": d,
                                "events": s.get("events")}
    # d) non-finite and absurd input: counted, never on the output, which stays within full scale
    rec_path = tmp / "bad.raw"
    rec = _bus_recorder(server, rec_path)
    proc = _live(server, "--output", "iso_out", "--gain", "12", "--duration", "5", stats=tmp / "f4.json")
    started, lines = _wait_started(proc)
    rng = np.random.default_rng(0)
    bad = (0.5 * rng.standard_normal((RATE * 2, 2))).astype(np.float32)
    bad[::997] = np.nan
    bad[::1499] = np.inf
    bad[::2003] = 1e30
    subprocess.run(["pacat", "-d", "iso_play", "--raw", "--format=float32le", f"--rate={RATE}", "--channels=2"],
                   input=bad.tobytes(), env=server.env, timeout=20)
    proc.wait(30)
    rec.terminate()
    rec.wait(5)
    y = np.fromfile(rec_path, np.float32).reshape(-1, 2)[:, 1]
    s = json.loads((tmp / "f4.json").read_text()) if (tmp / "f4.json").exists() else {}
    out["non_finite_input"] = {"started": started, "exit": proc.returncode, "input_faults": s.get("input_faults"),
                               "clipped_samples": s.get("clipped_samples"),
                               "output_finite": bool(np.isfinite(y).all()),
                               "output_peak": float(np.nanmax(np.abs(y))) if y.size else None}
    return out


# ----------------------------------------------------------------------------


def run_server(kind: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"deepiso-live-{kind}-", ignore_cleanup_errors=True) as tmp_s:
        tmp = Path(tmp_s)
        server = SERVERS[kind](tmp / "server")
        server.start()
        try:
            info = server.pactl("info")
            result: dict = {"server": next((ln.split(": ", 1)[1] for ln in info.splitlines()
                                            if ln.startswith("Server Name")), kind)}
            print(f"{kind}: {result['server']}", flush=True)
            if args.floor_seconds:
                result["pass_through"] = soak(server, args.floor_seconds, tmp, browser=False, model="none")
                print(f"  pass-through: {json.dumps(result['pass_through'])}", flush=True)
            if args.launches:
                result["launches"] = launches(server, args.launches, tmp)
                print(f"  launches: {result['launches']['ok']}/{args.launches}", flush=True)
            if args.stops:
                result["stops"] = stops(server, args.stops)
                print(f"  stops: {json.dumps(result['stops'])}", flush=True)
            if args.soak_seconds:
                result["soak"] = soak(server, args.soak_seconds, tmp)
                print(f"  soak: {json.dumps({k: v for k, v in result['soak'].items() if k != 'events'})}",
                      flush=True)
            if args.busy_seconds:
                result["busy_core"] = soak(server, args.busy_seconds, tmp, busy=True, browser=False)
                print(f"  busy core: {json.dumps(result['busy_core'])}", flush=True)
            if not args.skip_faults:
                result["faults"] = faults(server, tmp)
                print(f"  faults: {json.dumps(result['faults'])}", flush=True)
        finally:
            server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", default="pulseaudio,pipewire,pipewire-jack")
    p.add_argument("--launches", type=int, default=20)
    p.add_argument("--stops", type=int, default=300,
                   help="streams started and stopped in one process beside a thread hogging the interpreter lock")
    p.add_argument("--soak-seconds", type=float, default=600.0)
    p.add_argument("--busy-seconds", type=float, default=60.0)
    p.add_argument("--floor-seconds", type=float, default=20.0,
                   help="a pass-through run (--model none, 48 kHz): the server's own share of the delay")
    p.add_argument("--skip-faults", action="store_true")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in SERVERS:
            p.error(f"unknown server {s!r} ({', '.join(SERVERS)})")
    if min(args.launches, args.stops, args.soak_seconds, args.busy_seconds, args.floor_seconds) < 0:
        p.error("counts and durations must be >= 0")
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "processor": platform.processor()},
               "command": "python -m benchmarks.live " + " ".join(argv if argv is not None else sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d"), "servers": {}}
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    for s in servers:  # each server's entry says what made it: a later run may replace some of them only
        results["servers"][s] = {**run_server(s, args), "command": results["command"], "date": results["date"]}
    for s, r in previous.get("servers", {}).items():
        results["servers"].setdefault(s, r)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
