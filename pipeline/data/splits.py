"""The splits of a model's data: the seeded validation split held out from the training images, and the
evaluation splits (that validation split re-drawn, or test) every consumer loads.

Thresholds, calibration and model selection must never see the test split, so they use the
validation split of ``train``. It has to be identical on every machine and numpy version, so the
random choice uses only the raw PCG64 bit stream (fixed by its spec) and integer arithmetic.
Every consumer (build accuracy, profiler, benchmarks, evaluation) loads the evaluation splits here,
at the model's input size and by its crop rule (``resize_shorter``), with the data's classes checked
against the model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.data.imageset import ImageSet
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.manifest import Manifest

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


def split_keys_differing(a: dict[str, Any], b: dict[str, Any], by_source: bool = True) -> tuple[str, ...]:
    """The keys in which two recorded validation splits differ (empty: the same split).

    The same split has the same seed and size, and the same training labels' fingerprint where both
    record one; where one does not, ``by_source`` compares the ``--data`` strings instead (a model
    converted or built from an ONNX spec names its data in words, which only the fingerprint can match).
    """
    data = ("labels_sha256",) if a.get("labels_sha256") and b.get("labels_sha256") else \
        ("source",) if by_source else ()
    return tuple(k for k in ("seed", "size", *data) if str(a.get(k)) != str(b.get(k)))


def _apportion(counts: np.ndarray, size: int, n: int) -> np.ndarray:
    """Largest-remainder rounding of ``size * counts / n``, exact in integers."""
    scaled = counts * size  # (C,) int64; fits: both factors are at most N
    quotas = scaled // n
    remainders = scaled % n
    short = size - int(quotas.sum())
    order = np.argsort(-remainders, kind="stable")  # largest remainder first, ties to lower class
    quotas[order[:short]] += 1
    return quotas


EVALUATION_SPLITS = ("validation", "test")


def load_checked(source: str, split: str, cache_dir: str | Path, size: tuple[int, int] | None,
                 classes: Sequence[str], resize_shorter: int = 0) -> ImageSet:
    """``split`` ("train" or "test") of ``source`` at ``size`` (cropped as ``resize_shorter`` says), refused
    where its classes are not ``classes``."""
    from pipeline.data import load_dataset

    data = load_dataset(source or None, split, cache_dir=cache_dir, size=size, resize_shorter=resize_shorter)
    if list(data.classes) != list(classes):
        raise PipelineError(f"the data's {split} classes differ from the model's: "
                            f"{class_difference(list(data.classes), list(classes))}; pass the --data the model "
                            "was trained on")
    return data


def class_difference(found: list[str], expected: list[str]) -> str:
    """What differs between two class lists, shortly: the names only one has, or the first place they differ."""
    extra, missing = [c for c in found if c not in expected], [c for c in expected if c not in found]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of the model's classes are not in the data ({', '.join(map(repr, missing[:4]))}"
                     f"{', ...' if len(missing) > 4 else ''})")
    if extra:
        parts.append(f"{len(extra)} of the data's are not the model's ({', '.join(map(repr, extra[:4]))}"
                     f"{', ...' if len(extra) > 4 else ''})")
    if parts:
        return "; ".join(parts)
    i = next(i for i, (a, b) in enumerate(zip(found, expected)) if a != b)
    return (f"the same {len(found)} names in another order: class {i} is {found[i]!r} in the data, "
            f"{expected[i]!r} in the model")


def check_split_fits(drawn: dict[str, Any], n: int, what: str) -> None:
    """Refuse data too small for the validation split the model recorded (``{"size", "seed"}``), before drawing."""
    size = drawn.get("size")
    if isinstance(size, int) and not isinstance(size, bool) and not 0 < size < n:
        raise PipelineError(f"the model's validation split was drawn as {size} of its training images, but {what} "
                            f"has only {n} training images; pass the --data the model was trained on")


def redraw_validation(train: ImageSet, drawn: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 images and (N,) labels of the validation split recorded as ``{"size", "seed"}``.

    Where the record holds the training labels' fingerprint (``labels_sha256``), data whose labels differ
    is refused: the same size and seed would draw other images than the ones the model validated on.
    """
    check_split_fits(drawn, len(train.labels), "this data")
    recorded = drawn.get("labels_sha256")
    if recorded and labels_fingerprint(train.labels) != recorded:
        raise PipelineError("this data's training labels are not those the model's validation split was drawn "
                            "from, so the split would hold other images; pass the --data the model was trained on")
    _, idx = validation_split(train.labels, size=int(drawn["size"]), seed=int(drawn["seed"]))
    return train.images[idx], train.labels[idx]


def evaluation_images(source: str, split: str, cache_dir: str | Path, size: tuple[int, int] | None,
                      classes: Sequence[str], drawn: dict[str, Any], limit: int | None = None,
                      resize_shorter: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 frames and (N,) int64 labels of ``split`` ("validation" or "test").

    "validation" is re-drawn from the training images as ``drawn`` records it. ``limit`` keeps a
    seeded random subset.
    """
    if split not in EVALUATION_SPLITS:
        raise PipelineError(f"split must be one of {', '.join(EVALUATION_SPLITS)}, got {split!r}")
    data = load_checked(source, "train" if split == "validation" else "test", cache_dir, size, classes,
                        resize_shorter)
    images, labels = redraw_validation(data, drawn) if split == "validation" else (data.images, data.labels)
    if limit is not None and 0 < limit < len(labels):
        keep = np.sort(np.random.default_rng(0).choice(len(labels), size=limit, replace=False))
        images, labels = images[keep], labels[keep]
    return np.ascontiguousarray(images), labels.astype(np.int64)


def split_images(manifest: "Manifest", source: str, split: str, cache_dir: str | Path, limit: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``evaluation_images`` at a built model's input size, crop rule and classes, validation as its manifest
    records."""
    drawn = manifest.model.get("split") or {}
    if split == "validation" and ("size" not in drawn or "seed" not in drawn):
        raise PipelineError("the manifest does not say how the validation split was drawn (model.split with "
                            "size and seed); rebuild the engines from the checkpoint with `make engines`")
    return evaluation_images(source, split, cache_dir, manifest.input.size, manifest.classes, drawn, limit,
                             manifest.input.resize_shorter)
