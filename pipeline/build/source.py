"""What a build starts from (a checkpoint to export, or a folder of artifacts to compile) and its identity.

The identity is cheap to compute (hashes, names, sizes, versions: no torch, no decoding), so that
"up to date" is decided before any work.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.backends import package_versions
from pipeline.build.options import BuildOptions, BuildTargets, needs_data
from pipeline import package_version
from pipeline.errors import PipelineError
from pipeline.manifest import MANIFEST_NAME, DeviceInfo, Manifest, load_manifest, sha256_file

BUILD_FORMAT = 2  # raised when a step makes other files from the same inputs (2: shallow convs float in u8 INT8)
TOOLS = ("torch", "onnx", "onnxsim", "onnxconverter-common", "numpy")  # export's; each backend lists its own packages


@dataclass(frozen=True)
class Source:
    """What the build starts from: a checkpoint to export, or (compile-only) a folder of artifacts."""

    identity: dict[str, Any]  # hashes: part of the build key
    name: str  # model folder name ("" until the checkpoint is read)
    checkpoint_sha256: str = ""
    manifest: Manifest | None = None  # compile-only: the artifacts' manifest
    folder: Path | None = None  # compile-only: where the artifacts are
    onnx_spec: Any = None  # an OnnxSpec: stage graphs made elsewhere


def tool_versions() -> dict[str, str]:
    """The installed versions of what makes the engines: export's tools and every backend's packages."""
    versions = {tool: package_version(tool) for tool in TOOLS} | package_versions()
    return {tool: version for tool, version in versions.items() if version is not None}


def data_identity(data: str) -> dict[str, Any]:
    """What the accuracy and calibration depend on in the data source, cheaply: names, sizes, mtimes."""
    if not data:
        return {"source": "cifar10-official"}
    path = Path(data).expanduser().resolve()
    if path.is_file():
        st = path.stat()
        return {"source": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    if path.is_dir():
        h = hashlib.sha256()
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                st = os.stat(os.path.join(root, name))
                h.update(f"{os.path.relpath(os.path.join(root, name), path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return {"source": str(path), "listing": h.hexdigest()}
    raise PipelineError(f"data source {path} does not exist; pass --data with an ImageFolder folder or archive")


def _data_key(opts: BuildOptions, targets: BuildTargets) -> dict[str, Any] | None:
    if not needs_data(opts, targets):
        return None  # --skip-accuracy and nothing to calibrate: no data is read
    try:
        return data_identity(opts.data.source)
    except PipelineError as exc:
        if opts.skip_accuracy:  # only INT8 calibration reads it
            raise PipelineError(f"{exc}; even with --skip-accuracy, calibrating INT8 reads the training images "
                                "(or drop int8 from --precisions)") from None
        raise


def build_key(opts: BuildOptions, targets: BuildTargets, source: Source, device: DeviceInfo) -> dict[str, Any]:
    """Everything the folder's contents depend on; equal keys mean the folder is up to date."""
    return {"format": BUILD_FORMAT, "pipeline": __version__, "source": source.identity,
            "precisions": targets.precisions, "backends": targets.backends, "unsupported": targets.unsupported,
            "device": device.to_dict(), "tools": tool_versions(),
            "data": _data_key(opts, targets),
            "options": {"calib_images": opts.calib_images, "calib_method": opts.calib_method,
                        "calib_seed": opts.calib_seed, "threads": opts.engine.threads, "test_split": opts.test_split,
                        "skip_accuracy": opts.skip_accuracy, "workspace_mb": opts.engine.workspace_mb,
                        "dla_core": opts.engine.dla_core,
                        **({"int8_stages": opts.engine.int8_stages}
                           if "int8" in targets.precisions and "onnxruntime" in targets.backends else {}),
                        # a batch range other than batch 1 only: folders built before batches stay up to date
                        **({"max_batch": opts.engine.max_batch, "opt_batch": opts.engine.opt_batch}
                           if (opts.engine.max_batch, opts.engine.opt_batch) != (1, None) else {})}}


def _artifacts_manifest(opts: BuildOptions) -> tuple[Manifest, Path]:
    """Compile-only: the manifest and folder holding the portable artifacts."""
    if opts.artifacts is not None:
        folder = opts.artifacts
    elif opts.name:
        folder = opts.out / opts.name
    else:
        found = sorted(p.parent for p in opts.out.glob(f"*/{MANIFEST_NAME}") if not p.parent.name.startswith("."))
        if len(found) != 1:
            raise PipelineError(f"--compile-only needs the artifacts' folder: {len(found)} model folders in "
                                f"{opts.out} ({', '.join(p.name for p in found) or 'none'}); "
                                "pass --name or --artifacts")
        folder = found[0]
    try:
        manifest = load_manifest(folder, engines=False)  # the engines it lists are the builder's: not needed
    except PipelineError as exc:
        why = "" if opts.compile_only else ("torch, onnxsim or onnxconverter-common is missing here, so this "
                                            "build can only compile existing artifacts: ")
        raise PipelineError(f"{why}{exc}") from exc
    if not manifest.artifacts:
        raise PipelineError(f"{folder} holds no ONNX artifacts to compile; export them on a host with torch "
                            "(`make engines`) and copy the folder here")
    return manifest, folder


def resolve_source(opts: BuildOptions, targets: BuildTargets) -> Source:
    if opts.onnx_spec is not None:
        from pipeline.build.onnx_spec import read_spec

        spec = read_spec(opts.onnx_spec)
        sha = spec.identity()
        return Source({"onnx_spec": sha}, opts.name or spec.name, checkpoint_sha256=sha, onnx_spec=spec)
    if not targets.compile_only:
        assert opts.checkpoint is not None  # check_options requires it to export
        if not opts.checkpoint.is_file():
            raise PipelineError(f"checkpoint {opts.checkpoint} does not exist; train one with `make train` "
                                "or pass --checkpoint")
        sha = sha256_file(opts.checkpoint)
        return Source({"checkpoint_sha256": sha}, opts.name, checkpoint_sha256=sha)
    manifest, folder = _artifacts_manifest(opts)
    if opts.checkpoint is not None and opts.checkpoint.is_file():
        if sha256_file(opts.checkpoint) != manifest.model.get("checkpoint_sha256"):
            raise PipelineError(f"the artifacts in {folder} were exported from another checkpoint than "
                                f"{opts.checkpoint}; export again on a host with torch, or pass the matching one")
    missing = [p for p in targets.precisions if p not in {a.precision for a in manifest.artifacts}]
    if missing:
        raise PipelineError(f"{folder} has no {', '.join(missing)} artifacts to compile; export them on a "
                            "host with torch, or drop them from --precisions")
    if not opts.skip_accuracy and not manifest.model.get("split"):
        raise PipelineError(f"{folder}/{MANIFEST_NAME} does not record the validation split, so accuracy cannot "
                            "be measured; pass --skip-accuracy or export the artifacts again")
    return Source({"artifacts": sorted(a.sha256 for a in manifest.artifacts)}, opts.name or folder.name,
                  manifest.model.get("checkpoint_sha256", ""), manifest, folder)
