"""The live benchmark's stall probe: a core taken from it is a stall, and underflows line up with it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

from benchmarks.stalls import AFTER_S, Stall, StallProbe, summary

# Busy for 60 ms on core 0 at a priority above the probe's: to the probe, the core stopped.
TAKE_CORE = ("import os, time\nos.sched_setaffinity(0, {0})\n"
             "os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(95))\n"
             "t = time.monotonic()\nprint(t, flush=True)\nwhile time.monotonic() - t < 0.06: pass\n")


def _rt_allowed() -> bool:
    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 95


def test_a_core_taken_from_the_probe_is_a_stall():
    if not _rt_allowed():  # the probe then runs as ordinary work and says so
        with StallProbe(cpus=[0]) as probe:
            assert probe.realtime is False
        return
    with StallProbe(cpus=[0]) as probe:
        assert probe.realtime
        time.sleep(0.3)
        taken = float(subprocess.run([sys.executable, "-c", TAKE_CORE], capture_output=True, text=True,
                                     check=True, timeout=30).stdout)
        time.sleep(0.3)
        stalls = probe.stop()
    hit = [s for s in stalls if s.at - 0.01 <= taken <= s.at + s.ms / 1000]
    assert hit and hit[0].ms >= 50 and hit[0].cpu == 0, (taken, stalls)


def test_underflows_are_counted_with_the_stall_they_came_with():
    started = 1000.0
    stalls = [Stall(1010.0, 9.0, 0), Stall(1030.0, 5.0, 1), Stall(995.0, 6.0, 0)]  # the last: before the stream
    # 10.0 during the first, 30.05 just after the second, 20.0 with none, 30.2 too late for the second
    got = summary(stalls, started, [10.0, 20.0, 30.05, 30.0 + 0.005 + AFTER_S + 0.05], seconds=60.0)
    assert got["stalls"] == 3 and got["per_minute"] == 3.0 and got["max_ms"] == 9.0 and got["over_8_ms"] == 1
    assert got["underflows_at_stalls"] == 2
    assert got["times_s"] == [[10.0, 9.0], [30.0, 5.0]]
    # no stream start (another backend): the stalls alone
    assert "underflows_at_stalls" not in summary(stalls, None, None, seconds=60.0)
    assert summary([], started, [], seconds=0.0)["per_minute"] is None


def test_a_probe_on_a_core_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="no core"):
        StallProbe(cpus=[os.cpu_count() + 7])
