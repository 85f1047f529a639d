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
    """Stages 1..K of one model in one precision on one backend, batch 1."""

    backend: str = ""
    precision: str = ""
    providers: tuple[str, ...] = ()  # what executes the stages, where a backend has a choice (ONNX Runtime)
    # State, as class defaults so that a subclass need not call ``__init__`` here.
    _active = False
    _done = 0  # stages run on the current frame
    _timed = 0  # the stage the latest run executed; 0: none since activation

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

    def set_frame(self, frame: np.ndarray) -> None:
        """Copy a (1, H, W, 3) uint8 frame, in the model's colour order and size, into stage 1's input."""
        if not self._active:
            raise PipelineError("activate the chain before giving it frames")
        shape, dtype = self._frame_spec()
        if not isinstance(frame, np.ndarray) or frame.shape != shape or frame.dtype != dtype:
            found = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise PipelineError(f"frame must be {shape} {dtype}, got {found}")
        self._set_frame(frame)
        self._done = 0

    def run(self, stage: int) -> np.ndarray:
        """Run stage ``stage`` (1-based, in order) and return its logits (1, classes) float32 on the host."""
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
                self._active, self._timed = False, 0

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

    def check_device(self, manifest: "Manifest", what: str) -> None:
        """Refuse, with a PipelineError saying to rebuild, engines built for another device."""

    def chain_from_engines(self, manifest: "Manifest", folder: Path, engines: list["FileEntry"], precision: str,
                           threads: int) -> StageChain:
        """A chain (not yet activated) over one complete set of its engines."""

    def build_notes(self, manifest: "Manifest", folder: Path, precision: str) -> str | None:
        """A note on how its engines of ``precision`` really compute here (e.g. emulated), or None."""
