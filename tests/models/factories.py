"""Small factories for the stage-contract tests: one that keeps the contract and some that break it."""

from __future__ import annotations

import torch
from torch import nn

PRE = {"height": 16, "width": 16, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


class Head(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


class First(nn.Module):
    def __init__(self, width: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, 2, 1)
        self.head = Head(width, classes)

    def forward(self, x: torch.Tensor):
        f = torch.relu(self.conv(x))
        return self.head(f), f


class Second(nn.Module):
    def __init__(self, width: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, 1, 1)
        self.head = Head(width, classes)

    def forward(self, f: torch.Tensor):
        return self.head(torch.relu(self.conv(f)))


class Net(nn.Module):
    def __init__(self, first: nn.Module, second: nn.Module, preprocess=PRE) -> None:
        super().__init__()
        self.stages = nn.ModuleList([first, second])
        if preprocess is not None:
            self.preprocess = preprocess


def good(classes: int = 3) -> nn.Module:
    net = Net(First(classes=classes), Second(classes=classes))
    net.classes = [f"k{i}" for i in range(classes)]
    return net


def wrong_carry() -> nn.Module:
    return Net(First(width=4), Second(width=8))  # stage 2 wants 8 channels, stage 1 carries 4


class LogitsOnly(First):
    def forward(self, x: torch.Tensor):
        return super().forward(x)[0]


def no_carry() -> nn.Module:
    return Net(LogitsOnly(), Second())


def other_classes() -> nn.Module:
    return Net(First(classes=3), Second(classes=5))


class Whole(Net):
    def forward(self, x: torch.Tensor):
        logits, f = self.stages[0](x)
        return [logits, self.stages[1](f) + 1.0]  # not what the chained stages compute


def forward_differs() -> nn.Module:
    return Whole(First(), Second())


def parameter_outside() -> nn.Module:
    net = Net(First(), Second())
    net.scale = nn.Parameter(torch.ones(1))
    return net


class Mixing(Second):
    def forward(self, f: torch.Tensor):
        return super().forward(f - f.mean(dim=0, keepdim=True))  # batch statistics at inference


def batch_mixing() -> nn.Module:
    return Net(First(), Mixing())


def no_preprocess() -> nn.Module:
    return Net(First(), Second(), preprocess=None)
