"""A multi-exit model made of trained one-exit networks run one after another: the cascade of static networks.

    anytime factory --model-factory pipeline.models.static_cascade:build \\
        --model-opt members=models/static_s_cifar10.pt,models/teacher_cifar10.pt --out models/cascade.pt

Exit k is the k-th member network, whole; stage k carries the normalised frame on to stage k+1, which
starts from the frame again. No feature is shared, so the full chain costs the sum of its members, but
each exit is as accurate as a plain network of its cost, which on a CPU is where a multi-exit network
with shared features has been weakest: its early exits trail a plain network of the same latency. It is
the ensemble-of-networks baseline of the anytime-classification literature, and it runs through the
pipeline unchanged (engines of every precision, the cascade, thresholds, the benchmarks).

The members are checkpoints of one-exit networks of :mod:`pipeline.models.teacher` (the static anchors)
that share their classes, their preprocessing and their validation split (a member that trained on
another member's validation images would make the cascade's thresholds look better than they are). The
model records the member files and their sha256; rebuilding it from its checkpoint reads the members'
shapes again, so the member files must be where they were.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.models.preprocess import PreprocessConfig
from pipeline.models.teacher import TeacherStage

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
    from pipeline.models.loading import check_shapes

    ckpt = read_checkpoint(path)
    config: dict[str, Any] = ckpt["config"] if isinstance(ckpt.get("config"), dict) else {}
    if config.get("factory") != MEMBER_FACTORY:
        raise PipelineError(f"static_cascade: member {path} holds {ckpt.get('model')!r}; a member is a one-exit "
                            f"network of {MEMBER_FACTORY} (make anchors trains them)")
    kwargs = dict(config.get("kwargs", {}))
    stage = TeacherStage(int(config["num_classes"]), int(kwargs.get("stem", 32)),
                         tuple(kwargs.get("widths", (64, 256, 256))))
    prefix = "stages.0.stage."  # the pipeline's wrapper of the member's only stage
    weights = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    check_shapes(path, stage.state_dict(), weights)
    missing, unexpected = stage.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise PipelineError(f"static_cascade: member {path}: weights do not fit its config (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}); retrain it")
    return ckpt, stage


def _same(what: str, values: list[Any], paths: list[Path]) -> Any:
    """The value every member has (None for no member); a member that differs is refused."""
    for p, v in zip(paths[1:], values[1:]):
        if v != values[0]:
            raise PipelineError(f"static_cascade: members {paths[0]} and {p} differ in their {what} ({values[0]!r} "
                                f"against {v!r}); the members of one cascade share it")
    return values[0] if values else None


def build(members: str | Sequence[str] = DEFAULT_MEMBERS) -> StaticCascade:
    """The cascade of the trained ``members`` (checkpoint paths, cheapest first), weights loaded."""
    paths = _member_paths(members)
    read = [_read_member(p) for p in paths]
    ckpts = [c for c, _ in read]
    classes = _same("classes", [list(c["classes"]) for c in ckpts], paths)
    preprocess = _same("preprocessing", [c["config"]["preprocess"] for c in ckpts], paths)
    _same("validation split", [{k: c["split"].get(k) for k in ("seed", "size")} for c in ckpts], paths)
    labelled = [(p, c["split"]) for p, c in zip(paths, ckpts) if c["split"].get("labels_sha256")]
    _same("validation labels", [s["labels_sha256"] for _, s in labelled], [p for p, _ in labelled])
    split = dict(labelled[0][1] if labelled else ckpts[0]["split"])  # one that names its labels, where one does
    origin = {"members": [{"file": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in paths]}
    return StaticCascade([s for _, s in read], PreprocessConfig.from_dict(preprocess), classes, split, origin)
