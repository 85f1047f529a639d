"""The cascade over many frames at once: stage k runs once on the batch of frames still undecided.

    batched = BatchedCascade(Cascade.from_folder("engines/ranet"))
    results = batched.classify_batch(frames, budgets_ms, arrived=arrival_times)  # one CascadeResult per frame

One call is one tick of a many-stream process: one frame per stream. Stage 1 runs on every frame;
after each stage, a frame leaves the batch when its exit is confident (or agrees with its prior,
as in :meth:`Cascade.classify`), and before stage k+1 a frame leaves when the stage's predicted
cost *for the batch it would run in* would overrun its own remaining budget. So early exit and the
deadline rule hold per frame, as with one stream; only the stage's cost is shared. Among frames
short of time, those with the most budget left stay: the batch is the largest set of them whose
every member fits the cost of a batch that size (``LatencyPredictor.predict(k, batch)``).

The chain, thresholds, exit test and predictor are the wrapped :class:`Cascade`'s, used under its
lock, so a batched cascade and the plain one may serve the same model in turns. The exit test is
the plain one's, vectorised over the batch: on the same frames without a deadline, every frame gets
the answer ``Cascade.classify`` gives it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from pipeline.backends.base import StageChain
from pipeline.errors import PipelineError
from pipeline.runtime.cascade import Cascade, CascadeResult, StoppedBy, non_finite_logits
from pipeline.runtime.deadline import check_budget

Prior = tuple[int, Sequence[float]]  # (label, (K,) scores), as Cascade.classify's prior


class BatchedCascade:
    """A Cascade run on a batch of frames per call, each with its own budget, arrival time and prior."""

    def __init__(self, cascade: Cascade):
        if not isinstance(cascade, Cascade):
            raise PipelineError("the batched cascade wraps a pipeline.runtime.cascade.Cascade")
        self.cascade = cascade
        self.probs = np.zeros((0, len(cascade.classes)), dtype=np.float64)  # (N, C) the last call's answers' softmax

    @property
    def max_batch(self) -> int:
        """Frames one stage run takes; a call with more runs them in groups of this many."""
        return self.cascade.chain.max_batch

    def classify_batch(self, frames: Sequence[np.ndarray], budgets_ms: Sequence[float | None] | None = None, *,
                       arrived: Sequence[float] | None = None,
                       priors: Sequence[Prior | None] | None = None) -> list[CascadeResult]:
        """Answer each (H, W, 3) uint8 frame; ``budgets_ms[i]`` counts from ``arrived[i]`` (the cascade's clock,
        seconds; default: now). ``priors[i]``: frame i's temporal prior, or None. After the call, ``probs[i]``
        is the softmax frame i's answer was read from."""
        c = self.cascade
        n = len(frames)
        none: list[None] = [None] * n
        budgets: list[float | None] = [check_budget(b) for b in budgets_ms] if budgets_ms is not None else list(none)
        pri: list[Prior | None] = list(priors) if priors is not None else list(none)
        if len(budgets) != n or len(pri) != n or (arrived is not None and len(arrived) != n):
            raise PipelineError(f"expected one budget, arrival time and prior per frame ({n} frames)")
        images = [c._batch(f)[0] for f in frames]  # each checked: (H, W, 3) views
        self.probs = np.zeros((n, len(c.classes)), dtype=np.float64)
        results: list[CascadeResult | None] = [None] * n
        with c._turn:
            now = c._clock()
            starts = list(arrived) if arrived is not None else [now] * n
            size = max(1, self.max_batch)
            for lo in range(0, n, size):
                group = list(range(lo, min(n, lo + size)))
                self._tick(group, np.stack([images[i] for i in group]), budgets, starts, pri, results)
        return [r for r in results if r is not None]

    def _tick(self, group: list[int], batch: np.ndarray, budgets: list[float | None], starts: list[float],
              priors: list[Prior | None], results: list[CascadeResult | None]) -> None:
        """Run the stages on ``group`` (indices of the call's frames; ``batch`` holds their images in that order)."""
        c = self.cascade
        clock, predictor, chain, k_last = c._clock, c.predictor, c.chain, c.num_exits
        stage_ms: dict[int, list[float]] = {i: [] for i in group}
        sums = np.zeros((len(group), len(c.classes)), dtype=np.float64)  # (B, C) softmax sums, "mean" aggregate
        row_of = {i: r for r, i in enumerate(group)}  # a frame's row in ``sums``
        chain.set_frame(batch)
        prev = clock()
        alive = list(group)  # the chain's rows, in order
        answer: dict[int, tuple[int, float]] = {}  # frame -> label, confidence of its latest exit

        def finish(i: int, k: int, stopped: StoppedBy) -> None:
            label, conf = answer[i]
            total = (prev - starts[i]) * 1e3
            b = budgets[i]
            results[i] = CascadeResult(label, c.classes[label], conf, k, k_last, stage_ms[i], total, b,
                                       None if b is None else total <= b, stopped)

        for k in range(1, k_last + 1):
            if k > 1:
                stay = self._within_budget(k, alive, budgets, starts, prev)
                if not stay:
                    predictor.skipped(k)
                for i in alive:
                    if i not in stay:
                        finish(i, k - 1, "deadline")
                if not stay:
                    return
                alive = _narrow(chain, alive, stay)
            logits = chain.run(k)  # (B, C)
            now = clock()
            ms = (now - prev) * 1e3
            predictor.observe(k, ms, batch=len(alive))
            prev = now
            rows = [row_of[i] for i in alive]
            labels, confs, scores, probs = self._exit_test(logits, k, sums, rows)
            undecided = []
            for j, i in enumerate(alive):
                stage_ms[i].append(ms)
                answer[i] = (int(labels[j]), float(confs[j]))
                self.probs[i] = probs[j]
                prior = priors[i]
                if k == k_last:
                    finish(i, k, "last-exit")
                elif scores[j] >= c._score_thr[k - 1]:
                    finish(i, k, "confidence")
                elif prior is not None and labels[j] == prior[0] and scores[j] >= prior[1][k - 1]:
                    finish(i, k, "prior")
                else:
                    undecided.append(i)
            if not undecided:
                return
            alive = _narrow(chain, alive, undecided)

    def _within_budget(self, k: int, alive: list[int], budgets: list[float | None], starts: list[float],
                       now: float) -> list[int]:
        """The frames (in ``alive``'s order) that run stage ``k``: the largest set, most budget left first, whose
        every member's remaining budget covers stage k's predicted cost for a batch of that set's size."""
        predictor = self.cascade.predictor
        free = [i for i in alive if budgets[i] is None]
        left = sorted(((budgets[i] - (now - starts[i]) * 1e3, i) for i in alive  # type: ignore[operator]
                       if budgets[i] is not None), reverse=True)
        m = len(left)
        while m > 0 and left[m - 1][0] < predictor.predict(k, len(free) + m):
            m -= 1
        chosen = set(free) | {i for _, i in left[:m]}
        return [i for i in alive if i in chosen]

    def _exit_test(self, logits: np.ndarray, stage: int, sums: np.ndarray, rows: list[int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(B, C) logits -> per frame label, max softmax, score and the softmax answered from (Cascade's test)."""
        c = self.cascade
        z = logits.reshape(len(rows), -1).astype(np.float64)  # (B, C)
        if z.shape[1] != sums.shape[1]:
            raise PipelineError(f"stage {stage} returned {z.shape[1]} logits, the model lists {sums.shape[1]} "
                                "classes; rebuild the engines with `make engines`")
        shifted = z - z.max(axis=1, keepdims=True)  # <= 0
        e = np.exp(shifted)
        total = e.sum(axis=1)  # (B,)
        if not np.isfinite(total).all():
            raise non_finite_logits(stage)
        if c.aggregate == "mean":
            sums[rows] += e / total[:, None]
            mean = sums[rows] / stage  # (B, C)
            labels = mean.argmax(axis=1)
            conf = mean[np.arange(len(rows)), labels]
            if c.criterion == "confidence":
                return labels, conf, conf, mean
            logs = np.log(sums[rows], out=np.zeros_like(mean), where=sums[rows] > 0)
            return labels, conf, (sums[rows] * logs).sum(axis=1) / stage - math.log(stage), mean
        labels = z.argmax(axis=1)
        conf = 1.0 / total
        probs = e / total[:, None]
        if c.criterion == "confidence":
            return labels, conf, conf, probs
        return labels, conf, (e * shifted).sum(axis=1) / total - np.log(total), probs


def _narrow(chain: StageChain, alive: list[int], kept: list[int]) -> list[int]:
    """``kept`` (a subsequence of ``alive``, the chain's rows in order) as the chain's rows from now on."""
    if len(kept) < len(alive):
        pos = {i: r for r, i in enumerate(alive)}
        chain.keep([pos[i] for i in kept])
    return kept
