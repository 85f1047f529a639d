"""The PyTorch eager baseline: the same stages timed like a chain, and their per-exit softmax (host only)."""

from __future__ import annotations

import importlib.util
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from pipeline.profiling.timing import LatencyProfile, check_frames, check_runs

if TYPE_CHECKING:
    from pipeline.models.msdnet import MSDNet

TORCH_EAGER = "pytorch-eager"  # the "backend" name of the PyTorch baseline in reports


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def profile_torch(model: "MSDNet", frames: np.ndarray, runs: int = 1000, warmup: int = 100, threads: int = 1,
                  clock: Callable[[], float] = time.perf_counter) -> LatencyProfile:
    """The same stages in PyTorch eager mode, batch 1, ``threads`` intra-op threads, timed like the chain."""
    import torch

    frames = check_frames(frames)
    check_runs(runs, warmup)
    stages = list(model.eval().stages)
    used = frames[:warmup + runs]
    inputs = [torch.from_numpy(np.ascontiguousarray(f[None])) for f in used]  # (1, H, W, 3) uint8 each
    times = np.empty((runs, len(stages)), dtype=np.float64)  # (R, K) ms
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for i in range(warmup + runs):
                carried: tuple[Any, ...] = (inputs[i % len(inputs)],)
                t0 = clock()
                for k, stage in enumerate(stages):
                    out = stage(*carried)  # (logits (1, C), *maps)
                    carried = out[1:]
                    t1 = clock()
                    if i >= warmup:
                        times[i - warmup, k] = (t1 - t0) * 1e3
                    t0 = t1
    finally:
        torch.set_num_threads(before)
    return LatencyProfile(f"{TORCH_EAGER}/fp32", times, "perf_counter", threads, warmup)


def torch_exit_probs(model: "MSDNet", images: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, K, C) float32 softmax of every exit of the PyTorch model, in batches."""
    from pipeline.robustness import exit_probs

    return exit_probs(model, check_frames(images), batch)
