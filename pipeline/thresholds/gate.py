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
from pipeline.thresholds.scores import aggregate_exits, check_probs_labels, exit_scores

L2 = 1e-3  # ridge on the weights and the bias: keeps separable or one-class calibration sets finite
NEWTON_STEPS = 50  # a handful of features converges in a few steps; a bound, not a schedule
TINY = 1e-12


def gate_features(probs: np.ndarray, aggregate: str = "last") -> list[np.ndarray]:
    """(N, K, C) exit softmax -> per exit k an (N, F_k) feature matrix about exit k's ``aggregate`` answer:
    its log max, margin and (minus) entropy; from exit 2 on also whether it agrees with exit k-1's answer, the log of
    exit k-1's probability for its class, and the log max of the other reading of exit k (the mean of exits
    1..k where the answer is exit k alone, exit k alone where it is the mean)."""
    answers = aggregate_exits(probs, aggregate)
    top2 = np.sort(answers, axis=-1)[..., -2:]  # (N, K, 2)
    log_max, margin = np.log(top2[..., 1] + TINY), top2[..., 1] - top2[..., 0]
    neg_entropy = exit_scores(answers, "entropy")  # (N, K), the rule's own entropy score
    other_log_max = np.log(exit_scores(aggregate_exits(probs, "mean" if aggregate == "last" else "last")) + TINY)
    labels = answers.argmax(axis=-1)  # (N, K)
    rows = np.arange(len(probs))
    out = []
    for k in range(probs.shape[1]):
        f = [log_max[:, k], margin[:, k], neg_entropy[:, k]]
        if k:
            f += [(labels[:, k - 1] == labels[:, k]).astype(np.float64),
                  np.log(answers[rows, k - 1, labels[:, k]] + TINY), other_log_max[:, k]]
        out.append(np.stack(f, axis=1))
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int]:
    """Weights (F + 1,) (the bias last) of an L2-regularised logistic regression of ``y`` (0/1) on standardised
    ``x`` by Newton's method, and the steps it took (fewer than ``NEWTON_STEPS`` where it converged)."""
    x1 = np.c_[x, np.ones(len(x))]
    w = np.zeros(x1.shape[1])
    for step_count in range(1, NEWTON_STEPS + 1):
        p = 1.0 / (1.0 + np.exp(-np.clip(x1 @ w, -50, 50)))
        grad = x1.T @ (p - y) / len(y) + L2 * w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 / len(y) + L2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            return w, step_count
    return w, NEWTON_STEPS


@dataclass(frozen=True)
class ExitGate:
    """Per exit: feature means, spreads and logistic weights; ``scores`` ranks frames, higher = surer."""

    aggregate: str
    classes: int
    means: tuple[np.ndarray, ...]
    spreads: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]

    def scores(self, probs: np.ndarray) -> np.ndarray:
        """(N, K, C) exit softmax -> (N, K) gate scores (regularised log-odds that each exit's answer is right)."""
        probs = np.asarray(probs)
        if probs.ndim != 3 or probs.shape[1:] != (len(self.weights), self.classes):
            raise PipelineError(f"the gate was fit on {len(self.weights)} exits of {self.classes} classes; these "
                                f"probabilities have shape {probs.shape}")
        feats = gate_features(probs, self.aggregate)
        return np.stack([np.c_[(f - m) / s, np.ones(len(f))] @ w
                         for f, m, s, w in zip(feats, self.means, self.spreads, self.weights)], axis=1)


def fit_gate(probs: np.ndarray, labels: np.ndarray, aggregate: str = "last") -> ExitGate:
    """Fit one gate per exit on (N, K, C) calibration softmax ``probs`` (C >= 2) and (N,) ``labels``."""
    probs, labels = check_probs_labels(probs, labels)
    if probs.shape[2] < 2:
        raise PipelineError(f"a gate needs at least 2 classes, got probabilities of shape {probs.shape}")
    right = aggregate_exits(probs, aggregate).argmax(axis=-1) == labels[:, None]  # (N, K)
    means, spreads, weights = [], [], []
    for k, f in enumerate(gate_features(probs, aggregate)):
        m, s = f.mean(axis=0), f.std(axis=0)
        s = np.where(s > 1e-6 * np.maximum(1.0, np.abs(m)), s, 1.0)  # a constant (or rounding-noise) feature: 0
        means.append(m)
        spreads.append(s)
        weights.append(fit_logistic((f - m) / s, right[:, k].astype(np.float64))[0])
    return ExitGate(aggregate, int(probs.shape[2]), tuple(means), tuple(spreads), tuple(weights))
