"""deepiso's exporter: PyTorch checkpoint to verified ONNX with a model card."""
