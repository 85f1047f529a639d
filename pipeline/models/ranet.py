"""A resolution-adaptive multi-exit network (after RANet, Yang et al., CVPR 2020) of plain 3x3 convolutions.

    python -m pipeline.training --model-factory pipeline.models.ranet:build --data DATA --out models/ranet.pt

Most frames of a camera are easy, and an easy frame is recognisable at a lower resolution. So
stage 1 classifies a 2x downsampled frame with a narrow sub-network, which is cheap in measured
latency, not only in mult-adds: dense 3x3 convolutions on few wide maps run at several times the
arithmetic rate of MSDNet's many narrow convolutions and concatenations on a CPU. The frame is
carried on; stages 2.. run a wider sub-network on the full-resolution frame that takes in the
coarse sub-network's maps where the resolutions meet (concatenation before the next convolution),
so the work of stage 1 is reused, not repeated. The fine sub-network is cut into several stages,
one exit each.

    stage 1:  frame/2 (16x16) -> stem -> block -> block -> exit 1      carries frame, coarse maps (8x8, 4x4)
    stage 2:  frame (32x32) -> stem -> block -> block (8x8) -> exit 2   carries [fine 8x8 | coarse 8x8], coarse 4x4
    stage 3:  -> block (4x4) -> exit 3                                   carries [fine 4x4 | coarse 4x4]
    stage 4+: -> two 3x3 convolutions at 4x4 -> exit k

It follows the stage contract of :mod:`pipeline.models.factory`, so training, export, the build and
the cascade treat it as any other multi-exit model.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models.msdnet import chain_stages
from pipeline.models.preprocess import PreprocessConfig
from pipeline.models.teacher import LOGIT_SCALE, ConvBlock, conv_bn

MAX_WIDTH = 4096  # a bound on any layer's channels: a typo must not allocate gigabytes


class Exit(nn.Module):
    """Global max-pool then a linear classifier with small logits: (N, C, H, W) -> (N, classes)."""

    def __init__(self, n_in: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveMaxPool2d(1)  # a module, not amax: see pipeline.models.teacher
        self.linear = nn.Linear(n_in, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(x).flatten(1)) * LOGIT_SCALE


class CoarseStage(nn.Module):
    """Stage 1: (N, 3, H, W) -> (logits, frame, coarse maps at H/4 and H/8)."""

    def __init__(self, widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        stem, mid, out = widths
        self.down = nn.AvgPool2d(2)
        self.stem = nn.Sequential(*conv_bn(3, stem))
        self.block1 = ConvBlock(stem, mid)  # H/2 -> H/4
        self.block2 = ConvBlock(mid, out)  # H/4 -> H/8
        self.exit = Exit(out, num_classes)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c4 = self.block1(self.stem(self.down(frame)))  # (N, mid, H/4, W/4)
        c8 = self.block2(c4)  # (N, out, H/8, W/8)
        return self.exit(c8), frame, c4, c8


class FineEntry(nn.Module):
    """Stage 2: the full-resolution sub-network down to H/4, where it meets the coarse H/4 maps."""

    def __init__(self, widths: Sequence[int], coarse_mid: int, num_classes: int) -> None:
        super().__init__()
        stem, b1, b2 = widths
        self.stem = nn.Sequential(*conv_bn(3, stem))
        self.block1 = ConvBlock(stem, b1)  # H -> H/2
        self.block2 = ConvBlock(b1, b2)  # H/2 -> H/4
        self.exit = Exit(b2 + coarse_mid, num_classes)

    def forward(self, frame: torch.Tensor, c4: torch.Tensor, c8: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f4 = torch.cat([self.block2(self.block1(self.stem(frame))), c4], dim=1)  # (N, b2 + mid, H/4, W/4)
        return self.exit(f4), f4, c8


class FineBlock(nn.Module):
    """Stage 3: one block down to H/8, where the fine maps meet the coarse H/8 maps."""

    def __init__(self, n_in: int, n_out: int, coarse_out: int, num_classes: int) -> None:
        super().__init__()
        self.block = ConvBlock(n_in, n_out)
        self.exit = Exit(n_out + coarse_out, num_classes)

    def forward(self, f4: torch.Tensor, c8: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f8 = torch.cat([self.block(f4), c8], dim=1)  # (N, n_out + coarse_out, H/8, W/8)
        return self.exit(f8), f8


class FineDeep(nn.Module):
    """Stages 4..: two 3x3 convolutions at H/8 with a residual connection, then an exit."""

    def __init__(self, n_in: int, n_out: int, num_classes: int, last: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(n_in, n_out), *conv_bn(n_out, n_out))
        self.skip = nn.Identity() if n_in == n_out else nn.Conv2d(n_in, n_out, 1, bias=False)
        self.exit = Exit(n_out, num_classes)
        self.last = last

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.body(x) + self.skip(x)  # (N, n_out, H/8, W/8)
        return (self.exit(y),) if self.last else (self.exit(y), y)


class RANet(nn.Module):
    """The stage-contract model: ``stages``, ``preprocess`` (CIFAR-10's normalisation) and ``forward``."""

    def __init__(self, num_classes: int, coarse: Sequence[int], fine: Sequence[int], deep: Sequence[int]) -> None:
        super().__init__()
        stages: list[nn.Module] = [CoarseStage(coarse, num_classes), FineEntry(fine[:3], coarse[1], num_classes)]
        width = fine[3] + coarse[2]
        stages.append(FineBlock(fine[2] + coarse[1], fine[3], coarse[2], num_classes))
        for i, w in enumerate(deep):
            stages.append(FineDeep(width, w, num_classes, last=i == len(deep) - 1))
            width = w
        if not deep:  # stage 3 is the last: it carries nothing on
            stages[-1] = _last(stages[-1])
        self.stages = nn.ModuleList(stages)
        self.preprocess = PreprocessConfig()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return chain_stages(self.stages, x)


class _LastFineBlock(nn.Module):
    """A FineBlock that returns its logits alone (the last stage carries nothing)."""

    def __init__(self, inner: FineBlock) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, f4: torch.Tensor, c8: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.inner(f4, c8)[0],)


def _last(stage: nn.Module) -> nn.Module:
    assert isinstance(stage, FineBlock)
    return _LastFineBlock(stage)


def _widths(name: str, value: Sequence[int] | int, count: int | None) -> tuple[int, ...]:
    ws = (value,) if isinstance(value, int) else tuple(value)
    if (count is not None and len(ws) != count) or any(not isinstance(w, int) or not 1 <= w <= MAX_WIDTH for w in ws):
        want = f"{count} widths" if count is not None else "widths"
        raise PipelineError(f"ranet: {name} needs {want} between 1 and {MAX_WIDTH}, got {ws}")
    return ws


def build(num_classes: int = 10, coarse: Sequence[int] | int = (24, 48, 96),
          fine: Sequence[int] | int = (32, 64, 128, 256), deep: Sequence[int] | int = (256,)) -> RANet:
    """The network. ``coarse``: stem and two blocks of stage 1 (on the half-resolution frame); ``fine``: stem
    and three blocks of the full-resolution sub-network (stages 2 and 3); ``deep``: one more stage per
    entry, each two convolutions at the coarsest resolution. Exits: 3 + len(deep)."""
    if not isinstance(num_classes, int) or not 2 <= num_classes <= 100_000:
        raise PipelineError(f"ranet: num_classes must be an integer from 2 to 100000, got {num_classes!r}")
    deep_ws = () if deep == () or deep == 0 else _widths("deep", deep, None)
    return RANet(num_classes, _widths("coarse", coarse, 3), _widths("fine", fine, 4), deep_ws)
