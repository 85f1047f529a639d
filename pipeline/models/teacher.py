"""A one-exit convolutional network that trains to a higher accuracy than the multi-exit model in a small
fraction of its training time: the teacher for ``python -m pipeline.training --teacher``.

    python -m pipeline.training --model-factory pipeline.models.teacher:build --data DATA --out models/teacher.pt

Dense 3x3 convolutions on few, wide feature maps run far faster per multiply-add on a CPU than
MSDNet's many narrow ones, so a network with more arithmetic than the whole MSDNet still takes a
fraction of its step time. The layout is the fast CIFAR-10 networks' one: a stem convolution,
then three blocks of two convolutions with a 2x2 max-pool after the first, and a global max-pool
into a linear classifier whose logits are scaled down, which keeps them small early in training.
It is written to the stage contract of :mod:`pipeline.models.factory` as a single stage, so the
training loop, checkpoints and ``--resume`` are the multi-exit model's.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models.preprocess import PreprocessConfig

LOGIT_SCALE = 1 / 8  # the classifier's logits are multiplied by this: a small start for the softmax


def conv_bn(n_in: int, n_out: int) -> list[nn.Module]:
    """3x3 convolution (no bias: BatchNorm follows), BatchNorm, GELU."""
    return [nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), nn.BatchNorm2d(n_out), nn.GELU()]


class ConvBlock(nn.Module):
    """Convolution, 2x2 max-pool, convolution: (N, C_in, H, W) -> (N, C_out, H/2, W/2)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        first = conv_bn(n_in, n_out)
        self.body = nn.Sequential(first[0], nn.MaxPool2d(2), *first[1:], *conv_bn(n_out, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TeacherStage(nn.Module):
    """The whole teacher as one stage: (N, 3, H, W) normalised RGB -> ((N, classes) logits,)."""

    def __init__(self, num_classes: int, stem: int, widths: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = conv_bn(3, stem)
        n_in = stem
        for w in widths:
            layers.append(ConvBlock(n_in, w))
            n_in = w
        self.features = nn.Sequential(*layers)
        # A max-pool module, not Tensor.amax: the compiled bfloat16 backward of amax gives NaN gradients.
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(n_in, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        f = self.pool(self.features(x)).flatten(1)  # (N, C) global max-pool
        return (self.classifier(f) * LOGIT_SCALE,)


class Teacher(nn.Module):
    """The stage-contract wrapper: ``stages``, ``preprocess`` (CIFAR-10's normalisation) and ``forward``."""

    def __init__(self, num_classes: int, stem: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList([TeacherStage(num_classes, stem, widths)])
        self.preprocess = PreprocessConfig()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.stages[0](x)[0]]


def build(num_classes: int = 10, stem: int = 32, widths: Sequence[int] | int = (64, 256, 256)) -> Teacher:
    """The teacher network. ``widths``: the channels of each block (each halves the resolution)."""
    ws = (widths,) if isinstance(widths, int) else tuple(widths)
    if num_classes < 2 or stem < 1 or not ws or min(ws) < 1:
        raise PipelineError(f"teacher: need num_classes >= 2, stem >= 1 and at least one positive width, got "
                            f"num_classes={num_classes}, stem={stem}, widths={ws}")
    return Teacher(num_classes, stem, ws)
