"""Engines for every backend and precision the build targets, through the backend registry."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from pipeline.backends import backend_module
from pipeline.build.artifacts import log
from pipeline.build.options import BuildOptions, BuildTargets
from pipeline.errors import PipelineError
from pipeline.manifest import FileEntry, Manifest, variant_key


def compile_variant(tmp: Path, backend: str, precision: str, artifacts: list[FileEntry], opts: BuildOptions
                    ) -> list[FileEntry]:
    """Engines of one backend and precision, one per stage, from the artifacts of the flavour it compiles."""
    module = backend_module(backend)
    flavour = module.artifact_flavour(precision)
    sources = sorted((a for a in artifacts if a.precision == precision and a.flavour == flavour),
                     key=lambda a: a.stage)
    options = dataclasses.replace(opts.engine, timing_cache=opts.out / f".{backend}-timing.cache")
    engines = []
    for art in sources:
        rel = f"{backend}/{Path(art.path).name.removesuffix('.onnx')}{module.ENGINE_SUFFIX}"
        module.engine_from_artifact(tmp / art.path, tmp / rel, precision, options)
        engines.append(FileEntry.of(tmp, rel, art.stage, precision, backend=backend, flavour=flavour))
    return engines


def drop_variant(manifest: Manifest, folder: Path, backend: str, precision: str, reason: str) -> None:
    """Remove a variant's engines and accuracy and record why it is not supported here."""
    for e in manifest.files(backend=backend, precision=precision, engines=True):
        (folder / e.path).unlink(missing_ok=True)
    manifest.engines = [e for e in manifest.engines if (e.backend, e.precision) != (backend, precision)]
    for table in manifest.accuracy.values():
        table.pop(variant_key(backend, precision), None)
    manifest.unsupported.append({"backend": backend, "precision": precision, "reason": reason})
    log(f"note: {variant_key(backend, precision)} is not supported here: {reason}")


def compile_all(manifest: Manifest, tmp: Path, targets: BuildTargets, opts: BuildOptions) -> None:
    """Engines for every backend and precision targeted; a variant that fails is recorded as unsupported,
    unless its backend says a failure stops the build."""
    skip = {(u["backend"], u["precision"]) for u in manifest.unsupported}
    for backend in targets.backends:
        module = backend_module(backend)
        for precision in [p for p in targets.precisions if (backend, p) not in skip]:
            key, t0 = variant_key(backend, precision), time.time()
            try:
                manifest.engines += compile_variant(tmp, backend, precision, manifest.artifacts, opts)
            except PipelineError as exc:
                if module.STOP_ON_BUILD_FAILURE:
                    raise
                drop_variant(manifest, tmp, backend, precision, str(exc))
                continue
            log(f"compiled {key} engines ({time.time() - t0:.1f} s)")
            chosen = module.prefer_faster(manifest, tmp, precision, opts.engine)
            if chosen:
                log(f"note: {key}: {chosen}")
            note = module.build_notes(manifest, tmp, precision)
            if note:
                manifest.device.emulated[key] = note
                log(f"note: {key}: {note}")
