"""Python-backend ``model.py`` sources that the model repository carries, read as text by
:mod:`pipeline.serving.repository`. They run inside ``tritonserver``'s Python stub and import only
numpy, onnxruntime and ``triton_python_backend_utils``: the server need not have this package."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def source(name: str) -> str:
    """The text of ``<name>.py`` here ("stage", "cascade")."""
    return (HERE / f"{name}.py").read_text()
