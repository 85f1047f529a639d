"""Anytime image classification with multi-exit networks, from PyTorch to ONNX Runtime and TensorRT.

Importing this package is cheap and safe on any machine: torch, TensorRT, pycuda and OpenCV are
imported lazily by the modules that need them.
"""

from pipeline.errors import PipelineError

__all__ = ["PipelineError"]
__version__ = "0.1.0"
