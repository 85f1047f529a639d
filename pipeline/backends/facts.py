"""What a measurement ran on: the host's facts (:mod:`pipeline.device`) with each backend's own.

Latency tables and reports record these, so a figure can be traced to its machine and versions.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.device import host_facts, jetson_facts


def device_facts(backends: Sequence[str] | None = None, threads: int = 1, root: str | Path = "/",
                 run: Callable[..., Any] = subprocess.run) -> dict[str, Any]:
    """What latencies were measured on; ``warnings`` lists what makes them less trustworthy.

    Every registered backend's runtime version is recorded (under its name, None where it is not
    installed); ``backends`` (default: the reference backend) add their own device facts.
    """
    from pipeline.backends import REFERENCE_BACKEND, backend_module, backend_versions

    facts: dict[str, Any] = {
        **host_facts(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads, "python": platform.python_version(), **backend_versions(),
    }
    if backends is None:
        backends = (REFERENCE_BACKEND,)
    for name in backends:
        facts.update(backend_module(name).device_facts(threads))
    warnings: list[str] = []
    jetson = jetson_facts(root, run)
    if jetson is not None:
        warnings += jetson.pop("warnings")
        facts["jetson"] = jetson
    facts["warnings"] = warnings
    return facts


def describe_device(facts: dict[str, Any]) -> str:
    """One line: "CPU AMD EPYC ... (2 usable cores), 1 thread; GPU ...; ONNX Runtime 1.x; TensorRT 10.x"."""
    from pipeline.backends import BACKENDS, backend_module

    parts = [f"CPU {facts.get('cpu')} ({facts.get('cpus_usable')} usable cores), {facts.get('threads')} thread(s)"]
    if facts.get("gpu"):
        parts.append(f"GPU {facts['gpu']} (compute {facts.get('compute_capability')})")
    jetson = facts.get("jetson")
    if jetson:
        parts.append(f"{jetson.get('board') or 'Jetson'}, {jetson.get('l4t')}, power mode "
                     f"{jetson.get('power_mode', '?')}")
    parts += [f"{backend_module(name).TITLE} {facts.get(name) or 'not installed'}" for name in BACKENDS]
    return "; ".join(parts)
