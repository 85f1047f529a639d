"""Per-stage latency of a chain, batch 1, timed the way the deadline rule observes it.

``profile_chain`` runs the full chain (stage 1..K) on real frames: a warm-up, then ``runs`` timed
runs (``profile_chains`` does so for several chains taking turns in blocks of runs, for ratios
that a drift in the machine's speed does not bias). A stage's time is wall time around ``run(k)``
(stage 1's also covers ``set_frame``), which includes the launch and the logits' copy back since
``run`` returns host logits; where the chain measures device time (``last_run_ms``, CUDA events)
it is recorded beside. Cumulative latency to exit k is summed within each run before its
percentiles, so cumulative p50s are nondecreasing, as the threshold sweep requires of its costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.backends.base import StageChain, exit_logits
from pipeline.errors import PipelineError
from pipeline.thresholds import softmax

STATS = ("mean", "p50", "p90", "p99", "max")
INTERLEAVE_BLOCK = 50  # runs per turn when several chains are profiled together


def latency_stats(samples_ms: np.ndarray) -> dict[str, float]:
    """(R,) times in ms -> {"mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise PipelineError(f"expected a non-empty 1-D array of times, got shape {x.shape}")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean_ms": float(x.mean()), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "max_ms": float(x.max())}


@dataclass
class LatencyProfile:
    """Per-run, per-stage times of one variant (e.g. "onnxruntime/int8"), batch 1."""

    key: str
    stage_ms: np.ndarray  # (R, K) time of stage k in run r
    clock: str  # "perf_counter", or "cuda-events" when device_ms holds CUDA-event times as well
    threads: int
    warmup: int
    device_ms: np.ndarray | None = None  # (R, K) GPU time of stage k in run r, from CUDA events

    @property
    def runs(self) -> int:
        return int(self.stage_ms.shape[0])

    @property
    def num_stages(self) -> int:
        return int(self.stage_ms.shape[1])

    def stages(self) -> list[dict[str, float]]:
        return [latency_stats(self.stage_ms[:, k]) for k in range(self.num_stages)]

    def cumulative(self) -> list[dict[str, float]]:
        """Statistics of the time to reach each exit, summed within each run."""
        cum = np.cumsum(self.stage_ms, axis=1)  # (R, K)
        return [latency_stats(cum[:, k]) for k in range(self.num_stages)]

    def cumulative_p50(self) -> list[float]:
        return [s["p50_ms"] for s in self.cumulative()]

    def to_json(self) -> dict[str, Any]:
        out = {"runs": self.runs, "warmup": self.warmup, "threads": self.threads, "clock": self.clock,
               "stages": self.stages(), "cumulative": self.cumulative(), "cumulative_p50_ms": self.cumulative_p50()}
        if self.device_ms is not None:
            out["device_stages"] = [latency_stats(self.device_ms[:, k]) for k in range(self.num_stages)]
        return out


def check_frames(frames: np.ndarray) -> np.ndarray:
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and len(frames)
            and frames.shape[3] == 3):
        found = f"{frames.shape} {frames.dtype}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise PipelineError(f"expected frames of shape (N, H, W, 3) uint8 with N >= 1, got {found}")
    return np.ascontiguousarray(frames)


def check_runs(runs: int, warmup: int) -> None:
    if runs < 1 or warmup < 0:
        raise PipelineError(f"need at least 1 timed run and no negative warm-up, got runs={runs}, warmup={warmup}")


def profile_chain(chain: StageChain, frames: np.ndarray, runs: int = 1000, warmup: int = 100, threads: int = 1,
                  clock: Callable[[], float] = time.perf_counter) -> LatencyProfile:
    """Time every stage of ``chain`` over ``runs`` full-chain runs on ``frames`` (N, H, W, 3) uint8, cycled.

    Activates the chain (and leaves it active for the caller, who owns it).
    """
    return profile_chains([chain], frames, runs, warmup, threads, clock)[0]


def profile_chains(chains: Sequence[StageChain], frames: np.ndarray, runs: int = 1000, warmup: int = 100,
                   threads: int = 1, clock: Callable[[], float] = time.perf_counter,
                   block: int = INTERLEAVE_BLOCK) -> list[LatencyProfile]:
    """``profile_chain`` for several chains, taking turns in blocks of ``block`` runs on the same frames.

    A ratio of two profiles taken one after the other follows whatever else the machine did in
    between (other load, clock changes); taking turns, such a drift weighs on every chain alike.
    Turns of a run each would let each chain evict the other's weights from the CPU caches before
    every run, which a deployed chain does not suffer; a block of runs keeps its caches warm.
    """
    frames = check_frames(frames)
    check_runs(runs, warmup)
    if not chains or block < 1:
        raise PipelineError(f"profile_chains needs at least one chain and a block of 1 or more runs, got "
                            f"{len(chains)} chain(s) and block={block}")
    timers = [_RunTimer(chain, runs, clock) for chain in chains]
    for timer in timers:
        for i in range(warmup):
            timer.run(frames[i % len(frames)][None], -1)
    for start in range(0, runs, block):
        for timer in timers:
            for i in range(start, min(start + block, runs)):
                timer.run(frames[(warmup + i) % len(frames)][None], i)  # (1, H, W, 3) view
    return [t.profile(threads, warmup) for t in timers]


class _RunTimer:
    """Times the stages of one chain run by run, with CUDA-event times where the chain offers them."""

    def __init__(self, chain: StageChain, runs: int, clock: Callable[[], float]):
        chain.activate()
        self.chain, self.clock = chain, clock
        self.times = np.empty((runs, chain.num_stages), dtype=np.float64)  # (R, K) wall ms
        self.device: np.ndarray | None = np.empty_like(self.times)  # (R, K) GPU ms, while the chain offers them

    def run(self, frame: np.ndarray, row: int) -> None:
        """One full-chain run; ``row`` < 0 is a warm-up run and is not kept."""
        t0 = self.clock()
        self.chain.set_frame(frame)
        for k in range(1, self.chain.num_stages + 1):
            self.chain.run(k)
            t1 = self.clock()
            if row >= 0:
                self.times[row, k - 1] = (t1 - t0) * 1e3
                if self.device is not None:
                    ms = self.chain.last_run_ms()  # CUDA-event time of the run just made, where measured
                    if ms is None:  # the chain could not time this run: keep wall times only
                        self.device = None
                    else:
                        self.device[row, k - 1] = ms
            t0 = t1

    def profile(self, threads: int, warmup: int) -> LatencyProfile:
        key = f"{self.chain.backend}/{self.chain.precision}"
        return LatencyProfile(key, self.times, "cuda-events" if self.device is not None else "perf_counter",
                              threads, warmup, self.device)


def check_batch_sizes(chain: StageChain, sizes: Sequence[int]) -> None:
    """Refuse a batch size beyond the chain's ``max_batch`` (activating the chain to learn it), so a profiler
    asks before it spends minutes timing batch 1."""
    chain.activate()
    for b in sorted(set(sizes)):
        if b > chain.max_batch:
            rebuild = f"rebuild them with --max-batch {b} or " if chain.backend == "tensorrt" else ""
            raise PipelineError(f"batch {b} is beyond what the {chain.backend}/{chain.precision} engines take "
                                f"(at most {chain.max_batch}); {rebuild}ask for smaller --batch-sizes")


def profile_batches(chain: StageChain, frames: np.ndarray, sizes: Sequence[int], runs: int = 1000, warmup: int = 100,
                    threads: int = 1, clock: Callable[[], float] = time.perf_counter) -> dict[int, LatencyProfile]:
    """Per batch size b > 1 in ``sizes``: each stage's time for one run on b frames at once (the batched cascade's
    tick), over ``max(10, runs // b)`` full-chain runs (about as many frames as batch 1's profile).

    Activates the chain (and leaves it active for the caller); a size beyond the chain's ``max_batch`` is refused.
    """
    frames = check_frames(frames)
    check_runs(runs, warmup)
    check_batch_sizes(chain, sizes)
    out: dict[int, LatencyProfile] = {}
    for b in sorted(set(s for s in sizes if s > 1)):
        n, skip = max(10, runs // b), max(1, warmup // b)
        timer = _RunTimer(chain, n, clock)
        pick = np.arange(b)
        for i in range(skip + n):
            timer.run(frames[(pick + i * b) % len(frames)], i - skip)  # (b, H, W, 3)
        out[b] = timer.profile(threads, skip)
    return out


def chain_exit_probs(chain: StageChain, images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, K, C) float32 softmax of every exit, frame by frame exactly as the runtime runs."""
    return softmax(exit_logits(chain, check_frames(images)), axis=-1)


