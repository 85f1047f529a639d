"""The one small interface every backend implements: a chain of stage engines for one frame at a time.

A chain owns the buffers between stages: ``set_frame`` copies a frame into stage 1's input,
``run(k)`` executes stage k on what stage k-1 left in place (no host round trip for the carried
maps) and returns only exit k's logits on the host, which the exit rule needs anyway.
Buffers are allocated once, when the chain is activated, not per frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class StageChain(ABC):
    """Stages 1..K of one model in one precision on one backend, batch 1."""

    backend: str = ""
    precision: str = ""

    @property
    @abstractmethod
    def num_stages(self) -> int: ...

    @abstractmethod
    def activate(self) -> None:
        """Load engines and allocate every buffer; idempotent."""

    @abstractmethod
    def set_frame(self, frame: np.ndarray) -> None:
        """Copy a (1, H, W, 3) uint8 frame, in the model's colour order and size, into stage 1's input."""

    @abstractmethod
    def run(self, stage: int) -> np.ndarray:
        """Run stage ``stage`` (1-based, in order) and return its logits (1, classes) float32 on the host."""

    def deactivate(self) -> None:
        """Release engines and buffers."""

    def __enter__(self) -> "StageChain":
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()
