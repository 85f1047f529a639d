"""`make engines`: a checkpoint in; per-stage ONNX artifacts, engines for this machine and a manifest out.

    python -m pipeline.build --checkpoint models/ranet_cifar10.pt --data DATA --out engines \
        [--precisions fp32,fp16,int8] [--backend auto|onnxruntime|tensorrt] [--calib-images 512] \
        [--calib-method entropy|percentile|minmax] [--threads 1] [--test-split] [--compile-only]

Steps: export and simplify each stage (FP32) -> FP16 graphs -> INT8 Q/DQ graphs calibrated on
training images -> engines for every backend usable here -> per-exit accuracy of every variant on
the checkpoint's validation split -> ``<out>/<model>/manifest.json``, written into a temporary
folder renamed into place when complete. Without torch (a Jetson), the portable ONNX artifacts
already in the folder (or in --artifacts) are compiled for this machine, without exporting again.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pipeline import names
from pipeline.backends import BACKENDS, EngineOptions, backend_batch_ranges, backend_device_facts
from pipeline.backends.base import DEFAULT_WORKSPACE_MB, INT8_STAGES
from pipeline.build import accuracy, artifacts, engines, folder, onnx_source, options, source
from pipeline.build.artifacts import log
from pipeline.build.options import BuildOptions, BuildTargets
from pipeline.build.source import Source
from pipeline.data.options import DataOptions, add_data_options
from pipeline.data.splits import load_checked, redraw_validation
from pipeline.device import host_facts
from pipeline.errors import cli_main
from pipeline.export.calibration import DEFAULT_IMAGES
from pipeline.manifest import BatchRange, DeviceInfo, InputSpec, Manifest, variant_key, write_manifest
from pipeline.models import folder_name
from pipeline.stop import stop_at_once


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime engines", description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="trained checkpoint (.pt); optional with --compile-only")
    ap.add_argument("--model", default="", help="expected registered model (default: the checkpoint's)")
    ap.add_argument("--model-factory", default="", metavar="PACKAGE.MODULE:FUNCTION",
                    help="the checkpoint's model comes from this factory of yours (see the stage contract)")
    ap.add_argument("--name", default="", help="model folder under --out (default: the model's name)")
    ap.add_argument("--out", type=Path, default=Path("engines"), help="engines root folder")
    ap.add_argument("--precisions", default="fp32,fp16,int8", help="comma-separated: fp32, fp16, int8")
    ap.add_argument("--backend", default=options.AUTO, help=f"auto (every usable one) or one of {', '.join(BACKENDS)}")
    add_data_options(ap, "training and validation images")
    ap.add_argument("--calib-dir", type=Path, default=Path("calib"), help="calibration tensor cache")
    ap.add_argument("--calib-images", type=int, default=DEFAULT_IMAGES,
                    help="INT8 calibration images from the training split (never validation or test)")
    ap.add_argument("--calib-method", default="entropy", help="entropy, percentile or minmax")
    ap.add_argument("--calib-seed", type=int, default=0, help="seed that draws the calibration images")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads of the engines")
    ap.add_argument("--test-split", action="store_true",
                    help="also measure accuracy on the test split (final reporting only)")
    ap.add_argument("--skip-accuracy", action="store_true",
                    help="do not measure accuracy (no data needed, except to calibrate INT8 when exporting)")
    ap.add_argument("--compile-only", action="store_true", help="compile the artifacts already built; no export")
    ap.add_argument("--artifacts", type=Path, default=None, help="with --compile-only: folder holding the artifacts")
    ap.add_argument("--onnx-spec", type=Path, default=None,
                    help="build from stage graphs made elsewhere, described by this JSON spec (no checkpoint)")
    ap.add_argument("--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB, help="TensorRT builder workspace")
    ap.add_argument("--dla-core", type=int, default=None, help="TensorRT: build for this DLA core, GPU fallback")
    ap.add_argument("--max-batch", type=int, default=1,
                    help="TensorRT: largest batch of frames a plan takes (its optimisation profile; `anytime streams`)")
    ap.add_argument("--opt-batch", type=int, default=None, help="TensorRT: the batch the kernels are tuned for "
                    "(default: --max-batch)")
    ap.add_argument("--int8-stages", default=INT8_STAGES[0], choices=INT8_STAGES,
                    help="ONNX Runtime: a stage of the INT8 chain runs its float graph where that is faster on this "
                    "machine (faster), or INT8 at every stage (all)")
    ap.add_argument("--force", action="store_true", help="rebuild even if the folder is up to date")
    return ap


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        checkpoint=args.checkpoint, out=args.out, data=DataOptions.from_args(args), model=args.model_factory or args.model,
        name=args.name, precisions=args.precisions, backend=args.backend, calib_dir=args.calib_dir,
        calib_images=args.calib_images, calib_method=args.calib_method, calib_seed=args.calib_seed,
        test_split=args.test_split, skip_accuracy=args.skip_accuracy, compile_only=args.compile_only,
        artifacts=args.artifacts, onnx_spec=args.onnx_spec, force=args.force,
        engine=EngineOptions(threads=args.threads, workspace_mb=args.workspace_mb, dla_core=args.dla_core,
                             max_batch=args.max_batch, opt_batch=args.opt_batch, int8_stages=args.int8_stages))


def _start_manifest(tmp: Path, src: Source, opts: BuildOptions) -> tuple[Manifest, tuple[Any, dict[str, Any]] | None]:
    """The manifest's model description: from the artifacts (compile-only, copied into ``tmp``), the checkpoint,
    or a spec of stage graphs."""
    if src.onnx_spec is not None:
        s = src.onnx_spec
        mean, std = (list(s.mean), list(s.std)) if s.mean is not None and s.std is not None else ([], [])
        return Manifest(model={"name": s.name, "config": {"onnx_spec": s.path.name}, "checkpoint_sha256":
                               src.checkpoint_sha256, "split": {}}, classes=list(s.classes), stages=[],
                        input=InputSpec(names.FRAME, ["N", s.height, s.width, 3], "uint8", "BGR", mean, std,
                                        s.resize_shorter)), None
    if src.manifest is not None:
        m = src.manifest
        assert src.folder is not None
        for a in m.artifacts:
            (tmp / a.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src.folder / a.path, tmp / a.path)
        log(f"compiling the artifacts of {src.folder} (no export here)")
        return Manifest(model=m.model, classes=m.classes, input=m.input, stages=m.stages,
                        artifacts=list(m.artifacts), calibration=m.calibration), None
    model, ckpt = artifacts.load_checkpoint(opts)
    p = model.cfg.preprocess
    manifest = Manifest(
        model={"name": ckpt["model"], "config": ckpt["config"], "checkpoint_sha256": src.checkpoint_sha256,
               "split": ckpt["split"]},
        classes=list(ckpt["classes"]), stages=[],
        input=InputSpec(names.FRAME, ["N", p.height, p.width, 3], "uint8", p.colour_order, list(p.mean), list(p.std),
                        p.resize_shorter))
    return manifest, (model, ckpt)


def build_into(tmp: Path, src: Source, targets: BuildTargets, opts: BuildOptions, device: DeviceInfo) -> Manifest:
    """Every step of the build, writing only inside ``tmp``; returns the final manifest (also written there)."""
    manifest, exported_from = _start_manifest(tmp, src, opts)
    size, data = manifest.input.size, opts.data
    graphs = onnx_source.fp32_from_spec(src.onnx_spec, tmp) if src.onnx_spec is not None else None
    need_train = options.needs_data(opts, targets)
    shorter = manifest.input.resize_shorter
    train = load_checked(data.source, "train", data.cache_dir, size, manifest.classes, shorter) if need_train else None
    if graphs is not None:
        given = src.onnx_spec.validation_size
        manifest.model["split"] = {"seed": 0, "size": given or max(1, len(train.labels) // 10), "source":
                                   "the spec's validation_size" if given else "a tenth"} if train else {}
        manifest.stages = graphs[1]
        manifest.artifacts, manifest.calibration = artifacts.variants_from_fp32(
            graphs[0], tmp, targets, opts, src.checkpoint_sha256, manifest.model["split"], train)
    if exported_from is not None:
        model, ckpt = exported_from
        manifest.artifacts, manifest.stages, manifest.calibration = artifacts.export_artifacts(
            model, tmp, targets, opts, src.checkpoint_sha256, ckpt, train)
    manifest.unsupported = list(targets.unsupported)
    manifest.tools, manifest.device = source.tool_versions(), DeviceInfo.from_dict(device.to_dict())
    manifest.batch = {b: BatchRange.from_dict(r) for b, r in backend_batch_ranges(targets.backends, opts.engine).items()}
    engines.compile_all(manifest, tmp, targets, opts)
    write_manifest(tmp, manifest)
    if not opts.skip_accuracy:
        assert train is not None
        splits = {"validation": redraw_validation(train, manifest.model["split"])}
        if opts.test_split:  # final reporting only: nothing is chosen from these numbers
            test = load_checked(data.source, "test", data.cache_dir, size, manifest.classes, shorter)
            splits["test"] = (test.images, test.labels)
        accuracy.measure_accuracy(manifest, tmp, opts.engine.threads, splits)
    write_manifest(tmp, manifest)
    return manifest


@cli_main
def main(argv: list[str] | None = None) -> int:
    """The build; SIGINT or SIGTERM stop it at once, leaving no temporary file or folder (exit 130 or 143)."""
    opts = options_from_args(build_parser().parse_args(argv))
    targets = options.check_options(opts)
    with stop_at_once():
        return _build(opts, targets)


def _build(opts: BuildOptions, targets: BuildTargets) -> int:
    started = time.time()
    src = source.resolve_source(opts, targets)
    device = DeviceInfo(**host_facts(), backends=backend_device_facts(targets.backends, opts.engine.threads))

    # Up to date? Decided from hashes and versions only: no torch, no data loading.
    key = source.build_key(opts, targets, src, device)
    previous = folder.previous_build(opts.out, src.name, src.identity)
    if previous is not None and not opts.force and folder.up_to_date(previous, key):
        log(f"{previous}: up to date ({time.time() - started:.1f} s)")
        return 0

    with folder.build_lock(opts.out), folder.temporary_folder(opts.out, src.name) as tmp:
        with artifacts.one_torch_thread(src.manifest is None):
            manifest = build_into(tmp, src, targets, opts, device)
        name = src.name or folder_name(manifest.model["name"])
        dropped = folder.dropped_tables(opts.out / name)
        folder.swap_into_place(tmp, opts.out / name, key)
    if dropped is not None:
        print(f"note: {dropped}", file=sys.stderr)
    built = sorted({variant_key(e.backend, e.precision) for e in manifest.engines})
    log(f"built {opts.out / name} in {time.time() - started:.1f} s: {', '.join(built)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
