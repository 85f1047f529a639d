"""The anytime cascade: run stage 1, 2, ... on a frame until an exit is sure enough or the budget ends.

    cascade = Cascade.from_folder("engines/ranet", precision="int8", policy="default")
    result = cascade.classify(frame, budget_ms=5.0)  # frame: (H, W, 3) uint8, model size and colour order

Exit rule: exit k answers when its softmax score passes threshold k (``pipeline.thresholds``: max
softmax >= t, or entropy <= t); with the "mean" aggregate, exit k's answer and score are those of
the mean softmax of exits 1..k. Deadline rule: ``pipeline.runtime.deadline``. The per-frame path is numpy
and the backend's chain only: no torch, no per-frame buffers besides the result. A Cascade is an
:class:`~pipeline.runtime.AnytimeRuntime`, as the video-aware cascade that wraps it is.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from pipeline.backends.base import StageChain
from pipeline.runtime.deadline import LatencyPredictor, check_budget
from pipeline.errors import PipelineError
from pipeline.manifest import Manifest
from pipeline.runtime.interface import AnytimeRuntime
from pipeline.thresholds import (DEFAULT_POLICY, LAST_EXIT_POLICY, check_aggregate, check_criterion, policy_thresholds,
                                 to_scores)

StoppedBy = Literal["confidence", "prior", "deadline", "last-exit"]


def non_finite_logits(stage: int) -> PipelineError:
    """The error for a stage whose logits hold NaN or infinity (the single and the batched cascade)."""
    return PipelineError(f"stage {stage} returned logits that are not finite numbers; its engine is damaged or "
                         "overflows at this precision: check it with `anytime verify`")


@dataclass(frozen=True)
class CascadeResult:
    label: int
    class_name: str
    confidence: float  # max softmax at the exit taken (of the mean softmax with the "mean" aggregate)
    exit: int  # 1-based
    num_exits: int
    stage_ms: list[float]  # one per stage run: the stage plus the exit test on its logits
    total_ms: float  # from the frame's arrival in classify to the answer
    budget_ms: float | None
    deadline_met: bool | None  # None when there was no budget
    stopped_by: StoppedBy


class Cascade(AnytimeRuntime[CascadeResult]):
    """A loaded StageChain, exit thresholds and a latency predictor: one frame in, one answer out.

    Safe to share between threads: ``classify`` calls take turns under a lock (the chain's buffers,
    the exit test's scratch arrays and the predictor serve one frame at a time), so every answer is
    the one a lone call would give; the budget counts from when a call gets its turn. For frames
    classified in parallel, load one Cascade per thread.
    """

    # AnytimeRuntime's facts, plain attributes here (set in __init__; from_folder names the variant's)
    backend: str = ""
    precision: str = ""
    policy: str = ""
    classes: Sequence[str] = ()
    num_exits: int = 0
    frame_size: tuple[int, int] | None = None
    colour_order: str = ""
    resize_shorter: int = 0  # the manifest's: 0 resizes other frames, n > 0 resizes and centre-crops them
    notes: Sequence[str] = ()

    def __init__(self, chain: StageChain, classes: Sequence[str], thresholds: Sequence[float] | None,
                 predictor: LatencyPredictor, criterion: str = "confidence", *, aggregate: str = "last",
                 frame_size: tuple[int, int] | None = None, colour_order: str = "",
                 notes: Sequence[str] = (), clock: Callable[[], float] = time.perf_counter):
        """``thresholds``: (K,) in criterion units, or None to run to the last exit unless the deadline stops it.
        ``aggregate``: "last" (exit k answers alone) or "mean" (the mean softmax of exits 1..k), as calibrated.
        ``frame_size``: (H, W) the stages expect, checked on every frame when given.
        ``clock``: seconds, monotonic (tests pass a fake one).
        """
        self.chain = chain
        self.backend, self.precision, self.policy = chain.backend, chain.precision, ""
        self.num_exits = chain.num_stages
        self.classes = list(classes)
        self.criterion = check_criterion(criterion)
        self.aggregate = check_aggregate(aggregate)
        if thresholds is None:
            thresholds = [math.inf] * self.num_exits if criterion == "confidence" else [-math.inf] * self.num_exits
        if len(thresholds) != self.num_exits or any(math.isnan(t) for t in thresholds):
            raise PipelineError(f"expected {self.num_exits} thresholds (one per exit, no NaN), got {list(thresholds)}")
        if predictor.num_stages != self.num_exits:
            raise PipelineError(f"the latency predictor covers {predictor.num_stages} stages, the chain has "
                                f"{self.num_exits}")
        self.thresholds = tuple(float(t) for t in thresholds)
        self._score_thr = to_scores(self.thresholds, criterion).tolist()  # rule: score >= s_k; s_K = -inf
        self.predictor = predictor
        self.frame_size = (int(frame_size[0]), int(frame_size[1])) if frame_size else None
        self.colour_order = colour_order
        self.resize_shorter = 0  # from_folder sets the manifest's
        self.notes = list(notes)
        self._clock = clock
        c = len(self.classes)
        self._shifted = np.empty(c, dtype=np.float64)  # (C,) logits minus their max
        self._exp = np.empty(c, dtype=np.float64)  # (C,) exp of the above
        self._sum = np.empty(c, dtype=np.float64)  # (C,) sum of the softmax outputs so far ("mean")
        self._log = np.empty(c, dtype=np.float64)  # (C,) its log, 0 where it is 0
        self._turn = threading.Lock()  # one frame at a time through the chain and the scratch arrays
        self._answered = 1  # the exit of the last answer
        self.chain.activate()

    @classmethod
    def from_folder(cls, folder: str | Path, backend: str = "auto", precision: str = "fp32",
                    policy: str = DEFAULT_POLICY, criterion: str | None = None, threads: int = 1) -> "Cascade":
        """Load a built model folder through its manifest; ``backend="auto"`` picks the best one present."""
        from pipeline.backends import load_chain, passed_over, pick_backend
        from pipeline.manifest import load_manifest, variant_key
        from pipeline.names import PRECISIONS

        if precision not in PRECISIONS:
            raise PipelineError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        if criterion is not None:
            check_criterion(criterion)
        manifest = load_manifest(folder)
        notes: list[str] = []
        if backend == "auto":
            backend = pick_backend(manifest)
            why = passed_over(manifest, backend, folder)
            if why:
                notes.append(why)
        key = variant_key(backend, precision)
        table = manifest.thresholds.get(key)
        aggregate = "last"
        if table:
            aggregate = check_aggregate(table.aggregate)
            stored = check_criterion(table.criterion)
            if criterion is not None and criterion != stored:
                raise PipelineError(f"the thresholds for {key} were calibrated on {stored!r}, not {criterion!r}; "
                                    f"drop the criterion option or recalibrate with {criterion!r}")
            criterion = stored
            chosen: list[float] = policy_thresholds(table.to_dict(), policy).tolist()
            if len(chosen) != manifest.num_exits:
                raise PipelineError(f"policy {policy!r} for {key} has {len(chosen)} thresholds, the model "
                                    f"has {manifest.num_exits} exits; re-run the latency profiler")
            thresholds: list[float] | None = chosen
        elif policy in (DEFAULT_POLICY, LAST_EXIT_POLICY):
            thresholds = None
            notes.append(f"no exit thresholds for {key} in the manifest: every frame runs to the last exit unless "
                         "the deadline stops it (run the latency profiler to calibrate thresholds)")
        else:
            known = ", ".join(sorted(manifest.thresholds)) or "none"
            raise PipelineError(f"policy {policy!r} needs thresholds for {key}, which the manifest lacks "
                                f"(calibrated variants: {known}); use policy 'default' or run the latency profiler")
        predictor = LatencyPredictor.from_manifest(manifest, backend, precision)
        if not predictor.measured:
            notes.append(predictor.source)
        spec = manifest.stages[0].inputs[0].shape if manifest.stages[0].inputs else []  # ["N", H, W, 3]
        hw = spec[1:3]
        frame_size = (int(hw[0]), int(hw[1])) if len(spec) == 4 and all(isinstance(x, int) for x in hw) else None
        chain = load_chain(manifest, folder, backend, precision, threads)
        _check_providers(manifest, key, chain)
        cascade = cls(chain, manifest.classes, thresholds, predictor, criterion or "confidence", aggregate=aggregate,
                      frame_size=frame_size, colour_order=manifest.input.colour_order, notes=notes)
        cascade.backend, cascade.precision, cascade.policy = backend, precision, policy
        cascade.resize_shorter = manifest.input.resize_shorter  # how a frame of another shape becomes the input
        return cascade

    def _batch(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) or (1, H, W, 3) uint8 -> (1, H, W, 3) view, or a PipelineError saying what was expected."""
        ok = isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim in (3, 4)
        if ok:
            batch = frame[None] if frame.ndim == 3 else frame
            ok = batch.shape[0] == 1 and batch.shape[3] == 3 and (
                self.frame_size is None or batch.shape[1:3] == self.frame_size)
            if ok:
                return batch
        size = f"{self.frame_size[0]}x{self.frame_size[1]} " if self.frame_size else ""
        order = f" in {self.colour_order} order" if self.colour_order else ""
        found = f"shape {frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise PipelineError(f"expected a {size}(H, W, 3) or (1, H, W, 3) uint8 frame{order}, got {found}; "
                            "resize and convert frames before classify (the camera app does this)")

    def _exit_test(self, logits: np.ndarray, stage: int) -> tuple[int, float, float]:
        """(1, C) logits of ``stage`` -> label, max softmax, score (confidence, or minus the entropy in nats)."""
        z = logits.reshape(-1)  # (C,)
        if z.shape[0] != self._exp.shape[0]:
            raise PipelineError(f"stage {stage} returned {z.shape[0]} logits, the model lists "
                                f"{self._exp.shape[0]} classes; rebuild the engines with `make engines`")
        label = int(z.argmax())
        np.subtract(z, z[label], out=self._shifted)  # <= 0
        np.exp(self._shifted, out=self._exp)
        total = float(self._exp.sum())
        if not math.isfinite(total):  # a NaN or infinite logit: an answer would be class 0 at confidence NaN
            raise non_finite_logits(stage)
        if self.aggregate == "mean":
            return self._mean_test(stage, total)
        conf = 1.0 / total  # exp(0) / sum
        if self.criterion == "confidence":
            return label, conf, conf
        # entropy = log(sum) - sum(p * (z - max)), with p = exp(z - max) / sum
        return label, conf, float(self._exp.dot(self._shifted)) / total - math.log(total)

    def _mean_test(self, stage: int, total: float) -> tuple[int, float, float]:
        """Fold this stage's softmax (``_exp / total``) into the running sum; the exit test on the mean, sum / stage."""
        np.divide(self._exp, total, out=self._exp)  # this stage's softmax
        if stage == 1:
            np.copyto(self._sum, self._exp)
        else:
            self._sum += self._exp
        label = int(self._sum.argmax())
        conf = float(self._sum[label]) / stage
        if self.criterion == "confidence":
            return label, conf, conf
        # minus the entropy of m = sum / k: sum(m log m) = sum(s log s) / k - log k, with 0 log 0 = 0
        self._log.fill(0.0)
        np.log(self._sum, out=self._log, where=self._sum > 0)
        return label, conf, float(self._sum.dot(self._log)) / stage - math.log(stage)

    def classify(self, frame: np.ndarray, budget_ms: float | None = None, *,
                 prior: tuple[int, Sequence[float]] | None = None) -> CascadeResult:
        """Answer one frame; with ``budget_ms``, stop before a stage predicted to overrun it (stage 1 always runs).

        ``prior``: (label, (K,) scores): exit k also answers when its label is ``label`` and its score
        reaches ``scores[k - 1]`` (the temporal prior of ``pipeline.temporal``; stopped_by "prior").
        Thread-safe: concurrent calls take turns (``answer_probs`` belongs to the caller's last answer
        only where one thread uses the cascade).
        """
        batch, budget_ms = self._batch(frame), check_budget(budget_ms)
        with self._turn:
            return self._classify(batch, budget_ms, prior)

    def _classify(self, batch: np.ndarray, budget_ms: float | None,
                  prior: tuple[int, Sequence[float]] | None) -> CascadeResult:
        clock, predictor, chain, k_last = self._clock, self.predictor, self.chain, self.num_exits
        stage_ms: list[float] = []
        t0 = prev = clock()
        chain.set_frame(batch)
        stopped: StoppedBy = "last-exit"
        label, conf, k = 0, 0.0, 0
        for k in range(1, k_last + 1):
            if k > 1 and not predictor.should_run(k, (prev - t0) * 1e3, budget_ms):
                predictor.skipped(k)
                k -= 1
                stopped = "deadline"
                break
            label, conf, score = self._exit_test(chain.run(k), k)
            now = clock()
            ms = (now - prev) * 1e3
            stage_ms.append(ms)
            predictor.observe(k, ms)
            prev = now
            if k < k_last and score >= self._score_thr[k - 1]:
                stopped = "confidence"
                break
            if k < k_last and prior is not None and label == prior[0] and score >= prior[1][k - 1]:
                stopped = "prior"
                break
        total = (prev - t0) * 1e3
        self._answered = k
        return CascadeResult(label, self.classes[label], conf, k, k_last, stage_ms, total, budget_ms,
                             None if budget_ms is None else total <= budget_ms, stopped)

    def answer_probs(self) -> np.ndarray:
        """(C,) softmax the last answer was read from (the mean of exits 1..k with the "mean" aggregate)."""
        if self.aggregate == "mean":
            return self._sum / self._answered
        return self._exp / self._exp.sum()

    def close(self) -> None:
        with self._turn:
            self.chain.deactivate()


def _check_providers(manifest: Manifest, key: str, chain: StageChain) -> None:
    """Refuse latency or thresholds measured under other execution providers than the chain runs on."""
    for what, table in (("latency", manifest.latency.get(key)), ("thresholds", manifest.thresholds.get(key))):
        if table is not None and tuple(table.providers) != chain.providers:
            raise PipelineError(f"the manifest's {what} for {key} were measured on the execution providers "
                                f"{list(table.providers)}, but the chain runs on {list(chain.providers)}; "
                                "re-run the latency profiler here")
