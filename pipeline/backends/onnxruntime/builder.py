"""ONNX Runtime "engines": each artifact optimised once for this machine and saved, plus session settings.

With only the CPU provider, the engine is the graph after every optimisation (ORT_ENABLE_ALL:
fusions, Q/DQ folded into integer kernels, the CPU's blocked layouts). That graph is tied to this
kind of CPU, like a TensorRT plan to its GPU. Where the CUDA or TensorRT execution providers are
present the saved graph is optimised only to the portable basic level (those providers compile
their own kernels at load time), and sessions use them first.

One intra-op thread is the default: for these small stages it is faster and much steadier than
two, and a per-frame deadline lives in the latency's tail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pipeline.errors import PipelineError

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def available_providers() -> list[str]:
    """The execution providers to use here, best first: TensorRT, CUDA, then the CPU."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in (*GPU_PROVIDERS, "CPUExecutionProvider") if p in available]


def session_options(threads: int = 1, *, optimize: str = "all", save_to: str | Path | None = None,
                    spinning: bool = True) -> Any:
    """Sequential execution, ``threads`` intra-op threads, the given optimisation level ("all", "basic", "none");
    ``spinning`` False: idle worker threads sleep at once (two sessions timed in turns do not compete)."""
    import onnxruntime as ort

    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    opts = ort.SessionOptions()
    opts.graph_optimization_level = levels[optimize]
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: the NCHWc "hardware specific" notice is expected here
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def create_session(path: str | Path, threads: int = 1, *, optimize: str = "all",
                   use_providers: Sequence[str] | None = None, spinning: bool = True) -> Any:
    """An InferenceSession on ``path``; an unloadable graph is a PipelineError naming the file."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), session_options(threads, optimize=optimize, spinning=spinning),
                                    providers=list(use_providers or available_providers()))
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
        raise PipelineError(f"ONNX Runtime cannot load {Path(path).name}: {str(exc)[:400]}") from exc


def computes_in_float32(engine: str | Path) -> bool:
    """True where every convolution / matrix product of the saved engine has float32 weights.

    That is what the CPU provider makes of an FP16 graph where it has no FP16 kernels (x86): the
    variant runs, with FP16-rounded weights, but computes in float32 behind extra casts.
    """
    import onnx

    graph = onnx.load(str(engine), load_external_data=False).graph
    types = {i.name: i.data_type for i in graph.initializer}
    weights = [types[n.input[1]] for n in graph.node
               if ("Conv" in n.op_type or n.op_type in ("Gemm", "MatMul")) and len(n.input) > 1 and n.input[1] in types]
    return bool(weights) and all(t == onnx.TensorProto.FLOAT for t in weights)


def engine_from_onnx(src: str | Path, dst: str | Path, threads: int = 1) -> Path:
    """Optimise the artifact ``src`` for this machine and save the result as the engine ``dst``."""
    import onnxruntime as ort

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    gpu = any(p in GPU_PROVIDERS for p in available_providers())
    opts = session_options(threads, optimize="basic" if gpu else "all", save_to=dst)
    try:
        ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise PipelineError(f"ONNX Runtime cannot load {Path(src).name}: {str(exc)[:400]}") from exc
    if not dst.is_file():
        raise PipelineError(f"ONNX Runtime did not write the optimised graph {dst}")
    return dst
