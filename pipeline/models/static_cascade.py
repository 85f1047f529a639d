"""A multi-exit model made of trained one-exit networks run one after another: the cascade of static networks.

    anytime factory --model-factory pipeline.models.static_cascade:build \\
        --model-opt members=models/static_s_cifar10.pt,models/teacher_cifar10.pt --out models/cascade.pt

Exit k is the k-th member network, whole; stage k carries the normalised frame on to stage k+1, which
starts from the frame again. No feature is shared, so exit k costs members 1..k together, but its first
exit is as accurate as a plain network of its cost, which on a CPU is where a multi-exit network with
shared features has been weakest: its early exits trail a plain network of the same latency. It is
the ensemble-of-networks baseline of the anytime-classification literature, and it runs through the
pipeline unchanged (engines of every precision, the cascade, thresholds, the benchmarks).

The members are checkpoints of one-exit networks of :mod:`pipeline.models.teacher` (the static anchors)
that share their classes, their preprocessing and their validation split (a member that trained on
another member's validation images would make the cascade's thresholds look better than they are). The
checkpoint records the member files and their sha256 (``origin``), and in its config the members' shapes,
classes and preprocessing in place of their paths, so it loads on its own, like any checkpoint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models.preprocess import PreprocessConfig
from pipeline.models.teacher import ConvBlock, TeacherStage

MEMBER_FACTORY = "pipeline.models.teacher:build"
DEFAULT_MEMBERS = ("models/static_s_cifar10.pt", "models/static_m_cifar10.pt", "models/teacher_cifar10.pt")


class CarryFrame(nn.Module):
    """One member as a stage: (N, 3, H, W) normalised frame -> (logits, frame) or, last, (logits,)."""

    def __init__(self, member: TeacherStage, last: bool) -> None:
        super().__init__()
        self.member, self.last = member, last

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        (logits,) = self.member(x)
        return (logits,) if self.last else (logits, x)


class StaticCascade(nn.Module):
    """The stage-contract model: ``stages``, ``preprocess``, ``classes``, ``split``, ``origin``, ``forward``."""

    def __init__(self, members: Sequence[TeacherStage], preprocess: PreprocessConfig, classes: list[str],
                 split: dict[str, Any], origin: dict[str, Any]) -> None:
        super().__init__()
        self.stages = nn.ModuleList([CarryFrame(m, i == len(members) - 1) for i, m in enumerate(members)])
        self.preprocess, self.classes, self.split, self.origin = preprocess, classes, split, origin
        self.rebuild_kwargs: dict[str, Any] = {}  # the options that remake these networks without the member files

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [stage(x)[0] for stage in self.stages]  # every member takes the frame


def _member_paths(members: str | Sequence[str]) -> list[Path]:
    names = members.split(",") if isinstance(members, str) else list(members)
    paths = [Path(n.strip()) for n in names if str(n).strip()]
    if len(paths) < 2:
        raise PipelineError(f"static_cascade: members needs at least two checkpoints, comma-separated, cheapest "
                            f"first; got {len(paths)}")
    return paths


def _read_member(path: Path) -> tuple[dict[str, Any], TeacherStage]:
    """A member's checkpoint and its network with the weights loaded; anything else is refused."""
    from pipeline.checkpoint import read_checkpoint
    from pipeline.models.loading import load_model

    ckpt = read_checkpoint(path)
    config: dict[str, Any] = ckpt["config"] if isinstance(ckpt.get("config"), dict) else {}
    if config.get("factory") != MEMBER_FACTORY:
        raise PipelineError(f"static_cascade: member {path} holds {ckpt.get('model')!r}; a member is a one-exit "
                            f"network of {MEMBER_FACTORY} (make anchors trains them)")
    model, ckpt = load_model(path, expect_model=MEMBER_FACTORY)
    stage = model.stages[0].stage
    if not isinstance(stage, TeacherStage):
        raise PipelineError(f"static_cascade: member {path} is not a one-exit network of {MEMBER_FACTORY}")
    return ckpt, stage


def _same(what: str, values: list[Any], paths: list[Path]) -> Any:
    """The value every member has (None for no member); a member that differs is refused."""
    for p, v in zip(paths[1:], values[1:]):
        if v != values[0]:
            raise PipelineError(f"static_cascade: members {paths[0]} and {p} differ in their {what} ({values[0]!r} "
                                f"against {v!r}); the members of one cascade share it")
    return values[0] if values else None


def _check_splits(paths: list[Path], splits: list[dict[str, Any]]) -> dict[str, Any]:
    """The members' one validation split (``split_keys_differing``), the one with a fingerprint where one has it.

    Every pair is compared: a member saved without a fingerprint agrees by its ``--data`` string with two
    members whose fingerprints differ, so agreeing with the first member is not enough.
    """
    from itertools import combinations

    from pipeline.data.splits import split_keys_differing

    for (p, a), (q, b) in combinations(zip(paths, splits), 2):
        keys = split_keys_differing(a, b)
        if keys:
            raise PipelineError(f"static_cascade: members {p} and {q} differ in their validation split ("
                                + ", ".join(f"{k} {a.get(k)} against {b.get(k)}" for k in keys)
                                + "): one may have trained on images the other validates on; train them with the "
                                  "same --data, --seed and --val-size")
    return dict(next((s for s in splits if s.get("labels_sha256")), splits[0]))


def _layout(stage: TeacherStage) -> dict[str, Any]:
    """What rebuilds a member's network without its file: classes, stem and block widths."""
    blocks = [m for m in stage.features if isinstance(m, ConvBlock)]
    return {"num_classes": stage.classifier.out_features, "stem": stage.features[0].out_channels,
            "widths": [b.body[0].out_channels for b in blocks]}


def _from_layouts(layouts: Sequence[dict[str, Any]], classes: Sequence[str], preprocess: dict[str, Any]) -> StaticCascade:
    """The cascade's networks, untrained, from what its checkpoint recorded (the weights are loaded after)."""
    try:
        stages = [TeacherStage(int(lay["num_classes"]), int(lay["stem"]), tuple(int(w) for w in lay["widths"]))
                  for lay in layouts]
        config = PreprocessConfig.from_dict(dict(preprocess))
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"static_cascade: the recorded layouts do not make networks ({type(exc).__name__}: "
                            f"{exc}); the checkpoint is damaged: make it again (make static-cascade)") from None
    return StaticCascade(stages, config, list(classes), {}, {})


def build(members: str | Sequence[str] = DEFAULT_MEMBERS, layouts: Sequence[dict[str, Any]] | None = None,
          classes: Sequence[str] = (), preprocess: dict[str, Any] | None = None) -> StaticCascade:
    """The cascade of the trained ``members`` (checkpoint paths, cheapest first), weights loaded.

    ``layouts``, ``classes`` and ``preprocess`` are what a cascade's checkpoint records in place of the
    member paths (``rebuild_kwargs``), so that it loads where the member files are not: untrained
    networks of those shapes, which the checkpoint's weights then fill.
    """
    if layouts is not None:
        return _from_layouts(layouts, classes, preprocess or {})
    paths = _member_paths(members)
    read = [_read_member(p) for p in paths]
    ckpts = [c for c, _ in read]
    names = _same("classes", [list(c["classes"]) for c in ckpts], paths)
    pre = _same("preprocessing", [c["config"]["preprocess"] for c in ckpts], paths)
    split = _check_splits(paths, [dict(c.get("split", {})) for c in ckpts])
    origin = {"members": [{"file": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in paths]}
    net = StaticCascade([s for _, s in read], PreprocessConfig.from_dict(pre), names, split, origin)
    net.rebuild_kwargs = {"layouts": [_layout(s) for _, s in read], "classes": names, "preprocess": dict(pre)}
    return net
