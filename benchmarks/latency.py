"""Latency benchmark of the live engine.

Measures, for the default configuration (the ``default`` model, or
``tiny-test`` when no default model is shipped) and a few others:

1. algorithmic latency per configuration (frame spec, block size, device rate);
2. per-hop compute of the isolator (p50/p99/max, % of the hop period) and the
   real-time factor;
3. end-to-end delay through a private PulseAudio server at block sizes
   128/256/512 (chirps, one recording of a 4-channel bus);
4. xruns in a soak (10 minutes by default, ``--soak-seconds``) at block size 256.

Targets for the default configuration on a 2-core machine: p99 per-hop compute
<= 15 % of the hop period; algorithmic latency <= 20 ms; 0 xruns in the soak.
Writes ``benchmarks/results/latency.json`` and prints a table.

    python -m benchmarks.latency [--soak-seconds 600] [--model NAME] [--skip-pulse]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepiso.realtime.host import Host
from deepiso.realtime.onnx_model import ModelError, shipped_models
from deepiso.realtime.plugins.basic import Gain, Mix
from deepiso.realtime.plugins.isolator import Isolator

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
TARGET_P99_FRACTION = 0.15
TARGET_ALGORITHMIC_MS = 20.0
E2E_BLOCKS = (128, 256, 512)


def default_model_name(requested: str | None) -> str:
    if requested:
        return requested
    try:
        return "default" if "default" in shipped_models() else "tiny-test"
    except ModelError:
        return "tiny-test"


# ----------------------------------------------------------------------------
# 1. algorithmic latency


def algorithmic(model: str) -> list[dict]:
    rows = []
    iso = Isolator(model, channels=1)
    spec = iso.spec
    for device_rate in sorted({spec.sample_rate, 48_000}):
        for block in (None, 128, 256, 512):
            host = Host([Isolator(model, channels=1)], device_rate, 1, max_block=max(block or 0, 2048),
                        block_size=block)
            rows.append({"model": model, "device_rate": device_rate, "model_rate": spec.sample_rate,
                         "n_fft": spec.n_fft, "hop": spec.hop, "future_frames": spec.future_frames,
                         "block": block, "resampled": host.resampler is not None,
                         "latency_samples": host.latency_samples, "latency_ms": round(host.latency_ms, 3)})
    return rows


# ----------------------------------------------------------------------------
# 2. per-hop compute


def compute(model: str, seconds: float = 20.0, channels: int = 1) -> dict:
    iso = Isolator(model, channels=channels)
    spec = iso.spec
    hop = spec.hop
    host = Host([iso, Mix.parse("vocals")], spec.sample_rate, channels, block_size=hop)
    rng = np.random.default_rng(0)
    n_hops = int(seconds * spec.sample_rate / hop)
    x = (0.3 * rng.standard_normal((n_hops * hop, channels))).astype(np.float32)
    out = np.empty_like(x)
    times = np.empty(n_hops)
    for k in range(n_hops):
        a = k * hop
        t0 = time.perf_counter()
        host.process(x[a : a + hop], out[a : a + hop])
        times[k] = time.perf_counter() - t0
    period = hop / spec.sample_rate
    return {
        "model": model, "channels": channels, "hop": hop, "sample_rate": spec.sample_rate,
        "hop_period_ms": 1000 * period, "hops": n_hops,
        "p50_us": float(np.percentile(times, 50) * 1e6), "p99_us": float(np.percentile(times, 99) * 1e6),
        "max_us": float(times.max() * 1e6),
        "p99_fraction_of_hop": float(np.percentile(times, 99) / period),
        "real_time_factor": float(times.sum() / (n_hops * period)),
    }


# ----------------------------------------------------------------------------
# 3 + 4. through PulseAudio


def end_to_end(server, model: str, backend: str, block: int) -> dict:
    """One chirp measurement; a stream the driver kills (gave up restarting) is a row with its error."""
    from deepiso.realtime.devices import DeviceError

    try:
        return _end_to_end(server, model, backend, block)
    except DeviceError as exc:
        return {"backend": backend, "block": block, "chirps_found": 0, "measured_ms": [], "error": str(exc)}


def _end_to_end(server, model: str, backend: str, block: int) -> dict:
    from deepiso.realtime.streams import open_stream
    from deepiso.testing.chirps import chirp_lags, chirp_signal, garbage_samples
    from deepiso.testing.pulse_server import PULSE_RATE

    iso = Isolator(model, channels=1)
    rate = iso.spec.sample_rate
    # vocals + instrumental = the input, delayed by exactly the isolator's latency: timeable chirps.
    host = Host([iso, Mix.parse("mixture")], rate, 1, block_size=block)
    stream = open_stream(host, backend, "iso_in", "iso_out", rate, block, "low")
    x = chirp_signal(2.4, (0.25, 0.71, 1.38, 1.9))
    recording = server.record_through(stream, x, lead=0.3, tail=0.4)
    lags = chirp_lags(recording, PULSE_RATE)
    return {
        "backend": backend, "block": block, "model_rate": rate, "chirps_found": len(lags),
        "garbage_samples": garbage_samples(recording[:, 2:]),
        "measured_ms": [round(1000 * lag / PULSE_RATE, 2) for lag in lags],
        "algorithmic_ms": round(host.latency_ms, 2),
        "device_reported_ms": round(1000 * sum(stream.device_latency), 2),
        "bound_ms": round(1000 * stream.latency_samples / rate, 2), "xruns": host.stats().xruns,
    }


def read_cpu_times(path: str | Path = "/proc/stat") -> dict[str, float] | None:
    """The machine's CPU time so far (all cores), seconds per kind: ``user``, ``system``, ``idle``,
    ``steal`` (time a virtual machine's CPUs waited for the hypervisor) ...; ``None`` where the file is
    missing or unreadable (not Linux)."""
    try:
        first = Path(path).read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    try:
        ticks = [int(v) for v in first[1:1 + len(names)]]
    except ValueError:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return {name: t / hz for name, t in zip(names, ticks, strict=False)}


class SoakTimeline:
    """What happened during a soak, tick by tick: new xruns, new late blocks (the engine's callback ran
    past its block period) and what the machine did meanwhile (steal time, other processes' CPU).

    Lets a soak that fails say *where* the xruns came from: bursts while the hypervisor held the
    virtual CPUs back (steal), while other work took the cores, or while the engine itself was late.
    """

    def __init__(self, cpus: int | None = None) -> None:
        self.cpus = max(1, cpus or os.cpu_count() or 1)
        self.ticks: list[dict[str, float]] = []

    def add(self, t: float, xruns: int, late_blocks: int, cpu: dict[str, float] | None, dt: float) -> None:
        """One tick: ``t`` seconds into the soak, counts of new ``xruns`` and ``late_blocks`` since the
        last tick, ``cpu`` the change of :func:`read_cpu_times` over the tick (``None``: unknown),
        ``dt`` its length in seconds."""
        tick = {"t": round(t, 3), "xruns": int(xruns), "late_blocks": int(late_blocks), "dt": dt}
        if cpu is not None and dt > 0:
            wall = dt * self.cpus
            tick["steal"] = cpu.get("steal", 0.0) / wall
            tick["busy"] = (cpu.get("user", 0.0) + cpu.get("nice", 0.0) + cpu.get("system", 0.0)
                            + cpu.get("irq", 0.0) + cpu.get("softirq", 0.0)) / wall
        self.ticks.append(tick)

    def summary(self, listed: int = 50, steal_threshold: float = 0.05) -> dict:
        """Per-minute xruns, the longest run of ticks with xruns, steal and busy fractions of the whole
        soak and of the ticks with xruns, and the first ``listed`` ticks with xruns."""
        ticks = self.ticks
        with_xruns = [k for k in ticks if k["xruns"]]
        per_minute: dict[int, int] = {}
        for k in ticks:
            per_minute[int(k["t"] // 60)] = per_minute.get(int(k["t"] // 60), 0) + k["xruns"]
        longest = run = 0
        for k in ticks:
            run = run + 1 if k["xruns"] else 0
            longest = max(longest, run)

        def mean(key: str, rows: list[dict]) -> float | None:
            vals = [r[key] for r in rows if key in r]
            return round(float(np.mean(vals)), 4) if vals else None

        stolen = [k for k in with_xruns if k.get("steal", 0.0) > steal_threshold]
        return {
            "ticks": len(ticks), "tick_s": round(float(np.median([k["dt"] for k in ticks])), 3) if ticks else None,
            "xruns": sum(k["xruns"] for k in ticks), "late_blocks": sum(k["late_blocks"] for k in ticks),
            "ticks_with_xruns": len(with_xruns),
            "ticks_with_xruns_and_late_blocks": sum(1 for k in with_xruns if k["late_blocks"]),
            "ticks_with_xruns_and_steal": len(stolen), "steal_threshold": steal_threshold,
            "longest_xrun_run_ticks": longest,
            "xruns_per_minute": [per_minute.get(m, 0) for m in range(max(per_minute) + 1)] if per_minute else [],
            "steal_avg": mean("steal", ticks), "steal_max": round(max((k.get("steal", 0.0) for k in ticks),
                                                                      default=0.0), 4),
            "steal_avg_in_xrun_ticks": mean("steal", with_xruns),
            "busy_avg": mean("busy", ticks), "busy_avg_in_xrun_ticks": mean("busy", with_xruns),
            "first_xrun_ticks": [{k2: (round(v, 4) if isinstance(v, float) else v) for k2, v in k.items()}
                                 for k in with_xruns[:listed]],
        }


def soak(server, model: str, seconds: float, block: int = 256, settle: float = 1.0, tick: float = 0.2) -> dict:
    from deepiso.realtime.streams import open_stream

    iso = Isolator(model, channels=1)
    rate = iso.spec.sample_rate
    host = Host([iso, Mix.parse("vocals"), Gain(0.0)], rate, 1, block_size=block)
    stream = open_stream(host, "sounddevice", "iso_in", "iso_out", rate, block, "low")
    # A steady input: noise played into the engine's input for the whole soak.
    player = server.pacat_loop("iso_play", seconds + settle + 2)
    timeline = SoakTimeline()
    try:
        stream.start()
        time.sleep(settle)
        start_xruns, start_blocks = host.xruns, host.blocks
        t0 = last_t = time.monotonic()
        last_x, last_late, last_cpu = host.xruns, host.late_blocks, read_cpu_times()
        t_end = t0 + seconds
        while last_t < t_end:
            stream.check()
            time.sleep(tick)
            now, x, late, cpu = time.monotonic(), host.xruns, host.late_blocks, read_cpu_times()
            delta = ({k: cpu[k] - last_cpu[k] for k in cpu} if cpu is not None and last_cpu is not None
                     else None)
            timeline.add(now - t0, x - last_x, late - last_late, delta, now - last_t)
            last_t, last_x, last_late, last_cpu = now, x, late, cpu
        stats = host.stats()
    finally:
        stream.stop()
        stream.close()
        player.kill()
        player.wait(5)
    return {"seconds": seconds, "block": block, "model_rate": rate, "xruns": stats.xruns - start_xruns,
            "xruns_at_start": start_xruns, "blocks": stats.blocks - start_blocks, "faults": stats.faults,
            "restarts": stream.restarts, "cpu_load_avg": round(stats.cpu_load, 4),
            "cpu_load_peak": round(stats.cpu_peak, 4), "timeline": timeline.summary()}


def _with_server(fn):
    from deepiso.testing.pulse_server import private_pulse

    with tempfile.TemporaryDirectory(prefix="deepiso-bench-pulse-") as root, private_pulse(root) as server:
        return fn(server)


# ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model name or path (default: 'default', else 'tiny-test')")
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--compute-seconds", type=float, default=20.0)
    parser.add_argument("--skip-pulse", action="store_true", help="no end-to-end or soak measurement")
    parser.add_argument("--backends", default="sounddevice,pyaudio", help="end to end: comma-separated backends")
    parser.add_argument("--blocks", default=",".join(map(str, E2E_BLOCKS)), help="end to end: block sizes")
    parser.add_argument("--repeats", type=int, default=1, help="end to end: runs of each backend and block")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    model = default_model_name(args.model)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not backends or any(b not in ("sounddevice", "pyaudio") for b in backends):
        parser.error(f"--backends takes sounddevice and/or pyaudio, got {args.backends!r}")
    try:
        blocks = [int(b) for b in args.blocks.split(",") if b.strip()]
    except ValueError:
        blocks = []
    if not blocks or any(b < 1 for b in blocks):
        parser.error(f"--blocks takes positive block sizes, got {args.blocks!r}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.soak_seconds < 0:
        parser.error(f"--soak-seconds must be >= 0 (0: no soak), got {args.soak_seconds}")

    result: dict = {"model": model, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                 "python": sys.version.split()[0]},
                    "targets": {"p99_fraction_of_hop": TARGET_P99_FRACTION,
                                "algorithmic_ms": TARGET_ALGORITHMIC_MS, "soak_xruns": 0}}
    result["algorithmic"] = algorithmic(model)
    result["compute"] = [compute(model, args.compute_seconds, channels=c) for c in (1, 2)]
    if not args.skip_pulse:
        def pulse_part(server) -> None:
            result["end_to_end"] = [dict(end_to_end(server, model, backend, block), run=run)
                                    for run in range(args.repeats) for backend in backends for block in blocks]
            if args.soak_seconds > 0:
                result["soak"] = soak(server, model, args.soak_seconds)
        _with_server(pulse_part)

    default_alg = next(r for r in result["algorithmic"] if r["block"] == 256 and not r["resampled"])
    checks = {
        "algorithmic_latency_ms <= 20 (block 256, model rate)": default_alg["latency_ms"] <= TARGET_ALGORITHMIC_MS,
        "p99 per-hop compute <= 15% of hop (mono)": result["compute"][0]["p99_fraction_of_hop"]
        <= TARGET_P99_FRACTION,
    }
    if "soak" in result:
        checks[f"0 xruns in {args.soak_seconds:.0f} s soak at block 256"] = result["soak"]["xruns"] == 0
    result["checks"] = checks

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))

    print(f"model: {model}")
    print("\nalgorithmic latency")
    print(f"  {'device Hz':>9} {'block':>6} {'resampled':>9} {'samples':>8} {'ms':>7}")
    for r in result["algorithmic"]:
        print(f"  {r['device_rate']:>9} {str(r['block'] or 'any'):>6} {str(r['resampled']):>9} "
              f"{r['latency_samples']:>8} {r['latency_ms']:>7.2f}")
    print("\nper-hop compute")
    print(f"  {'ch':>3} {'hop ms':>7} {'p50 us':>8} {'p99 us':>8} {'max us':>8} {'p99 % hop':>9} {'RTF':>7}")
    for r in result["compute"]:
        print(f"  {r['channels']:>3} {r['hop_period_ms']:>7.2f} {r['p50_us']:>8.1f} {r['p99_us']:>8.1f} "
              f"{r['max_us']:>8.1f} {100 * r['p99_fraction_of_hop']:>8.1f}% {r['real_time_factor']:>7.4f}")
    if "end_to_end" in result:
        print("\nend-to-end through PulseAudio (ms)")
        print(f"  {'backend':>11} {'block':>6} {'measured':>22} {'algorithmic':>11} {'bound':>7} {'xruns':>5}")
        for r in result["end_to_end"]:
            if "error" in r:
                print(f"  {r['backend']:>11} {r['block']:>6} {'failed':>22}  {r['error']}")
                continue
            measured = ",".join(f"{m:.1f}" for m in r["measured_ms"]) or "lost"
            garbage = f"  ({r['garbage_samples']} garbage samples)" if r.get("garbage_samples") else ""
            print(f"  {r['backend']:>11} {r['block']:>6} {measured:>22} {r['algorithmic_ms']:>11.1f} "
                  f"{r['bound_ms']:>7.1f} {r['xruns']:>5}{garbage}")
    if "soak" in result:
        s = result["soak"]
        print(f"\nsoak: {s['seconds']:.0f} s at block {s['block']}: {s['xruns']} xruns "
              f"({s['xruns_at_start']} while starting), {s['restarts']} restarts, faults {s['faults']}, "
              f"CPU {100 * s['cpu_load_avg']:.1f}% avg")
        tl = s["timeline"]
        if tl["xruns"]:
            print(f"  xruns in {tl['ticks_with_xruns']} of {tl['ticks']} ticks of {tl['tick_s']} s "
                  f"(longest run {tl['longest_xrun_run_ticks']} ticks); with the engine late: "
                  f"{tl['ticks_with_xruns_and_late_blocks']}; with steal > {100 * tl['steal_threshold']:.0f}%: "
                  f"{tl['ticks_with_xruns_and_steal']}")
            print(f"  per minute: {tl['xruns_per_minute']}")
        if tl["steal_avg"] is not None:
            print(f"  machine: steal {100 * tl['steal_avg']:.1f}% avg (max {100 * tl['steal_max']:.1f}% in a tick), "
                  f"busy {100 * tl['busy_avg']:.1f}% avg")
    print("\nchecks")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print(f"\nwrote {args.output}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
