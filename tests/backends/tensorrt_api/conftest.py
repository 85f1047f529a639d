"""The real bindings' reports, one probe process per TensorRT version (and per planted fault), run once a session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.backends.tensorrt_api import bindings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def real_report() -> Callable[..., dict[str, Any]]:
    """``real_report(version, plant=None)``: the probe's report; a skip where the bindings cannot be had."""
    reports: dict[tuple[str, str | None], Any] = {}

    def get(version: str, plant: str | None = None) -> dict[str, Any]:
        key = (version, plant)
        if key not in reports:
            try:
                spec = bindings.prepare(version)
            except bindings.Unavailable as exc:
                reports[key] = exc
            else:
                cmd = [sys.executable, "-m", "tests.backends.tensorrt_api.probe", json.dumps(spec),
                       *([plant] if plant else [])]
                done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
                reports[key] = json.loads(done.stdout) if done.returncode == 0 else \
                    RuntimeError(f"the probe of TensorRT {version} failed:\n{done.stderr[-3000:]}")
        found = reports[key]
        if isinstance(found, bindings.Unavailable):
            pytest.skip(f"the real TensorRT {version} bindings cannot be loaded here: {found}")
        if isinstance(found, Exception):
            raise found
        return found

    return get
