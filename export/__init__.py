"""deepiso's exporter: PyTorch checkpoint to verified ONNX with a model card.

Needs PyTorch and onnx (the ``train`` extra); the engine reads the result
with :mod:`deepiso.realtime.onnx_model` and needs neither.
"""

from .exporter import ExportError, ExportResult, export_checkpoint, export_model, sequence_path_for

__all__ = ["ExportError", "ExportResult", "export_checkpoint", "export_model", "sequence_path_for"]
