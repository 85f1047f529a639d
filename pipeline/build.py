"""`make engines`: a checkpoint in; per-stage ONNX artifacts, engines for this machine and a manifest out.

    python -m pipeline.build --checkpoint models/msdnet_cifar10.pt --data DATA --out engines \
        [--precisions fp32,fp16,int8] [--backend auto|onnxruntime|tensorrt] [--calib-images 512] \
        [--calib-method entropy|percentile|minmax] [--threads 1] [--test-split] [--compile-only]

Steps: export and simplify each stage (FP32) -> FP16 graphs -> INT8 Q/DQ graphs calibrated on
training images -> engines for every backend usable here (ONNX Runtime always, TensorRT where it
and a GPU are present) -> per-exit accuracy of every backend/precision on the checkpoint's
validation split -> ``<out>/<model>/manifest.json``.

The build writes into a temporary folder next to the destination and renames it into place only
when complete, so an interrupted build leaves the previous folder as it was. A rerun with the
same checkpoint, options, data, tools and device finds the folder up to date and stops.
Without torch (a Jetson), the portable ONNX artifacts already in the folder (or in --artifacts)
are compiled for this machine, without exporting again.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pipeline import __version__, names
from pipeline.errors import PipelineError, cli_main
from pipeline.manifest import (MANIFEST_NAME, DeviceInfo, FileEntry, InputSpec, Manifest, StageSpec, load_manifest,
                               sha256_file, variant_key, write_manifest)

BUILD_FORMAT = 2  # raised when a step makes other files from the same inputs (2: shallow convs float in u8 INT8)
BUILD_INFO = "build.json"  # next to the manifest: what the folder was built from, for "up to date"
TOOLS = ("torch", "onnx", "onnxsim", "onnxruntime", "onnxconverter-common", "numpy", "tensorrt", "pycuda")
FLAVOUR_NOTES = {
    "int8": "int8 activations (zero point 0), symmetric per-channel int8 weights: TensorRT's scheme",
    "int8.u8": "uint8 activations (asymmetric), per-channel int8 weights: for ONNX Runtime's x86 CPU kernels",
}


# --- options ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from pipeline.export.calibration import DEFAULT_IMAGES

    ap = argparse.ArgumentParser(prog="python -m pipeline.build", description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="trained checkpoint (.pt); optional with --compile-only")
    ap.add_argument("--model", default="", help="expected registered model (default: the checkpoint's)")
    ap.add_argument("--name", default="", help="model folder under --out (default: the model's name)")
    ap.add_argument("--out", type=Path, default=Path("engines"), help="engines root folder")
    ap.add_argument("--precisions", default="fp32,fp16,int8", help="comma-separated: fp32, fp16, int8")
    ap.add_argument("--backend", default="auto", help="auto (every usable one), onnxruntime or tensorrt")
    ap.add_argument("--data", default=os.environ.get("ANYTIME_DATA", ""),
                    help="ImageFolder folder/archive or CIFAR-10 archive; empty: download CIFAR-10")
    ap.add_argument("--cache-dir", type=Path, default=None, help="decoded-image cache (default ~/.cache)")
    ap.add_argument("--calib-dir", type=Path, default=Path("calib"), help="calibration tensor cache")
    ap.add_argument("--calib-images", type=int, default=DEFAULT_IMAGES,
                    help="INT8 calibration images from the training split (never validation or test)")
    ap.add_argument("--calib-method", default="entropy", help="entropy, percentile or minmax")
    ap.add_argument("--calib-seed", type=int, default=0, help="seed that draws the calibration images")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads of the engines")
    ap.add_argument("--test-split", action="store_true",
                    help="also measure accuracy on the test split (final reporting only)")
    ap.add_argument("--skip-accuracy", action="store_true", help="do not measure accuracy (no data needed)")
    ap.add_argument("--compile-only", action="store_true", help="compile the artifacts already built; no export")
    ap.add_argument("--artifacts", type=Path, default=None, help="with --compile-only: folder holding the artifacts")
    ap.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT builder workspace")
    ap.add_argument("--dla-core", type=int, default=None, help="TensorRT: build for this DLA core, GPU fallback")
    ap.add_argument("--force", action="store_true", help="rebuild even if the folder is up to date")
    return ap


@dataclass
class Plan:
    """The validated options: everything the build does is decided here, before any work."""

    precisions: list[str]
    backends: list[str]
    compile_only: bool
    unsupported: list[dict[str, str]] = field(default_factory=list)


def _can_export() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "onnxsim", "onnxconverter_common"))


def _buildable(backend: str) -> set[str]:
    from pipeline.backends import backend_module

    return backend_module(backend).buildable_precisions()


def check_options(args: argparse.Namespace) -> Plan:
    """Reject bad values and impossible combinations before anything is loaded or written."""
    from pipeline.backends import BACKENDS, available_backends, backend_module, unavailable_reason
    from pipeline.export.int8 import METHODS

    choices = ("auto", *BACKENDS)

    precisions = list(dict.fromkeys(p.strip() for p in args.precisions.split(",") if p.strip()))
    unknown = [p for p in precisions if p not in names.PRECISIONS]
    if unknown or not precisions:
        raise PipelineError(f"--precisions must list some of {', '.join(names.PRECISIONS)}, got {args.precisions!r}")
    if args.backend not in choices:
        raise PipelineError(f"--backend must be one of {', '.join(choices)}, got {args.backend!r}")
    if args.calib_method not in METHODS:
        raise PipelineError(f"--calib-method must be one of {', '.join(METHODS)}, got {args.calib_method!r}")
    if "int8" in precisions and args.calib_images < 1:
        raise PipelineError(f"--calib-images must be at least 1 for INT8, got {args.calib_images}")
    for opt in ("threads", "workspace_mb"):
        if getattr(args, opt) < 1:
            raise PipelineError(f"--{opt.replace('_', '-')} must be at least 1, got {getattr(args, opt)}")
    if args.backend != "auto":
        reason = unavailable_reason(args.backend)
        if reason:
            raise PipelineError(f"--backend {args.backend}, but {backend_module(args.backend).TITLE} cannot run "
                                f"here: {reason}. Use --backend auto or another backend")
        backends = [args.backend]
    else:
        backends = available_backends()
    if args.dla_core is not None and (args.dla_core < 0 or "tensorrt" not in backends):
        raise PipelineError("--dla-core needs a non-negative core number and the TensorRT backend")
    if args.dla_core is not None and set(precisions) != {"fp16"}:
        raise PipelineError(f"--dla-core builds FP16 plans only (DLA runs FP16, and INT8 only through implicit "
                            f"quantization, which these Q/DQ artifacts are not); got --precisions "
                            f"{','.join(precisions)}: pass --precisions fp16")
    compile_only = args.compile_only or not _can_export()
    if not compile_only and args.checkpoint is None:
        raise PipelineError("--checkpoint is required to export; pass it, or --compile-only to compile "
                            "existing artifacts")
    plan = Plan(precisions, backends, compile_only)
    for backend in backends:
        missing = [p for p in precisions if p not in _buildable(backend)]
        if missing and args.backend == backend:
            raise PipelineError(f"{backend} cannot build {', '.join(missing)} on this device; "
                                f"drop it from --precisions or use another --backend")
        plan.unsupported += [{"backend": backend, "precision": p, "reason": f"{backend} on this device has no "
                              f"fast {p} kernels"} for p in missing]
    return plan


# --- small helpers ---------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(msg, flush=True)


def _tool_versions() -> dict[str, str]:
    out = {}
    for tool in TOOLS:
        for dist in (tool, tool + "-gpu") if tool == "onnxruntime" else (tool,):
            try:
                out[tool] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def _data_identity(data: str) -> dict[str, Any]:
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


def _device(backends: list[str], threads: int) -> DeviceInfo:
    from pipeline.backends import backend_device_facts
    from pipeline.device import host_facts

    return DeviceInfo(**host_facts(), backends=backend_device_facts(backends, threads))


def _remove_stale_temps(out: Path) -> None:
    """Clean up after builds that died (their process is gone); a running build's folders are left alone.

    ``.<name>.tmp-<pid>`` is an unfinished build: deleted. ``.<name>.old-<pid>`` is a previous build
    set aside for the swap: put back if the swap never completed, deleted otherwise.
    """
    for path in out.glob(".*-*"):
        stem, _, pid = path.name.rpartition("-")
        try:
            os.kill(int(pid), 0)
            continue  # still running
        except ValueError:
            continue  # not one of ours
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        if stem.endswith(".old") and not (out / stem[1:-4]).exists():
            os.rename(path, out / stem[1:-4])
        elif stem.endswith((".tmp", ".old")):
            shutil.rmtree(path, ignore_errors=True)


def _swap_into_place(tmp: Path, dest: Path) -> None:
    """Rename the finished ``tmp`` to ``dest``; the previous ``dest`` is kept until the rename succeeded."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        if old.exists():
            os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _entry(folder: Path, rel: str, stage: int, precision: str, backend: str = "", flavour: str = "") -> FileEntry:
    return FileEntry(stage=stage, precision=precision, path=rel, sha256=sha256_file(folder / rel),
                     backend=backend, flavour=flavour)


# --- the build steps -------------------------------------------------------------------------------


@contextlib.contextmanager
def _one_torch_thread(active: bool) -> Iterator[None]:
    """The build's torch work is batch-1 tracing: one thread is fastest, and far faster on a busy machine."""
    if not active:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_checkpoint(args: argparse.Namespace) -> tuple[Any, dict]:
    from pipeline.checkpoint import load_model
    from pipeline.models import list_models

    model, ckpt = load_model(args.checkpoint, expect_model=args.model or None)
    if ckpt["model"] not in list_models():
        raise PipelineError(f"checkpoint {args.checkpoint} holds model {ckpt['model']!r}, which this version does "
                            f"not know (known: {', '.join(list_models())}); update the pipeline or retrain")
    return model, ckpt


def _load_images(args: argparse.Namespace, split: str, classes: list[str], size: tuple[int, int]) -> Any:
    from pipeline.data import load_dataset
    from pipeline.data import default_cache_dir

    data = load_dataset(args.data or None, split, cache_dir=args.cache_dir or default_cache_dir(), size=size)
    if list(data.classes) != list(classes):
        raise PipelineError(f"the data's {split} classes {list(data.classes)[:5]}... do not match the model's "
                            f"{list(classes)[:5]}...; pass the --data the model was trained on")
    return data


def _export(model: Any, tmp: Path, plan: Plan, args: argparse.Namespace, ckpt_sha: str, ckpt: dict,
            train: Any) -> tuple[list[FileEntry], list[StageSpec], dict[str, Any]]:
    """FP32 export, FP16 conversion, INT8 calibration and quantization; returns artifacts, stages, calibration info."""
    from pipeline.export.calibration import (CalibrationReader, calibration_indices, calibration_inputs,
                                             calibration_key)
    from pipeline.export.fp16 import fp16_from_onnx
    from pipeline.export.int8 import qdq_from_onnx
    from pipeline.export.onnx_export import onnx_from_model, tensor_specs
    from pipeline.models.flops import exit_costs

    t0 = time.time()
    fp32 = onnx_from_model(model, tmp / "onnx")
    costs = exit_costs(model)
    stages = [StageSpec(k, *tensor_specs(p), flops=costs[k - 1]["flops"], params=costs[k - 1]["params"])
              for k, p in enumerate(fp32, start=1)]
    arts = [_entry(tmp, f"onnx/{p.name}", k, "fp32") for k, p in enumerate(fp32, start=1)]
    _log(f"exported and simplified {len(fp32)} stages ({time.time() - t0:.1f} s)")
    if "fp16" in plan.precisions:
        t0 = time.time()
        for k, src in enumerate(fp32, start=1):
            rel = f"onnx/{names.artifact_filename(k, 'fp16')}"
            fp16_from_onnx(src, tmp / rel)
            arts.append(_entry(tmp, rel, k, "fp16"))
        _log(f"converted to FP16 ({time.time() - t0:.1f} s)")
    calib: dict[str, Any] = {}
    if "int8" in plan.precisions:
        t0 = time.time()
        idx = calibration_indices(train.labels, ckpt["split"], args.calib_images, args.calib_seed)
        frames = train.images[idx]  # (N, H, W, 3) uint8
        key = calibration_key(ckpt_sha, frames, args.calib_seed)
        feeds, cache, reused = calibration_inputs(fp32, frames, args.calib_dir, key)
        for k, src in enumerate(fp32, start=1):
            ranges = cache.with_name(f"{cache.stem}.stage{k}.{args.calib_method}.{sha256_file(src)[:12]}.json")
            for flavour in ("", "u8"):
                rel = f"onnx/{names.artifact_filename(k, 'int8', flavour)}"
                qdq_from_onnx(src, tmp / rel, CalibrationReader(feeds[k - 1]), method=args.calib_method,
                              flavour=flavour, ranges=ranges)
                arts.append(_entry(tmp, rel, k, "int8", flavour=flavour))
        calib = {"method": args.calib_method, "images": int(len(idx)), "seed": args.calib_seed,
                 "drawn_from": f"train split minus the validation split (seed {ckpt['split']['seed']}, "
                               f"size {ckpt['split']['size']})",
                 "data": args.data or "cifar10-official", "key": key, "cache": str(cache),
                 "flavours": FLAVOUR_NOTES}
        _log(f"calibrated ({args.calib_method}, {len(idx)} images, cache {'reused' if reused else 'written'}: "
             f"{cache}) and quantized to INT8 ({time.time() - t0:.1f} s)")
    return arts, stages, calib


def _compile(tmp: Path, backend: str, precision: str, artifacts: list[FileEntry], args: argparse.Namespace
             ) -> list[FileEntry]:
    """Engines of one backend and precision, one per stage."""
    from pipeline.backends import EngineOptions, backend_module

    module = backend_module(backend)
    flavour = module.artifact_flavour(precision)
    sources = [a for a in artifacts if a.precision == precision and a.flavour == flavour]
    sources.sort(key=lambda a: a.stage)
    options = EngineOptions(threads=args.threads, workspace_mb=args.workspace_mb, dla_core=args.dla_core,
                            timing_cache=args.out / f".{backend}-timing.cache")
    engines = []
    for art in sources:
        rel = f"{backend}/{Path(art.path).name.removesuffix('.onnx')}{module.ENGINE_SUFFIX}"
        module.engine_from_artifact(tmp / art.path, tmp / rel, precision, options)
        engines.append(_entry(tmp, rel, art.stage, precision, backend=backend, flavour=flavour))
    return engines


def chain_accuracy(chain: Any, images: np.ndarray, labels: np.ndarray) -> list[float]:
    """Top-1 accuracy (%) of every exit, frame by frame through the chain exactly as the runtime runs it."""
    from pipeline.backends import exit_logits
    from pipeline.metrics import accuracy_per_exit

    with chain:
        return [round(a, 4) for a in accuracy_per_exit(exit_logits(chain, images), labels)]


def _measure_accuracy(manifest: Manifest, tmp: Path, threads: int, splits: dict[str, tuple[np.ndarray, np.ndarray]]
                      ) -> None:
    """Fill ``manifest.accuracy[split][variant]``; a variant that cannot run is moved to ``unsupported``."""
    from pipeline.backends import load_chain

    for backend, precision in sorted({(e.backend, e.precision) for e in manifest.engines}):
        key = variant_key(backend, precision)
        t0 = time.time()
        try:
            for split, (images, labels) in splits.items():
                acc = chain_accuracy(load_chain(manifest, tmp, backend, precision, threads), images, labels)
                manifest.accuracy.setdefault(split, {})[key] = acc
        except PipelineError as exc:
            _drop_variant(manifest, tmp, backend, precision, f"built but does not run: {exc}")
            continue
        shown = "; ".join(f"{s} " + " ".join(f"{a:.2f}" for a in manifest.accuracy[s][key]) for s in splits)
        _log(f"accuracy {key} per exit (%): {shown} ({time.time() - t0:.1f} s)")




def _drop_variant(manifest: Manifest, folder: Path, backend: str, precision: str, reason: str) -> None:
    for e in manifest.files(backend=backend, precision=precision, engines=True):
        (folder / e.path).unlink(missing_ok=True)
    manifest.engines = [e for e in manifest.engines if (e.backend, e.precision) != (backend, precision)]
    for table in manifest.accuracy.values():
        table.pop(variant_key(backend, precision), None)
    manifest.unsupported.append({"backend": backend, "precision": precision, "reason": reason})
    _log(f"note: {variant_key(backend, precision)} is not supported here: {reason}")


# --- the command -----------------------------------------------------------------------------------


def _source_manifest(args: argparse.Namespace) -> tuple[Manifest, Path]:
    """Compile-only: the manifest and folder holding the portable artifacts."""
    if args.artifacts is not None:
        folder = args.artifacts
    elif args.name:
        folder = args.out / args.name
    else:
        found = sorted(p.parent for p in args.out.glob(f"*/{MANIFEST_NAME}"))
        if len(found) != 1:
            raise PipelineError(f"--compile-only needs the artifacts' folder: {len(found)} model folders in "
                                f"{args.out} ({', '.join(p.name for p in found) or 'none'}); "
                                "pass --name or --artifacts")
        folder = found[0]
    try:
        manifest = load_manifest(folder)
    except PipelineError as exc:
        why = "" if args.compile_only else ("torch, onnxsim or onnxconverter-common is missing here, so this "
                                            "build can only compile existing artifacts: ")
        raise PipelineError(f"{why}{exc}") from None
    if not manifest.artifacts:
        raise PipelineError(f"{folder} holds no ONNX artifacts to compile; export them on a host with torch "
                            "(`make engines`) and copy the folder here")
    return manifest, folder


def _build_key(args: argparse.Namespace, plan: Plan, source: dict[str, Any], device: DeviceInfo) -> dict[str, Any]:
    return {"format": BUILD_FORMAT, "pipeline": __version__, "source": source, "precisions": plan.precisions,
            "backends": plan.backends, "unsupported": plan.unsupported, "device": device.to_dict(), "tools": _tool_versions(),
            "data": None if args.skip_accuracy and plan.compile_only else _data_identity(args.data),
            "options": {"calib_images": args.calib_images, "calib_method": args.calib_method,
                        "calib_seed": args.calib_seed, "threads": args.threads, "test_split": args.test_split,
                        "skip_accuracy": args.skip_accuracy, "workspace_mb": args.workspace_mb,
                        "dla_core": args.dla_core}}


def _previous_build(out: Path, name: str, source: dict[str, Any]) -> Path | None:
    """The model folder an earlier build of the same source wrote: ``out/name``, or found by its build info."""
    if name:
        return out / name
    for info in sorted(out.glob(f"*/{BUILD_INFO}")):
        try:
            if json.loads(info.read_text()).get("source") == source:
                return info.parent
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _up_to_date(dest: Path, key: dict[str, Any]) -> bool:
    info = dest / BUILD_INFO
    if not info.is_file():
        return False
    try:
        if json.loads(info.read_text()) != key:
            return False
        load_manifest(dest, verify=True)
    except (OSError, ValueError, PipelineError):
        return False
    return True


@dataclass
class Source:
    """What the build starts from: a checkpoint to export, or (compile-only) a folder of artifacts."""

    identity: dict[str, Any]  # hashes: part of the build key
    name: str  # model folder name ("" until the checkpoint is read)
    checkpoint_sha256: str = ""
    manifest: Manifest | None = None  # compile-only: the artifacts' manifest
    folder: Path | None = None  # compile-only: where the artifacts are


def _resolve_source(args: argparse.Namespace, plan: Plan) -> Source:
    if not plan.compile_only:
        if not args.checkpoint.is_file():
            raise PipelineError(f"checkpoint {args.checkpoint} does not exist; train one with `make train` "
                                "or pass --checkpoint")
        sha = sha256_file(args.checkpoint)
        return Source({"checkpoint_sha256": sha}, args.name, checkpoint_sha256=sha)
    manifest, folder = _source_manifest(args)
    if args.checkpoint is not None and args.checkpoint.is_file():
        if sha256_file(args.checkpoint) != manifest.model.get("checkpoint_sha256"):
            raise PipelineError(f"the artifacts in {folder} were exported from another checkpoint than "
                                f"{args.checkpoint}; export again on a host with torch, or pass the matching one")
    missing = [p for p in plan.precisions if p not in {a.precision for a in manifest.artifacts}]
    if missing:
        raise PipelineError(f"{folder} has no {', '.join(missing)} artifacts to compile; export them on a "
                            "host with torch, or drop them from --precisions")
    if not args.skip_accuracy and not manifest.model.get("split"):
        raise PipelineError(f"{folder}/{MANIFEST_NAME} does not record the validation split, so accuracy cannot "
                            "be measured; pass --skip-accuracy or export the artifacts again")
    return Source({"artifacts": sorted(a.sha256 for a in manifest.artifacts)}, args.name or folder.name,
                  manifest.model.get("checkpoint_sha256", ""), manifest, folder)


def _compile_all(manifest: Manifest, tmp: Path, plan: Plan, args: argparse.Namespace) -> None:
    """Engines for every backend and precision of the plan; ONNX Runtime variants that fail are recorded."""
    from pipeline.backends import backend_module

    skip = {(u["backend"], u["precision"]) for u in manifest.unsupported}
    for backend in plan.backends:
        module = backend_module(backend)
        for precision in [p for p in plan.precisions if (backend, p) not in skip]:
            key, t0 = variant_key(backend, precision), time.time()
            try:
                manifest.engines += _compile(tmp, backend, precision, manifest.artifacts, args)
            except PipelineError as exc:
                if module.STOP_ON_BUILD_FAILURE:
                    raise
                _drop_variant(manifest, tmp, backend, precision, str(exc))
                continue
            _log(f"compiled {key} engines ({time.time() - t0:.1f} s)")
            note = module.build_notes(manifest, tmp, precision)
            if note:
                manifest.device.emulated[key] = note
                _log(f"note: {key}: {note}")


def _build_into(tmp: Path, src: Source, plan: Plan, args: argparse.Namespace, device: DeviceInfo) -> Manifest:
    """Every step of the build, writing only inside ``tmp``; returns the final manifest (also written there)."""
    if src.manifest is not None:  # compile-only: the artifacts and the model's description come with them
        m = src.manifest
        manifest = Manifest(model=m.model, classes=m.classes, input=m.input, stages=m.stages,
                            artifacts=list(m.artifacts), calibration=m.calibration)
        for a in m.artifacts:
            (tmp / a.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src.folder / a.path, tmp / a.path)
        _log(f"compiling the artifacts of {src.folder} (no export here)")
    else:
        model, ckpt = _load_checkpoint(args)
        p = model.cfg.preprocess
        manifest = Manifest(
            model={"name": ckpt["model"], "config": ckpt["config"], "checkpoint_sha256": src.checkpoint_sha256,
                   "split": ckpt["split"]},
            classes=list(ckpt["classes"]), stages=[],
            input=InputSpec(names.FRAME, ["N", p.height, p.width, 3], "uint8", p.colour_order, list(p.mean),
                            list(p.std)))
    size = manifest.input.size
    assert size is not None  # the export writes a static (H, W)
    need_train = not args.skip_accuracy or (src.manifest is None and "int8" in plan.precisions)
    train = _load_images(args, "train", manifest.classes, size) if need_train else None
    if src.manifest is None:
        manifest.artifacts, manifest.stages, manifest.calibration = _export(
            model, tmp, plan, args, src.checkpoint_sha256, ckpt, train)
    manifest.unsupported = list(plan.unsupported)
    manifest.tools, manifest.device = _tool_versions(), DeviceInfo.from_dict(device.to_dict())
    _compile_all(manifest, tmp, plan, args)
    write_manifest(tmp, manifest)
    if not args.skip_accuracy:
        from pipeline.data import validation_split

        split = manifest.model["split"]
        _, val_idx = validation_split(train.labels, size=int(split["size"]), seed=int(split["seed"]))
        splits = {"validation": (train.images[val_idx], train.labels[val_idx])}
        if args.test_split:  # final reporting only: nothing is chosen from these numbers
            test = _load_images(args, "test", manifest.classes, size)
            splits["test"] = (test.images, test.labels)
        _measure_accuracy(manifest, tmp, args.threads, splits)
    write_manifest(tmp, manifest)
    return manifest


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan = check_options(args)
    started = time.time()
    src = _resolve_source(args, plan)
    device = _device(plan.backends, args.threads)

    # Up to date? Decided from hashes and versions only: no torch, no data loading.
    key = _build_key(args, plan, src.identity, device)
    previous = _previous_build(args.out, src.name, src.identity)
    if previous is not None and not args.force and _up_to_date(previous, key):
        _log(f"{previous}: up to date ({time.time() - started:.1f} s)")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(args.out)
    tmp = args.out / f".{src.name or 'build'}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with _one_torch_thread(src.manifest is None):
            manifest = _build_into(tmp, src, plan, args, device)
        name = src.name or manifest.model["name"]
        (tmp / BUILD_INFO).write_text(json.dumps(key, indent=2) + "\n")
        load_manifest(tmp, verify=True)  # what the runtime will check, checked before it is in place
        _swap_into_place(tmp, args.out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    built = sorted({variant_key(e.backend, e.precision) for e in manifest.engines})
    _log(f"built {args.out / name} in {time.time() - started:.1f} s: {', '.join(built)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
