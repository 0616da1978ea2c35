"""Checkpoint → verified ONNX files with a model card.

``export_checkpoint("run/best.pt", "model.onnx")`` writes two files:

* ``model.onnx``: the streaming step graph (one frame per call, explicit
  ``h``/``c``), which the engine loads with
  :func:`deepiso.realtime.onnx_model.load_model`;
* ``model.seq.onnx``: the sequence graph (dynamic time axis, same state
  inputs and outputs) for offline files; the step card names it and records
  its sha256.

The export fails (raises, writes nothing) unless onnxruntime reproduces
PyTorch frame by frame within the tolerance, the sequence graph reproduces the
step graph, and the written file loads and runs through the engine's own
loader with the same result. With ``int8=True`` both graphs are quantised and
the measured quality change is written into the card.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from deepiso.realtime.atomic import atomic_write_bytes
from deepiso.realtime.onnx_model import CARD_KEY, ModelError, load_model, parse_onnx

from .card import attach_card, base_card
from .graphs import OPSET, export_graphs
from .quantize import QuantizationError, int8_quality, quantize_int8, relative_rms_error
from .verify import (
    MIN_FRAMES,
    TOLERANCE,
    VerificationError,
    awareness_inputs,
    check,
    max_abs_diff,
    ort_steps,
    synthetic_signal,
    torch_steps,
)

__all__ = ["ExportError", "ExportResult", "export_checkpoint", "export_model", "sequence_path_for"]


class ExportError(Exception):
    """An export that did not produce a verified model (the message says which step failed)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the step graph, the sequence graph and the step graph's card."""

    step_path: Path
    sequence_path: Path
    card: dict[str, Any]


def sequence_path_for(step_path: str | os.PathLike) -> Path:
    """``model.onnx`` → ``model.seq.onnx`` (the sequence graph beside the step graph)."""
    path = Path(step_path)
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.name
    return path.with_name(f"{stem}.seq.onnx")


def _session(model: onnx.ModelProto) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _check_written(step_path: Path, reference: np.ndarray, x: np.ndarray, tolerance: float,
                   int8_tolerance: float | None) -> None:
    """Load the written files through the engine's loader and compare them with ``reference``.

    The step graph (through IOBinding) must match ``reference`` within
    ``tolerance``; the sequence graph must match the step graph within
    ``tolerance``, or for int8 within the relative RMS error ``int8_tolerance``.
    """
    model = load_model(step_path, batch=1, providers=["CPUExecutionProvider"])
    streamed = np.empty((1, x.shape[1], model.spec.output_size), np.float32)
    for t in range(x.shape[1]):
        streamed[:, t] = model.step(x[:1, t])
    step_diff = max_abs_diff(streamed, reference[:1])
    check("written file through deepiso.realtime.onnx_model.StepModel (IOBinding) vs reference", step_diff,
          tolerance)
    if not model.has_sequence_graph:
        raise VerificationError(f"{step_path}: the engine does not find the sequence graph beside it")
    model.reset()
    whole = model.run_sequence(x[:1])
    if int8_tolerance is None:
        check("written sequence graph vs written step graph", max_abs_diff(whole, streamed), tolerance)
    else:
        check("written int8 sequence graph vs int8 step graph (relative RMS)", relative_rms_error(whole, streamed),
              int8_tolerance)


def export_model(net: torch.nn.Module, out: str | os.PathLike, *, name: str | None = None,
                 version: str = "1.0.0", training_data: dict[str, Any] | None = None,
                 train_config: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                 int8: bool = False, mixtures: str | os.PathLike | None = None, frames: int = MIN_FRAMES,
                 tolerance: float = TOLERANCE, opset: int = OPSET,
                 extra_card: dict[str, Any] | None = None) -> ExportResult:
    """Export ``net`` (an IsolatorNet) to ``out`` (step graph) and its ``.seq.onnx`` sibling.

    ``name`` defaults to the model configuration's name; ``training_data`` is
    ``{"sources": [{"name", "license", ...}], "summary": str}``; ``mixtures``
    is a folder of ``mixture.wav``/``vocals.wav`` track folders used to measure
    int8 quality in SI-SDR (without it the synthetic output difference is
    recorded, labelled as such). ``frames`` >= 500 verification frames,
    ``tolerance`` the max absolute difference allowed. Raises
    :class:`ExportError`; on failure no file is written.
    """
    out = Path(out)
    if not out.name.endswith(".onnx"):
        raise ExportError(f"{out}: the output file name must end in .onnx")
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name ending in .onnx")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: output folder does not exist")
    seq_out = sequence_path_for(out)
    spec, cfg = net.spec, net.cfg
    name = name or (cfg.name if cfg.name != "custom" else out.name[: -len(".onnx")])
    net = net.eval().to("cpu")

    try:
        step_graph, seq_graph = export_graphs(net, opset)
    except Exception as exc:  # the exporter and the checker raise many types
        raise ExportError(f"PyTorch could not export the model to ONNX: {exc}") from exc
    try:
        verification = _verify(net, step_graph, seq_graph, frames, tolerance)
    except VerificationError as exc:
        raise ExportError(f"verification failed, nothing written: {exc}") from None

    card = base_card(name=name, version=version, spec=spec, model_config=cfg.to_dict(),
                     parameters=sum(p.numel() for p in net.parameters()), layers=cfg.layers, hidden=cfg.hidden,
                     training_data=training_data, train_config=train_config, metrics=metrics, opset=opset)
    card["state"].update(getattr(net, "state_card", {}))  # e.g. a GRU's: c passed through unchanged
    card.update(extra_card or {})
    if int8:
        try:
            q_step, q_seq = quantize_int8(step_graph), quantize_int8(seq_graph)
            card["quantization"] = int8_quality(spec, cfg.layers, cfg.hidden, step_graph, q_step, q_seq,
                                                mixtures=mixtures)
        except QuantizationError as exc:
            raise ExportError(f"int8 export failed, nothing written: {exc}") from None
        card["precision"] = "int8"
        step_graph, seq_graph = q_step, q_seq

    card["verification"] = verification
    seq_card = dict(card, graph="sequence")
    seq_bytes = attach_card(seq_graph, seq_card)
    step_card = dict(card, graph="step",
                     sequence_graph={"file": seq_out.name, "weights_sha256": parse_onnx(seq_bytes).graph_sha256})
    step_bytes = attach_card(step_graph, step_card)

    # The engine-side check runs on the written files; remove them if it fails.
    x = awareness_inputs(spec, synthetic_signal(spec, frames, channels=1, seed=2))
    # fp32: the engine must reproduce PyTorch; int8: the int8 graph as onnxruntime runs it without IOBinding.
    reference = ort_steps(_session(step_graph), x, cfg.layers, cfg.hidden) if int8 else torch_steps(net, x)
    atomic_write_bytes(seq_out, seq_bytes)
    atomic_write_bytes(out, step_bytes)
    try:
        _check_written(out, reference, x, tolerance,
                       card["quantization"]["tolerance"]["relative_rms_error"] if int8 else None)
    except (VerificationError, ModelError) as exc:
        out.unlink(missing_ok=True)
        seq_out.unlink(missing_ok=True)
        raise ExportError(f"the written model failed its check and was removed: {exc}") from None
    return ExportResult(step_path=out, sequence_path=seq_out,
                        card=json.loads(parse_onnx(step_bytes).metadata[CARD_KEY]))


def _verify(net: torch.nn.Module, step_graph: onnx.ModelProto, seq_graph: onnx.ModelProto, frames: int,
            tolerance: float) -> dict[str, Any]:
    from .verify import verify_graphs

    return verify_graphs(net, _session(step_graph), _session(seq_graph), frames=frames, tolerance=tolerance)


def _training_data(info: dict[str, Any]) -> dict[str, Any] | None:
    """The training data summary recorded by training, wherever this checkpoint keeps it.

    A checkpoint of ``deepiso train`` records what it read in ``train_config.data_summary``: for mixtures
    made on the fly, every source with its kind, license and minutes, which the card lists.
    """
    config = info.get("train_config") or {}
    for holder in (info, config):
        data = holder.get("training_data") if isinstance(holder, dict) else None
        if isinstance(data, dict):
            return data
    summary = config.get("data_summary") if isinstance(config, dict) else None
    if isinstance(summary, dict) and summary.get("sources"):
        sources = [{"name": s.get("name", ""), "license": s.get("license") or "not recorded",
                    "kind": s.get("kind", ""), "minutes": s.get("minutes", 0.0)} for s in summary["sources"]]
        hours = sum(float(s["minutes"] or 0.0) for s in sources) / 60
        text = (f"{len(sources)} sources, {hours:.1f} h in all, voice over background mixed on the fly "
                f"(data.kind {summary.get('kind')!r})")
        if summary.get("valid_sources"):
            text += "; validation sources: " + ", ".join(s.get("name", "") for s in summary["valid_sources"])
        return {"sources": sources, "summary": text}
    return None


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *, name: str | None = None,
                      version: str | None = None, int8: bool = False, mixtures: str | os.PathLike | None = None,
                      training_data: dict[str, Any] | None = None, frames: int = MIN_FRAMES,
                      tolerance: float = TOLERANCE) -> ExportResult:
    """Export a training checkpoint (see :func:`export_model`); the card takes the checkpoint's metadata.

    ``training_data`` overrides what the checkpoint records. Raises
    :class:`ExportError` (a bad checkpoint included, with its message).
    """
    from deepiso.train.checkpoint import CheckpointError, load_checkpoint

    try:
        net, info = load_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    path = Path(checkpoint)
    extra = {"checkpoint": {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                            "created": info.get("created"), "deepiso_version": info.get("deepiso_version")}}
    return export_model(net, out, name=name, version=version or "1.0.0",
                        training_data=training_data or _training_data(info), train_config=info.get("train_config"),
                        metrics=info.get("metrics"), int8=int8, mixtures=mixtures, frames=frames,
                        tolerance=tolerance, extra_card=extra)
