"""The jack backend on a real (private) PipeWire server through its JACK API: delay, devices, faults."""

from __future__ import annotations

import json
import signal
import sys
import time

import numpy as np
import pytest
from conftest import PULSE_RATE

from benchmarks.stalls import GraphWitness, shared_xruns
from deepiso.realtime import jack_stream as js
from deepiso.realtime.devices import DeviceError
from deepiso.realtime.host import Host
from deepiso.realtime.plugins.basic import Gain, Mix
from deepiso.realtime.plugins.isolator import Isolator
from deepiso.realtime.streams import open_stream, pick_backend
from deepiso.testing.chirps import chirp_lags, chirp_signal
from deepiso.testing.pipewire_server import private_pipewire
from deepiso.testing.pulse_server import check_for, live_until_sigterm

CHIRP_TIMES = (0.25, 0.71, 1.1, 1.9)
BLOCK = 256


@pytest.fixture(scope="module")
def pipewire(tmp_path_factory):
    with private_pipewire(tmp_path_factory.mktemp("pipewire")) as server:
        yield server


def _stream(chain, block=BLOCK, inp="iso_in", out="iso_out", rate=PULSE_RATE):
    host = Host(chain, rate, 1, block_size=block)
    return open_stream(host, "jack", inp, out, rate, block)


def _lags(pipewire, make, lead=0.3, tail=0.3, tries=3):
    """The chirps' delays through a stream ``make()`` opens, and the stream. A cycle missed while they play
    (the machine stalled: a JACK client cannot buffer across it) can cut one out; the recording is then
    made again, up to ``tries`` times. Without a missed cycle every chirp must come through."""
    for _ in range(tries):
        stream = make()
        lags = chirp_lags(pipewire.record_through(stream, chirp_signal(2.4, CHIRP_TIMES), lead=lead, tail=tail))
        if len(lags) == len(CHIRP_TIMES) or stream.missed_cycles == 0:
            break
    return lags, stream


def test_the_round_trip_is_one_quantum(pipewire):
    stream = _stream([Gain(0.0)])
    assert stream.backend == "jack" and stream.blocksize == BLOCK and stream.samplerate == PULSE_RATE
    stream.close()
    lags, _ = _lags(pipewire, lambda: _stream([Gain(0.0)]))
    assert len(lags) == len(CHIRP_TIMES) and set(lags) == {BLOCK}, lags  # not a quantum more, as through pulse


def test_the_isolator_runs_at_the_graphs_rate_at_its_latency_plus_a_quantum(pipewire):
    isolators = []

    def make():
        isolators.append(Isolator("tiny-test", channels=1))
        return _stream([isolators[-1], Mix.parse("mixture")])

    lags, stream = _lags(pipewire, make, lead=0.5, tail=0.4)
    iso = isolators[-1]
    assert iso.spec.sample_rate != PULSE_RATE  # resampled by the isolator
    expected = stream.host.latency_samples + BLOCK
    assert len(lags) == len(CHIRP_TIMES) and all(abs(lag - expected) <= 2 for lag in lags), (lags, expected)
    assert iso.model_faults == 0


def test_devices_are_named_and_a_missing_one_refused(pipewire):
    # looked up as the pulse backend does (PipeWire's pulse server answers), named as it names them
    with pytest.raises(DeviceError, match="no input device matches 'nope'"):
        _stream([Gain(0.0)], inp="nope")
    with pytest.raises(DeviceError, match="no output device matches 'iso_in'"):  # a source takes no audio
        _stream([Gain(0.0)], out="iso_in")
    with pytest.raises(DeviceError, match="runs at 48000 Hz, not 44100 Hz"):
        _stream([Gain(0.0)], rate=44_100)
    with pytest.raises(DeviceError, match="by name"):
        open_stream(Host([Gain(0.0)], PULSE_RATE, 1), "jack", 3, "iso_out", PULSE_RATE, BLOCK)


def test_a_vanishing_output_stops_the_stream_and_nothing_goes_elsewhere(pipewire):
    module = pipewire.pactl("load-module", "module-null-sink", "sink_name=vanishing", "rate=48000")
    deadline = time.monotonic() + 5
    while True:  # the new node's ports appear in the graph a moment after the module loads
        try:
            stream = _stream([Gain(0.0)], out="vanishing")
            break
        except DeviceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    noise = pipewire.pacat_loop("iso_play", seconds=6, level=0.1)
    stream.start()
    try:
        time.sleep(0.5)
        stream.check()
        assert stream.host.blocks > 10
        pipewire.pactl("unload-module", module)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="output device 'vanishing' is gone; stopped"):
            while time.monotonic() - t0 < 3:
                stream.check()
                time.sleep(0.02)
        assert time.monotonic() - t0 < 1.0
        connected = [c.name for p in stream._outs for c in stream.client.get_all_connections(p)]
        assert connected == []  # JACK moved nothing to another device
    finally:
        stream.close()
        noise.terminate()


def test_the_servers_thread_never_waits_for_the_interpreter_lock(pipewire):
    # PipeWire stops a client by cancelling its thread wherever it is; one cancelled while it waited for
    # the interpreter lock left the lock held and hung the process. The callback is native: with the lock
    # held here for 0.3 s the server's cycles go on (silent: the chain cannot run), and the chain after.
    from deepiso.realtime import jack_cycle as jc

    stream = _stream([Gain(1.0)])
    noise = pipewire.pacat_loop("iso_play", seconds=6, level=0.1)
    stream.start()
    switch = sys.getswitchinterval()
    try:
        time.sleep(0.5)
        blocks, cycles, late = stream.host.blocks, stream._worker.counter(jc.CYCLES), stream.late_cycles
        assert blocks > 10
        sys.setswitchinterval(5.0)  # nothing takes the lock from this thread while it spins
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:
            pass
        during = stream._worker.counter(jc.CYCLES) - cycles
        sys.setswitchinterval(switch)
        assert during >= 0.3 * PULSE_RATE / BLOCK * 0.5, during  # the server called the client meanwhile
        assert stream.late_cycles > late  # silent, counted
        time.sleep(0.3)
        stream.check()
        assert stream.host.blocks > blocks + 20  # the chain runs again
    finally:
        sys.setswitchinterval(switch)
        stream.close()
        noise.terminate()


def test_a_stopped_server_is_waited_for_and_comes_back_at_the_same_delay(pipewire):
    import os

    stream = _stream([Gain(0.0)])
    noise = pipewire.pacat_loop("iso_play", seconds=8, level=0.1)
    stream.start()
    try:
        time.sleep(0.5)
        os.kill(pipewire.pid(), signal.SIGSTOP)
        check_for(stream, 1.5)  # waiting, not failed
        os.kill(pipewire.pid(), signal.SIGCONT)
        check_for(stream, 0.5)
        events = stream.pop_events()
        assert any("no cycle from the JACK server" in e for e in events), events
        assert any("runs again" in e for e in events), events
    finally:
        stream.close()
        noise.terminate()
    lags, _ = _lags(pipewire, lambda: _stream([Gain(0.0)]))
    assert lags and set(lags) == {BLOCK}, lags


def test_on_pipewire_the_default_backend_is_jack_at_the_graphs_rate(pipewire, monkeypatch):
    assert pick_backend() == "jack" and pick_backend(PULSE_RATE) == "jack"
    assert pick_backend(44_100) == "pulse"  # a rate the graph does not run at: its pulse server resamples
    monkeypatch.setattr(js, "PIPEWIRE_LIBJACK", ("/nonexistent/libjack.so.0",))
    assert pick_backend() == "pulse"  # no pipewire-jack installed: the pulse server
    monkeypatch.undo()
    # PULSE_SERVER names a PulseAudio beside PipeWire (a private one, a remote one): that one is meant
    monkeypatch.setattr(js, "pulse_server_name", lambda: "pulse-server 16.1")
    assert pick_backend() == "pulse"
    monkeypatch.undo()
    stream = open_stream(Host([Gain(0.0)], PULSE_RATE, 1, block_size=BLOCK), "auto", "iso_in", "iso_out",
                         PULSE_RATE, BLOCK)
    try:
        assert stream.backend == "jack"
    finally:
        stream.close()


def test_live_on_jack_stops_on_sigterm_and_writes_its_stats(pipewire, tmp_path):
    stats = tmp_path / "stats.json"
    args = ["--input", "iso_in", "--output", "iso_out", "--model", "tiny-test", "--quiet",
            "--stats-json", str(stats)]
    code, took, err, _, _ = live_until_sigterm(pipewire, args)
    assert code == 0 and took < 1.0, err
    summary = json.loads(stats.read_text())
    # the default backend on PipeWire, at the graph's rate, not the model's
    assert summary["backend"] == "jack" and summary["sample_rate"] == PULSE_RATE
    assert summary["stopped_by"] == "SIGTERM" and summary["blocks"] > 100 and summary["error"] is None
    assert np.isfinite(summary["algorithmic_latency_ms"])
    # the server's thread that calls the engine, against the model's own compute
    assert 0 < summary["compute_cpu"] <= summary["audio_thread_cpu"] < 1, summary
    assert summary["process_faults"] == 0


class _Staller(Gain):
    """Sleeps in the server's thread at the given blocks: a late engine on demand."""

    def __init__(self, blocks: set[int], seconds: float) -> None:
        super().__init__(0.0)
        self.blocks, self.seconds, self.n = blocks, seconds, 0

    def process(self, inp, out) -> None:
        self.n += 1
        if self.n in self.blocks:
            time.sleep(self.seconds)
        super().process(inp, out)


def test_a_late_cycle_is_counted_as_an_xrun_and_the_delay_stays(pipewire):
    staller = _Staller({338}, 0.03)  # 30 ms late once, 1.8 s into the stream: between two chirps
    stream = _stream([staller])
    staller.n = 0
    witness = GraphWitness(pipewire._env(), BLOCK)  # a client beside it that does nothing
    witness.start()
    try:
        lags = chirp_lags(pipewire.record_through(stream, chirp_signal(2.4, CHIRP_TIMES), lead=0.3, tail=0.3))
    finally:
        graph = witness.stop()
    # PipeWire's JACK API does not report it; the graph's frame time, which moved on, does
    assert stream.xruns >= 1 and stream.missed_cycles >= 1, (stream.xruns, stream.missed_cycles)
    late = [t for t in stream.xrun_times if 1.6 < t < 2.2]
    assert late, stream.xrun_times
    assert len(lags) == len(CHIRP_TIMES) and set(lags) == {BLOCK}, lags
    # the graph went on without the late client: the witness missed nothing then, so the xrun is the engine's
    # (a stall of the machine in the same window may add one the witness shares)
    shared = shared_xruns(late, stream.started_monotonic, graph)
    assert shared["xruns_shared_with_graph"] < len(late), (shared, graph, stream.xrun_times)


def _force_quantum(pipewire, frames: int) -> None:
    import subprocess

    subprocess.run(["pw-metadata", "-n", "settings", "0", "clock.force-quantum", str(frames)], env=pipewire._env(),
                   capture_output=True, check=True, timeout=10)


def test_the_engine_follows_the_graph_when_its_quantum_changes(pipewire):
    # (last in the module: the graph may stay at the smaller quantum afterwards)
    host = Host([Isolator("tiny-test", channels=1), Mix.parse("mixture")], PULSE_RATE, 1, max_block=8192,
                block_size=BLOCK)
    stream = open_stream(host, "jack", "iso_in", "iso_out", PULSE_RATE, BLOCK)
    noise = pipewire.pacat_loop("iso_play", seconds=8, level=0.1)
    sizes: list[int] = []
    stream.start()
    try:
        check_for(stream, 1.0)
        frames_before = host.stats().frames
        _force_quantum(pipewire, 128)  # another application asks for less, as on a desktop
        try:
            deadline = time.monotonic() + 3
            while stream.client.blocksize != 128 and time.monotonic() < deadline:
                check_for(stream, 0.1)
            sizes.append(int(stream.client.blocksize))
            check_for(stream, 1.0)
        finally:
            _force_quantum(pipewire, 0)
        stats = host.stats()
    finally:
        stream.close()
        noise.terminate()
    assert sizes == [128]
    # the same chain ran on in blocks of half the size: about 1 s of audio more, no block lost to a fault
    assert stats.frames - frames_before > 0.9 * PULSE_RATE, (stats.frames, frames_before)
    assert stream.faults == 0 and stats.plugin_faults == {"isolator": 0, "mix": 0}


def test_a_server_that_goes_away_ends_the_stream_with_a_message_at_once(tmp_path):
    # a server of its own: this one is killed (PipeWire exiting, or restarting under the user)
    import os
    import subprocess
    import sys

    with private_pipewire(tmp_path / "pw") as server:
        live = subprocess.Popen([sys.executable, "-m", "deepiso.realtime.cli", "live", "--input", "iso_in",
                                 "--output", "iso_out", "--model", "tiny-test", "--quiet"],
                                env=server._env(), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while "Ctrl-C stops" not in (line := live.stderr.readline()):
            assert (line or live.poll() is None) and time.monotonic() < deadline, "deepiso live did not start"
        time.sleep(1.0)
        sent = time.monotonic()
        os.kill(server.pid(), signal.SIGTERM)
        live.wait(15)
        took = time.monotonic() - sent
        err = live.stderr.read()
    # not the 10 s a stopped server is waited for: its socket says it is gone
    assert live.returncode == 1 and took < 3.0, (took, err)
    assert "the PipeWire server is gone" in err and "stopped;" in err, err
