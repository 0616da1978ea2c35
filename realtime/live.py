"""The live commands: ``deepiso devices``, ``live``, ``separate`` and ``virtual-mic``.

This module only defines arguments at import time; audio libraries, the model
runtime and the host are imported inside the handlers, so ``deepiso --help``
stays fast and a missing optional dependency is reported, not raised.

Exit codes: 0 success, 1 a device problem (missing, busy, gone), 2 bad
arguments or an unusable model/file, 130 interrupted before the stream ran.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

STEM_NAMES = ("vocals", "instrumental")
#: How soon (s) a thread holding the interpreter lock hands it to the audio thread while live.
SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def realtime_process():
    """While a live stream runs in this process: a short interpreter-lock hand-over and a frozen collector.

    The audio thread needs the interpreter lock for every block: whoever holds it (the status line,
    a library's reader thread) must hand it over within :data:`SWITCH_INTERVAL_S`, not the default
    5 ms that ate most of a 6 ms output margin at block 256. Nothing the audio path keeps alive needs
    the collector: freezing what exists after set-up keeps full collections short.
    """
    switch = sys.getswitchinterval()
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(switch)
        gc.unfreeze()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _err(command: str, message: str) -> None:
    print(f"deepiso {command}: {message}", file=sys.stderr)


# ----------------------------------------------------------------------------
# devices


def cmd_devices(args: argparse.Namespace) -> int:
    from .devices import DeviceError, portaudio_devices, pulse_devices, pulse_running, refresh_portaudio

    try:
        if args.backend == "sounddevice":
            refresh_portaudio()
        devices = portaudio_devices(args.backend)
    except DeviceError as exc:
        _err("devices", str(exc))
        return 1
    print(f"PortAudio devices ({args.backend}): use the number or part of the name")
    if not devices:
        print("  (none)")
    for d in devices:
        print(f"  {d.index:3d}  {d.name:<40.40s} in {d.max_input:2d}  out {d.max_output:2d}  "
              f"{d.default_rate:.0f} Hz  [{d.host_api}]")
    if pulse_running():
        try:
            sources, sinks = pulse_devices("source"), pulse_devices("sink")
        except DeviceError as exc:
            _err("devices", str(exc))
            return 1
        print("PulseAudio/PipeWire inputs (sources): use the name or part of the description")
        for d in sources:
            tag = "  (monitor of " + d.monitor_of + ")" if d.is_monitor else ""
            print(f"  {d.name:<40.40s} {d.description[:40]:<40.40s} {d.channels}ch {d.rate} Hz{tag}")
        print("PulseAudio/PipeWire outputs (sinks):")
        for d in sinks:
            print(f"  {d.name:<40.40s} {d.description[:40]:<40.40s} {d.channels}ch {d.rate} Hz")
    else:
        print("no PulseAudio/PipeWire server is running (virtual devices need one)")
    return 0


# ----------------------------------------------------------------------------
# live


def build_chain(model: str, mix: str, channels: int, gain_db: float = 0.0, gate_db: float | None = None,
                floor_db: float | None = None,
                synthesis_length: int | None = None) -> tuple[list[Any], Any, Any, Any]:
    """``[input meter, isolator?, mix?, gate?, gain?, output meter]`` and (isolator, in meter, out meter).

    ``model="none"`` gives a pass-through chain (no isolator). ``floor_db`` is the isolator's input
    floor (:class:`~deepiso.realtime.plugins.isolator.Isolator`; ``None``: the isolator's default, -80 dBFS);
    ``synthesis_length`` its synthesis (``None``: the model's).
    """
    from .plugins.basic import Gain, Gate, Meter, Mix

    meter_in, meter_out = Meter(), Meter()
    chain: list[Any] = [meter_in]
    isolator = None
    if model != "none":
        isolator = _isolator(model, channels, floor_db, synthesis_length)
        chain.append(isolator)
        chain.append(Mix.parse(mix))
    if gate_db is not None:
        chain.append(Gate(threshold_db=gate_db))
    if gain_db:
        chain.append(Gain(gain_db))
    chain.append(meter_out)
    return chain, isolator, meter_in, meter_out


def _fmt_db(levels: dict[str, list[float]]) -> str:
    peak = max(levels["peak_db"], default=-240.0)
    return "  -inf" if peak < -120 else f"{peak:6.1f}"


def status_line(stream: Any, meter_in: Any, meter_out: Any, library: Any = None) -> str:
    """One line: latency, CPU load of the callback, xruns, faults, input and output peak levels."""
    s = stream.host.stats()
    device_ms = 1000.0 * sum(stream.device_latency)
    faults = s.faults
    noise = f" | library messages {library.lines}" if library is not None and library.lines else ""
    return (f"latency {s.latency_ms + device_ms:5.1f} ms (algorithmic {s.latency_ms:.1f} + device {device_ms:.1f}) "
            f"| CPU {100 * s.cpu_load:4.1f}% | xruns {s.xruns} (resyncs {getattr(stream, 'resyncs', 0)}) "
            f"| faults {faults}{f' (clipped {s.clipped})' if s.clipped else ''}{noise} "
            f"| in {_fmt_db(meter_in.levels())} dB | out {_fmt_db(meter_out.levels())} dB")


def _summary(stream: Any) -> dict[str, Any]:
    s = stream.host.stats()
    out = {
        "backend": stream.backend, "sample_rate": s.sample_rate, "channels": s.channels,
        "blocksize": stream.blocksize, "algorithmic_latency_samples": s.latency_samples,
        "algorithmic_latency_ms": s.latency_ms, "device_latency_s": list(stream.device_latency),
        "total_latency_ms": s.latency_ms + 1000.0 * sum(stream.device_latency), "blocks": s.blocks,
        "frames": s.frames, "xruns": s.xruns, "input_faults": s.input_faults, "output_faults": s.output_faults,
        "plugin_faults": s.plugin_faults, "bypassed": s.bypassed, "errors": s.errors,
        "cpu_load": s.cpu_load, "cpu_peak": s.cpu_peak, "error": stream.error,
        "resyncs": getattr(stream, "resyncs", 0), "restarts": getattr(stream, "restarts", 0),
        "clipped_samples": s.clipped,
        "realtime_audio_thread": getattr(stream, "realtime_priority", None),
        "realtime_helper_threads": getattr(stream, "helper_threads_raised", 0),
    }
    if stream.backend == "jack":
        out.update(audio_thread_cpu=round(stream.thread_cpu, 4), compute_cpu=round(stream.compute_cpu, 4),
                   process_faults=stream.faults, missed_cycles=stream.missed_cycles, late_cycles=stream.late_cycles,
                   xrun_times_s=stream.xrun_times, started_monotonic_s=round(stream.started_monotonic, 4))
    if stream.backend == "pulse":
        c = stream.counters
        out.update(audio_thread_cpu=round(stream.thread_cpu, 4), compute_cpu=round(stream.compute_cpu, 4),
                   underflows=c.underflows, underflow_times_s=stream.underflow_times, trims=c.trims,
                   started_monotonic_s=round(stream.started_monotonic, 4),
                   dropped_input_frames=c.dropped_input_frames,
                   dropped_output_frames=c.dropped_output_frames, reconnects=c.reconnects, holes=c.holes,
                   wakeups_per_s=round(c.wakeups / c.wall_s, 1) if c.wall_s else 0.0,
                   output_buffer_ms={"asked": round(1000 * stream.output_s, 2),
                                     "granted": round(1000 * stream.granted_output_s, 2)})
    return out


class _Terminated(Exception):
    """SIGTERM (a service manager, ``kill``): stop as cleanly as on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


def cmd_live(args: argparse.Namespace) -> int:
    from .chain import PluginError
    from .devices import DeviceError, resolve_device
    from .host import DEFAULT_LIMIT, FULL_SCALE, Host
    from .quiet import LibraryOutput
    from .streams import ArrayStream, open_stream, pick_backend
    from .virtual_device import RouteWarmer, needs_warmup

    if args.blocksize is not None and not 16 <= args.blocksize <= 16384:
        _err("live", f"--blocksize {args.blocksize} is outside 16..16384")
        return 2
    if args.channels < 1 or args.channels > 32:
        _err("live", f"--channels {args.channels} is outside 1..32")
        return 2
    if not 0.0 <= args.resync <= 60.0:
        _err("live", f"--resync {args.resync} is outside 0..60 seconds")
        return 2
    if args.latency not in ("low", "high"):
        try:
            ms = float(args.latency)
        except ValueError:
            ms = math.nan
        if not 1.0 <= ms <= 2000.0:
            _err("live", f"--latency {args.latency!r} is neither low, high nor milliseconds in 1..2000")
            return 2
        args.latency = ms / 1000.0
    try:
        chain, isolator, meter_in, meter_out = build_chain(args.model, args.mix, args.channels, args.gain, args.gate,
                                                           args.floor, args.synthesis_length)
        if args.backend == "auto":  # jack on PipeWire, pulse on PulseAudio, else sounddevice
            args.backend = pick_backend(args.samplerate)
        rate = args.samplerate or (isolator.spec.sample_rate if isolator is not None else 48_000)
        if args.backend == "jack" and not args.samplerate:  # JACK runs every client at the graph's rate
            from .jack_stream import graph_rate

            rate = graph_rate()
        host = Host(chain, rate, args.channels, max_block=max(args.blocksize or 0, 8192), block_size=args.blocksize,
                    output_limit=FULL_SCALE if args.backend != "file" else DEFAULT_LIMIT)
    except PluginError as exc:
        _err("live", str(exc))
        return 2
    except DeviceError as exc:
        _err("live", str(exc))
        return 1

    warmer = None
    if args.backend == "file":
        from .audio_io import AudioFileError, read_audio

        if not args.input or not args.output:
            _err("live", "the file backend needs --input FILE and --output FILE")
            return 2
        try:
            x, _ = read_audio(args.input, sample_rate=rate, channels=args.channels)
        except AudioFileError as exc:
            _err("live", str(exc))
            return 2
        stream: Any = ArrayStream(host, x, rate, args.blocksize or 256, realtime=not args.fast)
    else:
        try:
            # (PortAudio is not asked about devices the native clients open: it would load JACK2's libjack)
            native = args.backend in ("pulse", "jack")
            out_dev = resolve_device(args.output, "output", args.backend) if not native else None
            # PortAudio's ALSA path does not ask a null sink for low latency; the pulse backend does.
            if out_dev is not None and needs_warmup(out_dev.pulse):
                warmer = RouteWarmer(out_dev.pulse.name)  # type: ignore[union-attr]
                warmer.start()
            stream = open_stream(host, args.backend, args.input, args.output, rate, args.blocksize, args.latency,
                                 resync_after=args.resync or None)
        except DeviceError as exc:
            if warmer is not None:
                warmer.stop()
            _err("live", str(exc))
            return 1

    quiet = args.quiet or not sys.stderr.isatty()
    print(f"deepiso live: {host.describe()}", file=sys.stderr)
    print(f"  backend {stream.backend}, block {args.blocksize or 'variable'}, device latency "
          f"{1000 * stream.device_latency[0]:.1f} ms in + {1000 * stream.device_latency[1]:.1f} ms out; "
          "Ctrl-C stops", file=sys.stderr)
    code = 0
    interrupted = ""
    events: list[str] = []
    process_settings = contextlib.ExitStack()
    process_settings.enter_context(realtime_process())
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    # "Ctrl-C stops" even where SIGINT came in ignored (a job started in the background by a script).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler) if _main_thread() else None
    library = LibraryOutput(forward=args.verbose).start() if stream.backend in ("sounddevice", "pyaudio") else None
    status_shown = False
    try:
        stream.start()
        t0 = time.monotonic()
        while True:
            time.sleep(0.1)
            for event in stream.pop_events():
                events.append(event)
                print(("\r\033[K" if status_shown else "") + f"deepiso live: {event}", file=sys.stderr, flush=True)
            stream.check()
            if args.backend == "file" and not stream.active:
                break
            if args.duration is not None and time.monotonic() - t0 >= args.duration:
                break
            if not quiet:
                print("\r" + status_line(stream, meter_in, meter_out, library), end="", file=sys.stderr, flush=True)
                status_shown = True
    except KeyboardInterrupt:
        interrupted = "Ctrl-C"
    except _Terminated:
        interrupted = "SIGTERM"
    except DeviceError as exc:
        for event in stream.pop_events():
            events.append(event)
        if status_shown:
            print(file=sys.stderr)
        _err("live", str(exc))
        code = 1
    finally:
        stream.stop()
        stream.close()
        if warmer is not None:
            warmer.stop()
        if library is not None:
            library.stop()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)
        process_settings.close()
    if status_shown:
        print(file=sys.stderr)
    summary = _summary(stream)
    summary["events"] = events
    summary["stopped_by"] = interrupted or ("error" if code else "end")
    summary["library_messages"] = library.lines if library is not None else 0
    summary["library_last"] = list(library.last) if library is not None else []
    print(f"deepiso live: stopped{f' ({interrupted})' if interrupted else ''}; {summary['frames']} frames, "
          f"xruns {summary['xruns']} (resyncs {summary['resyncs']}), "
          f"faults in/out {summary['input_faults']}/{summary['output_faults']}, "
          f"plugin faults {sum(summary['plugin_faults'].values())}"
          + (f", library messages {summary['library_messages']} (--verbose shows them)"
             if summary["library_messages"] and not args.verbose else ""), file=sys.stderr)
    for err in summary["errors"]:
        print(f"  plugin error: {err}", file=sys.stderr)
    if args.backend == "file" and code == 0:
        from .audio_io import write_audio

        lat = host.latency_samples
        write_audio(args.output, stream.output[lat:] if args.align else stream.output, rate)
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(summary, indent=2))
    return code


# ----------------------------------------------------------------------------
# separate


class _Progress:
    """A progress line on stderr that every other message ends first, so none is glued to it."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.open = False
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or not (force or now - self._last > 0.5):
            return
        self._last = now
        print(f"\r{text}", end="", file=sys.stderr, flush=True)
        self.open = True

    def say(self, message: str) -> None:
        """A whole line (an error, a warning, a result) after the progress line, never inside it."""
        if self.open:
            print(file=sys.stderr)
            self.open = False
        print(message, file=sys.stderr, flush=True)


def _writable_folder(folder: Path) -> str | None:
    """Why stems cannot be written under ``folder`` (created if missing), or ``None`` when they can."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".deepiso-write-test-"):
            pass
    except OSError as exc:
        return f"{folder}: cannot write stems there ({exc.strerror or exc})"
    return None


def _write_stems(target: Path, stems: dict[str, Any], rate: int, fmt: str) -> None:
    """Write every stem into ``target`` so that all of them appear, or none (``OSError``/``AudioFileError``)."""
    import os
    import shutil
    import tempfile

    from .audio_io import write_audio

    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".deepiso-stems-"))
    try:
        for stem, audio in stems.items():
            write_audio(staging / f"{stem}.{fmt}", audio, rate)
        for stem in stems:
            os.replace(staging / f"{stem}.{fmt}", target / f"{stem}.{fmt}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cmd_separate(args: argparse.Namespace) -> int:
    from .audio_io import AudioFileError, read_audio
    from .chain import PluginError
    from .separator import Separator

    try:
        separator = Separator(args.model, synthesis_length=args.synthesis_length,
                              **({} if args.floor is None else {"floor_dbfs": args.floor}))
    except PluginError as exc:
        _err("separate", str(exc))
        return 2
    out_dir = Path(args.output_dir)
    problem = _writable_folder(out_dir)
    if problem:
        _err("separate", problem)
        return 2
    line = _Progress(args.quiet)
    failures = 0
    names: set[str] = set()
    for path in args.files:
        name = Path(path).stem
        target = out_dir / name
        files = [target / f"{stem}.{args.format}" for stem in STEM_NAMES]
        if name in names:
            line.say(f"deepiso separate: {path}: another input of this run is also named {name!r}; its stems "
                     f"would land in the same folder {target}/ (skipped)")
            failures += 1
            continue
        names.add(name)
        existing = [f.name for f in files if f.exists()]
        if existing and not args.overwrite:
            line.say(f"deepiso separate: {target}/ already holds {', '.join(existing)}; use --overwrite to "
                     "replace them (skipped)")
            failures += 1
            continue
        try:
            x, rate = read_audio(path)
        except AudioFileError as exc:
            line.say(f"deepiso separate: {exc}")
            failures += 1
            continue
        needed = -(-separator.min_samples * rate // separator.rate)
        if x.shape[0] < needed:
            line.say(f"deepiso separate: {path}: {x.shape[0]} sample(s) at {rate} Hz is shorter than one analysis "
                     f"frame of the model ({separator.min_samples} samples at {separator.rate} Hz = "
                     f"{1000 * separator.min_samples / separator.rate:.1f} ms): nothing to separate (skipped)")
            failures += 1
            continue
        t0 = time.monotonic()
        stems = separator.separate(x, rate, progress=lambda done, total, name=name: line.show(
            f"{name}: {100 * done / total:5.1f}%", done == total))
        if stems.nonfinite:
            line.say(f"deepiso separate: warning: {path}: {stems.nonfinite} of {x.size} samples are not finite "
                     "(NaN or infinite); they were taken as silence")
        try:
            _write_stems(target, {"vocals": stems.vocals, "instrumental": stems.instrumental}, rate, args.format)
        except (OSError, AudioFileError) as exc:
            line.say(f"deepiso separate: {target}: cannot write stems: {exc}")
            failures += 1
            continue
        if not args.quiet:
            line.say(f"{name}: done, {x.shape[0] / rate:.1f} s of audio in {time.monotonic() - t0:.1f} s "
                     f"→ {target}/")
    return 1 if failures else 0


# ----------------------------------------------------------------------------
# virtual-mic


def cmd_virtual_mic(args: argparse.Namespace) -> int:
    from . import virtual_device as vd
    from .devices import DeviceError

    try:
        if args.action == "up":
            state = vd.up(rate=args.samplerate, channels=args.channels)
        elif args.action == "down":
            n = vd.down()
            print("virtual microphone removed" if n else "virtual microphone was not up")
            return 0
        else:
            state = vd.status()
    except DeviceError as exc:
        _err("virtual-mic", str(exc))
        return 1
    print(state.describe())
    return 0 if state.up or args.action == "status" else 1


# ----------------------------------------------------------------------------
# argument definitions


def _add_isolator_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--floor", type=float, default=None, metavar="DBFS",
                   help="input floor in dBFS: quieter input is silence (model skipped, state restarted); "
                        "set it just above the microphone's noise floor, e.g. -60 (default: -80, near-silence)")
    p.add_argument("--synthesis-length", type=int, default=None, metavar="N",
                   help="run the model with a low-delay synthesis of N samples (hop <= N < n_fft; 0 = the full "
                        "window): the delay becomes N - hop, at a cost in quality unless the model was trained "
                        "for it (default: the model's own)")


def _isolator(model: str, channels: int, floor_db: float | None, synthesis_length: int | None = None) -> Any:
    """The isolator for ``model``; ``None`` keeps its default floor (digital silence) and the model's synthesis."""
    from .plugins.isolator import Isolator

    return Isolator(model, channels=channels, synthesis_length=synthesis_length,
                    **({} if floor_db is None else {"floor_dbfs": floor_db}))


def add_parsers(sub: Any) -> None:
    """Add the live sub-commands to the ``deepiso`` parser's sub-parsers."""
    backends = ("auto", "pulse", "jack", "sounddevice", "pyaudio")
    p = sub.add_parser("devices", help="list audio inputs and outputs",
                       epilog="examples:\n"
                              "  deepiso devices                     # PortAudio devices and PulseAudio sinks/sources\n"
                              "  deepiso devices --backend pyaudio\n"
                              "  deepiso live -i 2 -o 5              # use the devices numbered 2 and 5\n")
    p.add_argument("--backend", choices=("sounddevice", "pyaudio"), default="sounddevice",
                   help="whose PortAudio device list to show (default: sounddevice)")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("live", help="isolate the voice live, from a microphone or call to a device or virtual mic",
                       epilog="examples:\n"
                              "  deepiso virtual-mic up && deepiso live -o deepiso   # the voice, alone, "
                              "into the 'deepiso' microphone\n"
                              "  deepiso live                                  # default microphone to default "
                              "output\n"
                              "  deepiso live -i 2 -o 5 --latency high         # devices from 'deepiso devices', "
                              "more buffering\n"
                              "  deepiso live --mix karaoke                    # the music without the voice\n"
                              "  deepiso live --backend file -i song.wav -o voice.wav --fast --align\n"
                              "  deepiso latency                               # what the delay is made of\n")
    p.add_argument("--input", "-i", default=None, help="input device: number, name, PulseAudio source (or FILE "
                   "with --backend file)")
    p.add_argument("--output", "-o", default=None, help="output device: number, name, PulseAudio sink, 'deepiso' "
                   "for the virtual microphone (or FILE with --backend file)")
    p.add_argument("--model", "-m", default="default", help="model name or .onnx path; 'none' = pass-through")
    p.add_argument("--mix", default="vocals", help="vocals | karaoke | instrumental | mixture | 'VOCALS_DB,INSTR_DB'")
    p.add_argument("--blocksize", type=int, default=256, help="frames per callback (0 = variable)")
    p.add_argument("--latency", default="low", metavar="low|high|MS",
                   help="output buffering: low (pulse: two blocks and at least 12 ms), high, or "
                        "milliseconds; longer buffers survive a busier machine at that much more delay")
    p.add_argument("--resync", type=float, default=0.0, metavar="S",
                   help="sounddevice/pyaudio: after an xrun, restart the stream once S seconds pass without "
                        "another (0.3 is good), winning back the delay an underflow adds; 0 = never. "
                        "The pulse backend holds its delay by itself")
    p.add_argument("--backend", choices=(*backends, "file"), default="auto",
                   help="auto: jack on PipeWire with pipewire-jack installed, else pulse (the native "
                        "PulseAudio/PipeWire client) where a server runs, else sounddevice; jack: PipeWire's "
                        "JACK API or a JACK server, at the graph's rate; pyaudio; file (--input/--output are files)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show what the audio libraries print (otherwise counted in the status line)")
    p.add_argument("--samplerate", type=int, default=None,
                   help="device rate (default: the model's rate; on jack the graph's)")
    p.add_argument("--channels", type=int, default=1, help="channels processed (each on its own)")
    p.add_argument("--gain", type=float, default=0.0, help="output gain in dB")
    p.add_argument("--gate", type=float, default=None, help="noise gate threshold in dBFS (default: off)")
    _add_isolator_arguments(p)
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C)")
    p.add_argument("--quiet", "-q", action="store_true", help="no status line")
    p.add_argument("--fast", action="store_true", help="file backend: as fast as possible, not in real time")
    p.add_argument("--align", action="store_true", help="file backend: remove the latency from the output file")
    p.add_argument("--stats-json", default=None, metavar="FILE",
                   help="write the final statistics as JSON to this file (default: none written)")
    p.set_defaults(func=_live_entry)

    p = sub.add_parser("separate", help="split files into vocals and instrumental stems with the live engine's model",
                       epilog="Stereo and multichannel files are separated once, from the mean of their channels, and "
                              "the estimate is applied to each channel. Existing stems are kept unless --overwrite "
                              "is given.\n\n"
                              "examples:\n"
                              "  deepiso separate song.mp3 -o stems            # stems/song/vocals.wav, "
                              "stems/song/instrumental.wav\n"
                              "  deepiso separate *.flac -o stems --format flac\n"
                              "  deepiso separate take.wav -o stems --overwrite  # replace the stems of a "
                              "former run\n"
                              "  deepiso separate talk.wav -o out --floor -60  # quieter than -60 dBFS is "
                              "silence\n")
    p.add_argument("files", nargs="+", help="audio files to split (anything ffmpeg or soundfile reads)")
    p.add_argument("-o", "--output-dir", required=True, help="stems go to DIR/NAME/{vocals,instrumental}.EXT")
    p.add_argument("--model", "-m", default="default", help="model name or .onnx path (see: deepiso models)")
    _add_isolator_arguments(p)
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="format of the stems")
    p.add_argument("--overwrite", action="store_true", help="replace stems that a former run left in DIR/NAME/")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_separate)

    p = sub.add_parser("virtual-mic", help="create/remove a 'deepiso' microphone for call apps (PulseAudio/PipeWire)",
                       epilog="examples:\n"
                              "  deepiso virtual-mic up        # then choose 'deepiso' as the microphone in the "
                              "call app\n"
                              "  deepiso live -o deepiso       # and feed it the isolated voice\n"
                              "  deepiso virtual-mic status\n"
                              "  deepiso virtual-mic down\n")
    p.add_argument("action", choices=("up", "down", "status"),
                   help="up: create it (or keep it); down: remove it; status: say whether it is up")
    p.add_argument("--samplerate", type=int, default=48_000, help="rate of the virtual microphone")
    p.add_argument("--channels", type=int, default=1, help="channels of the virtual microphone")
    p.set_defaults(func=cmd_virtual_mic)


def _live_entry(args: argparse.Namespace) -> int:
    if args.blocksize == 0:
        args.blocksize = None
    return cmd_live(args)
