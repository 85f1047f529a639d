"""``ImageSet``: a labelled batch of same-sized images held in memory, the one shape every loader returns.

Images stay uint8 BGR (what OpenCV decodes and what the camera runtime sees), so training,
calibration and the device all start from identical pixels; normalisation happens downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images, their labels and the class names the labels index.

    ``eq=False``: comparing numpy arrays with ``==`` has no single truth value; compare fields explicitly.
    """

    images: np.ndarray  # (N, H, W, 3) uint8 BGR, C-contiguous
    labels: np.ndarray  # (N,) int64, index into classes
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        """Check shapes and dtypes once here so every consumer can rely on them."""
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(
                f"ImageSet.images must be an (N, H, W, 3) uint8 array, got "
                f"{getattr(images, 'shape', type(images))} {getattr(images, 'dtype', '')}"
            )
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"ImageSet.labels must be ({images.shape[0]},) integers, got {labels.shape} {labels.dtype}"
            )
        classes = tuple(str(c) for c in self.classes)
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"ImageSet.labels must lie in [0, {len(classes)}), got [{labels.min()}, {labels.max()}]")
        # Frozen dataclass: normalise in place through object.__setattr__.
        object.__setattr__(self, "images", np.ascontiguousarray(images))
        object.__setattr__(self, "labels", np.ascontiguousarray(labels, dtype=np.int64))
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return f"ImageSet(images={self.images.shape} {self.images.dtype}, classes={list(self.classes)})"

    def subset(self, indices: np.ndarray) -> ImageSet:
        """A new ``ImageSet`` with the rows at ``indices`` (int indices or a boolean mask), copied."""
        idx = np.asarray(indices)
        if idx.dtype != np.bool_:
            idx = idx.astype(np.int64, copy=False)
        return ImageSet(self.images[idx], self.labels[idx], self.classes)
