"""Stalls of the machine itself, told apart from the engine's own underflows.

On a virtual machine a core can stop for several milliseconds while the host runs something else, and
every thread on it stops with it, whatever its priority. An output stream with less queued than the stall
then runs empty, and no client buffer short of the stall prevents it. :class:`StallProbe` runs one tiny
process per core, pinned to it at real-time priority :data:`PRIORITY` (above the engine's audio thread and
the audio servers' own), that sleeps 1 ms at a time and notes every sleep that took over
:data:`STALL_S`: while it sleeps nothing on its core can keep it from waking but the machine itself.
:func:`summary` lines its stalls up with a stream's underflows (both on the system-wide monotonic clock).

    probe = StallProbe(); probe.start(); ...; stalls = probe.stop()
    summary(stalls, started_monotonic, underflow_times_s)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

#: SCHED_FIFO priority of the probes: above PipeWire's data loops (88), PulseAudio's threads and the
#: engine's audio thread (10), below the kernel's own (99).
PRIORITY = 90
#: A 1 ms sleep that took longer than this is a stall, seconds.
STALL_S = 0.004
#: An engine xrun this close to one of the graph witness's counts as the graph's (seconds).
SHARED_S = 0.05
#: An underflow this long after a stall ended (or while it lasted) is counted as the stall's: the server
#: notices the empty buffer at its next wakeup and the engine hears of it a message later.
AFTER_S = 0.1

_PROBE = r"""
import os, signal, sys, time
cpu, priority, threshold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    realtime = 1
except OSError:
    realtime = 0
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print(realtime, flush=True)
stalls = []
prev = time.monotonic()
while not stop:
    time.sleep(0.001)
    now = time.monotonic()
    if now - prev > threshold and len(stalls) < 100000:
        stalls.append("%.4f %.3f" % (prev, 1000 * (now - prev)))
    prev = now
print("\n".join(stalls), flush=True)
"""


@dataclass(frozen=True)
class Stall:
    """A core that stopped: ``at`` (monotonic seconds) when its probe went to sleep, ``ms`` how long it took."""

    at: float
    ms: float
    cpu: int


class StallProbe:
    """One pinned real-time sleeper per core (all the cores this process may run on, or ``cpus``)."""

    def __init__(self, cpus: list[int] | None = None, priority: int = PRIORITY, threshold_s: float = STALL_S) -> None:
        allowed = sorted(os.sched_getaffinity(0))
        self.cpus = allowed if cpus is None else list(cpus)
        missing = sorted(set(self.cpus) - set(allowed))
        if missing:
            raise ValueError(f"no core {missing[0]} to probe here (cores: {allowed})")
        self.priority, self.threshold_s = priority, threshold_s
        self._procs: list[tuple[int, subprocess.Popen]] = []
        #: whether every probe got its real-time priority (without it the probe measures the load, not the machine)
        self.realtime = False

    def start(self) -> None:
        for cpu in self.cpus:
            proc = subprocess.Popen([sys.executable, "-c", _PROBE, str(cpu), str(self.priority), str(self.threshold_s)],
                                    stdout=subprocess.PIPE, text=True)
            self._procs.append((cpu, proc))
        self.realtime = all(proc.stdout.readline().strip() == "1" for _, proc in self._procs)

    def stop(self) -> list[Stall]:
        """Stop the probes; every stall they saw, oldest first."""
        stalls: list[Stall] = []
        for cpu, proc in self._procs:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=10)
            for line in out.split("\n"):
                if line.strip():
                    at, ms = line.split()
                    stalls.append(Stall(float(at), float(ms), cpu))
        self._procs = []
        return sorted(stalls, key=lambda s: s.at)

    def __enter__(self) -> StallProbe:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._procs:
            self.stop()


_WITNESS = r"""
import os, signal, sys, time
from deepiso.realtime import jack_stream as js
client = js._client("deepiso-witness", int(sys.argv[1]))
state = {"prev": None}
missed = []
def process(frames):
    ft = client.last_frame_time
    if state["prev"] is not None and ft - state["prev"] > frames and len(missed) < 100000:
        missed.append("%.4f %d" % (time.monotonic(), (ft - state["prev"]) // frames - 1))
    state["prev"] = ft
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
client.set_process_callback(process)
client.activate()
print(1, flush=True)
while not stop:
    time.sleep(0.05)
print("\n".join(list(missed)), flush=True)
# no deactivate: PipeWire would cancel the callback's thread, which may be waiting for the interpreter lock
# and leave it held (the hang the engine's native callback avoids); the server drops a client that exits
os._exit(0)
"""


class GraphWitness:
    """A JACK client that does nothing but note the cycles it missed, beside the engine in the same graph.

    When the engine misses a cycle because it was late, the graph goes on and the witness misses nothing;
    when the machine stalls, the graph's driver wakes late and every client misses the same cycles. The
    engine's missed cycles that the witness shares are the machine's. ``env``: the server's environment.
    """

    def __init__(self, env: dict[str, str], block: int = 256) -> None:
        self.env, self.block = env, block
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-c", _WITNESS, str(self.block)], env=self.env,
                                      stdout=subprocess.PIPE, text=True)
        if self._proc.stdout.readline().strip() != "1":
            raise RuntimeError(f"the witness did not start (exit {self._proc.wait(10)})")

    def stop(self) -> list[tuple[float, int]]:
        """``(monotonic time, cycles missed)`` for each jump of the graph's frame time, oldest first."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        out, _ = self._proc.communicate(timeout=10)
        self._proc = None
        return [(float(at), int(n)) for at, n in (ln.split() for ln in out.split("\n") if ln.strip())]


def shared_xruns(engine_times_s: list[float], started: float, witness: list[tuple[float, int]]) -> dict:
    """How often the witness missed cycles while the engine's stream ran (from ``started``, monotonic), and
    how many of the engine's xruns (seconds into its stream) it missed too, within :data:`SHARED_S`."""
    ws = [at - started for at, _ in witness if at >= started]
    return {"graph_xruns": len(ws), "graph_missed_cycles": sum(n for at, n in witness if at >= started),
            "xruns_shared_with_graph": sum(any(abs(t - w) <= SHARED_S for w in ws) for t in engine_times_s)}


def summary(stalls: list[Stall], started: float | None, underflow_times_s: list[float] | None,
            seconds: float, realtime: bool = True, what: str = "underflows") -> dict:
    """The stalls a run saw, and how many of its underflows came with one (``started``: the stream's start on
    the monotonic clock, ``underflow_times_s``: seconds into the stream; ``what`` names them: underflows on
    the pulse backend, xruns (missed cycles) on JACK)."""
    out: dict = {
        "probe": f"a SCHED_FIFO {PRIORITY} sleeper of 1 ms pinned to each core; a stall is a sleep over "
                 f"{1000 * STALL_S:.0f} ms",
        "realtime": realtime, "stalls": len(stalls),
        "per_minute": round(60 * len(stalls) / seconds, 1) if seconds > 0 else None,
        "max_ms": round(max((s.ms for s in stalls), default=0.0), 1),
        "over_8_ms": sum(s.ms > 8 for s in stalls),
    }
    if started is None:
        return out
    rel = [(s.at - started, s.ms / 1000) for s in stalls]
    out["times_s"] = [[round(t, 2), round(1000 * d, 1)] for t, d in rel if t >= 0][:64]
    underflows = underflow_times_s or []
    out[f"{what}_at_stalls"] = sum(any(t - 0.01 <= u <= t + d + AFTER_S for t, d in rel) for u in underflows)
    return out
