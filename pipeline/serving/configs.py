"""Triton model configurations (``config.pbtxt``) for the stage and cascade models, and their schema check.

The texts are written here from the manifest's tensor specs, without protobuf; :func:`parse_config`
reads one back through Triton's own schema (the ``model_config_pb2`` that ``tritonclient`` ships),
so a field Triton does not know or a value of the wrong type is refused without a server or a GPU.

Every model batches dynamically (``max_batch_size`` > 0, the batch axis left out of ``dims``) and
rejects a request still queued when its own timeout passes (``default_queue_policy`` with
``allow_timeout_override``): a client sends each request with the time left to its frame's
deadline, so a server that cannot keep up drops frames no one waits for any more, instead of
working through a backlog of late ones. (A request's timeout only overrides the policy's default
when it is shorter, so the default is finite: a request with no timeout waits at most that long.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pipeline.errors import PipelineError

# numpy dtype name -> (model configuration's data type, the inference protocol's datatype)
DTYPES = {"uint8": ("TYPE_UINT8", "UINT8"), "int8": ("TYPE_INT8", "INT8"), "int32": ("TYPE_INT32", "INT32"),
          "int64": ("TYPE_INT64", "INT64"), "float16": ("TYPE_FP16", "FP16"), "float32": ("TYPE_FP32", "FP32")}
WIRE_TO_NUMPY = {wire: name for name, (_, wire) in DTYPES.items()}

DEFAULT_MAX_BATCH = 64
DEFAULT_QUEUE_DELAY_US = 200  # how long the batcher waits to fill a batch: small against a frame period
# How long a request without a timeout of its own may stay queued. A request's own timeout overrides it only
# when shorter (Triton's rule), so it must be finite for the per-request timeouts to take effect at all.
DEFAULT_QUEUE_TIMEOUT_US = 30_000_000


@dataclass(frozen=True)
class Tensor:
    """One input or output of a model: name, numpy dtype name, dims without the batch axis."""

    name: str
    dtype: str
    dims: tuple[int, ...]
    optional: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise PipelineError(f"tensor {self.name} has dtype {self.dtype}, which Triton models here cannot carry "
                                f"(expected one of {', '.join(DTYPES)})")


@dataclass(frozen=True)
class ModelSpec:
    """What a ``config.pbtxt`` says: a Python-backend model (``backend="python"``) or a TensorRT plan."""

    name: str
    inputs: Sequence[Tensor]
    outputs: Sequence[Tensor]
    backend: str = "python"  # or "tensorrt_plan" (a platform)
    max_batch_size: int = DEFAULT_MAX_BATCH
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    parameters: dict[str, str] = field(default_factory=dict)


def tensor_from_spec(name: str, shape: Sequence[int | str], dtype: str) -> Tensor:
    """A manifest tensor ``(N, ...)`` as a model tensor: the batch axis dropped, the rest fixed sizes."""
    rest = list(shape[1:])
    if not all(isinstance(d, int) and d > 0 for d in rest):
        raise PipelineError(f"tensor {name} has shape {list(shape)}; a Triton model here needs fixed sizes after "
                            "the batch axis: rebuild the engines with `make engines`")
    return Tensor(name, dtype, tuple(int(d) for d in rest))


def _tensor_text(t: Tensor) -> str:
    dims = ", ".join(str(d) for d in t.dims)
    opt = " optional: true" if t.optional else ""
    return f'  {{ name: "{t.name}" data_type: {DTYPES[t.dtype][0]} dims: [ {dims} ]{opt} }}'


def config_text(spec: ModelSpec) -> str:
    """The ``config.pbtxt`` of ``spec``."""
    if spec.max_batch_size < 1 or spec.instances < 1 or spec.queue_delay_us < 0:
        raise PipelineError(f"model {spec.name}: max batch size and instances should be 1 or more and the queue "
                            f"delay 0 or more; got {spec.max_batch_size}, {spec.instances}, {spec.queue_delay_us}")
    head = f'name: "{spec.name}"\n'
    if spec.backend == "python":
        head += 'backend: "python"\n'
        kind = "KIND_CPU"
    elif spec.backend == "tensorrt_plan":
        head += 'platform: "tensorrt_plan"\ndefault_model_filename: "model.plan"\n'
        kind = "KIND_GPU"
    else:
        raise PipelineError(f"model {spec.name}: unknown backend {spec.backend!r} (python or tensorrt_plan)")
    parts = [head + f"max_batch_size: {spec.max_batch_size}",
             "input [\n" + ",\n".join(_tensor_text(t) for t in spec.inputs) + "\n]",
             "output [\n" + ",\n".join(_tensor_text(t) for t in spec.outputs) + "\n]"]
    policy = ("  default_queue_policy { timeout_action: REJECT "
              f"default_timeout_microseconds: {DEFAULT_QUEUE_TIMEOUT_US} allow_timeout_override: true }}")
    parts.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {spec.queue_delay_us}\n{policy}\n}}")
    parts.append(f"instance_group [ {{ kind: {kind} count: {spec.instances} }} ]")
    for key, value in spec.parameters.items():
        parts.append(f'parameters {{ key: "{key}" value {{ string_value: "{_escape(value)}" }} }}')
    return "\n".join(parts) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def schema() -> Any:
    """Triton's ``model_config_pb2`` module, as ``tritonclient`` ships it.

    Loaded from its file rather than through ``tritonclient.grpc``, whose package imports grpcio:
    the schema needs protobuf alone (which onnx brings).
    """
    global _SCHEMA
    if _SCHEMA is None:
        import importlib.util
        import sys

        spec = importlib.util.find_spec("tritonclient")
        path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py" if (
            spec and spec.submodule_search_locations) else None
        if path is None or not path.is_file():
            raise PipelineError("checking a model configuration needs Triton's schema, which the tritonclient package "
                                "ships; install it with `.venv/bin/pip install tritonclient` (the `triton` extra)")
        loaded = importlib.util.spec_from_file_location("model_config_pb2", path)
        assert loaded is not None and loaded.loader is not None
        module = sys.modules.get("model_config_pb2") or importlib.util.module_from_spec(loaded)
        if "model_config_pb2" not in sys.modules:
            sys.modules["model_config_pb2"] = module
            loaded.loader.exec_module(module)
        _SCHEMA = module
    return _SCHEMA


_SCHEMA: Any = None


def parse_config(text: str, where: str = "config.pbtxt") -> Any:
    """``text`` read through Triton's model configuration schema: a ``ModelConfig`` message.

    A PipelineError names ``where`` and the first field the schema refuses.
    """
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, schema().ModelConfig())
    except text_format.ParseError as exc:
        raise PipelineError(f"{where} does not follow Triton's model configuration schema: {exc}") from None


def config_tensors(config: Any, kind: str) -> list[Tensor]:
    """The inputs (``kind="input"``) or outputs of a parsed ``ModelConfig`` as Tensors."""
    by_type = {v[0]: k for k, v in DTYPES.items()}
    out = []
    for t in getattr(config, kind):
        type_name = schema().DataType.Name(t.data_type)
        if type_name not in by_type:
            raise PipelineError(f"model {config.name}: {kind} {t.name} has data type {type_name}, which no stage "
                                "here reads or writes")
        dims = tuple(int(d) for d in t.dims)
        out.append(Tensor(t.name, by_type[type_name], dims, bool(getattr(t, "optional", False))))  # inputs only
    return out
