"""The evaluation splits of a model's data: its own validation split re-drawn from the training images, or test.

Every consumer (build accuracy, profiler, benchmarks, evaluation) loads them here, at the model's
input size, with the data's classes checked against the model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.data.imageset import ImageSet
from pipeline.data.split import validation_split
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.manifest import Manifest

EVALUATION_SPLITS = ("validation", "test")


def load_checked(source: str, split: str, cache_dir: str | Path, size: tuple[int, int] | None,
                 classes: Sequence[str]) -> ImageSet:
    """``split`` ("train" or "test") of ``source`` at ``size``, refused where its classes are not ``classes``."""
    from pipeline.data import load_dataset

    data = load_dataset(source or None, split, cache_dir=cache_dir, size=size)
    if list(data.classes) != list(classes):
        raise PipelineError(f"the data's {split} classes {list(data.classes)[:5]}... differ from the model's "
                            f"{list(classes)[:5]}...; pass the --data the model was trained on")
    return data


def redraw_validation(train: ImageSet, drawn: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 images and (N,) labels of the validation split recorded as ``{"size", "seed"}``."""
    _, idx = validation_split(train.labels, size=int(drawn["size"]), seed=int(drawn["seed"]))
    return train.images[idx], train.labels[idx]


def evaluation_images(source: str, split: str, cache_dir: str | Path, size: tuple[int, int] | None,
                      classes: Sequence[str], drawn: dict[str, Any], limit: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 frames and (N,) int64 labels of ``split`` ("validation" or "test").

    "validation" is re-drawn from the training images as ``drawn`` records it. ``limit`` keeps a
    seeded random subset.
    """
    if split not in EVALUATION_SPLITS:
        raise PipelineError(f"split must be one of {', '.join(EVALUATION_SPLITS)}, got {split!r}")
    data = load_checked(source, "train" if split == "validation" else "test", cache_dir, size, classes)
    images, labels = redraw_validation(data, drawn) if split == "validation" else (data.images, data.labels)
    if limit is not None and 0 < limit < len(labels):
        keep = np.sort(np.random.default_rng(0).choice(len(labels), size=limit, replace=False))
        images, labels = images[keep], labels[keep]
    return np.ascontiguousarray(images), labels.astype(np.int64)


def split_images(manifest: "Manifest", source: str, split: str, cache_dir: str | Path, limit: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``evaluation_images`` at a built model's input size and classes, validation as its manifest records."""
    drawn = manifest.model.get("split") or {}
    if split == "validation" and ("size" not in drawn or "seed" not in drawn):
        raise PipelineError("the manifest does not say how the validation split was drawn (model.split with "
                            "size and seed); rebuild the engines from the checkpoint with `make engines`")
    return evaluation_images(source, split, cache_dir, manifest.input.size, manifest.classes, drawn, limit)
