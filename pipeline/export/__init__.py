"""From a PyTorch multi-exit model to portable ONNX artifacts, one per stage and precision.

- :mod:`pipeline.export.onnx_export`: ``onnx_from_stage`` (FP32 export, checked and simplified).
- :mod:`pipeline.export.fp16`: ``fp16_from_onnx`` (float16 inside, float32 at the edges).
- :mod:`pipeline.export.calibration`: the per-stage calibration inputs, cached under ``calib/``.
- :mod:`pipeline.export.int8`: ``qdq_from_onnx`` (Q/DQ in TensorRT's scheme, plus a CPU flavour).

Only the FP32 export needs torch; the other steps work on ONNX files. Heavy imports are made
inside the functions, so importing this package costs nothing.
"""

from __future__ import annotations

__all__ = ["onnx_export", "fp16", "calibration", "int8"]
