"""Anytime image classification with multi-exit networks, from PyTorch to ONNX Runtime and TensorRT.

Importing this package is cheap and safe on any machine: torch, TensorRT, pycuda and OpenCV are
imported lazily by the modules that need them.
"""

from __future__ import annotations

import importlib.metadata

from pipeline.errors import PipelineError

__all__ = ["PipelineError", "package_version"]
__version__ = "0.1.0"


def package_version(*dists: str) -> str | None:
    """The installed version of the first of ``dists`` present (one package may install under several names)."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
