"""The ONNX Runtime backend: ``engine_from_onnx`` (builder) and ``OnnxRuntimeChain`` (runner)."""

from __future__ import annotations

from pipeline.backends.onnxruntime.builder import (computes_in_float32, create_session, engine_from_onnx, providers,
                                                   session_options)
from pipeline.backends.onnxruntime.chain import OnnxRuntimeChain

ENGINE_SUFFIX = ".onnx"

__all__ = ["ENGINE_SUFFIX", "OnnxRuntimeChain", "computes_in_float32", "create_session", "engine_from_onnx",
           "providers", "session_options"]
