"""The latency benchmark's soak bookkeeping: the machine's CPU times and the xrun timeline."""

import os

import pytest

from benchmarks import latency

HZ = os.sysconf("SC_CLK_TCK")


def test_cpu_times_parse_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(f"cpu  {HZ * 10} 0 {HZ * 5} {HZ * 100} 0 0 0 {HZ * 3} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    times = latency.read_cpu_times(stat)
    assert times == pytest.approx({"user": 10, "nice": 0, "system": 5, "idle": 100, "iowait": 0, "irq": 0,
                                   "softirq": 0, "steal": 3})


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu  a b c\n"])
def test_cpu_times_unreadable_is_none(tmp_path, text):
    stat = tmp_path / "stat"
    stat.write_text(text)
    assert latency.read_cpu_times(stat) is None
    assert latency.read_cpu_times(tmp_path / "missing") is None


def test_cpu_times_of_this_machine_grow():
    a = latency.read_cpu_times()  # Linux (the supported system) always has /proc/stat
    assert a is not None and a["idle"] > 0
    sum(i * i for i in range(200_000))
    b = latency.read_cpu_times()
    assert set(a) == set(b) and sum(b.values()) >= sum(a.values())


def test_timeline_attributes_xruns_to_steal_and_late_blocks():
    tl = latency.SoakTimeline(cpus=2)
    quiet = {"user": 0.02, "system": 0.0, "steal": 0.0}
    for i in range(300):  # 60 s of 0.2 s ticks, 2 CPUs: 0.4 CPU-seconds per tick
        tl.add(0.2 * (i + 1), 0, 0, quiet, 0.2)
    # minute 2: a burst of three ticks with xruns while the hypervisor took 50 % of the CPUs
    for i in range(3):
        tl.add(60.2 + 0.2 * i, 4, 0, {"user": 0.02, "steal": 0.2}, 0.2)
    tl.add(61.0, 1, 1, {"user": 0.3, "steal": 0.0}, 0.2)  # the engine itself late, the cores busy
    tl.add(61.2, 0, 0, None, 0.2)  # /proc/stat unreadable for a tick
    s = tl.summary(listed=2)
    assert s["ticks"] == 305 and s["tick_s"] == 0.2
    assert s["xruns"] == 13 and s["late_blocks"] == 1
    assert s["ticks_with_xruns"] == 4 and s["longest_xrun_run_ticks"] == 4
    assert s["ticks_with_xruns_and_steal"] == 3 and s["ticks_with_xruns_and_late_blocks"] == 1
    assert s["xruns_per_minute"] == [0, 13]
    assert s["steal_max"] == pytest.approx(0.5)
    assert s["steal_avg_in_xrun_ticks"] == pytest.approx(0.375)
    assert s["busy_avg_in_xrun_ticks"] == pytest.approx((3 * 0.05 + 0.75) / 4)
    assert s["busy_avg"] == pytest.approx((300 * 0.05 + 3 * 0.05 + 0.75) / 304, abs=1e-4)
    assert [k["t"] for k in s["first_xrun_ticks"]] == [60.2, 60.4]


def test_timeline_of_a_clean_soak():
    tl = latency.SoakTimeline(cpus=1)
    tl.add(0.2, 0, 0, None, 0.2)
    s = tl.summary()
    assert s["xruns"] == 0 and s["ticks_with_xruns"] == 0 and s["xruns_per_minute"] == [0]
    assert s["steal_avg"] is None and s["first_xrun_ticks"] == []
    assert latency.SoakTimeline().summary()["xruns_per_minute"] == []


@pytest.mark.parametrize("args, message", [
    (["--backends", "jack"], "--backends takes sounddevice and/or pyaudio"),
    (["--backends", ","], "--backends takes sounddevice and/or pyaudio"),
    (["--blocks", "256,x"], "--blocks takes positive block sizes"),
    (["--blocks", "0"], "--blocks takes positive block sizes"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--soak-seconds", "-1"], "--soak-seconds must be >= 0"),
])
def test_bad_end_to_end_options_are_refused_before_measuring(args, message, capsys, tmp_path):
    out = tmp_path / "latency.json"
    with pytest.raises(SystemExit) as exc:
        latency.main([*args, "--output", str(out)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
