"""The build's options, frozen, and what they ask for (``BuildTargets``), checked before any work starts."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import names
from pipeline.backends.base import EngineOptions
from pipeline.data.options import DataOptions
from pipeline.device import check_threads
from pipeline.errors import PipelineError
from pipeline.export.calibration import DEFAULT_IMAGES
from pipeline.files import check_output_folder

AUTO = "auto"  # every backend that can run here


@dataclass(frozen=True)
class BuildOptions:
    """Everything the command line says, as typed values (``precisions`` and ``backend`` still as given)."""

    checkpoint: Path | None
    out: Path
    data: DataOptions
    model: str = ""  # expected registered model ("": the checkpoint's)
    name: str = ""  # model folder under ``out`` ("": the model's name)
    precisions: str = "fp32,fp16,int8"
    backend: str = AUTO
    calib_dir: Path = Path("calib")
    calib_images: int = DEFAULT_IMAGES
    calib_method: str = "entropy"
    calib_seed: int = 0
    test_split: bool = False
    skip_accuracy: bool = False
    compile_only: bool = False
    artifacts: Path | None = None  # with compile_only: the folder holding the artifacts
    onnx_spec: Path | None = None  # stage graphs made elsewhere, described by this spec file (instead of a checkpoint)
    engine: EngineOptions = field(default_factory=EngineOptions)
    force: bool = False


@dataclass(frozen=True)
class BuildTargets:
    """What the build makes: decided from the options and this machine, before any work."""

    precisions: list[str]
    backends: list[str]
    compile_only: bool
    unsupported: list[dict[str, str]] = field(default_factory=list)  # {"backend", "precision", "reason"}


def can_export() -> bool:
    """Whether this machine has what export needs (torch, onnx-simplifier, the FP16 converter)."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnxsim", "onnxconverter_common"))


def buildable(backend: str) -> set[str]:
    from pipeline.backends import backend_module

    return backend_module(backend).buildable_precisions()


def _backends(opts: BuildOptions) -> list[str]:
    from pipeline.backends import BACKENDS, available_backends, backend_module, unavailable_reason

    choices = (AUTO, *BACKENDS)
    if opts.backend not in choices:
        raise PipelineError(f"--backend must be one of {', '.join(choices)}, got {opts.backend!r}")
    if opts.backend == AUTO:
        usable = available_backends()
        for name in BACKENDS:
            reason = unavailable_reason(name)
            # Installed but unable to run (a driver older than the library, no GPU): say why, once.
            if name not in usable and reason and "is not installed" not in reason:
                print(f"note: {backend_module(name).TITLE} is installed but cannot run here: {reason}; "
                      f"building for {', '.join(backend_module(b).TITLE for b in usable)}", flush=True)
        return usable
    reason = unavailable_reason(opts.backend)
    if reason:
        raise PipelineError(f"--backend {opts.backend}, but {backend_module(opts.backend).TITLE} cannot run "
                            f"here: {reason}. Use --backend auto or another backend")
    return [opts.backend]


def needs_data(opts: BuildOptions, targets: BuildTargets) -> bool:
    """Whether the build reads images: accuracy, or calibrating INT8 when it exports (not --skip-accuracy alone)."""
    return not opts.skip_accuracy or (not targets.compile_only and "int8" in targets.precisions)


def check_name(name: str) -> None:
    """``--name`` is one plain folder name under ``--out``: not a path, not ``.`` or ``..``, not hidden (the
    build's temporary folders are hidden)."""
    if name and (name in (".", "..") or "/" in name or os.sep in name or name.startswith(".")):
        raise PipelineError(f"--name must be a plain folder name under --out (such as msdnet_cifar), got {name!r}: "
                            "not a path, not '.' or '..', not starting with '.'")


def check_folders(opts: BuildOptions, targets: BuildTargets) -> None:
    """The folders the build writes, checked before any work: they can be made and written."""
    check_output_folder(opts.out, "--out")
    if opts.name:
        check_output_folder(opts.out / opts.name, "--name's folder")
    if not targets.compile_only and "int8" in targets.precisions:
        check_output_folder(opts.calib_dir, "--calib-dir")


def check_options(opts: BuildOptions) -> BuildTargets:
    """Reject bad values and impossible combinations before anything is loaded or written."""
    from pipeline.backends import check_engine_options
    from pipeline.export.int8 import METHODS

    precisions = list(dict.fromkeys(p.strip() for p in opts.precisions.split(",") if p.strip()))
    unknown = [p for p in precisions if p not in names.PRECISIONS]
    if unknown or not precisions:
        raise PipelineError(f"--precisions must list some of {', '.join(names.PRECISIONS)}, got {opts.precisions!r}")
    if opts.calib_method not in METHODS:
        raise PipelineError(f"--calib-method must be one of {', '.join(METHODS)}, got {opts.calib_method!r}")
    if "int8" in precisions and opts.calib_images < 1:
        raise PipelineError(f"--calib-images must be at least 1 for INT8, got {opts.calib_images}")
    if opts.calib_seed < 0:
        raise PipelineError(f"--calib-seed must be 0 or more, got {opts.calib_seed}")
    check_name(opts.name)
    check_threads(opts.engine.threads)
    backends = _backends(opts)
    check_engine_options(opts.engine, precisions, backends)  # each registered backend checks its own
    if opts.onnx_spec is not None:
        if opts.checkpoint is not None or opts.compile_only or opts.model:
            raise PipelineError("--onnx-spec builds from stage graphs: it goes without --checkpoint, --compile-only, "
                                "--model and --model-factory")
        if not can_export():
            raise PipelineError("--onnx-spec makes FP32, FP16 and INT8 artifacts, which needs onnx-simplifier and "
                                "onnxconverter-common (`pip install -e '.[export]'`)")
    compile_only = opts.compile_only or not can_export()
    if not compile_only and opts.checkpoint is None and opts.onnx_spec is None:
        raise PipelineError("--checkpoint is required to export; pass it, or --compile-only to compile "
                            "existing artifacts")
    unsupported = []
    for backend in backends:
        missing = [p for p in precisions if p not in buildable(backend)]
        if missing and opts.backend == backend:
            raise PipelineError(f"{backend} cannot build {', '.join(missing)} on this device; "
                                f"drop it from --precisions or use another --backend")
        unsupported += [{"backend": backend, "precision": p, "reason": f"{backend} on this device has no "
                         f"fast {p} kernels"} for p in missing]
    targets = BuildTargets(precisions, backends, compile_only, unsupported)
    check_folders(opts, targets)
    return targets
