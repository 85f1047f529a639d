"""The TensorRT backend: ``engine_from_onnx`` (builder) and ``TensorRTChain`` (runner).

Nothing here imports tensorrt or pycuda at import time; the functions do, when called.
"""

from __future__ import annotations

from pipeline.backends.tensorrt.builder import (buildable_precisions, check_plan_device, engine_from_onnx,
                                                gpu_info)
from pipeline.backends.tensorrt.chain import TensorRTChain

ENGINE_SUFFIX = ".plan"

__all__ = ["ENGINE_SUFFIX", "TensorRTChain", "buildable_precisions", "check_plan_device", "engine_from_onnx",
           "gpu_info"]
