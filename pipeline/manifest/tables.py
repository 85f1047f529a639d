"""The manifest's typed tables: the input spec, the build device, and the per-variant latency and thresholds.

Each is a dataclass with ``to_dict`` / ``from_dict`` for its JSON form; ``from_dict`` raises
KeyError or TypeError on a malformed entry, which ``load_manifest`` turns into a PipelineError.
Per-variant tables are keyed ``"<backend>/<precision>"`` and record the execution ``providers``
they were measured under (ONNX Runtime's; empty for a backend without that choice).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T", bound="JsonTable")


class JsonTable:
    """A dataclass that is one JSON object: ``to_dict`` and ``from_dict`` (unknown keys are a TypeError)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(d).__name__}")
        return cls(**d)


@dataclass
class InputSpec(JsonTable):
    """Stage 1's input: the uint8 frame, with the preprocessing its first layer applies."""

    name: str
    shape: list[int | str]  # ["N", H, W, 3]
    dtype: str  # "uint8"
    colour_order: str = ""  # "BGR" or "RGB"
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    resize_shorter: int = 0  # 0: resize images to (H, W); n: shorter side to n, then centre crop (H, W)

    @property
    def size(self) -> tuple[int, int] | None:
        """(H, W) of a frame, where the manifest fixes it."""
        hw = self.shape[1:3]
        return (int(hw[0]), int(hw[1])) if len(self.shape) == 4 and all(isinstance(x, int) for x in hw) else None


@dataclass
class DeviceInfo(JsonTable):
    """Where the engines were built: the host, and per backend the facts its engines are tied to."""

    cpu: str = ""
    machine: str = ""
    cpu_count: int | None = None
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. "tensorrt" -> {"gpu", ...}
    emulated: dict[str, str] = field(default_factory=dict)  # variant -> how it really computes here


@dataclass
class LatencyTable(JsonTable):
    """A variant's measured per-stage latency: what the deadline rule's predictor starts from."""

    stages: list[dict[str, float]]  # per stage: mean_ms, p50_ms, p90_ms, p99_ms, max_ms
    cumulative_p50_ms: list[float] = field(default_factory=list)
    runs: int = 0
    threads: int = 1
    clock: str = "perf_counter"  # or "cuda-events"
    device: dict[str, Any] = field(default_factory=dict)  # what it was measured on (pipeline.backends.facts.device_facts)
    measured_at: str = ""  # ISO 8601, UTC
    providers: list[str] = field(default_factory=list)
    # Per batch size other than 1 ("4", "16": JSON keys are strings), per stage the same statistics for one run of
    # the stage on that many frames at once; batch 1 is ``stages``. Empty where only batch 1 was measured.
    batches: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def batch_rows(self) -> dict[int, list[dict[str, float]]]:
        """Every measured batch size -> its per-stage rows, batch 1 (``stages``) included."""
        rows = {int(b): r for b, r in self.batches.items()}
        if self.stages:
            rows[1] = self.stages
        return dict(sorted(rows.items()))


@dataclass
class BatchRange(JsonTable):
    """The batch sizes a backend's engines were built for: TensorRT's optimisation profile (min, opt, max);
    ONNX Runtime takes any batch (max 0: no bound). Manifests built before batches lack it: batch 1."""

    min: int = 1
    opt: int = 1
    max: int = 1  # 0: any batch


@dataclass
class ThresholdTable(JsonTable):
    """A variant's calibrated exit thresholds: named policies and the budgeted sweep they come from."""

    criterion: str  # "confidence" or "entropy"
    aggregate: str  # "last" or "mean": what exit k answers with
    samples: int  # validation images calibrated on
    default_tolerance: float
    default_confidence: float
    policies: dict[str, dict[str, Any]]  # name -> {"thresholds", "expected_accuracy", "expected_cost_ms", ...}
    curve: list[dict[str, Any]]  # {"q", "accuracy", "cost_ms", "thresholds", "exit_fractions"}
    providers: list[str] = field(default_factory=list)
    # How `--aggregate auto` chose: each candidate's default policy {"expected_cost_ms", "expected_accuracy"}
    # on the calibration images; empty where the aggregate was given.
    aggregate_chosen_from: dict[str, dict[str, float]] = field(default_factory=dict)
