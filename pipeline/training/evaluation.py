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


def exit_rule_check(probs: Any, labels: Any, costs: Any) -> dict[str, float]:
    """What the confidence exit rule makes of a model, held out: thresholds from the budgeted sweep on
    the even-numbered images, for the best accuracy at exit 2's cost, applied to the odd-numbered
    ones. Also exit 1's mean confidence: label smoothing lowers it, and the rule reads it."""
    import numpy as np

    from pipeline.thresholds import simulate
    from pipeline.thresholds.sweep import budgeted_curve, max_accuracy_for_cost

    costs = np.asarray(costs, dtype=np.float64)
    fit, held = slice(0, None, 2), slice(1, None, 2)
    point = max_accuracy_for_cost(budgeted_curve(probs[fit], labels[fit], costs), float(costs[1]))
    sim = simulate(probs[held], labels[held], point.thresholds, costs)
    return {"cascade_at_exit2_cost": sim.accuracy, "cost_share": sim.mean_cost / float(costs[-1]),
            "exit1_confidence": 100.0 * float(probs[:, 0].max(axis=1).mean())}
