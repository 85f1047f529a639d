"""What every backend provides: a StageChain runner, and the module functions the registry calls.

A chain owns the buffers between stages: ``set_frame`` copies a frame into stage 1's input,
``run(k)`` executes stage k on what stage k-1 left in place (no host round trip for the carried
maps) and returns only exit k's logits on the host, which the exit rule needs anyway. Buffers are
allocated once, in ``activate``. The public methods check the chain's state and call the
backend's hooks (``_activate``, ``_set_frame``, ``_run``, ``_deactivate``), so every backend
refuses the same misuse with the same message.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.manifest import FileEntry, Manifest


class StageChain(ABC):
    """Stages 1..K of one model in one precision on one backend, on a batch of 1 to ``max_batch`` frames.

    A batch of N frames runs each stage once; ``keep(rows)`` then narrows the batch to the frames
    still undecided, so the next stage runs only on them (the batched cascade's early exit). Batch
    1 is the single-frame path every caller used before batches, unchanged.
    """

    backend: str = ""
    precision: str = ""
    providers: tuple[str, ...] = ()  # what executes the stages, where a backend has a choice (ONNX Runtime)
    # State, as class defaults so that a subclass need not call ``__init__`` here.
    _active = False
    _done = 0  # stages run on the current frame
    _timed = 0  # the stage the latest run executed; 0: none since activation
    _batch = 1  # frames in the current batch (set_frame's, narrowed by keep)

    @property
    def num_stages(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not say how many stages it has")

    # --- hooks a backend implements --------------------------------------------------------------

    def _activate(self) -> None:
        """Load engines and allocate every buffer; on failure, release what was taken and raise."""
        raise NotImplementedError(f"{type(self).__name__} implements no _activate")

    def _frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of stage 1's input, batch 1; known once active."""
        raise NotImplementedError(f"{type(self).__name__} implements no _frame_spec")

    def _set_frame(self, frame: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} implements no _set_frame")

    def _run(self, stage: int) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} implements no _run")

    def _max_batch(self) -> int:
        """The largest batch ``set_frame`` accepts (1 where the backend's engines take only one frame)."""
        return 1

    def _keep(self, rows: list[int]) -> None:
        """Narrow the carried maps of the current batch to ``rows`` (sorted, distinct), in that order."""
        raise PipelineError(f"the {self.backend or type(self).__name__} chain runs one frame at a time; "
                            "it cannot narrow a batch")

    def _deactivate(self) -> None:
        """Release engines and buffers."""

    def _last_run_ms(self, stage: int) -> float | None:
        """Device time of the latest run of ``stage``, where the backend measures one (CUDA events)."""
        return None

    # --- the checked public interface ------------------------------------------------------------

    def activate(self) -> None:
        """Load engines and allocate every buffer; idempotent."""
        if self._active:
            return
        self._activate()
        self._active, self._done, self._timed = True, 0, 0

    @property
    def max_batch(self) -> int:
        """The largest batch of frames ``set_frame`` accepts; known once active."""
        return self._max_batch() if self._active else 1

    @property
    def batch(self) -> int:
        """Frames in the current batch: ``set_frame``'s, narrowed by ``keep``."""
        return self._batch

    def set_frame(self, frame: np.ndarray) -> None:
        """Copy a (1, H, W, 3) uint8 frame, or a batch (N, H, W, 3) of up to ``max_batch`` frames, in the model's
        colour order and size, into stage 1's input."""
        if not self._active:
            raise PipelineError("activate the chain before giving it frames")
        shape, dtype = self._frame_spec()
        if not isinstance(frame, np.ndarray) or frame.dtype != dtype or (frame.shape != shape and not (
                frame.ndim == len(shape) and frame.shape[1:] == shape[1:] and 1 <= frame.shape[0] <= self._max_batch())):
            found = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            more = f", or a batch (N, {', '.join(map(str, shape[1:]))}) of N <= {self._max_batch()}" \
                if self._max_batch() > 1 else ""
            raise PipelineError(f"frame must be {shape} {dtype}{more}, got {found}")
        self._set_frame(frame)
        self._done, self._batch = 0, int(frame.shape[0])

    def keep(self, rows: Sequence[int]) -> None:
        """Run the next stages on these rows of the current batch only (sorted, distinct, at least one), after a
        stage ran: the frames that left (decided, or out of time) drop out of the batch."""
        if not self._active:
            raise PipelineError("activate the chain before narrowing its batch")
        picked = [int(r) for r in rows]
        if not picked or any(b <= a for a, b in zip(picked, picked[1:])) or picked[0] < 0 \
                or picked[-1] >= self._batch:
            raise PipelineError(f"rows to keep must be distinct, sorted rows of the current batch of {self._batch}, "
                                f"at least one; got {picked}")
        if not 1 <= self._done < self.num_stages:
            raise PipelineError("narrow a batch between stages: after a stage ran and before the last")
        if len(picked) == self._batch:
            return
        self._keep(picked)
        self._batch = len(picked)

    def run(self, stage: int) -> np.ndarray:
        """Run stage ``stage`` (1-based, in order) and return its logits (N, classes) float32 on the host."""
        if not self._active:
            raise PipelineError("activate the chain before running it")
        if not 1 <= stage <= min(self._done + 1, self.num_stages):
            raise PipelineError(f"stage {stage} needs stage {stage - 1}'s maps for this frame (stages 1.."
                                f"{self.num_stages}, in order, after set_frame); run the stages in order")
        logits = self._run(stage)
        self._done, self._timed = max(self._done, stage), stage
        return logits

    def last_run_ms(self) -> float | None:
        """Device time of the latest ``run`` where the backend measures one; None otherwise or before any run."""
        if not self._active or not self._timed:
            return None
        return self._last_run_ms(self._timed)

    def deactivate(self) -> None:
        """Release engines and buffers; idempotent."""
        if self._active:
            try:
                self._deactivate()
            finally:
                self._active, self._timed, self._batch = False, 0, 1

    def run_all(self, frame: np.ndarray) -> list[np.ndarray]:
        """``set_frame`` then every stage in order: each exit's (1, classes) logits."""
        self.set_frame(frame)
        return [self.run(k) for k in range(1, self.num_stages + 1)]

    def __enter__(self) -> "StageChain":
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()


def exit_logits(chain: StageChain, images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, K, C) float32 logits of every exit, frame by frame as the runtime runs them.

    Activates the chain (and leaves it active for the caller, who owns it).
    """
    chain.activate()
    out: np.ndarray | None = None
    for i in range(len(images)):
        for k, z in enumerate(chain.run_all(images[i:i + 1]), start=1):  # (1, H, W, 3) view in
            if out is None:
                out = np.empty((len(images), chain.num_stages, z.size), dtype=np.float32)  # (N, K, C)
            out[i, k - 1] = z.reshape(-1)
    if out is None:
        raise PipelineError("expected at least one image to run through the chain, got none")
    return out


DEFAULT_WORKSPACE_MB = 1024  # TensorRT builder workspace
INT8_STAGES = ("faster", "all")  # ONNX Runtime's INT8 chain: float where that is faster here, or INT8 at every stage


@dataclass(frozen=True)
class EngineOptions:
    """How engines are compiled: the options every backend's ``engine_from_artifact`` receives.

    A backend's own options are checked by its module's ``check_options`` (every registered
    backend's, before any work), so a value only one backend reads is refused there, by that backend.
    """

    threads: int = 1  # ONNX Runtime intra-op threads
    workspace_mb: int = DEFAULT_WORKSPACE_MB  # TensorRT builder workspace
    dla_core: int | None = None  # TensorRT: build for this DLA core, GPU fallback
    timing_cache: Path | None = None  # TensorRT: persisted timing cache
    max_batch: int = 1  # TensorRT: the optimisation profile's largest batch (ONNX Runtime takes any)
    opt_batch: int | None = None  # TensorRT: the batch the kernels are tuned for (default: max_batch)
    int8_stages: str = INT8_STAGES[0]  # ONNX Runtime: which stages of the INT8 chain stay INT8 (INT8_STAGES)


class Backend(Protocol):
    """The functions every backend module (``pipeline/backends/<name>/__init__.py``) exposes."""

    NAME: str
    TITLE: str  # the name in messages, e.g. "ONNX Runtime"
    ENGINE_SUFFIX: str  # of the engine files it writes
    STOP_ON_BUILD_FAILURE: bool  # a failed compile stops the build (else the variant is marked unsupported)
    # The packages it runs on, whose versions builds and reports record: a name -> its distributions, the first
    # installed being the one in use (e.g. onnxruntime or onnxruntime-gpu); the one named NAME is the runtime itself.
    PACKAGES: Mapping[str, tuple[str, ...]]

    def unavailable_reason(self) -> str | None:
        """Why it cannot build or run here, or None where it can."""

    def buildable_precisions(self) -> set[str]:
        """The precisions it can build on this device."""

    def check_options(self, options: EngineOptions, precisions: Sequence[str], targeted: bool) -> None:
        """Refuse, with a PipelineError naming the option, options of its own that are out of range or that
        the build cannot honour; ``targeted``: whether the build makes its engines (an option of its own is
        an error where it does not)."""

    def artifact_flavour(self, precision: str) -> str:
        """Which flavour of the precision's ONNX artifacts its engines are compiled from ("" or e.g. "u8")."""

    def engine_from_artifact(self, src: Path, dst: Path, precision: str, options: EngineOptions) -> Path:
        """Compile one stage's artifact ``src`` into the engine ``dst``."""

    def device_facts(self, threads: int) -> dict[str, Any]:
        """What its engines are tied to on this machine, recorded in the manifest at build time."""

    def batch_range(self, options: EngineOptions) -> dict[str, int]:
        """{"min", "opt", "max"}: the batch sizes engines built with ``options`` take (max 0: any), for the manifest."""

    def check_device(self, manifest: "Manifest", what: str) -> None:
        """Refuse, with a PipelineError saying to rebuild, engines built for another device."""

    def chain_from_engines(self, manifest: "Manifest", folder: Path, engines: list["FileEntry"], precision: str,
                           threads: int) -> StageChain:
        """A chain (not yet activated) over one complete set of its engines."""

    def build_notes(self, manifest: "Manifest", folder: Path, precision: str) -> str | None:
        """A note on how its engines of ``precision`` really compute here (e.g. emulated), or None."""

    def prefer_faster(self, manifest: "Manifest", folder: Path, precision: str, options: EngineOptions) -> str | None:
        """After its engines of ``precision`` are compiled into ``folder``: replace a stage's engine with one of a
        higher precision where that runs faster here (the manifest's entry follows); a note of what changed, or
        None."""
