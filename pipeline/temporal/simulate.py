"""The temporal cascade replayed on a clip's precomputed exits: what it answers, where it runs, what it costs.

Calibration tries many settings on the same validation clips; running the engines for each would
be slow and noisy. Each exit's answer and score on each frame does not depend on the settings,
so the chain runs once per frame (every exit), and :func:`replay` applies the same rule as
:class:`~pipeline.temporal.cascade.TemporalCascade` to those numbers: the change measure on the
frames' thumbnails, reuse, cuts, the prior, smoothing. Costs are those of the exit taken
(cumulative, in the units given); a reused frame costs 0 here (the measure is the same for all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.temporal.change import ChangeMeter
from pipeline.temporal.rule import TemporalSettings, decide
from pipeline.temporal.smoothing import SoftmaxSmoother
from pipeline.thresholds import aggregate_exits, exit_scores, to_scores


@dataclass(frozen=True)
class ClipExits:
    """One clip's frames as the replay needs them."""

    thumbs: np.ndarray  # (F, s, s) float32 change thumbnails
    probs: np.ndarray  # (F, K, C) what each exit answers with (the aggregate already applied)
    scores: np.ndarray  # (F, K) their scores (higher is surer)
    labels: np.ndarray  # (F,) true labels
    cuts: tuple[int, ...]  # first frame of each scene after the first
    fps: float = 30.0

    @classmethod
    def from_probs(cls, frames: np.ndarray, exit_probs: np.ndarray, labels: np.ndarray, cuts: list[int],
                   aggregate: str, criterion: str, thumb: int, fps: float = 30.0) -> "ClipExits":
        """From (F, H, W, 3) frames and the chain's (F, K, C) per-exit softmax."""
        meter = ChangeMeter(thumb)
        probs = aggregate_exits(exit_probs, aggregate)
        return cls(np.stack([meter.thumb(f) for f in frames]), probs, exit_scores(probs, criterion),
                   np.asarray(labels), tuple(cuts), fps)


@dataclass(frozen=True)
class Replay:
    """Per frame of a clip: the answer, what is shown, whether the cascade ran, at which exit, and the cost."""

    answers: np.ndarray  # (F,) int
    shown: np.ndarray  # (F,) int
    ran: np.ndarray  # (F,) bool
    exits: np.ndarray  # (F,) 1-based exit of the answer
    costs: np.ndarray  # (F,) cost of the frame (0 when reused)
    cut_flags: np.ndarray  # (F,) bool: the rule saw a cut

    def accuracy(self, labels: np.ndarray) -> float:
        return 100.0 * float((self.answers == labels).mean())

    @property
    def reuse_rate(self) -> float:
        return 1.0 - float(self.ran.mean())

    def flips(self, shown: bool = False) -> int:
        seq = self.shown if shown else self.answers
        return int((seq[1:] != seq[:-1]).sum())


def replay(clip: ClipExits, settings: TemporalSettings, plain_scores: np.ndarray, costs: np.ndarray,
           criterion: str = "confidence") -> Replay:
    """The temporal cascade on ``clip`` under ``settings``; ``plain_scores`` (K,) the exit rule's score
    thresholds (``pipeline.thresholds.to_scores``), ``costs`` (K,) cumulative cost to each exit."""
    f_count = clip.scores.shape[0]
    prior_scores = None
    if settings.prior_floor is not None:  # as TemporalCascade: never above the plain rule's bar
        floor = to_scores([settings.prior_floor] * len(plain_scores), criterion)
        prior_scores = np.minimum(plain_scores, floor)
    labels_k = clip.probs.argmax(axis=2)  # (F, K)
    passed = clip.scores >= plain_scores[None, :]  # (F, K)
    passed[:, -1] = True
    plain_exit = passed.argmax(axis=1)  # (F,) 0-based
    answers, shown = np.empty(f_count, np.int64), np.empty(f_count, np.int64)
    ran, cut_flags = np.zeros(f_count, bool), np.zeros(f_count, bool)
    exits, cost = np.empty(f_count, np.int64), np.zeros(f_count)
    smoother = SoftmaxSmoother(settings.smoothing)
    dist = ChangeMeter.distance
    prev = ref = None
    age, answer, ans_exit, ref_frame = 0, -1, 1, -1
    ms_per_frame = 1000.0 / clip.fps
    for i in range(f_count):
        t = clip.thumbs[i]
        d_prev = None if prev is None else dist(t, prev)
        d_ref = None if ref is None else dist(t, ref)
        prev = t
        conf = 1.0 if ref_frame < 0 else float(clip.probs[ref_frame, ans_exit - 1].max())
        d = decide(settings, d_prev, d_ref, age + 1, (age + 1) * ms_per_frame, conf)
        cut_flags[i] = d.cut
        if d.reuse:
            age += 1
            probs = clip.probs[ref_frame, ans_exit - 1]
        else:
            e = int(plain_exit[i])
            if d.prior and prior_scores is not None and answer >= 0:
                agree = (labels_k[i] == answer) & (clip.scores[i] >= prior_scores)
                agree[-1] = False  # the last exit answers anyway
                if agree[:e].any():
                    e = int(agree.argmax())
            answer, ans_exit, ref, ref_frame, age = int(labels_k[i, e]), e + 1, t, i, 0
            ran[i], cost[i] = True, costs[e]
            probs = clip.probs[i, e]
        answers[i], exits[i] = answer, ans_exit
        shown[i] = smoother.update(probs, reset=d.cut)[0]
    return Replay(answers, shown, ran, exits, cost, cut_flags)
