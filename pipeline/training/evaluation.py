"""Per-exit top-1 accuracy of a model in PyTorch, the figure training reports every epoch."""

from __future__ import annotations

from typing import Any


def exit_accuracy(model: Any, frames: Any, labels: Any, batch_size: int = 500, device: str = "cpu") -> list[float]:
    """Top-1 accuracy (%) of every exit. ``frames`` (N, H, W, 3) uint8 tensor, ``labels`` (N,) int64."""
    import torch

    was_training = model.training
    model.eval()
    correct = None
    with torch.no_grad():
        for i in range(0, len(labels), batch_size):
            outs = model(frames[i:i + batch_size].to(device))
            hits = torch.stack([(o.argmax(1).cpu() == labels[i:i + batch_size]).sum() for o in outs])
            correct = hits if correct is None else correct + hits
    model.train(was_training)
    if correct is None:
        return []
    return [100.0 * float(c) / len(labels) for c in correct]
