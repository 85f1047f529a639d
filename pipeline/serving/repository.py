"""A Triton model repository from a built engines folder: one model per stage, and the ``cascade`` BLS model.

    anytime triton repo --engines engines/ranet --out triton/ranet [--precision fp32]

Stage k is the model ``stage<k>``, batching dynamically. Where TensorRT plans of the precision
were built, it is a ``tensorrt_plan`` model (the plan copied as ``model.plan``; its batch size is
the plans' optimisation profile's, ``--plan-max-batch``); otherwise a Python-backend model running
the stage's portable ONNX artifact (copied as ``model.onnx``) in ONNX Runtime. ``cascade`` applies
the manifest's exit thresholds and deadline rule over the stage models through BLS.
``repository.json`` (which Triton ignores) records what was written, for ``anytime triton serve``'s
check and for clients. The folder is written beside its destination and renamed into place:
whole or absent; an existing repository written here is replaced, any other folder refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.backends.onnxruntime.chain import MAX_BATCH
from pipeline.build.folder import BUILD_INFO
from pipeline.errors import PipelineError, cli_main
from pipeline.files import MODEL_MARK, atomic_write_text, check_output_folder
from pipeline.manifest import FileEntry, Manifest, load_manifest, variant_key
from pipeline.names import PRECISIONS
from pipeline.serving.configs import (DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, ModelSpec, Tensor, config_text,
                                      tensor_from_spec)
from pipeline.serving.rule import exit_rule, start_latency
from pipeline.serving.triton_models import source

RECORD = "repository.json"
FORMAT = 1
CASCADE = "cascade"
KINDS = ("auto", "python", "tensorrt")
BLS_CHUNK = 16  # frames per BLS request: later chunks are checked against their deadlines again
MAX_QUEUE_DELAY_US = 10_000_000  # ten seconds: past any frame's deadline
MAX_INSTANCES = 64  # model instances, or threads per instance: each is a process stub or thread on one machine


def stage_model(k: int) -> str:
    return f"stage{k}"


@dataclass(frozen=True)
class RepoOptions:
    precision: str = "fp32"
    kind: str = "auto"  # auto: TensorRT plans where built, else Python models on ONNX Runtime
    max_batch: int = DEFAULT_MAX_BATCH  # Python-backend stage models and the cascade model
    plan_max_batch: int = 1  # the plans' profile: `anytime engines` builds batch 1 today
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    threads: int = 1  # ONNX Runtime intra-op threads per stage model instance
    policy: str = "default"

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise PipelineError(f"--precision should be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.kind not in KINDS:
            raise PipelineError(f"--kind should be one of {', '.join(KINDS)}, got {self.kind!r}")
        for name, value, low, high in (("--max-batch", self.max_batch, 1, MAX_BATCH),
                                       ("--plan-max-batch", self.plan_max_batch, 1, MAX_BATCH),
                                       ("--queue-delay-us", self.queue_delay_us, 0, MAX_QUEUE_DELAY_US),
                                       ("--instances", self.instances, 1, MAX_INSTANCES),
                                       ("--threads", self.threads, 1, MAX_INSTANCES)):
            if not low <= value <= high:  # past the highs, the configuration is one Triton refuses or cannot run
                raise PipelineError(f"{name} should be {low} to {high}, got {value}")


def stage_tensors(manifest: Manifest, k: int) -> tuple[list[Tensor], list[Tensor]]:
    s = manifest.stages[k - 1]
    return ([tensor_from_spec(t.name, t.shape, t.dtype) for t in s.inputs],
            [tensor_from_spec(t.name, t.shape, t.dtype) for t in s.outputs])


def choose_variant(manifest: Manifest, folder: Path, opts: RepoOptions) -> tuple[str, list[Path]]:
    """("tensorrt" or "python", one file per stage): plans where built and allowed, else ONNX artifacts."""
    p, k = opts.precision, manifest.num_exits
    plans = manifest.files(backend="tensorrt", precision=p, engines=True)
    if opts.kind in ("auto", "tensorrt") and len(plans) == k:
        return "tensorrt", [folder / e.path for e in plans]
    if opts.kind == "tensorrt":
        raise PipelineError(f"{folder} has no TensorRT plans of {p} for all {k} stages; build them on the GPU with "
                            "`anytime engines --backend tensorrt`, or write Python models with --kind python")
    for flavour in (("u8", "") if p == "int8" else ("",)):
        graphs = manifest.files(precision=p, flavour=flavour)
        if len(graphs) == k:
            return "python", [folder / e.path for e in _as_built_here(manifest, graphs)]
    raise PipelineError(f"{folder} has no ONNX artifacts of {p} for all {k} stages; build them with `anytime engines`")


def _as_built_here(manifest: Manifest, graphs: list[FileEntry]) -> list[FileEntry]:
    """The INT8 graphs with the FP32 artifact in place of each stage that the ONNX Runtime INT8 chain built here
    runs in float (its thresholds and latency, which the served models take, were measured on that chain)."""
    from pipeline.backends.onnxruntime import float_stages

    floats = float_stages(manifest) if graphs and graphs[0].precision == "int8" else set()
    fp32 = {a.stage: a for a in manifest.files(precision="fp32", flavour="")}
    return [fp32[g.stage] if g.stage in floats and g.stage in fp32 else g for g in graphs]


def served_variant(kind: str, precision: str) -> str:
    """The manifest's key of what the stage models run: their thresholds and latency apply."""
    return variant_key("tensorrt" if kind == "tensorrt" else "onnxruntime", precision)


def record(manifest: Manifest, kind: str, opts: RepoOptions) -> dict[str, Any]:
    """``repository.json``: the model, the variant, and every stage model's tensors."""
    stages = []
    for k in range(1, manifest.num_exits + 1):
        ins, outs = stage_tensors(manifest, k)
        stages.append({"model": stage_model(k), "inputs": [_tjson(t) for t in ins],
                       "outputs": [_tjson(t) for t in outs]})
    return {"format": FORMAT, "model": manifest.model.get("name", ""),
            "checkpoint_sha256": manifest.model.get("checkpoint_sha256", ""), "kind": kind,
            "variant": served_variant(kind, opts.precision), "policy": opts.policy, "classes": list(manifest.classes),
            "stages": stages, "cascade": CASCADE,
            "max_batch": opts.plan_max_batch if kind == "tensorrt" else opts.max_batch}


def _tjson(t: Tensor) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype, "dims": list(t.dims)}


def cascade_spec(manifest: Manifest, rec: dict[str, Any]) -> dict[str, Any]:
    """``cascade.json``: the stage models' tensors, the exit rule and the starting latency."""
    rule = exit_rule(manifest, rec["variant"], rec["policy"])
    p50, p99 = start_latency(manifest, rec["variant"])
    return {"stages": [{"model": s["model"], "inputs": [t["name"] for t in s["inputs"]],
                        "outputs": [t["name"] for t in s["outputs"]]} for s in rec["stages"]],
            "score_thresholds": rule.score_thresholds(manifest.num_exits), "criterion": rule.criterion,
            "aggregate": rule.aggregate, "stage_max_batch": rec["max_batch"],
            "chunk": min(rec["max_batch"], BLS_CHUNK), "latency_p50_ms": p50,
            "latency_p99_ms": p99}


def write_repository(engines: str | Path, out: str | Path, opts: RepoOptions = RepoOptions()) -> dict[str, Any]:
    """Write the repository for ``engines`` at ``out`` (whole or not at all); returns its record."""
    opts.check()
    engines, out = Path(engines), Path(out)
    manifest = load_manifest(engines)
    check_output_folder(out, "--out")
    real = Path(os.path.realpath(out))
    model = next((p for p in (real, *real.parents)  # a manifest beside a build record: a folder the build made
                  if (p / MODEL_MARK).is_file() and (p / BUILD_INFO).is_file()), None)
    if model is not None:  # a rebuild replaces the model folder whole, and the repository with it
        raise PipelineError(f"--out {out} lies inside the built model folder {model}, which only the build writes; "
                            "choose a folder outside it")
    if out.exists() and not (out / RECORD).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise PipelineError(f"{out} exists and is not a model repository written by `anytime triton repo`; "
                            "choose another --out or remove it")
    kind, files = choose_variant(manifest, engines, opts)
    rec = record(manifest, kind, opts)
    exit_rule(manifest, rec["variant"], opts.policy)  # an unknown policy fails before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp-repo"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _fill(tmp, manifest, kind, files, rec, opts)
        old = out.parent / f".{out.name}.{os.getpid()}.old-repo"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rec


def _fill(tmp: Path, manifest: Manifest, kind: str, files: list[Path], rec: dict[str, Any], opts: RepoOptions) -> None:
    params = {"variant": rec["variant"], "checkpoint_sha256": rec["checkpoint_sha256"]}
    for k, src in enumerate(files, start=1):
        name = stage_model(k)
        version = tmp / name / "1"
        version.mkdir(parents=True)
        ins, outs = stage_tensors(manifest, k)
        if kind == "tensorrt":
            shutil.copyfile(src, version / "model.plan")
            spec = ModelSpec(name, ins, outs, backend="tensorrt_plan", max_batch_size=opts.plan_max_batch,
                             queue_delay_us=opts.queue_delay_us, instances=opts.instances,
                             parameters={**params, "stage": str(k)})
        else:
            shutil.copyfile(src, version / "model.onnx")
            atomic_write_text(version / "model.py", source("stage"))
            spec = ModelSpec(name, ins, outs, max_batch_size=opts.max_batch, queue_delay_us=opts.queue_delay_us,
                             instances=opts.instances,
                             parameters={**params, "stage": str(k), "threads": str(opts.threads)})
        atomic_write_text(tmp / name / "config.pbtxt", config_text(spec))
    frame = tensor_from_spec(manifest.input.name, manifest.input.shape, manifest.input.dtype)
    cascade = ModelSpec(CASCADE, [frame, Tensor("budget_ms", "float32", (1,), optional=True)],
                        [Tensor("label", "int32", (1,)), Tensor("exit", "int32", (1,)),
                         Tensor("confidence", "float32", (1,)), Tensor("server_ms", "float32", (1,))],
                        max_batch_size=opts.max_batch, queue_delay_us=opts.queue_delay_us, instances=opts.instances,
                        parameters=params)
    (tmp / CASCADE / "1").mkdir(parents=True)
    atomic_write_text(tmp / CASCADE / "1" / "model.py", source("cascade"))
    atomic_write_text(tmp / CASCADE / "1" / "cascade.json", json.dumps(cascade_spec(manifest, rec), indent=1) + "\n")
    atomic_write_text(tmp / CASCADE / "config.pbtxt", config_text(cascade))
    atomic_write_text(tmp / RECORD, json.dumps(rec, indent=1) + "\n")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime triton repo", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    ap.add_argument("--out", type=Path, required=True, help="the repository folder, e.g. triton/ranet")
    ap.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    ap.add_argument("--kind", default="auto", choices=list(KINDS),
                    help="stage models: auto (TensorRT plans where built, else Python models on ONNX Runtime)")
    ap.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="batch size of the Python models")
    ap.add_argument("--plan-max-batch", type=int, default=1,
                    help="the largest batch of the plans' optimisation profile (`anytime engines` builds 1)")
    ap.add_argument("--queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                    help="how long the dynamic batcher waits to fill a batch")
    ap.add_argument("--instances", type=int, default=1, help="instances of each model")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per Python stage model instance")
    ap.add_argument("--policy", default="default", help="the exit policy of the manifest's thresholds the cascade "
                    "model applies")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    opts = RepoOptions(a.precision, a.kind, a.max_batch, a.plan_max_batch, a.queue_delay_us, a.instances, a.threads,
                       a.policy)
    rec = write_repository(a.engines, a.out, opts)
    kind = "TensorRT plans" if rec["kind"] == "tensorrt" else "Python models on ONNX Runtime"
    print(f"wrote {a.out}: {len(rec['stages'])} stage models ({kind}, {rec['variant']}, batch {rec['max_batch']}) "
          f"and the {CASCADE} model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
