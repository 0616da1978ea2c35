"""int8 dynamic quantisation and its measured cost.

:func:`quantize_int8` turns a float graph into one with int8 weights
(onnxruntime's dynamic quantisation: MatMul/Gemm and LSTM weights in int8,
activations quantised per call). :func:`int8_quality` measures what that
costs:

* with mixtures (a folder of track folders, each with ``mixture.wav`` and
  ``vocals.wav``, as in MUSDB18's WAV layout): the SI-SDR of the separated
  voice with the float and the int8 step graph, and its change in dB;
* without: the output difference on a synthetic signal, stated as such
  (relative RMS error and max |Δ| of the model output, not an audio quality).

Either way the result also states a tolerance (relative RMS error of the int8
output against the float output) that the int8 file keeps on other inputs,
and the difference between the int8 step and sequence graphs (dynamic
quantisation chooses its scales per call, so the two are close, not equal).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from deepiso.realtime import dsp
from deepiso.realtime.audio_io import read_audio
from deepiso.realtime.frame import FrameSpec

from .verify import awareness_inputs, max_abs_diff, ort_sequence, ort_steps, synthetic_signal

#: An int8 model whose output differs from the float one by more than this (relative RMS) fails the export.
MAX_RELATIVE_ERROR = 0.25
#: An int8 model that loses more SI-SDR than this (dB) on the supplied mixtures fails the export.
MAX_SI_SDR_LOSS_DB = 3.0
#: Frames of the synthetic measurement.
QUALITY_FRAMES = 1000

Runner = Callable[[np.ndarray], np.ndarray]


class QuantizationError(Exception):
    """int8 quantisation failed or costs more quality than allowed."""


def quantize_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """Dynamic int8 quantisation of a float graph (weights int8, activations per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="deepiso-int8-") as tmp:
        src, pre, dst = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        try:
            # Shape inference and graph fusion first, as onnxruntime recommends:
            # the quantiser then sees fused MatMul/Gemm nodes with known shapes.
            quant_pre_process(str(src), str(pre))
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8)
        except Exception as exc:  # onnxruntime.quantization raises bare Exceptions
            raise QuantizationError(f"int8 quantisation failed: {exc}") from None
        quantized = onnx.load(str(dst))
    # Keep only what the quantiser needs; the model card is attached afterwards.
    del quantized.metadata_props[:]
    return quantized


def relative_rms_error(test: np.ndarray, reference: np.ndarray) -> float:
    """``rms(test - reference) / rms(reference)`` (inf for non-finite output)."""
    if not np.all(np.isfinite(test)):
        return float("inf")
    ref = reference.astype(np.float64)
    err = np.sqrt(np.mean((test.astype(np.float64) - ref) ** 2))
    return float(err / max(np.sqrt(np.mean(ref**2)), 1e-12))


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB of 1-D ``estimate`` against ``reference``."""
    ref = reference.astype(np.float64)
    est = estimate.astype(np.float64)
    energy = float(np.dot(ref, ref))
    if energy <= 1e-12:
        return float("nan")
    target = (np.dot(est, ref) / energy) * ref
    noise = est - target
    return float(10 * math.log10(max(np.dot(target, target), 1e-20) / max(np.dot(noise, noise), 1e-20)))


def vocal_spectrum(spec: FrameSpec, y: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """Complex vocal spectrum ``(..., T, bins)`` from model output ``y`` and the mixture spectrum."""
    n = spec.n_bins
    if spec.output == "spectrum":
        return dsp.from_features(y)
    if spec.output == "ratio_mask":
        return (mixture * y).astype(np.complex64)
    return (mixture * (y[..., :n] + 1j * y[..., n:])).astype(np.complex64)


def separate(spec: FrameSpec, run: Runner, mixture: np.ndarray) -> np.ndarray:
    """Offline voice estimate ``(C, N)`` of ``mixture`` ``(C, N)`` at ``spec.sample_rate``.

    ``run`` maps model inputs ``(C, T, input_size)`` to outputs ``(C, T, output_size)``.
    """
    frames = dsp.stft(mixture, spec)
    x = np.ascontiguousarray(dsp.awareness(dsp.features(frames), spec.past_frames, spec.future_frames))
    voice = dsp.istft(vocal_spectrum(spec, run(x), frames), spec)
    return dsp.align(voice, spec.synthesis_delay, mixture.shape[-1])


def find_mixtures(folder: str | Path) -> list[tuple[Path, Path]]:
    """``(mixture.wav, vocals.wav)`` pairs of every track folder under ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise QuantizationError(f"{folder}: no such folder of mixtures")
    pairs = [(d / "mixture.wav", d / "vocals.wav") for d in sorted(folder.rglob("*"))
             if d.is_dir() and (d / "mixture.wav").is_file() and (d / "vocals.wav").is_file()]
    if not pairs:
        raise QuantizationError(f"{folder}: no track folders with mixture.wav and vocals.wav")
    return pairs


def _session(model: onnx.ModelProto) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _round_up(value: float) -> float:
    """Round up to two significant digits (a tolerance a person can read)."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / scale) * scale


def int8_quality(spec: FrameSpec, layers: int, hidden: int, float_step: onnx.ModelProto,
                 int8_step: onnx.ModelProto, int8_seq: onnx.ModelProto, *, mixtures: str | Path | None = None,
                 max_relative_error: float = MAX_RELATIVE_ERROR, max_si_sdr_loss_db: float = MAX_SI_SDR_LOSS_DB,
                 seed: int = 1) -> dict[str, Any]:
    """Measure the int8 graphs against the float step graph; raise :class:`QuantizationError` past the limits."""
    f_step, q_step, q_seq = _session(float_step), _session(int8_step), _session(int8_seq)
    x = awareness_inputs(spec, synthetic_signal(spec, QUALITY_FRAMES, channels=2, seed=seed))
    ref = ort_steps(f_step, x, layers, hidden)
    out = ort_steps(q_step, x, layers, hidden)
    rel = relative_rms_error(out, ref)
    seq = ort_sequence(q_seq, x, layers, hidden)
    result: dict[str, Any] = {
        "method": "onnxruntime dynamic quantisation: int8 weights (MatMul, Gemm, LSTM), activations per call",
        "synthetic": {
            "note": "output difference on a synthetic signal, not an audio quality measure",
            "frames": QUALITY_FRAMES,
            "relative_rms_error": rel,
            "max_abs_diff": max_abs_diff(out, ref),
        },
        "sequence_vs_step": {"relative_rms_error": relative_rms_error(seq, out),
                             "max_abs_diff": max_abs_diff(seq, out)},
        # On other inputs the error varies; twice the measured value, rounded up, is the stated bound.
        "tolerance": {"relative_rms_error": _round_up(max(2 * rel, 1e-3))},
    }
    if not rel <= max_relative_error:
        raise QuantizationError(f"int8 output differs from float by {rel:.3g} (relative RMS), more than the "
                                f"allowed {max_relative_error}")
    if not result["sequence_vs_step"]["relative_rms_error"] <= result["tolerance"]["relative_rms_error"]:
        raise QuantizationError("int8 sequence graph differs from the int8 step graph by "
                                f"{result['sequence_vs_step']['relative_rms_error']:.3g} (relative RMS), more than "
                                f"the stated tolerance {result['tolerance']['relative_rms_error']}")
    if mixtures is None:
        result["kind"] = "synthetic_output_difference"
        return result

    def runner(session: Any) -> Runner:
        return lambda inputs: ort_steps(session, inputs, layers, hidden)

    items = []
    for mix_path, voice_path in find_mixtures(mixtures):
        mix, _ = read_audio(mix_path, sample_rate=spec.sample_rate, channels=1)
        voice, _ = read_audio(voice_path, sample_rate=spec.sample_rate, channels=1)
        n = min(len(mix), len(voice))
        mix, voice = mix[:n, 0][None], voice[:n, 0]
        scores = {"mixture": si_sdr(mix[0], voice),
                  "fp32": si_sdr(separate(spec, runner(f_step), mix)[0], voice),
                  "int8": si_sdr(separate(spec, runner(q_step), mix)[0], voice)}
        items.append({"track": mix_path.parent.name, **scores})
    valid = [i for i in items if all(math.isfinite(i[k]) for k in ("fp32", "int8"))]
    if not valid:
        raise QuantizationError(f"{mixtures}: no track has a voice to score (all vocals are silent)")
    fp32 = float(np.mean([i["fp32"] for i in valid]))
    int8 = float(np.mean([i["int8"] for i in valid]))
    result["kind"] = "si_sdr"
    result["si_sdr"] = {"data": str(mixtures), "tracks": len(valid), "fp32_db": fp32, "int8_db": int8,
                        "delta_db": int8 - fp32,
                        "mixture_db": float(np.mean([i["mixture"] for i in valid])), "items": items}
    if fp32 - int8 > max_si_sdr_loss_db:
        raise QuantizationError(f"int8 loses {fp32 - int8:.2f} dB SI-SDR on {mixtures}, more than the allowed "
                                f"{max_si_sdr_loss_db} dB")
    return result
