"""The registry of backends that run a model's stages: ONNX Runtime (everywhere), TensorRT (NVIDIA GPUs).

Each backend is a package ``pipeline/backends/<name>/`` whose ``__init__`` exposes the functions
of :class:`pipeline.backends.base.Backend` (availability and its reason, buildable precisions,
its own build options' checks, the packages it runs on, engine from artifact, chain from engines,
device facts). Build, profiler, verification and benchmarks loop over :data:`BACKENDS` through
:func:`backend_module` and the functions here, and name no backend; a command line offers
:data:`BACKENDS` (with "auto" where it picks one). Adding a backend is adding its folder and its
name here. Nothing here imports tensorrt or pycuda except when probing for them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Sequence, cast

from pipeline.backends.base import Backend, EngineOptions, StageChain, exit_logits
from pipeline import package_version
from pipeline.errors import PipelineError
from pipeline.manifest import Manifest, variant_key
from pipeline.names import PRECISIONS

BACKENDS = ("onnxruntime", "tensorrt")  # in order of preference where several can run a model: the last wins
# Runs wherever its package installs (any CPU): its FP32 engines are the reference others are checked against
# where there is no PyTorch model, and the default of a command that works on one backend.
REFERENCE_BACKEND = "onnxruntime"

__all__ = ["BACKENDS", "REFERENCE_BACKEND", "Backend", "EngineOptions", "StageChain", "available_backends",
           "backend_batch_ranges", "backend_device_facts", "backend_module", "backend_versions", "check_engine_options", "exit_logits",
           "load_chain", "package_versions", "passed_over", "pick_backend", "unavailable_reason", "why_unusable"]


def backend_module(name: str) -> Backend:
    """The module of backend ``name``; a PipelineError naming the known ones otherwise."""
    if name not in BACKENDS:
        raise PipelineError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return cast(Backend, importlib.import_module(f"pipeline.backends.{name}"))


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot build or run engines here, or None where it can."""
    return backend_module(name).unavailable_reason()


def available_backends() -> list[str]:
    """The backends that can build and run engines on this machine, in registry order."""
    return [b for b in BACKENDS if unavailable_reason(b) is None]


def check_engine_options(options: EngineOptions, precisions: Sequence[str], backends: Sequence[str]) -> None:
    """Every registered backend checks its own options, before any work: ``backends`` are those the build
    targets (an option of a backend outside them is refused by that backend)."""
    for name in BACKENDS:
        backend_module(name).check_options(options, precisions, name in backends)


def package_versions() -> dict[str, str | None]:
    """Every backend's packages (its ``PACKAGES``), registry order: the installed version, None where absent."""
    return {package: package_version(*dists) for name in BACKENDS
            for package, dists in backend_module(name).PACKAGES.items()}


def backend_versions() -> dict[str, str | None]:
    """Per backend, the installed version of the runtime it is (None where it is not installed)."""
    return {name: package_version(*backend_module(name).PACKAGES[name]) for name in BACKENDS}


def backend_device_facts(backends: list[str], threads: int) -> dict[str, dict[str, Any]]:
    """Per backend, what its engines built here are tied to (recorded in the manifest's device)."""
    return {b: backend_module(b).device_facts(threads) for b in backends}


def backend_batch_ranges(backends: list[str], options: EngineOptions) -> dict[str, dict[str, int]]:
    """Per backend, the batch sizes its engines built with ``options`` take (the manifest's ``batch``)."""
    return {b: backend_module(b).batch_range(options) for b in backends}


def why_unusable(manifest: Manifest, name: str) -> str | None:
    """None where the manifest's engines of backend ``name`` run here, else why not ("" where it has none)."""
    if not manifest.files(backend=name, engines=True):
        return ""
    reason = unavailable_reason(name)
    if reason is not None:
        return reason
    try:
        backend_module(name).check_device(manifest, f"the {name} engines")
    except PipelineError as exc:
        return str(exc)
    return None


def _usable(manifest: Manifest, name: str) -> bool:
    return why_unusable(manifest, name) is None


def pick_backend(manifest: Manifest) -> str:
    """The most preferred backend whose engines the manifest has and that runs them here (else the first
    built, whose loading then says why not)."""
    usable = [b for b in BACKENDS if _usable(manifest, b)]
    if usable:
        return usable[-1]
    built = [b for b in BACKENDS if manifest.files(backend=b, engines=True)]
    return (built or list(BACKENDS))[0]  # loading it then says why it cannot run


def passed_over(manifest: Manifest, chosen: str, folder: str | Path) -> str | None:
    """Why the automatic choice ``chosen`` passed over engines the manifest has for a more preferred backend
    (e.g. TensorRT plans where TensorRT cannot start CUDA), as one note; None where it passed over none."""
    for name in BACKENDS[BACKENDS.index(chosen) + 1:] if chosen in BACKENDS else ():
        reason = why_unusable(manifest, name)
        if reason:
            title, ours = backend_module(name).TITLE, backend_module(chosen).TITLE
            return f"{folder} has {title} engines, but they cannot run here: {reason}. Running {ours} instead"
    return None


def load_chain(manifest: Manifest, folder: str | Path, backend: str, precision: str, threads: int = 1) -> StageChain:
    """A StageChain (not yet activated) over the manifest's engines for ``backend`` and ``precision``."""
    folder = Path(folder)
    module = backend_module(backend)
    if precision not in PRECISIONS:
        raise PipelineError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    engines = manifest.files(backend=backend, precision=precision, engines=True)
    stages = [e.stage for e in engines]
    if engines and stages != list(range(1, manifest.num_exits + 1)):
        listed = ", ".join(map(str, stages))
        raise PipelineError(f"{folder}/manifest.json lists {variant_key(backend, precision)} engines for stages "
                            f"{listed}, but the model has stages 1 to {manifest.num_exits}, one engine each; the "
                            "manifest is incomplete or damaged: rebuild with `make engines`")
    if not engines:
        why = [u["reason"] for u in manifest.unsupported
               if u.get("backend") == backend and u.get("precision") == precision]
        built = sorted({variant_key(e.backend, e.precision) for e in manifest.engines})
        raise PipelineError(f"{folder} has no {variant_key(backend, precision)} engines"
                            f"{' (' + why[0] + ')' if why else ''}; built here: {', '.join(built) or 'none'}. "
                            "Pick one of those, or rebuild with `make engines`")
    return module.chain_from_engines(manifest, folder, engines, precision, threads)
