"""The model card: what an exported ONNX file says about itself.

The card is JSON stored in the ONNX ``metadata_props`` under
:data:`deepiso.realtime.onnx_model.CARD_KEY`. Format version 1 (validated on
load by :func:`deepiso.realtime.onnx_model.validate_card`)::

    format_version   1
    name, version    the model's name and version (strings)
    graph            "step" (one frame per call) or "sequence" (dynamic time axis)
    frame_spec       FrameSpec.to_dict(): sample rate, STFT, awareness, output kind
    output           the output kind again ("spectrum" | "ratio_mask" | "complex_mask")
    state            {"layers": L, "hidden": H}: h and c are (L, batch, H)
    io               graph input and output names
    model_config     ModelConfig.to_dict(); parameters: count of weights
    training_data    {"sources": [{"name", "license", ...}], "summary": str}
    train_config     the training configuration as recorded in the checkpoint (or null)
    metrics          validation metrics from the checkpoint (or {})
    precision        "fp32" | "int8"; quantization: null or how and at what measured cost
    verification     what the exporter checked and the differences it measured
    sequence_graph   (step graph only) {"file", "weights_sha256"} of the sequence graph
    weights_sha256   sha256 of the serialised graph in this file (structure and weights)
    deepiso_version, opset, ir_version
"""

from __future__ import annotations

import json
from typing import Any

import onnx

from deepiso.realtime.frame import FrameSpec
from deepiso.realtime.onnx_model import (
    CARD_FORMAT_VERSION,
    CARD_KEY,
    INPUT_NAMES,
    OUTPUT_NAMES,
    parse_onnx,
    validate_card,
)
from deepiso.realtime.version import __version__


def base_card(*, name: str, version: str, spec: FrameSpec, model_config: dict[str, Any], parameters: int,
              layers: int, hidden: int, training_data: dict[str, Any] | None = None,
              train_config: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
              opset: int) -> dict[str, Any]:
    """The fields shared by the step and the sequence graph's cards (no hash yet)."""
    data = dict(training_data or {})
    data.setdefault("sources", [])
    data.setdefault("summary", "not recorded in the checkpoint")
    for source in data["sources"]:
        if not isinstance(source, dict) or "name" not in source or "license" not in source:
            raise ValueError(f"every training data source needs a 'name' and a 'license', got {source!r}")
    return {
        "format_version": CARD_FORMAT_VERSION,
        "name": name,
        "version": version,
        "frame_spec": spec.to_dict(),
        "output": spec.output,
        "state": {"layers": int(layers), "hidden": int(hidden)},
        "io": {"inputs": list(INPUT_NAMES), "outputs": list(OUTPUT_NAMES)},
        "model_config": model_config,
        "parameters": int(parameters),
        "training_data": data,
        "train_config": train_config,
        "metrics": dict(metrics or {}),
        "precision": "fp32",
        "quantization": None,
        "verification": {},
        "deepiso_version": __version__,
        "opset": opset,
    }


def graph_sha256(model: onnx.ModelProto) -> str:
    """sha256 of the serialised graph exactly as :func:`deepiso.realtime.onnx_model.parse_onnx` computes it."""
    return parse_onnx(model.SerializeToString(), "exported model").graph_sha256


def attach_card(model: onnx.ModelProto, card: dict[str, Any]) -> bytes:
    """Write ``card`` (plus this graph's ``weights_sha256``) into ``model``; return the file bytes.

    Raises ``ValueError`` when the card would not pass the loader's validation,
    so an exporter can never write a file the engine refuses.
    """
    del model.metadata_props[:]
    model.producer_name = "deepiso"
    model.producer_version = __version__
    card = dict(card, weights_sha256=graph_sha256(model), ir_version=int(model.ir_version))
    entry = model.metadata_props.add()
    entry.key = CARD_KEY
    entry.value = json.dumps(card, sort_keys=True)
    data = model.SerializeToString()
    parsed = parse_onnx(data, "exported model")
    if parsed.graph_sha256 != card["weights_sha256"]:  # protobuf re-serialised the graph differently
        raise ValueError("the graph changed while the model card was attached")
    validate_card(json.loads(parsed.metadata[CARD_KEY]), "exported model")
    return data
