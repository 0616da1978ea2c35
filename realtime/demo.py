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
* ``demo.json`` — SI-SDR of the vocals and of the mixture against the true
  voice, the measured end-to-end delay against the reported latency, xruns.
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
    xruns: int
    faults: int
    out_dir: str


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB of two ``(samples,)`` signals."""
    ref = reference.astype(np.float64)
    est = estimate.astype(np.float64)
    scale = np.dot(est, ref) / max(np.dot(ref, ref), 1e-20)
    target = scale * ref
    noise = est - target
    return float(10 * np.log10(max(np.dot(target, target), 1e-20) / max(np.dot(noise, noise), 1e-20)))


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


def run_demo(out_dir: Path, model: str = "default", backend: str = "sounddevice", blocksize: int = 256,
             snr_db: float = 0.0, log=print) -> DemoResult:
    """Play the bundled clip through the live engine on private virtual devices; write the results."""
    from .audio_io import resample, write_audio
    from .backends import open_stream
    from .host import Host
    from .live import build_chain
    from .virtual_device import PULSE_RATE, private_pulse

    chain, isolator, _, _ = build_chain(model, "vocals", channels=1)
    rate = isolator.spec.sample_rate if isolator is not None else PULSE_RATE
    mixture, truth = load_clip(rate, snr_db)
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="deepiso-demo-") as tmp, private_pulse(tmp) as server:
        log("started a private PulseAudio server with virtual devices")
        host = Host(chain, rate, 1, block_size=blocksize)
        stream = open_stream(host, backend, "iso_in", "iso_out", rate, blocksize, "low")
        played = resample(mixture[:, None], rate, PULSE_RATE)[:, 0]
        log(f"playing {mixture.size / rate:.1f} s through the engine ({host.describe()})")
        recording = server.record_through(stream, np.repeat(played[:, None], 2, axis=1), lead=0.5, tail=0.6)
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
    inp = rec_in[start:start + n]
    # The engine's vocals follow its input by the end-to-end delay: find it on the voice.
    delay = _lag(truth, rec_out[start:], int(1.0 * rate))
    vocals = rec_out[start + delay:start + delay + n]
    vocals = np.pad(vocals, (0, n - vocals.size))
    inp = np.pad(inp, (0, n - inp.size))
    instrumental = inp - vocals

    write_audio(out_dir / "mixture.wav", mixture, rate)
    write_audio(out_dir / "vocals.wav", vocals, rate)
    write_audio(out_dir / "instrumental.wav", instrumental, rate)
    s_voc, s_mix = si_sdr(vocals, truth), si_sdr(inp, truth)
    result = DemoResult(
        model=model, sample_rate=rate, seconds=round(n / rate, 2),
        reported_latency_ms=round(1000 * reported, 1), measured_delay_ms=round(1000 * delay / rate, 1),
        si_sdr_vocals_db=round(s_voc, 2), si_sdr_mixture_db=round(s_mix, 2),
        si_sdr_improvement_db=round(s_voc - s_mix, 2), xruns=stats.xruns, faults=stats.faults,
        out_dir=str(out_dir),
    )
    plot(out_dir / "demo.png", rate, mixture, vocals, truth,
         f"deepiso live, model {model}: SI-SDR {s_voc:.1f} dB (mixture {s_mix:.1f} dB), "
         f"delay {result.measured_delay_ms:.0f} ms")
    (out_dir / "demo.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def cmd_demo(args: Any) -> int:
    from .backends import DeviceError
    from .host import PluginError

    def log(msg: str) -> None:
        print(f"deepiso demo: {msg}", file=sys.stderr)

    try:
        r = run_demo(Path(args.out), model=args.model, backend=args.backend, blocksize=args.blocksize,
                     snr_db=args.snr, log=log)
    except (PluginError, DeviceError, RuntimeError, FileNotFoundError) as exc:
        log(f"error: {exc}")
        return 1
    log(f"vocals SI-SDR {r.si_sdr_vocals_db:.1f} dB vs mixture {r.si_sdr_mixture_db:.1f} dB "
        f"(improvement {r.si_sdr_improvement_db:+.1f} dB); end-to-end delay {r.measured_delay_ms:.0f} ms "
        f"(engine reports {r.reported_latency_ms:.0f} ms); xruns {r.xruns}")
    log(f"wrote mixture.wav, vocals.wav, instrumental.wav, demo.png and demo.json to {r.out_dir}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the live engine on a bundled clip through private virtual devices")
    p.add_argument("-o", "--out", default="deepiso-demo", help="output folder (default: deepiso-demo)")
    p.add_argument("-m", "--model", default="default", help="model name or .onnx path (default: default)")
    p.add_argument("--backend", choices=("sounddevice", "pyaudio"), default="sounddevice")
    p.add_argument("--blocksize", type=int, default=256)
    p.add_argument("--snr", type=float, default=0.0, help="voice-to-music ratio of the clip in dB (default 0)")
    p.set_defaults(func=cmd_demo)
