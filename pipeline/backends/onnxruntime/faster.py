"""INT8 where it pays on this machine: a stage whose quantized graph runs slower here than its float graph
runs the float graph in the INT8 chain.

TensorRT makes this choice itself as it builds: it times each layer's kernels and keeps a higher precision
where that is faster. ONNX Runtime has no such choice, and its integer kernels are not always the faster
ones (a QLinearConv on large maps with few channels can take longer than the float convolution it
replaces). So the build times both graphs of each stage on this machine, run by run in turns, on random
inputs of the stage's shapes (the kernels' time does not depend on the values), and keeps the float graph
where it is clearly faster. The choice and both times are recorded in the manifest. On another CPU the
chain runs the portable (all-quantized) artifacts, as it does for every ONNX Runtime engine built elsewhere.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.backends.base import INT8_STAGES, EngineOptions
from pipeline.backends.onnxruntime.builder import create_session, engine_from_onnx
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.manifest import Manifest, StageSpec

NAME = "onnxruntime"
MARGIN = 0.9  # the float graph runs a stage of the INT8 chain where it takes at most this share of the INT8 time
RUNS, WARMUP, QUANTILE = 150, 5, 0.2


def stage_inputs(spec: "StageSpec", seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of one frame in the stage's shapes and types."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for t in spec.inputs:
        shape = [1 if d == "N" else int(d) for d in t.shape]
        feeds[t.name] = (rng.integers(0, 256, shape, dtype=np.uint8) if t.dtype == "uint8"
                         else rng.standard_normal(shape).astype(t.dtype))
    return feeds


def time_pair(first: Path, second: Path, feeds: dict[str, np.ndarray], threads: int,
              providers: Sequence[str] | None = None) -> tuple[float, float]:
    """Each graph's time per run (ms): the QUANTILE of RUNS single runs, the two graphs run in turns. A low
    quantile of single runs is what a run takes when nothing else takes the cores meanwhile, so the choice
    holds on a busy machine too."""
    sessions = [create_session(p, threads, use_providers=providers, spinning=False) for p in (first, second)]
    for s in sessions:
        for _ in range(WARMUP):
            s.run(None, feeds)
    times: list[list[float]] = [[], []]
    for _ in range(RUNS):
        for i, s in enumerate(sessions):
            t0 = time.perf_counter()
            s.run(None, feeds)
            times[i].append((time.perf_counter() - t0) * 1e3)
    return float(np.quantile(times[0], QUANTILE)), float(np.quantile(times[1], QUANTILE))


def float_candidate_name(stage: int) -> str:
    """The engine file of stage ``stage``'s float graph in the INT8 chain."""
    return f"{NAME}/stage{stage}.int8.float.onnx"


def prefer_faster(manifest: "Manifest", folder: Path, precision: str, options: EngineOptions) -> str | None:
    """For the INT8 engines in ``folder``: each stage whose float graph (compiled from its FP32 artifact) runs
    in at most MARGIN of its INT8 engine's time here runs that graph instead (the manifest's entry is replaced
    and the unused engine removed). Every stage's two times go into ``manifest.device.backends``; the return
    is a one-line account of the stages that run float, or None where none does."""
    from pipeline.backends.onnxruntime import recorded_providers
    from pipeline.manifest import FileEntry

    if precision != "int8" or options.int8_stages != INT8_STAGES[0]:
        return None
    engines = manifest.files(backend=NAME, precision="int8", engines=True)
    floats = {a.stage: a for a in manifest.files(precision="fp32", flavour="")}
    if not engines or any(e.stage not in floats for e in engines):
        return None
    providers = recorded_providers(manifest)
    record: list[dict[str, Any]] = []
    kept_float = []
    for entry in engines:
        rel = float_candidate_name(entry.stage)
        try:
            engine_from_onnx(folder / floats[entry.stage].path, folder / rel, threads=options.threads)
            spec = manifest.stages[entry.stage - 1]
            float_ms, int8_ms = time_pair(folder / rel, folder / entry.path, stage_inputs(spec), options.threads,
                                          providers)
        except PipelineError as exc:  # the INT8 engine stands; the comparison is an optimisation
            (folder / rel).unlink(missing_ok=True)
            record.append({"stage": entry.stage, "runs": "int8", "not_compared": str(exc)[:200]})
            continue
        runs = "float" if float_ms <= MARGIN * int8_ms else "int8"
        record.append({"stage": entry.stage, "int8_ms": round(int8_ms, 4), "float_ms": round(float_ms, 4), "runs": runs})
        if runs == "int8":
            (folder / rel).unlink()
            continue
        (folder / entry.path).unlink()
        manifest.engines[manifest.engines.index(entry)] = FileEntry.of(folder, rel, entry.stage, "int8", backend=NAME,
                                                                       flavour=entry.flavour)
        kept_float.append(f"stage {entry.stage} ({float_ms:.3f} against {int8_ms:.3f} ms)")
    manifest.device.backends.setdefault(NAME, {})["int8_stages"] = {"margin": MARGIN, "stages": record}
    if not kept_float:
        return None
    return (f"the INT8 chain runs the float graph of {', '.join(kept_float)}: faster here than its INT8 graph; "
            "`--int8-stages all` keeps INT8 everywhere")
