"""A stratified, seeded validation split held out from the training set.

Thresholds, calibration and model selection must never see the test split, so they use this
split of ``train``. It has to be identical on every machine and numpy version, so the random
choice uses only the raw PCG64 bit stream (fixed by its spec) and integer arithmetic.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PipelineError


def validation_split(labels: np.ndarray, size: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0..N-1`` into (train, val): sorted int64, disjoint, together all of them.

    Each class gives ``size * count / N`` images to val, rounded by largest remainder (ties to
    the lower class) so the total is exactly ``size``. Within a class, the images with the
    smallest PCG64(seed) keys are taken, so the choice does not depend on class order.
    """
    labels = np.asarray(labels)  # (N,) integer class ids
    if labels.ndim != 1:
        raise PipelineError(f"labels must be a 1-D array of class ids, got shape {labels.shape}")
    n = int(labels.shape[0])
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 < size < n:
        raise PipelineError(
            f"validation size must be a whole number from 1 to {n - 1} (there are {n} labels), "
            f"got {size!r}; choose a smaller validation size"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PipelineError(f"split seed must be a non-negative integer, got {seed!r}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)  # (N,) class number 0..C-1
    quotas = _apportion(counts.astype(np.int64), int(size), n)  # (C,) int64, sums to size
    keys = np.random.Generator(np.random.PCG64(int(seed))).bit_generator.random_raw(n)  # (N,) uint64
    chosen = []
    for c, quota in enumerate(quotas):
        members = np.flatnonzero(inverse == c)  # ascending indices of class c
        chosen.append(members[np.argsort(keys[members], kind="stable")[:quota]])
    val = np.sort(np.concatenate(chosen)).astype(np.int64)  # (size,)
    keep = np.ones(n, dtype=bool)
    keep[val] = False
    train = np.flatnonzero(keep).astype(np.int64)  # (N - size,)
    return train, val


def labels_fingerprint(labels: np.ndarray) -> str:
    """A short hash of a training split's labels in order: the one input of ``validation_split`` besides size
    and seed.

    Two runs whose data give the same fingerprint draw the same validation images for the same size and
    seed, wherever their data files lie; a path string cannot say that (a relative and an absolute path
    to one file differ, and two files may share a name).
    """
    import hashlib

    return hashlib.sha256(np.asarray(labels, dtype="<i8").tobytes()).hexdigest()[:16]


def _apportion(counts: np.ndarray, size: int, n: int) -> np.ndarray:
    """Largest-remainder rounding of ``size * counts / n``, exact in integers."""
    scaled = counts * size  # (C,) int64; fits: both factors are at most N
    quotas = scaled // n
    remainders = scaled % n
    short = size - int(quotas.sum())
    order = np.argsort(-remainders, kind="stable")  # largest remainder first, ties to lower class
    quotas[order[:short]] += 1
    return quotas
