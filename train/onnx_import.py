"""Exported ONNX → PyTorch: rebuild a network (an :class:`IsolatorNet`, a bandfilter one) from a deepiso model file.

The exporter turns a checkpoint into an ONNX step graph (and int8 copies of
it); this module goes the other way, so that a shipped model can be
fine-tuned, warm-started or inspected in PyTorch when its training
checkpoint is not at hand. The model card says which network to build
(``frame_spec`` and ``model_config``); the weights are read back from the
graph:

* ``Linear`` layers: the ``MatMul`` (or ``Gemm``) weight and the bias of the
  ``Add`` that follows it (the bias keeps the module's name through the
  export, which names the weight); int8 ``MatMulInteger`` weights are
  dequantised (``(q - zero_point) * scale``, per tensor or per column);
* ``LSTM`` layers, in graph order: ONNX's ``W``/``R``/``B`` in gate order
  i, o, f, c become PyTorch's ``weight_ih``/``weight_hh``/``bias_ih``/``bias_hh``
  in gate order i, f, g, o; ``DynamicQuantizeLSTM``'s transposed int8
  weights are dequantised;
* ``GRU`` layers (the bandfilter architecture), in graph order: gate order
  z, r, h becomes PyTorch's r, z, n;
* everything else (LayerNorm, buffers) by its name.

An fp32 file comes back bit for bit (tested). An int8 file comes back with
the quantiser's rounding in every weight: what it computes in PyTorch is
close to, not equal to, what onnxruntime computes with it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepiso.realtime.frame import FrameSpec, FrameSpecError
from deepiso.realtime.onnx_model import ModelError, card_from_onnx

from .model import IsolatorNet, ModelConfig, ModelConfigError, build_model


class OnnxImportError(Exception):
    """An ONNX file whose weights cannot be mapped back onto its network."""


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """``(q - zero_point) * scale`` with per-tensor or per-``axis`` parameters."""
    scale = np.asarray(scale, dtype=np.float64)
    zp = np.asarray(zero_point, dtype=np.float64)
    if scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    else:
        scale, zp = scale.reshape(()), zp.reshape(())
    return ((q.astype(np.float64) - zp) * scale).astype(np.float32)


def _gates_onnx_to_torch(w: np.ndarray, hidden: int) -> np.ndarray:
    """Reorder the gate blocks of axis 0 from ONNX's (i, o, f, c) to PyTorch's (i, f, g, o)."""
    i, o, f, c = (w[k * hidden:(k + 1) * hidden] for k in range(4))
    return np.concatenate([i, f, c, o], axis=0)


class _Graph:
    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.nodes = list(model.graph.node)
        self.init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        # Constant nodes hold values too (some exporters fold weights into them).
        for n in self.nodes:
            if n.op_type == "Constant" and n.output:
                for a in n.attribute:
                    if a.name == "value":
                        self.init[n.output[0]] = numpy_helper.to_array(a.t)
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for n in self.nodes:
            for name in n.input:
                self.consumers[name].append(n)

    def value(self, name: str, what: str) -> np.ndarray:
        if name not in self.init:
            raise OnnxImportError(f"{what} ({name!r}) is not a constant of the graph")
        return self.init[name]

    def bias_after(self, node: Any) -> str | None:
        """Name of the bias initializer added to ``node``'s output (through Cast/Mul of a dequantisation)."""
        frontier, seen = [node.output[0]], set()
        for _ in range(4):
            nxt = []
            for out in frontier:
                for c in self.consumers.get(out, []):
                    if id(c) in seen:
                        continue
                    seen.add(id(c))
                    if c.op_type == "Add":
                        for name in c.input:
                            if name in self.init and name.endswith(".bias"):
                                return name
                    if c.op_type in ("Cast", "Mul"):
                        nxt.extend(c.output)
            frontier = nxt
        return None


def _linear_weights(g: _Graph) -> dict[str, np.ndarray]:
    """``{module.weight: (out, in) array}`` for every Linear layer of the graph."""
    found: dict[str, np.ndarray] = {}
    for n in g.nodes:
        if n.op_type == "MatMul" and n.input[1] in g.init:
            w = g.init[n.input[1]].T
        elif n.op_type == "Gemm" and len(n.input) > 1 and n.input[1] in g.init:
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            w = g.init[n.input[1]] if trans_b else g.init[n.input[1]].T
            if len(n.input) > 2 and n.input[2].endswith(".bias"):
                found[n.input[2][: -len(".bias")] + ".weight"] = np.ascontiguousarray(w)
                continue
        elif n.op_type == "MatMulInteger" and n.input[1] in g.init:
            base = n.input[1][: -len("_quantized")] if n.input[1].endswith("_quantized") else None
            if base is None or f"{base}_scale" not in g.init:
                raise OnnxImportError(f"int8 weight {n.input[1]!r} has no scale beside it")
            zp_name = n.input[3] if len(n.input) > 3 and n.input[3] else f"{base}_zero_point"
            w = _dequantize(g.init[n.input[1]], g.init[f"{base}_scale"], g.value(zp_name, "weight zero point"),
                            axis=1).T
        else:
            continue
        bias = g.bias_after(n)
        if bias is None:
            continue  # a MatMul that is no Linear layer (none in our graphs, but be strict below)
        found[bias[: -len(".bias")] + ".weight"] = np.ascontiguousarray(w)
    return found


def _lstm_weights(g: _Graph, hidden: int, layers: int) -> dict[str, np.ndarray]:
    """``lstm.*_l{k}`` weights from the graph's LSTM nodes, in graph order."""
    nodes = [n for n in g.nodes if n.op_type in ("LSTM", "DynamicQuantizeLSTM")]
    if len(nodes) != layers:
        raise OnnxImportError(f"the graph has {len(nodes)} LSTM node(s), the model card says {layers} layer(s)")
    out: dict[str, np.ndarray] = {}
    for k, n in enumerate(nodes):
        if n.op_type == "LSTM":
            w = g.value(n.input[1], "LSTM W")[0]
            r = g.value(n.input[2], "LSTM R")[0]
        else:  # inputs: X, W, R, B, seq_lens, h0, c0, P, W_scale, W_zp, R_scale, R_zp; W and R transposed
            w = _dequantize(g.value(n.input[1], "LSTM W"), g.value(n.input[8], "W scale"),
                            g.value(n.input[9], "W zero point"), axis=2)[0].T
            r = _dequantize(g.value(n.input[2], "LSTM R"), g.value(n.input[10], "R scale"),
                            g.value(n.input[11], "R zero point"), axis=2)[0].T
        if len(n.input) > 3 and n.input[3]:
            b = g.value(n.input[3], "LSTM B")[0]
        else:
            b = np.zeros(8 * hidden, np.float32)
        if w.shape[0] != 4 * hidden or r.shape != (4 * hidden, hidden) or b.shape != (8 * hidden,):
            raise OnnxImportError(f"LSTM layer {k}: weights {w.shape}, {r.shape}, {b.shape} do not fit "
                                  f"hidden size {hidden}")
        out[f"lstm.weight_ih_l{k}"] = _gates_onnx_to_torch(w, hidden)
        out[f"lstm.weight_hh_l{k}"] = _gates_onnx_to_torch(r, hidden)
        out[f"lstm.bias_ih_l{k}"] = _gates_onnx_to_torch(b[: 4 * hidden], hidden)
        out[f"lstm.bias_hh_l{k}"] = _gates_onnx_to_torch(b[4 * hidden:], hidden)
    return out


def _gru_weights(g: _Graph, hidden: int, layers: int) -> dict[str, np.ndarray]:
    """``gru.*_l{k}`` weights from the graph's GRU nodes (a bandfilter network's), in graph order.

    ONNX's gate order z, r, h becomes PyTorch's r, z, n (PyTorch exports ``linear_before_reset=1``, its own
    form); dynamic int8 quantisation leaves GRU nodes in float.
    """
    nodes = [n for n in g.nodes if n.op_type == "GRU"]
    if len(nodes) != layers:
        raise OnnxImportError(f"the graph has {len(nodes)} GRU node(s), the model card says {layers} layer(s)")

    def gates(w: np.ndarray) -> np.ndarray:
        z, r, h = (w[k * hidden:(k + 1) * hidden] for k in range(3))
        return np.concatenate([r, z, h], axis=0)

    out: dict[str, np.ndarray] = {}
    for k, n in enumerate(nodes):
        if next((a.i for a in n.attribute if a.name == "linear_before_reset"), 0) != 1:
            raise OnnxImportError(f"GRU layer {k} is not in PyTorch's form (linear_before_reset=1)")
        w = g.value(n.input[1], "GRU W")[0]
        r = g.value(n.input[2], "GRU R")[0]
        b = g.value(n.input[3], "GRU B")[0] if len(n.input) > 3 and n.input[3] else np.zeros(6 * hidden, np.float32)
        if w.shape[0] != 3 * hidden or r.shape != (3 * hidden, hidden) or b.shape != (6 * hidden,):
            raise OnnxImportError(f"GRU layer {k}: weights {w.shape}, {r.shape}, {b.shape} do not fit "
                                  f"hidden size {hidden}")
        out[f"gru.weight_ih_l{k}"] = gates(w)
        out[f"gru.weight_hh_l{k}"] = gates(r)
        out[f"gru.bias_ih_l{k}"] = gates(b[: 3 * hidden])
        out[f"gru.bias_hh_l{k}"] = gates(b[3 * hidden:])
    return out


def import_onnx(path: str | os.PathLike) -> tuple[IsolatorNet, dict[str, Any]]:
    """``(network in eval mode, model card)`` rebuilt from a deepiso ONNX file (a path or shipped name).

    Raises :class:`OnnxImportError` (or the engine's ``ModelError`` for a file
    that is no valid deepiso model) when a weight of the network cannot be
    found in the graph, or has the wrong shape.
    """
    import onnx

    from deepiso.realtime.onnx_model import _read_model_file, resolve_model

    p = resolve_model(path)
    onnx_file = _read_model_file(Path(p))  # clear errors for missing, empty or foreign files; registry check
    card = card_from_onnx(onnx_file, str(p))
    try:
        spec = FrameSpec.from_dict(card["frame_spec"])
        net = build_model(spec, ModelConfig.from_dict(card["model_config"]))
    except (FrameSpecError, ModelConfigError, TypeError, KeyError) as exc:
        raise OnnxImportError(f"{p}: the model card does not describe a network this deepiso builds ({exc})") \
            from None
    g = _Graph(onnx.load_from_string(onnx_file.data))
    # Export wraps the network (StepGraph.net), so graph names carry a "net." prefix.
    found = {_unprefixed(k): v for k, v in _linear_weights(g).items()}
    if isinstance(net, IsolatorNet):
        found.update(_lstm_weights(g, net.cfg.hidden, net.cfg.layers))
    else:
        found.update(_gru_weights(g, net.cfg.hidden, net.cfg.layers))
    named = {_unprefixed(k): v for k, v in g.init.items()}
    loaded: dict[str, torch.Tensor] = {}
    for name, ref in net.state_dict().items():
        arr = found.get(name, named.get(name))
        if arr is None:
            if name.endswith("band_matrix"):  # a buffer the network computes from its configuration
                loaded[name] = ref
                continue
            raise OnnxImportError(f"{p}: weight {name} {tuple(ref.shape)} is not in the graph")
        if tuple(arr.shape) != tuple(ref.shape):
            raise OnnxImportError(f"{p}: weight {name} is {tuple(arr.shape)} in the graph, the network needs "
                                  f"{tuple(ref.shape)}")
        loaded[name] = torch.from_numpy(np.array(arr, dtype=np.float32))
    net.load_state_dict(loaded, strict=True)
    return net.eval(), card


def _unprefixed(name: str) -> str:
    return name[len("net."):] if name.startswith("net.") else name


__all__ = ["ModelError", "OnnxImportError", "import_onnx"]
