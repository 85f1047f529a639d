"""Gradient equilibrium (IMTA, Li et al. 2019) for a network of stages with an exit each.

With K summed exit losses, the early blocks receive the gradients of up to K classifiers and take
steps far larger than the late ones. Where block k's coarsest map splits into exit k and the rest of
the network, the backward pass here takes a weighted mean instead of the sum: 1/(K-k+1) of exit
k's gradient and (K-k)/(K-k+1) of the later stages'. The forward pass is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by a constant."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    return _ScaleGradient.apply(x, scale)


def forward_with_equilibrium(model: Any, frames: torch.Tensor) -> list[torch.Tensor]:
    """The K exits' logits of an MSDNet-style model (stages with ``preprocess``, ``block``, ``classifier``).

    ``frames`` (N, H, W, 3) uint8. Same values as ``model(frames)``; only the gradients differ.
    """
    stages = list(model.stages)
    k_total = len(stages)
    logits: list[torch.Tensor] = []
    maps: Any = None
    for k, stage in enumerate(stages):
        x = stage.preprocess(frames) if k == 0 else maps
        for layer in stage.block:
            x = layer(x)
        remaining = k_total - k  # this exit and every later one
        x = list(x)
        x[-1] = scale_gradient(x[-1], 1.0 / remaining)
        logits.append(stage.classifier(x[-1]))
        x[-1] = scale_gradient(x[-1], float(remaining - 1))
        maps = x
    return logits
