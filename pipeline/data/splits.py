"""The evaluation splits of a model's data: its own validation split re-drawn from the training images, or test.

Every consumer (build accuracy, profiler, benchmarks, evaluation) loads them here, at the model's
input size and by its crop rule (``resize_shorter``), with the data's classes checked against the model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.data.imageset import ImageSet
from pipeline.data.split import labels_fingerprint, validation_split
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.manifest import Manifest

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
