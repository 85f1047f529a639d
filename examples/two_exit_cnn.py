"""A plain CNN with two exits, written to the stage contract of ``pipeline.models.factory``.

    python -m pipeline.training --model-factory examples/two_exit_cnn.py:build --data DATA --out models/cnn.pt
    python -m pipeline.build --model-factory examples/two_exit_cnn.py:build --checkpoint models/cnn.pt --data DATA

Stage 1 is two convolutions and exit 1; it carries its feature map to stage 2, two more
convolutions at half the resolution and exit 2. ``preprocess`` says what stage 1 expects; the
pipeline puts that normalisation in front of stage 1, so the engines take camera frames.
"""

from __future__ import annotations

import torch
from torch import nn


def conv(n_in: int, n_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU())


class Exit(nn.Module):
    """Global average pool and a linear classifier: (N, C, H, W) -> (N, classes)."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


class Stage1(nn.Module):
    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(3, width), conv(width, width, 2))
        self.exit = Exit(width, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x)  # (N, width, H/2, W/2)
        return self.exit(f), f  # exit 1's logits, and what stage 2 takes


class Stage2(nn.Module):
    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(width, 2 * width, 2), conv(2 * width, 2 * width))
        self.exit = Exit(2 * width, classes)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.exit(self.body(f)),)  # the last stage carries nothing


class TwoExitCNN(nn.Module):
    def __init__(self, num_classes: int, width: int, size: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList([Stage1(width, num_classes), Stage2(width, num_classes)])
        self.preprocess = {"height": size, "width": size, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) normalised RGB -> both exits' logits."""
        logits1, f = self.stages[0](x)
        (logits2,) = self.stages[1](f)
        return [logits1, logits2]


def build(num_classes: int = 10, width: int = 16, size: int = 32) -> TwoExitCNN:
    return TwoExitCNN(num_classes, width, size)
