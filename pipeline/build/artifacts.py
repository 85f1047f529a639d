"""Export (host only: torch): each stage to ONNX and simplified, FP16 graphs, INT8 Q/DQ graphs calibrated
on training images outside the validation split."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pipeline import names
from pipeline.build.options import BuildOptions, BuildTargets
from pipeline.data.imageset import ImageSet
from pipeline.errors import PipelineError
from pipeline.manifest import FileEntry, StageSpec, sha256_file

if TYPE_CHECKING:
    from pipeline.models.msdnet import MSDNet

FLAVOUR_NOTES = {
    "int8": "int8 activations (zero point 0), symmetric per-channel int8 weights: TensorRT's scheme",
    "int8.u8": "uint8 activations (asymmetric), per-channel int8 weights: for ONNX Runtime's x86 CPU kernels",
}


def log(msg: str) -> None:
    print(msg, flush=True)


@contextlib.contextmanager
def one_torch_thread(active: bool) -> Iterator[None]:
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


def load_checkpoint(opts: BuildOptions) -> tuple["MSDNet", dict[str, Any]]:
    """(model in eval mode, checkpoint dict), refused where the checkpoint holds a model this version lacks."""
    from pipeline.models.loading import load_model
    from pipeline.models import is_factory, list_models

    assert opts.checkpoint is not None  # check_options requires it to export
    model, ckpt = load_model(opts.checkpoint, expect_model=opts.model or None)
    if ckpt["model"] not in list_models() and not is_factory(ckpt["model"]):
        raise PipelineError(f"checkpoint {opts.checkpoint} holds model {ckpt['model']!r}, which this version does "
                            f"not know (known: {', '.join(list_models())}); update the pipeline or retrain")
    return model, ckpt


def export_artifacts(model: "MSDNet", tmp: Path, targets: BuildTargets, opts: BuildOptions, ckpt_sha: str,
                     ckpt: dict[str, Any], train: ImageSet | None
                     ) -> tuple[list[FileEntry], list[StageSpec], dict[str, Any]]:
    """FP32 export, FP16 conversion, INT8 calibration and quantization; returns artifacts, stages, calibration info."""
    from pipeline.export.onnx_export import onnx_from_model, tensor_specs
    from pipeline.models.flops import exit_costs

    t0 = time.time()
    fp32 = onnx_from_model(model, tmp / "onnx")
    costs = exit_costs(model)
    stages = [StageSpec(k, *tensor_specs(p), flops=costs[k - 1]["flops"], params=costs[k - 1]["params"])
              for k, p in enumerate(fp32, start=1)]
    log(f"exported and simplified {len(fp32)} stages ({time.time() - t0:.1f} s)")
    arts, calib = variants_from_fp32(fp32, tmp, targets, opts, ckpt_sha, ckpt["split"], train)
    return arts, stages, calib


def variants_from_fp32(fp32: list[Path], tmp: Path, targets: BuildTargets, opts: BuildOptions, source_sha: str,
                       split: dict[str, Any], train: ImageSet | None) -> tuple[list[FileEntry], dict[str, Any]]:
    """The FP32 stage graphs in ``tmp/onnx`` with their FP16 and INT8 variants; returns artifacts, calibration info.

    ``split`` is the validation split ({"seed", "size"}) that calibration images are drawn outside of.
    """
    from pipeline.export.calibration import (CalibrationReader, calibration_indices, calibration_inputs,
                                             calibration_key)
    from pipeline.export.fp16 import fp16_from_onnx
    from pipeline.export.int8 import qdq_from_onnx

    arts = [FileEntry.of(tmp, f"onnx/{p.name}", k, "fp32") for k, p in enumerate(fp32, start=1)]
    if "fp16" in targets.precisions:
        t0 = time.time()
        for k, src in enumerate(fp32, start=1):
            rel = f"onnx/{names.artifact_filename(k, 'fp16')}"
            fp16_from_onnx(src, tmp / rel)
            arts.append(FileEntry.of(tmp, rel, k, "fp16"))
        log(f"converted to FP16 ({time.time() - t0:.1f} s)")
    calib: dict[str, Any] = {}
    if "int8" in targets.precisions:
        assert train is not None  # loaded for calibration
        t0 = time.time()
        idx = calibration_indices(train.labels, split, opts.calib_images, opts.calib_seed)
        frames = train.images[idx]  # (N, H, W, 3) uint8
        key = calibration_key(source_sha, frames, opts.calib_seed)
        feeds, cache, reused = calibration_inputs(fp32, frames, opts.calib_dir, key)
        for k, src in enumerate(fp32, start=1):
            ranges = cache.with_name(f"{cache.stem}.stage{k}.{opts.calib_method}.{sha256_file(src)[:12]}.json")
            for flavour in ("", "u8"):
                rel = f"onnx/{names.artifact_filename(k, 'int8', flavour)}"
                qdq_from_onnx(src, tmp / rel, CalibrationReader(feeds[k - 1]), method=opts.calib_method,
                              flavour=flavour, ranges=ranges)
                arts.append(FileEntry.of(tmp, rel, k, "int8", flavour=flavour))
        calib = {"method": opts.calib_method, "images": int(len(idx)), "seed": opts.calib_seed,
                 "drawn_from": f"train split minus the validation split (seed {split['seed']}, "
                               f"size {split['size']})",
                 "data": opts.data.source or "cifar10-official", "key": key, "cache": str(cache),
                 "flavours": FLAVOUR_NOTES}
        log(f"calibrated ({opts.calib_method}, {len(idx)} images, cache {'reused' if reused else 'written'}: "
            f"{cache}) and quantized to INT8 ({time.time() - t0:.1f} s)")
    return arts, calib
