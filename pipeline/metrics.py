"""Per-exit top-1 accuracy: one definition for the build, the profiler, the benchmarks and training."""

from __future__ import annotations

import numpy as np


def accuracy_per_exit(scores: np.ndarray, labels: np.ndarray) -> list[float]:
    """(N, K, C) logits or probabilities of every exit, (N,) labels -> top-1 accuracy (%) of each exit."""
    hits = np.asarray(scores).argmax(axis=-1) == np.asarray(labels)[:, None]  # (N, K)
    return [float(100.0 * h) for h in hits.mean(axis=0)]
