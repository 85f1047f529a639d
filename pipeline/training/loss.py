"""The multi-exit loss: every exit's cross-entropy, optional label smoothing and self-distillation.

Self-distillation (IMTA, Li et al. 2019): exits 1..K-1 also match the last exit's softened output,
which is detached, so the last exit learns from the labels alone.
"""

from __future__ import annotations

from typing import Any


def multi_exit_loss(logits: list[Any], target: Any, distill: float = 0.0, temperature: float = 3.0,
                    label_smoothing: float = 0.0) -> Any:
    """Sum over exits of CE; with ``distill`` > 0 exits 1..K-1 mix CE with KL to the last exit.

    ``logits``: K tensors (N, classes), any float dtype (computed in float32); ``target``: (N,) int64.
    """
    import torch.nn.functional as F

    ce = [F.cross_entropy(z.float(), target, label_smoothing=label_smoothing) for z in logits]
    if distill <= 0 or len(logits) == 1:
        return sum(ce)
    teacher = F.softmax(logits[-1].detach().float() / temperature, dim=1)  # (N, classes)
    loss = ce[-1]
    for z, c in zip(logits[:-1], ce[:-1]):
        kd = F.kl_div(F.log_softmax(z.float() / temperature, dim=1), teacher, reduction="batchmean")
        loss = loss + (1 - distill) * c + distill * temperature**2 * kd
    return loss
