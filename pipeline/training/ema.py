"""An exponential moving average of a model's weights, the weights a run evaluates and ships.

Averaging the weights of the last few hundred steps removes most of the noise that SGD leaves in
them at a high learning rate, which matters most on short schedules. Buffers are averaged too
(BatchNorm's running statistics), except integer ones (counters), which are copied.
"""

from __future__ import annotations

import copy
from typing import Any


class WeightAverage:
    """``update()`` after every optimiser step; ``module`` is the averaged copy (in eval mode).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first steps ``n``, so the average
    does not remember the random initialisation.
    """

    def __init__(self, model: Any, decay: float, updates: int = 0) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = updates

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def update(self, model: Any) -> None:
        import torch

        d = self.current_decay()
        self.updates += 1
        with torch.no_grad():
            ours, theirs = self.module.state_dict(), model.state_dict()
            floats = [name for name, value in theirs.items() if value.dtype.is_floating_point]
            # One multi-tensor call instead of a Python loop of two calls per tensor (most of its cost).
            if floats:
                torch._foreach_lerp_([ours[n] for n in floats], [theirs[n].detach() for n in floats], 1 - d)
            for name, value in theirs.items():
                if not value.dtype.is_floating_point:
                    ours[name].copy_(value)
