"""PyTorch → ONNX: the streaming step graph and the dynamic-time sequence graph.

Both graphs have the inputs ``features``, ``h``, ``c`` and the outputs
``output``, ``h_out``, ``c_out`` (see :mod:`deepiso.realtime.onnx_model`);
the batch axis is dynamic in both, the time axis in the sequence graph.

We use PyTorch's TorchScript-based exporter (``dynamo=False``): it maps
``nn.LSTM`` to the ONNX ``LSTM`` operator with explicit initial and final
states and a dynamic sequence length, which is what both graphs need, and it
needs no extra packages. (The ``torch.export``-based exporter, the default
since PyTorch 2.9, requires ``onnxscript``.) The exporter verifies every graph
it writes against PyTorch (:mod:`deepiso.export.verify`), so a change in
either exporter shows up as a failed export, not as a silently different model.
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import Tensor, nn

from deepiso.realtime.onnx_model import INPUT_NAMES, OUTPUT_NAMES

#: Lowest opset we write; 17 is the first with every operator we rely on in its current form.
OPSET = 17


class StepGraph(nn.Module):
    """One frame per call: ``features (B, input_size)`` → ``output (B, output_size)``, state carried."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, (h_out, c_out) = self.net(features.unsqueeze(1), (h, c))
        return y.squeeze(1), h_out, c_out


class SequenceGraph(nn.Module):
    """Many frames per call: ``features (B, T, input_size)`` → ``output (B, T, output_size)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y, (h_out, c_out) = self.net(features, (h, c))
        return y, h_out, c_out


def _to_onnx(module: nn.Module, args: tuple[Tensor, ...], dynamic_axes: dict[str, dict[int, str]],
             opset: int) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and warns about
        # traced shapes and LSTM batch sizes on every call; the states are
        # explicit inputs here, and verification is what decides.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model, full_check=True)
    return model


def export_graphs(net: nn.Module, opset: int = OPSET) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """``(step, sequence)`` ONNX models of ``net`` (an IsolatorNet in eval mode, on the CPU).

    The traces use batch 2 and 7 frames, values that no real axis is likely to
    equal, so a shape accidentally frozen into the graph fails verification at
    other sizes instead of passing by coincidence.
    """
    if opset < OPSET:
        raise ValueError(f"opset {opset} is too old; deepiso writes opset >= {OPSET}")
    net = net.eval().to("cpu")
    spec, cfg = net.spec, net.cfg
    batch, frames = 2, 7
    gen = torch.Generator().manual_seed(0)
    h = torch.zeros(cfg.layers, batch, cfg.hidden)
    c = torch.zeros(cfg.layers, batch, cfg.hidden)
    state_axes = {1: "batch"}
    step_axes = {"features": {0: "batch"}, "h": state_axes, "c": state_axes, "output": {0: "batch"},
                 "h_out": state_axes, "c_out": state_axes}
    seq_axes = dict(step_axes, features={0: "batch", 1: "frames"}, output={0: "batch", 1: "frames"})
    with torch.no_grad():
        step = _to_onnx(StepGraph(net), (torch.randn(batch, spec.input_size, generator=gen), h, c), step_axes, opset)
        seq = _to_onnx(SequenceGraph(net), (torch.randn(batch, frames, spec.input_size, generator=gen), h, c),
                       seq_axes, opset)
    return step, seq
