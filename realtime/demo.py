"""The live engine end to end on a machine with no sound card.

``deepiso demo`` starts a private PulseAudio server with virtual devices only,
plays a bundled clip (a voice over music, see ``assets/DEMO_SOURCES.md``)
into a virtual input, runs the live engine on it — the same duplex device
stream, host and isolator as ``deepiso live`` — into a virtual output, and
records input and output on one clock. It then writes, into ``--out``:

* ``mixture.wav`` — what was played;
* ``vocals.wav`` — what the engine produced, aligned to the mixture;
* ``instrumental.wav`` — the recorded input minus the vocals;
* ``demo.png`` — the report's Table 2 view (waveforms of source, prediction
  and truth) with spectrograms;
* ``demo.json`` — SI-SDR (:mod:`deepiso.realtime.metrics`) of the live vocals,
  of the mixture and of the same model run offline (``deepiso separate``'s
  path) against the true voice, the measured end-to-end delay against the
  reported latency, xruns, and how often samples were lost or repeated on the way.

A busy machine can make the virtual devices lose or repeat a few samples (an
underrun of the player, an xrun of the duplex stream). The recording is
followed window by window (:func:`track`): such a slip costs the samples it
lost, not every window after it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

ASSETS = "deepiso.realtime"


@dataclass
class DemoResult:
    model: str
    sample_rate: int
    seconds: float
    reported_latency_ms: float
    measured_delay_ms: float
    si_sdr_vocals_db: float
    si_sdr_mixture_db: float
    si_sdr_improvement_db: float
    si_sdr_offline_db: float | None  # the same model on the same clip through deepiso separate (None: no model)
    xruns: int
    faults: int
    input_jumps: int  # where the recorded input lost or repeated samples against the clip
    output_jumps: int  # where the vocals did against the voice (the input's jumps among them)
    kernels_compiled_while_running: int  # numba signatures compiled after the stream opened: 0
    out_dir: str


def load_clip(rate: int, snr_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The bundled voice and background at ``rate``, mixed at ``snr_db``: ``(mixture, voice)``, each ``(n,)``.

    The SNR is measured where the voice is active; the mixture peaks at -3 dBFS.
    """
    from .audio_io import read_audio

    files = resources.files(ASSETS).joinpath("assets")
    with resources.as_file(files / "demo_voice.ogg") as v, resources.as_file(files / "demo_background.ogg") as b:
        voice = read_audio(v, sample_rate=rate, channels=1)[0][:, 0]
        background = read_audio(b, sample_rate=rate, channels=1)[0][:, 0]
    n = min(voice.size, background.size)
    voice, background = voice[:n], background[:n]
    active = np.abs(voice) > 1e-3
    pv = np.mean(voice[active] ** 2)
    pb = np.mean(background[active] ** 2)
    background = background * np.sqrt(pv / pb / 10 ** (snr_db / 10))
    mixture = voice + background
    peak = np.abs(mixture).max()
    g = 10 ** (-3 / 20) / peak
    return (mixture * g).astype(np.float32), (voice * g).astype(np.float32)


def _lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int) -> int:
    """Delay (samples, >= 0) of ``delayed`` against ``reference`` by cross-correlation."""
    n = 1 << int(np.ceil(np.log2(reference.size + delayed.size)))
    spec = np.fft.rfft(delayed, n) * np.conj(np.fft.rfft(reference, n))
    xc = np.fft.irfft(spec, n)[: max_lag + 1]
    return int(np.argmax(xc))


@dataclass
class Track:
    """``recorded`` cut to follow ``reference`` window by window (see :func:`track`)."""

    aligned: np.ndarray
    lags: list[int]  # the lag of every window, samples
    jumps: int  # how often the lag changed: samples lost or repeated on the way


def _window_corr(ref: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Normalised correlation of ``ref`` against every offset of ``seg`` (``seg.size - ref.size + 1`` values)."""
    w = ref.size
    n = 1 << int(np.ceil(np.log2(seg.size + w)))
    xc = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(ref, n)), n)[: seg.size - w + 1]
    c = np.concatenate([[0.0], np.cumsum(seg.astype(np.float64) ** 2)])
    energy = c[w:] - c[:-w]
    return xc / np.sqrt(np.maximum(energy * np.dot(ref, ref), 1e-30))


def track(reference: np.ndarray, recorded: np.ndarray, lag: int, rate: int, window_s: float = 0.5,
          search_s: float = 0.1, min_corr: float = 0.3, margin: float = 0.1) -> Track:
    """Follow ``reference`` through ``recorded``, which starts ``lag`` samples late and may lose or repeat
    samples on the way (an underrun on a virtual device, an xrun in the engine's duplex stream).

    Window by window (``window_s``), the lag moves to the offset within ``search_s`` of the last one
    that correlates best, but only where the reference window has signal, that offset correlates at
    least ``min_corr`` and beats the last lag by ``margin``: a constant delay is never re-fitted
    window by window, and voice-free windows keep the lag they follow.
    """
    ref = reference.astype(np.float64)
    w, s = max(1, int(window_s * rate)), int(search_s * rate)
    front = ref.size + s  # the lag can never fall further than one search step a window
    rec = np.pad(recorded.astype(np.float64), (front, ref.size + 2 * s + w + abs(lag)))
    floor = 1e-3 * np.sqrt(np.mean(ref**2)) if ref.size else 0.0
    lags: list[int] = []
    jumps = 0
    for i in range(0, ref.size, w):
        r = ref[i:i + w]
        if r.size == w and np.sqrt(np.mean(r**2)) > floor:
            lo = front + i + lag - s  # offsets lag - s ... lag + s; corr[s] is the lag held so far
            corr = _window_corr(r, rec[lo:lo + 2 * s + w])
            best = int(np.argmax(corr))
            if corr[best] >= min_corr and corr[best] > corr[s] + margin:
                jumps += 1
                lag += best - s
        lags.append(lag)
    # Each jump lies in the window that found it or the one before: it is put where the
    # correlation with the old lag before it plus the new lag after it is largest.
    per_sample = np.repeat(np.asarray(lags), w)[: ref.size]
    t = np.arange(ref.size)
    for k in range(1, len(lags)):
        if lags[k] != lags[k - 1]:
            lo, hi = (k - 1) * w, min((k + 1) * w, ref.size)
            seg = t[lo:hi]
            old = np.cumsum(ref[seg] * rec[front + seg + lags[k - 1]])
            new = np.cumsum((ref[seg] * rec[front + seg + lags[k]])[::-1])[::-1]
            split = lo + int(np.argmax(np.concatenate([[0.0], old]) + np.concatenate([new, [0.0]])))
            per_sample[lo:split], per_sample[split:hi] = lags[k - 1], lags[k]
    aligned = rec[front + t + per_sample]
    return Track(aligned.astype(np.float32), lags, jumps)


def plot(path: Path, rate: int, mixture: np.ndarray, vocals: np.ndarray, truth: np.ndarray, title: str) -> None:
    """The report's Table 2 view: waveforms and spectrograms of source, prediction and truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("source (mixture)", mixture), ("prediction (deepiso vocals)", vocals), ("truth (voice)", truth)]
    fig, axes = plt.subplots(3, 2, figsize=(12, 7), sharex="col")
    t = np.arange(mixture.size) / rate
    lim = max(np.abs(mixture).max(), 1e-3)
    for i, (name, x) in enumerate(rows):
        axes[i, 0].plot(t, x, lw=0.4, color="C0" if i == 0 else ("C3" if i == 1 else "C2"))
        axes[i, 0].set_ylim(-lim, lim)
        axes[i, 0].set_ylabel(name, fontsize=8)
        axes[i, 1].specgram(x + 1e-9, NFFT=1024, Fs=rate, noverlap=768, cmap="magma", vmin=-140, vmax=-20)
        axes[i, 1].set_ylabel("Hz", fontsize=8)
    axes[2, 0].set_xlabel("seconds")
    axes[2, 1].set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_demo(out_dir: Path, model: str = "default", backend: str = "pulse", blocksize: int = 256,
             snr_db: float = 0.0, log=print) -> DemoResult:
    """Play the bundled clip through the live engine on private virtual devices; write the results."""
    from deepiso.testing.pulse_server import PULSE_RATE, private_pulse

    from .audio_io import resample, write_audio
    from .host import FULL_SCALE, Host, compiled_kernels
    from .live import build_chain, realtime_process
    from .metrics import si_sdr
    from .streams import open_stream

    chain, isolator, _, _ = build_chain(model, "vocals", channels=1)
    rate = isolator.spec.sample_rate if isolator is not None else PULSE_RATE
    mixture, truth = load_clip(rate, snr_db)
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="deepiso-demo-") as tmp, private_pulse(tmp) as server:
        log("started a private PulseAudio server with virtual devices")
        host = Host(chain, rate, 1, block_size=blocksize, output_limit=FULL_SCALE)
        stream = open_stream(host, backend, "iso_in", "iso_out", rate, blocksize, "low")
        played = resample(mixture[:, None], rate, PULSE_RATE)[:, 0]
        log(f"playing {mixture.size / rate:.1f} s through the engine ({host.describe()})")
        kernels = compiled_kernels()
        with realtime_process():
            recording = server.record_through(stream, np.repeat(played[:, None], 2, axis=1), lead=0.5, tail=0.6)
        kernels = compiled_kernels() - kernels
        stats = host.stats()
        reported = stream.latency_samples / rate

    rec_in = resample(np.ascontiguousarray(recording[:, :1]), PULSE_RATE, rate)[:, 0]
    rec_out = resample(np.ascontiguousarray(recording[:, 2:3]), PULSE_RATE, rate)[:, 0]
    if np.abs(rec_in).max() < 1e-4:
        raise RuntimeError("the clip never reached the engine's input (virtual devices not working)")
    if np.abs(rec_out).max() < 1e-6:
        raise RuntimeError("the engine produced no output on the virtual device")
    n = mixture.size
    start = _lag(mixture, rec_in, rec_in.size - n) if rec_in.size > n else 0
    # The virtual devices can lose samples under load (an underrun of the player, an xrun of the
    # engine's duplex stream): the input is followed on the mixture and the vocals on the voice,
    # window by window, so a lost block costs the windows it touches and not the rest of the clip.
    inp = track(mixture, rec_in, start, rate)
    # The engine's vocals follow its input by the end-to-end delay: find it on the voice.
    delay = _lag(truth, rec_out[start:], int(1.0 * rate))
    voc = track(truth, rec_out, start + delay, rate)
    vocals = voc.aligned
    instrumental = inp.aligned - vocals
    delay = int(np.median(np.subtract(voc.lags, inp.lags)))

    write_audio(out_dir / "mixture.wav", mixture, rate)
    write_audio(out_dir / "vocals.wav", vocals, rate)
    write_audio(out_dir / "instrumental.wav", instrumental, rate)
    s_voc, s_mix = si_sdr(vocals, truth), si_sdr(inp.aligned, truth)
    s_off = None
    if isolator is not None:  # what the live path costs against the offline one
        from .separator import Separator

        s_off = round(si_sdr(Separator(isolator.source).separate(mixture, rate).vocals[:, 0], truth), 2)
    result = DemoResult(
        model=model, sample_rate=rate, seconds=round(n / rate, 2),
        reported_latency_ms=round(1000 * reported, 1), measured_delay_ms=round(1000 * delay / rate, 1),
        si_sdr_vocals_db=round(s_voc, 2), si_sdr_mixture_db=round(s_mix, 2),
        si_sdr_improvement_db=round(s_voc - s_mix, 2), si_sdr_offline_db=s_off, xruns=stats.xruns,
        faults=stats.faults,
        input_jumps=inp.jumps, output_jumps=voc.jumps, kernels_compiled_while_running=kernels,
        out_dir=str(out_dir),
    )
    plot(out_dir / "demo.png", rate, mixture, vocals, truth,
         f"deepiso live, model {model}: SI-SDR {s_voc:.1f} dB (mixture {s_mix:.1f} dB), "
         f"delay {result.measured_delay_ms:.0f} ms")
    (out_dir / "demo.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def cmd_demo(args: Any) -> int:
    from .chain import PluginError
    from .devices import DeviceError

    def log(msg: str) -> None:
        print(f"deepiso demo: {msg}", file=sys.stderr)

    try:
        r = run_demo(Path(args.out), model=args.model, backend=args.backend, blocksize=args.blocksize,
                     snr_db=args.snr, log=log)
    except (PluginError, DeviceError, RuntimeError, FileNotFoundError) as exc:
        log(f"error: {exc}")
        return 1
    log(f"vocals SI-SDR {r.si_sdr_vocals_db:.1f} dB vs mixture {r.si_sdr_mixture_db:.1f} dB "
        f"(improvement {r.si_sdr_improvement_db:+.1f} dB"
        + (f"; {r.si_sdr_offline_db:.1f} dB offline" if r.si_sdr_offline_db is not None else "")
        + f"); end-to-end delay {r.measured_delay_ms:.0f} ms "
        f"(engine reports {r.reported_latency_ms:.0f} ms); xruns {r.xruns}"
        + (f"; samples lost or repeated at {r.input_jumps} point(s) of the input and {r.output_jumps} of the "
           f"output (scored window by window)" if r.input_jumps or r.output_jumps else ""))
    log(f"wrote mixture.wav, vocals.wav, instrumental.wav, demo.png and demo.json to {r.out_dir}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the live engine on a bundled clip through private virtual devices",
                       epilog="examples:\n"
                              "  deepiso demo                        # mixture.wav, vocals.wav, instrumental.wav, "
                              "demo.png in ./deepiso-demo\n"
                              "  deepiso demo --snr -5 -o /tmp/demo  # louder music\n"
                              "  deepiso demo --backend sounddevice  # through PortAudio\n")
    p.add_argument("-o", "--out", default="deepiso-demo", help="output folder (default: deepiso-demo)")
    p.add_argument("-m", "--model", default="default", help="model name or .onnx path (default: default)")
    p.add_argument("--backend", choices=("pulse", "sounddevice", "pyaudio"), default="pulse",
                   help="pulse, the native client, or sounddevice/pyaudio through PortAudio")
    p.add_argument("--blocksize", type=int, default=256, help="frames per callback, as 'deepiso live --blocksize'")
    p.add_argument("--snr", type=float, default=0.0, help="voice-to-music ratio of the clip in dB")
    p.set_defaults(func=cmd_demo)
