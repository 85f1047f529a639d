"""A learned exit gate: per exit, a logistic model of "this exit's answer is right" on features of the softmax
outputs of exits 1..k, fit on a calibration split.

The cascade's own rule scores exit k by one number (its answer's max softmax, or entropy). A gate that
also sees the margin, the entropy, whether exit k agrees with exit k-1 and how sure exit k-1 was of exit
k's class can rank the frames differently. Where its thresholds in hindsight beat the rule's own, the
rule's form is a limit; where they do not, the limit is what the exits know, not how the rule reads it.
It feeds the bounds in ``pipeline.thresholds.limits``; the runtime does not run it. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError
from pipeline.thresholds.scores import aggregate_exits

L2 = 1e-3  # ridge on the weights (not the bias): keeps separable calibration sets finite
NEWTON_STEPS = 25  # a handful of features converges in well under this
TINY = 1e-12


def gate_features(probs: np.ndarray, aggregate: str = "last") -> list[np.ndarray]:
    """(N, K, C) exit softmax -> per exit k an (N, F_k) feature matrix about exit k's ``aggregate`` answer:
    its log max, margin and entropy; from exit 2 on, exit k's own log max, whether the answer agrees with exit
    k-1's, the log of exit k-1's probability for it and the log max of the mean of exits 1..k."""
    answers = aggregate_exits(probs, aggregate)
    n, k_exits, _ = probs.shape
    rows = np.arange(n)
    out = []
    for k in range(k_exits):
        a = answers[:, k]
        top = np.sort(a, axis=-1)
        label = a.argmax(axis=-1)
        f = [np.log(top[:, -1] + TINY), top[:, -1] - top[:, -2], -(a * np.log(a + TINY)).sum(axis=-1)]
        if k:
            before = answers[:, k - 1]
            f += [np.log(probs[:, k].max(axis=-1) + TINY), (before.argmax(axis=-1) == label).astype(np.float64),
                  np.log(before[rows, label] + TINY), np.log(probs[:, :k + 1].mean(axis=1).max(axis=-1) + TINY)]
        out.append(np.stack(f, axis=1))
    return out


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights (F + 1,) of an L2-regularised logistic regression of ``y`` (0/1) on standardised ``x``, by Newton."""
    x1 = np.c_[x, np.ones(len(x))]
    w = np.zeros(x1.shape[1])
    ridge = np.r_[np.full(x.shape[1], L2), 0.0]
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x1 @ w, -50, 50)))
        grad = x1.T @ (p - y) / len(y) + ridge * w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 / len(y) + np.diag(ridge + TINY)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


@dataclass(frozen=True)
class ExitGate:
    """Per exit: feature means, spreads and logistic weights; ``scores`` ranks frames, higher = surer."""

    aggregate: str
    means: tuple[np.ndarray, ...]
    spreads: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]

    def scores(self, probs: np.ndarray) -> np.ndarray:
        """(N, K, C) exit softmax -> (N, K) gate scores (log-odds that each exit's answer is right)."""
        feats = gate_features(probs, self.aggregate)
        if len(feats) != len(self.weights):
            raise PipelineError(f"the gate was fit on {len(self.weights)} exits, these probabilities have {len(feats)}")
        return np.stack([np.c_[(f - m) / s, np.ones(len(f))] @ w
                         for f, m, s, w in zip(feats, self.means, self.spreads, self.weights)], axis=1)


def fit_gate(probs: np.ndarray, labels: np.ndarray, aggregate: str = "last") -> ExitGate:
    """Fit one gate per exit on (N, K, C) calibration softmax ``probs`` and (N,) ``labels``."""
    right = aggregate_exits(probs, aggregate).argmax(axis=-1) == np.asarray(labels)[:, None]  # (N, K)
    means, spreads, weights = [], [], []
    for k, f in enumerate(gate_features(probs, aggregate)):
        m, s = f.mean(axis=0), f.std(axis=0)
        s = np.where(s > 0, s, 1.0)
        means.append(m)
        spreads.append(s)
        weights.append(_fit_logistic((f - m) / s, right[:, k].astype(np.float64)))
    return ExitGate(aggregate, tuple(means), tuple(spreads), tuple(weights))
