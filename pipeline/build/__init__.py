"""`make engines`: a checkpoint in; per-stage ONNX artifacts, engines for this machine and a manifest out.

The steps, one module each: ``options`` (the validated build options and what they ask for),
``source`` (what the build starts from and its identity), ``folder`` (the temporary folder, the
swap into place, "up to date"), ``export`` (FP32, FP16 and INT8 artifacts), ``engines`` (compiled
for every backend in the registry), ``accuracy`` (per-exit accuracy of every variant) and ``cli``
(the command, ``python -m pipeline.build``).
"""

from __future__ import annotations

from pipeline.build.cli import main

__all__ = ["main"]
