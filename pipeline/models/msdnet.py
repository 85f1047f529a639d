"""MSDNet (Huang et al., ICLR 2018): a multi-scale dense network with K classifiers at increasing depth.

Faithful to the paper's CIFAR and ImageNet configurations (and to the layer arithmetic of the
authors' reference code): S scales of feature maps, dense growth at every scale, bottleneck
1x1 convolutions, "max" scale pruning with transition layers (reduction 0.5), and the reference
classifier heads.

The network is also a chain of K *stages*: stage k runs block k and classifier k. Stage 1 takes
the uint8 frame (preprocessing is its first layer); stage k > 1 takes the per-scale feature maps
that stage k-1 carries. Each stage returns ``(logits, *carried_maps)`` as a flat tuple, which is
what ONNX export and the cascade runtime need.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from pipeline.models.preprocess import Preprocess, PreprocessConfig


# The largest value each size of a config may take: far beyond any real network, well short of one
# that would exhaust memory while it is being built.
SIZE_BOUNDS = {"n_blocks": 64, "step": 256, "base": 256, "n_channels": 4096, "growth_rate": 1024,
               "gr_factor": 64, "bn_factor": 64, "num_classes": 100_000}
PER_SCALE = ("gr_factor", "bn_factor")  # the sizes given one per scale


@dataclass(frozen=True)
class MSDNetConfig:
    """Architecture hyper-parameters, named as in the paper (snake_case)."""

    n_blocks: int = 5  # K: number of exits
    step: int = 2  # layers added per block after the first
    base: int = 4  # layers in the first block
    stepmode: str = "even"  # "even": step each block; "lin_grow": step * i + 1
    n_channels: int = 16
    growth_rate: int = 6
    gr_factor: tuple[int, ...] = (1, 2, 4)  # channel multiplier per scale; len = number of scales
    bn_factor: tuple[int, ...] = (1, 2, 4)  # bottleneck width multiplier per scale
    bottleneck: bool = True
    prune: str = "max"
    reduction: float = 0.5
    num_classes: int = 10
    stem: str = "cifar"  # "cifar": 3x3 conv; "imagenet": 7x7/2 conv + 3x3/2 max-pool
    stem_bias: bool = False  # a bias on the stem's first conv (the reference's ImageNet stem has one)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        from pipeline.errors import PipelineError

        for name in PER_SCALE:
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, (value,))  # one scale, as --model-opt gr_factor=1 gives it
        for name, top in SIZE_BOUNDS.items():  # refused before a tensor is allocated, not by the kernel later
            values = getattr(self, name)
            if isinstance(values, tuple) != (name in PER_SCALE):
                raise PipelineError(f"the model config's {name} must be {'a list of' if name in PER_SCALE else 'one'} "
                                    f"whole number{'s' if name in PER_SCALE else ''}, got {values!r}")
            for value in (values if isinstance(values, tuple) else (values,)):
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                    raise PipelineError(f"the model config's {name} must be whole numbers from 1 to {top}, got "
                                        f"{values!r}; the checkpoint or --model-opt is damaged or mistyped")
        if self.stepmode not in ("even", "lin_grow"):
            raise PipelineError(f"stepmode must be 'even' or 'lin_grow', got {self.stepmode!r}")
        if self.prune != "max":
            raise PipelineError(f"only prune='max' (the paper's) is supported, got {self.prune!r}")
        if self.stem not in ("cifar", "imagenet"):
            raise PipelineError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        if len(self.gr_factor) != len(self.bn_factor):
            raise PipelineError("gr_factor and bn_factor need one entry per scale (same length)")
        if isinstance(self.reduction, bool) or not isinstance(self.reduction, (int, float)) \
                or not 0 <= self.reduction <= 1:  # NaN fails too
            raise PipelineError(f"the model config's reduction must be a number from 0 (no transition layers) to 1, "
                                f"got {self.reduction!r}")
        for name in ("bottleneck", "stem_bias"):
            if not isinstance(getattr(self, name), bool):
                raise PipelineError(f"the model config's {name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.preprocess, PreprocessConfig):
            raise PipelineError("the model config's preprocess is set by the model, not by --model-opt; got "
                                f"{self.preprocess!r}")
        if len(self.gr_factor) > 8:
            raise PipelineError(f"the model config has {len(self.gr_factor)} scales; at most 8 are supported")

    @property
    def n_scales(self) -> int:
        return len(self.gr_factor)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gr_factor"], d["bn_factor"] = list(self.gr_factor), list(self.bn_factor)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MSDNetConfig":
        d = dict(d)
        d["gr_factor"], d["bn_factor"] = tuple(d["gr_factor"]), tuple(d["bn_factor"])
        d["preprocess"] = PreprocessConfig.from_dict(d["preprocess"])
        for name in ("bottleneck", "stem_bias"):  # saved before they were checked: 0/1, or text (all text was true)
            if name in d and not isinstance(d[name], bool):
                d[name] = bool(d[name])
        return cls(**d)


def conv_bn_relu(n_in: int, n_out: int, kernel: int = 3, stride: int = 1, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, kernel, stride, kernel // 2, bias=bias),
        nn.BatchNorm2d(n_out),
        nn.ReLU(inplace=True),
    )


def bottleneck_conv(n_in: int, n_out: int, stride: int, bottleneck: bool, bn_width: int) -> nn.Sequential:
    """Optional 1x1 bottleneck (width min(n_in, bn_width * n_out)) then a 3x3 conv, BN-ReLU after each."""
    layers: list[nn.Module] = []
    n_inner = n_in
    if bottleneck:
        n_inner = min(n_in, bn_width * n_out)
        layers += list(conv_bn_relu(n_in, n_inner, kernel=1))
    layers += list(conv_bn_relu(n_inner, n_out, kernel=3, stride=stride))
    return nn.Sequential(*layers)


class ScaleUnit(nn.Module):
    """One scale of an MSDNet layer: new maps from the same scale (and the finer one, strided), concatenated."""

    def __init__(self, n_in_finer: int | None, n_in: int, n_out: int, bottleneck: bool,
                 bn_finer: int, bn_same: int) -> None:
        super().__init__()
        if n_in_finer is None:  # finest kept scale: only the regular conv
            self.down = None
            self.normal = bottleneck_conv(n_in, n_out, 1, bottleneck, bn_same)
        else:  # half the new channels from the finer scale (stride 2), half from this one
            self.down = bottleneck_conv(n_in_finer, n_out // 2, 2, bottleneck, bn_finer)
            self.normal = bottleneck_conv(n_in, n_out // 2, 1, bottleneck, bn_same)

    def forward(self, same: torch.Tensor, finer: torch.Tensor | None = None) -> torch.Tensor:
        if self.down is None:
            return torch.cat([same, self.normal(same)], dim=1)
        return torch.cat([same, self.down(finer), self.normal(same)], dim=1)


class FirstLayer(nn.Module):
    """The stem: one map per scale, each coarser one a strided conv of the previous."""

    def __init__(self, cfg: MSDNetConfig) -> None:
        super().__init__()
        width = [cfg.n_channels * g for g in cfg.gr_factor]
        if cfg.stem == "cifar":
            first = conv_bn_relu(3, width[0], 3, 1, bias=cfg.stem_bias)
        else:
            first = nn.Sequential(*conv_bn_relu(3, width[0], 7, 2, bias=cfg.stem_bias), nn.MaxPool2d(3, 2, 1))
        self.layers = nn.ModuleList([first] + [conv_bn_relu(width[i - 1], width[i], 3, 2)
                                               for i in range(1, cfg.n_scales)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)  # scale s: (N, C0 * gr[s], H / 2^s, W / 2^s)
        return out


class MSDLayer(nn.Module):
    """Adds growth_rate * gr_factor[s] channels at every kept scale; drops the finest scales when pruned."""

    def __init__(self, n_in: int, n_out: int, cfg: MSDNetConfig, in_scales: int, out_scales: int) -> None:
        super().__init__()
        self.discard = in_scales - out_scales
        self.out_scales = out_scales
        offset = cfg.n_scales - out_scales  # index of the finest scale this layer outputs
        gr, bn = cfg.gr_factor, cfg.bn_factor
        units = []
        for s in range(offset, cfg.n_scales):
            has_finer = s > offset or self.discard > 0
            units.append(ScaleUnit(n_in * gr[s - 1] if has_finer else None, n_in * gr[s], n_out * gr[s],
                                   cfg.bottleneck, bn[s - 1] if has_finer else 0, bn[s]))
        self.units = nn.ModuleList(units)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, unit in enumerate(self.units):
            j = i + self.discard  # position of this output's scale in the input list
            out.append(unit(x[j], x[j - 1] if j > 0 else None))
        return out


class Transition(nn.Module):
    """1x1 conv-BN-ReLU per scale that shrinks channels (reduction) after a pruning step."""

    def __init__(self, n_in: int, n_out: int, out_scales: int, cfg: MSDNetConfig) -> None:
        super().__init__()
        offset = cfg.n_scales - out_scales
        self.convs = nn.ModuleList([conv_bn_relu(n_in * cfg.gr_factor[offset + i], n_out * cfg.gr_factor[offset + i], 1)
                                    for i in range(out_scales)])

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(t) for conv, t in zip(self.convs, x)]


class Classifier(nn.Module):
    """The reference exit head on the coarsest scale: two strided 3x3 convs, 2x2 average pool, linear."""

    def __init__(self, n_in: int, num_classes: int, stem: str) -> None:
        super().__init__()
        inner = 128 if stem == "cifar" else n_in
        self.features = nn.Sequential(conv_bn_relu(n_in, inner, 3, 2), conv_bn_relu(inner, inner, 3, 2), nn.AvgPool2d(2))
        self.linear = nn.Linear(inner, num_classes)

    def forward(self, coarsest: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.features(coarsest), 1))  # (N, classes)


class Stage(nn.Module):
    """Block k plus exit k: ``forward(*maps) -> (logits, *maps_for_next_stage)``.

    Stage 1 takes one uint8 tensor (N, H, W, 3) in the configured colour order and preprocesses it.
    """

    def __init__(self, block: nn.Sequential, classifier: Classifier, preprocess: Preprocess | None) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.block = block
        self.classifier = classifier

    def forward(self, *maps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x: torch.Tensor | list[torch.Tensor] = self.preprocess(maps[0]) if self.preprocess is not None else list(maps)
        for layer in self.block:
            x = layer(x)
        return (self.classifier(x[-1]), *x)


def chain_stages(stages: nn.ModuleList, frames: torch.Tensor) -> list[torch.Tensor]:
    """The K exits' logits of a chain of stages, each fed what the one before it carries."""
    logits, carried = [], (frames,)
    for stage in stages:
        out = stage(*carried)
        logits.append(out[0])
        carried = out[1:]
    return logits


class MSDNet(nn.Module):
    """The whole network: ``forward(frames_uint8) -> list of K logits``, computed as the chain of stages."""

    def __init__(self, cfg: MSDNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        steps = [cfg.base] + [cfg.step if cfg.stepmode == "even" else cfg.step * i + 1 for i in range(1, cfg.n_blocks)]
        n_layers_all, n_layer = sum(steps), 0
        interval = math.ceil(n_layers_all / cfg.n_scales)
        n_in = cfg.n_channels
        stages = []
        for k, step in enumerate(steps):
            layers: list[nn.Module] = [FirstLayer(cfg)] if k == 0 else []
            for _ in range(step):
                n_layer += 1
                in_scales = cfg.n_scales - math.floor(max(0, n_layer - 2) / interval)
                out_scales = cfg.n_scales - math.floor((n_layer - 1) / interval)
                layers.append(MSDLayer(n_in, cfg.growth_rate, cfg, in_scales, out_scales))
                n_in += cfg.growth_rate
                if in_scales > out_scales and cfg.reduction > 0:
                    n_out = math.floor(cfg.reduction * n_in)
                    if n_out < 1:
                        from pipeline.errors import PipelineError

                        raise PipelineError(f"reduction {cfg.reduction:g} leaves no channel of {n_in} at a transition "
                                            "layer; raise it, or 0 for no transition layers")
                    layers.append(Transition(n_in, n_out, out_scales, cfg))
                    n_in = n_out
            head = Classifier(n_in * cfg.gr_factor[-1], cfg.num_classes, cfg.stem)
            stages.append(Stage(nn.Sequential(*layers), head, Preprocess(cfg.preprocess) if k == 0 else None))
        self.stages = nn.ModuleList(stages)
        self._init_weights()

    def _init_weights(self) -> None:
        """As the reference: He-normal convs (fan-out), BN to identity, zero linear bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """(N, H, W, 3) uint8 -> K tensors of logits (N, classes)."""
        return chain_stages(self.stages, frames)
