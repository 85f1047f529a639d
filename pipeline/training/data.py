"""The tensors a training run reads: training and validation images from the training split only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError
from pipeline.training.options import TrainOptions


@dataclass(frozen=True)
class TrainData:
    """Training and validation frames (N, H, W, 3) uint8 and labels (N,) int64, as torch tensors."""

    train_frames: Any
    train_labels: Any
    val_frames: Any
    val_labels: Any
    classes: list[str]
    split: dict[str, Any]  # how the validation split was drawn: {"seed", "size", "source", "labels_sha256"}


def subset(indices: Any, limit: int, seed: int) -> Any:
    """``limit`` of ``indices``, drawn at random with ``seed`` and sorted.

    Not the first ``limit``: the indices are sorted and ImageFolder data is sorted by class, so a
    prefix would hold only the first few classes.
    """
    import numpy as np

    pick = np.random.default_rng(seed).permutation(len(indices))[:limit]
    return np.sort(indices[pick])


def load_train_data(opts: TrainOptions, cfg: Any) -> TrainData:
    """The training split, less the seeded validation split; the test split is never touched here."""
    import numpy as np
    import torch

    from pipeline.data import default_cache_dir, load_dataset, validation_split
    from pipeline.data.splits import labels_fingerprint

    p = cfg.preprocess
    data = load_dataset(opts.data or None, "train", cache_dir=opts.cache_dir or default_cache_dir(),
                        size=(p.height, p.width), resize_shorter=p.resize_shorter)
    if len(data.classes) != cfg.num_classes:
        raise PipelineError(f"the data has {len(data.classes)} classes but the model has {cfg.num_classes}; "
                            f"pass --model-opt num_classes={len(data.classes)}")
    if opts.val_size >= len(data):
        raise PipelineError(f"--val-size {opts.val_size} leaves no training images out of {len(data)}")
    train_idx, val_idx = validation_split(data.labels, size=opts.val_size, seed=opts.seed)
    if opts.limit:
        train_idx = subset(train_idx, opts.limit, opts.seed)
    frames = torch.from_numpy(np.ascontiguousarray(data.images))
    labels = torch.from_numpy(data.labels.astype(np.int64))
    tr, va = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    split = {"seed": opts.seed, "size": opts.val_size, "source": str(opts.data or "cifar10-official"),
             "labels_sha256": labels_fingerprint(data.labels)}
    return TrainData(frames[tr], labels[tr], frames[va], labels[va], list(data.classes), split)
