"""Live runs through a real (private) PulseAudio server: the signal arrives, on time, and failures are clean.

The server (see ``conftest.pulse``) has one 4-channel bus: chirps played on
``iso_play`` land on aux0/1, the engine reads them from the ``iso_in`` source
and plays into ``iso_out`` (aux2/3). One ``parec`` of the bus monitor records
the engine's input and output on the same clock, so the measured delay is
exact up to the server's own buffering.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import PULSE_RATE

from deepiso.realtime.chain import Plugin
from deepiso.realtime.devices import DeviceError
from deepiso.realtime.host import Host
from deepiso.realtime.plugins.basic import Gain, Meter, Mix
from deepiso.realtime.plugins.isolator import Isolator
from deepiso.realtime.streams import open_stream, suggested_latency
from deepiso.realtime.virtual_device import RouteWarmer
from deepiso.testing.chirps import chirp, chirp_lags, chirp_signal, garbage_samples

#: Allowance for the server's own buffering on the way in and out (pacat → bus → parec).
SERVER_SLACK_S = 0.030
#: Allowance over the latency the stream asked the server for, in and out (a resampler's rounding, a block).
REQUEST_SLACK_S = 0.005
CHIRP_TIMES = (0.25, 0.71, 1.38, 1.9)  # irregular, so a correlation cannot pick the wrong chirp


def _test_signal(total: float = 2.4, times: tuple[float, ...] = CHIRP_TIMES) -> np.ndarray:
    return chirp_signal(total, times)


def test_chirp_lags_times_every_chirp_and_ignores_missing_ones():
    x = chirp_signal(2.4, CHIRP_TIMES)[:, 0]
    rec = np.zeros((x.size, 4), np.float32)
    rec[:, 0] = x
    rec[123:, 2] = 0.7 * x[:-123]
    assert chirp_lags(rec) == [123] * len(CHIRP_TIMES)
    rec[4000, 2], rec[5000, 2] = 1.585e29, np.nan  # garbage a driver wrote does not hide the chirps
    assert chirp_lags(rec) == [123] * len(CHIRP_TIMES)
    assert garbage_samples(rec) == 2 and garbage_samples(rec[:, :2]) == 0
    rec[:, 2] = 0.0
    assert chirp_lags(rec) == []  # nothing came out
    rec[:, 0] = 0.0
    assert chirp_lags(rec) == []  # nothing went in


def _measure(pulse, stream, seconds_before: float = 0.3) -> tuple[np.ndarray, list[int]]:
    recording = pulse.record_through(stream, _test_signal(), lead=seconds_before, tail=0.4)
    return recording, chirp_lags(recording)


def _chain(kind: str, channels: int):
    if kind == "passthrough":
        return [Gain(0.0)], PULSE_RATE
    # "mixture" = vocals + instrumental: the isolator's output is its input, delayed
    # by exactly its reported latency, so the chirps can be timed through it.
    iso = Isolator("tiny-test", channels=channels)
    return [iso, Mix.parse("mixture")], iso.spec.sample_rate


@pytest.mark.parametrize("backend", ["sounddevice", "pyaudio"])
@pytest.mark.parametrize("kind", ["passthrough", "isolator"])
def test_live_delay_is_within_the_reported_bound(pulse, backend, kind):
    # Two cores shared with other work: an xrun in a duplex stream lengthens the
    # round trip for the rest of that run, so a run with an over-long delay is
    # retried; a delay *shorter* than the algorithmic latency fails at once.
    attempts = []
    for _ in range(3):
        chain, rate = _chain(kind, channels=1)
        host = Host(chain, rate, 1, block_size=256)
        stream = open_stream(host, backend, "iso_in", "iso_out", rate, 256, "low")
        recording, lags = _measure(pulse, stream)
        if not lags:  # a stalled duplex stream (PortAudio poll error under load) is retried too
            attempts.append(f"no chirp came through: input peak {np.abs(recording[:, 0]).max():.2f}, "
                            f"output peak {np.abs(recording[:, 2]).max():.2f}")
            continue
        algorithmic = host.latency_samples * PULSE_RATE / rate
        bound = stream.latency_samples * PULSE_RATE / rate + SERVER_SLACK_S * PULSE_RATE
        # The server holds no more than the stream asked for, one way and the other: the latency reaches
        # PulseAudio's buffers (PortAudio's own request does not get there through ALSA's pulse plugin).
        asked = algorithmic + (2 * suggested_latency("low", 256, rate) + REQUEST_SLACK_S) * PULSE_RATE
        assert min(lags) >= algorithmic - 2, (lags, algorithmic)  # the engine is never earlier than it says
        # Level is preserved (pass-through and vocals+instrumental are both the identity).
        assert np.abs(recording[:, 2]).max() == pytest.approx(np.abs(recording[:, 0]).max(), rel=0.1)
        stats = host.stats()
        assert stats.faults == 0 and stats.frames > rate
        attempts.append((lags, round(bound), round(asked), stats.xruns))
        steady = max(lags) - min(lags) <= 256 * PULSE_RATE // rate + 2  # constant within a run (up to a block)
        if len(lags) == len(CHIRP_TIMES) and max(lags) <= min(bound, asked) and steady:
            break
    else:
        pytest.fail(f"no run stayed within the reported bound and the asked latency "
                    f"(lags, bound, asked, xruns): {attempts}")


class Staller(Plugin):
    """Sleeps in the audio callback at the given blocks: an xrun on demand."""

    name = "staller"

    def __init__(self, blocks: set[int], seconds: float = 0.08) -> None:
        self.blocks, self.seconds, self.n = blocks, seconds, 0

    def process(self, inp, out) -> None:
        self.n += 1
        if self.n in self.blocks:
            time.sleep(self.seconds)
        if out is not inp:
            out[:] = inp


def test_resync_waits_for_quiet_and_never_storms():
    from deepiso.realtime.streams import RESYNC_GRACE_S, RESYNC_MIN_INTERVAL_S, LiveStream

    class Fake(LiveStream):
        can_restart = True

        def __init__(self, host):
            super().__init__(host, 16_000, 256, 1)
            self.restarted = 0

        def _restart(self):
            self.restarted += 1

    host = Host([Gain(0.0)], 16_000, 1, block_size=256)
    s = Fake(host)
    s.resync_after = 0.3
    now = 100.0

    def at(t, xruns=None):
        if xruns is not None:
            host.xruns = xruns
        s._maybe_resync(now + t)
        return s.restarted

    assert at(0.0) == 0  # no xrun yet
    assert at(0.1, xruns=1) == 0 and at(0.3) == 0  # 0.2 s of quiet: too soon
    assert at(0.45) == 1 and s.resyncs == 1  # 0.35 s of quiet: restarted
    assert at(0.45 + RESYNC_GRACE_S - 0.05, xruns=2) == 1 and at(1.5) == 1  # the restart's own xrun: not counted
    assert at(1.6, xruns=3) == 1 and at(2.0) == 1  # quiet again, but within the minimum interval
    assert at(0.45 + RESYNC_MIN_INTERVAL_S + 0.01) == 2
    for k in range(40):  # xruns every 0.2 s: never a quiet moment, never a restart
        at(4.0 + 0.2 * k, xruns=10 + k)
    assert s.restarted == 2
    s.resync_after = None
    host.xruns += 1
    s.check()
    assert s.restarted == 2


def test_resync_is_off_unless_asked_and_bad_values_are_refused(pulse):
    host = Host([Staller({100})], PULSE_RATE, 1, block_size=256)
    stream = open_stream(host, "sounddevice", "iso_in", "iso_out", PULSE_RATE, 256, "low")
    assert stream.resync_after is None
    pulse.record_through(stream, _test_signal(1.6, (0.25, 1.0)), lead=0.3, tail=0.6)
    assert host.stats().xruns >= 1 and stream.resyncs == 0
    asked = open_stream(host, "sounddevice", "iso_in", "iso_out", PULSE_RATE, 256, "low", resync_after=0.3)
    assert asked.resync_after == 0.3
    asked.close()
    with pytest.raises(DeviceError, match="resync_after"):
        open_stream(host, "sounddevice", "iso_in", "iso_out", PULSE_RATE, 256, "low", resync_after=-1.0)


def _deepiso(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepiso.realtime.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_virtual_microphone_carries_the_engine_output(pulse):
    up = _deepiso("virtual-mic", "up")
    assert up.returncode == 0, up.stderr
    assert "virtual microphone is up" in up.stdout
    try:
        sources = pulse.pactl("list", "short", "sources")
        assert "deepiso_mic" in sources
        assert "Description: deepiso\n" in pulse.pactl("list", "sources") + "\n"
        path = pulse.root / "mic.raw"
        rec = pulse.parec("deepiso_mic", 1, latency_ms=20, path=path)
        live = subprocess.Popen([sys.executable, "-m", "deepiso.realtime.cli", "live", "--input", "iso_in",
                                 "--output", "deepiso", "--model", "none", "--samplerate", "48000",
                                 "--duration", "3", "--quiet", "--stats-json", str(pulse.root / "stats.json")],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(1.2)  # interpreter start-up and stream open
        pulse.pacat("iso_play", 2, _test_signal().tobytes()).wait(10)
        _, err = live.communicate(timeout=20)
        rec.terminate()
        rec.wait(5)
        assert live.returncode == 0, err
        mic = np.fromfile(path, np.float32)
        c = chirp()
        corr = np.correlate(mic, c, mode="valid")
        assert corr.max() > 0.8 * float(np.dot(c, c))  # the chirps came through the virtual mic intact
        assert "xruns" in err
        stats = json.loads((pulse.root / "stats.json").read_text())
        assert stats["blocks"] > 0 and stats["error"] is None
        # the default backend is the native client: one real-time audio thread, no helper threads,
        # and its CPU measured beside the compute it carries
        assert stats["backend"] == "pulse" and stats["stopped_by"] == "end"
        assert stats["realtime_audio_thread"] is _rt_allowed()
        assert stats["realtime_helper_threads"] == 0
        assert 0 < stats["audio_thread_cpu"] < 0.5 and 0 <= stats["compute_cpu"] <= stats["audio_thread_cpu"]
    finally:
        down = _deepiso("virtual-mic", "down")
    assert down.returncode == 0, down.stderr
    status = _deepiso("virtual-mic", "status")
    assert "down" in status.stdout and "deepiso_mic" not in pulse.pactl("list", "short", "sources")


@pytest.mark.parametrize("backend", ["sounddevice", "pyaudio"])
def test_a_vanishing_output_device_ends_cleanly(pulse, backend):
    module = pulse.pactl("load-module", "module-null-sink", "sink_name=vanishing", "rate=48000",
                         "format=float32le")
    host = Host([Gain(0.0)], PULSE_RATE, 1, block_size=256)
    warmer = RouteWarmer("vanishing")  # a fresh null sink starts in 2-second blocks otherwise
    assert warmer.start()
    stream = open_stream(host, backend, "iso_in", "vanishing", PULSE_RATE, 256)
    stream.start()
    try:
        t0 = time.monotonic()
        while host.blocks < 20 and time.monotonic() - t0 < 3:
            time.sleep(0.05)
        assert host.blocks >= 20
        pulse.pactl("unload-module", module)
        t0 = time.monotonic()
        outcome = None
        while time.monotonic() - t0 < 12:
            try:
                stream.check()
            except DeviceError as exc:
                outcome = str(exc)
                break
            time.sleep(0.05)
        blocks_then = host.blocks
        if outcome is None:  # recovered: the server moved the stream to another device
            time.sleep(0.3)
            assert host.blocks > blocks_then
    finally:
        t0 = time.monotonic()
        stream.stop()
        stream.close()
        warmer.stop()
        assert time.monotonic() - t0 < 5  # no hang on a dead device
    if outcome is not None:
        assert "device" in outcome


class Exploding(Plugin):
    name = "exploding"

    def __init__(self) -> None:
        self.calls = 0

    def process(self, inp, out):
        self.calls += 1
        out[...] = inp
        if self.calls % 10 == 0:
            raise ValueError("boom")


def test_plugin_exceptions_do_not_stop_a_live_stream(pulse):
    meter = Meter()
    host = Host([Exploding(), meter], PULSE_RATE, 1, block_size=256)
    stream = open_stream(host, "sounddevice", "iso_in", "iso_out", PULSE_RATE, 256)
    stream.start()
    try:
        t0 = time.monotonic()
        while host.blocks < 200 and time.monotonic() - t0 < 6:
            stream.check()
            time.sleep(0.05)
        assert stream.active
    finally:
        stream.stop()
        stream.close()
    stats = host.stats()
    assert stats.plugin_faults["exploding"] >= 10
    assert stats.blocks > 150
    assert any("boom" in e for e in stats.errors)


@pytest.mark.parametrize("args,message,code", [
    (["--input", "no-such-mic"], "no input device matches 'no-such-mic'", 1),
    (["--output", "no-such-speaker"], "no output device matches 'no-such-speaker'", 1),
    (["--output", "iso"], "is ambiguous", 1),
    (["--output", "999"], "there is no output device number 999", 1),
    (["--backend", "sounddevice", "--output", "999"], "there is no output device number 999", 1),
    (["--backend", "sounddevice", "--input", "no-such-mic"], "no input device matches 'no-such-mic'", 1),
    (["--backend", "pyaudio", "--input", "nothing-here"], "no input device matches 'nothing-here'", 1),
    (["--samplerate", "1000000"], "sample rate 1000000 Hz is not supported", 2),
    (["--model", "/nonexistent/model.onnx"], "/nonexistent/model.onnx", 2),
    (["--model", "tiny-test", "--mix", "louder"], "mix 'louder'", 2),
    (["--resync", "-1"], "--resync -1.0 is outside 0..60 seconds", 2),
    (["--latency", "soon"], "--latency 'soon' is neither low, high nor milliseconds", 2),
    (["--latency", "0.1"], "--latency '0.1' is neither low, high nor milliseconds", 2),
])
def test_bad_live_arguments_give_a_clear_error(pulse, args, message, code):
    base = ["live", "--model", "none", "--duration", "0.5", "--quiet"]
    result = _deepiso(*base, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_devices_lists_pulse_inputs_and_outputs(pulse):
    result = _deepiso("devices")
    assert result.returncode == 0, result.stderr
    assert "pulse" in result.stdout
    assert "iso_in" in result.stdout and "iso_out" in result.stdout


def test_devices_through_the_pulse_plugin_get_the_server_latency(pulse, monkeypatch):
    # The server's buffering is set per stream (PULSE_LATENCY_MSEC, read each time the plugin connects):
    # for the server's default devices as for named ones, and for nothing else.
    from deepiso.realtime.devices import Endpoint, _pulse_env, resolve_device

    monkeypatch.delenv("PULSE_LATENCY_MSEC", raising=False)
    default_in, named_out = resolve_device(None, "input"), resolve_device("iso_out", "output")
    assert default_in.via_pulse and default_in.pulse is None
    assert named_out.via_pulse and named_out.pulse is not None and named_out.pulse.name == "iso_out"
    for inp, out in ((default_in, None), (None, named_out)):
        with _pulse_env(inp, out, 0.0216):
            assert os.environ["PULSE_LATENCY_MSEC"] == "22"
        assert "PULSE_LATENCY_MSEC" not in os.environ  # put back as it was
    with _pulse_env(Endpoint(3, "hw:0,0"), Endpoint(3, "hw:0,0"), 0.0216):
        assert "PULSE_LATENCY_MSEC" not in os.environ  # a card PortAudio opens directly


@pytest.mark.parametrize("wanted, block, rate, through_pulse, expected", [
    (0.0216, 256, 44100, True, 512 / 44100),  # the server holds 21.6 ms, ALSA two blocks
    (0.0207, 256, 48000, True, 512 / 48000),
    (0.0216, None, 44100, True, 512 / 44100),  # blocks of any size: sized as 256
    (0.0332, 512, 44100, True, 0.0332),  # two blocks (23.2 ms) are outside the clean range
    (0.0200, 128, 44100, True, 0.0200),  # two blocks (5.8 ms) too
    (0.0216, 256, 44100, False, 0.0216),  # a card PortAudio opens directly gets what was asked
    (0.0110, 256, 44100, True, 0.0110),  # never more than the server is asked for
    ("high", 256, 44100, True, "high"),
])
def test_the_alsa_buffer_stays_small_where_the_server_holds_the_latency(wanted, block, rate, through_pulse,
                                                                        expected):
    from deepiso.realtime.streams import alsa_latency

    got = alsa_latency(wanted, block, rate, through_pulse)
    assert got == (pytest.approx(expected) if isinstance(expected, float) else expected)


def _rt_allowed() -> bool:
    import resource

    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0


def test_audio_helper_threads_get_real_time_priority_once():
    # ALSA's pulse plugin runs one libpulse mainloop thread ("threaded-ml") per PCM in this
    # process; the real-time callback waits on them, so they must not sit behind ordinary work.
    import threading

    from deepiso.realtime.priority import raise_helper_threads

    done = threading.Event()
    named = threading.Barrier(3)  # both workers renamed, and the test thread
    tids: dict[str, int] = {}

    def worker(name: str) -> None:
        tids[name] = threading.get_native_id()
        with open("/proc/thread-self/comm", "w") as f:
            f.write(name)
        named.wait(5)
        done.wait(10)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("threaded-ml", "other-work")]
    for t in threads:
        t.start()
    try:
        named.wait(5)
        seen: set[int] = set()
        raised = raise_helper_threads(seen)
        assert tids["threaded-ml"] in seen and tids["other-work"] not in seen
        assert os.sched_getscheduler(tids["other-work"]) == os.SCHED_OTHER
        if _rt_allowed():
            assert raised == 1
            assert os.sched_getscheduler(tids["threaded-ml"]) == os.SCHED_FIFO
        else:
            assert raised == 0 and os.sched_getscheduler(tids["threaded-ml"]) == os.SCHED_OTHER
        assert raise_helper_threads(seen) == 0  # each thread once
    finally:
        done.set()
        for t in threads:
            t.join()
