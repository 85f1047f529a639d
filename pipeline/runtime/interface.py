"""The runtime seam: what a caller holds to classify frames, whichever cascade is behind it.

    def run(runtime: AnytimeRuntime[CascadeResult | TemporalResult], frames) -> None:
        with runtime:
            for frame in frames:  # (H, W, 3) uint8 frames of runtime.frame_size, in runtime.colour_order
                result = runtime.classify(frame, budget_ms=20.0)

:class:`~pipeline.runtime.cascade.Cascade` (one frame alone, a ``CascadeResult``) and
:class:`~pipeline.temporal.cascade.TemporalCascade` (a stream of frames, a ``TemporalResult``)
both subclass :class:`AnytimeRuntime`, so a caller (the camera loop, a benchmark) is typed against
this class and never probes for attributes. The type parameter is the result ``classify`` returns.
Its facts are read-only properties here; an implementation may keep them as plain attributes
(declared in its class body, so that they shadow these properties) or compute them.
"""

from __future__ import annotations

from typing import Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np

ResultT = TypeVar("ResultT", covariant=True)
_Self = TypeVar("_Self", bound="AnytimeRuntime[object]")


@runtime_checkable
class AnytimeRuntime(Protocol[ResultT]):
    """A loaded model that answers one frame per ``classify`` call, stopping early or at a deadline."""

    @property
    def backend(self) -> str:
        """The backend the stages run on (a name of ``pipeline.backends.BACKENDS``, or a test double's)."""
        ...

    @property
    def precision(self) -> str:
        """The engines' precision (``pipeline.names.PRECISIONS``)."""
        ...

    @property
    def policy(self) -> str:
        """The exit policy of the manifest's thresholds table ("" where thresholds were given directly)."""
        ...

    @property
    def classes(self) -> Sequence[str]:
        """Class names, indexed by label."""
        ...

    @property
    def num_exits(self) -> int:
        """How many exits (stages) the model has."""
        ...

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(H, W) the frames given to ``classify`` must have; None where the manifest does not fix it."""
        ...

    @property
    def colour_order(self) -> str:
        """The frames' channel order ("BGR", "RGB"; "" where the manifest does not say)."""
        ...

    @property
    def resize_shorter(self) -> int:
        """How a frame of another shape becomes the input: 0 resizes it, n > 0 resizes its shorter side to n
        and centre-crops (the manifest's input spec)."""
        ...

    @property
    def notes(self) -> Sequence[str]:
        """What the caller should tell the user about how the model was loaded (fallbacks, missing tables)."""
        ...

    def classify(self, frame: np.ndarray, budget_ms: float | None = None) -> ResultT:
        """Answer one (H, W, 3) uint8 frame; with ``budget_ms``, within that many milliseconds where it can."""
        ...

    def close(self) -> None:
        """Release the engines and buffers; idempotent."""
        ...

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
