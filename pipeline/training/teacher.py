"""The teacher of ``--teacher CHECKPOINT``: a trained network whose softened output every exit learns from.

Distillation from a network that is more accurate than the student's own last exit (Hinton et al.
2015; for multi-exit networks Phuong and Lampert 2019) gives every exit, the first included, a
target that says which wrong classes are near. The teacher runs on the very batch the student
sees, after augmentation, in eval mode and without gradients.

The teacher must have been trained with the student's validation split (same seed, size and
data): a teacher that trained on the student's validation images would leak them into the
student and make its validation figures, and the exit thresholds drawn from them, optimistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pipeline.errors import PipelineError


def check_teacher_split(path: Path, teacher_split: dict[str, Any], split: dict[str, Any]) -> None:
    """Refuse a teacher trained with another validation split than the student's (``split_keys_differing``)."""
    from pipeline.data.splits import split_keys_differing

    keys = split_keys_differing(teacher_split, split)
    if keys:
        mine = ", ".join(f"{k} {split.get(k)}" for k in keys)
        theirs = ", ".join(f"{k} {teacher_split.get(k)}" for k in keys)
        raise PipelineError(f"--teacher {path} was trained with the validation split ({theirs}), this run holds out "
                            f"({mine}): the teacher has seen images this run validates on; train the teacher with "
                            "the same --data, --seed and --val-size")


def load_teacher(path: Path, split: dict[str, Any], num_classes: int, frame_size: tuple[int, int], device: str,
                 channels_last: bool, compile_on: bool, log: Callable[[str], None]) -> Callable[[Any], Any]:
    """A function from the student's batch (N, H, W, 3) uint8 to the teacher's last-exit logits (N, classes)."""
    import torch

    from pipeline.models.loading import load_model

    if not path.is_file():
        raise PipelineError(f"--teacher {path} does not exist; train one first (make teacher)")
    # load_model rebuilds this package's networks (the teacher) and registered models, and refuses a user's
    # factory, whose code --teacher asks no consent to run.
    model, ckpt = load_model(path)
    check_teacher_split(path, ckpt.get("split", {}), split)
    classes = len(ckpt.get("classes", []))
    if classes != num_classes:
        raise PipelineError(f"--teacher {path} has {classes} classes, the training data {num_classes}")
    p = model.cfg.preprocess
    if (p.height, p.width) != frame_size:
        raise PipelineError(f"--teacher {path} takes {p.height}x{p.width} frames, the student {frame_size[0]}x"
                            f"{frame_size[1]}")
    for q in model.parameters():
        q.requires_grad_(False)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    last: Callable[[Any], Any] = lambda x: model(x)[-1]  # noqa: E731 - the teacher's answer is its last exit
    if compile_on:
        from pipeline.training.loop import CompiledOrEager

        last = CompiledOrEager(last, log)
    accuracy = ckpt.get("train_state", {}).get("history", [{}])[-1].get("val_acc", [])
    log(f"teacher {path}: {ckpt.get('model')}, validation accuracy "
        + (f"{accuracy[-1]:.2f}%" if accuracy else "not recorded"))

    def answer(frames: Any) -> Any:
        with torch.no_grad():
            return last(frames).float()

    return answer
