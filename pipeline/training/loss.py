"""The multi-exit loss: every exit's cross-entropy, optional label smoothing and distillation.

Self-distillation (IMTA, Li et al. 2019): exits 1..K-1 also match the last exit's softened output,
which is detached, so the last exit learns from the labels alone. With a teacher's logits
(``--teacher``) every exit, the last one included, matches the teacher's softened output instead.
"""

from __future__ import annotations

from typing import Any


def soft_target_loss(z: Any, target_probs: Any, temperature: float) -> Any:
    """T^2 * KL(target || softmax(z / T)), the batch mean; T^2 keeps its gradient on the scale of the CE's."""
    import torch.nn.functional as F

    kl = F.kl_div(F.log_softmax(z.float() / temperature, dim=1), target_probs, reduction="batchmean")
    return temperature**2 * kl


def multi_exit_loss(logits: list[Any], target: Any, distill: float = 0.0, temperature: float = 3.0,
                    label_smoothing: float = 0.0, teacher_logits: Any = None) -> Any:
    """Sum over exits of CE; with ``distill`` > 0 the exits mix CE with KL to a softened target:
    ``(1 - distill) * CE + distill * T^2 * KL``.

    The target is ``teacher_logits`` (N, classes) where given, for every exit; otherwise the last
    exit's own, for exits 1..K-1. ``logits``: K tensors (N, classes), any float dtype (computed in
    float32); ``target``: (N,) int64.
    """
    import torch.nn.functional as F

    ce = [F.cross_entropy(z.float(), target, label_smoothing=label_smoothing) for z in logits]
    if distill <= 0 or (teacher_logits is None and len(logits) == 1):
        return sum(ce)
    if teacher_logits is not None:
        soft = F.softmax(teacher_logits.detach().float() / temperature, dim=1)
        return sum((1 - distill) * c + distill * soft_target_loss(z, soft, temperature) for z, c in zip(logits, ce))
    soft = F.softmax(logits[-1].detach().float() / temperature, dim=1)  # (N, classes)
    loss = ce[-1]
    for z, c in zip(logits[:-1], ce[:-1]):
        loss = loss + (1 - distill) * c + distill * soft_target_loss(z, soft, temperature)
    return loss
