"""Datasets as in-memory ``ImageSet``s: ImageFolder trees or archives, and the official CIFAR-10 archive.

``load_dataset`` is the one entry point the CLIs use: it decides from ``source`` which loader
applies, so every tool accepts the same data option.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import cifar
from pipeline.data.cache import default_cache_dir
from pipeline.data.cifar import CIFAR10_MD5, CIFAR10_URL, download_cifar10, is_cifar10_archive, load_cifar10_archive
from pipeline.data.imagefolder import IMAGE_EXTENSIONS, ProgressFn, load_imagefolder
from pipeline.data.imageset import ImageSet
from pipeline.data.options import DataOptions, add_data_options
from pipeline.data.splits import validation_split
from pipeline.errors import PipelineError
from pipeline.data.geometry import fit_input

__all__ = [
    "DataOptions",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "IMAGE_EXTENSIONS",
    "ImageSet",
    "add_data_options",
    "default_cache_dir",
    "download_cifar10",
    "is_cifar10_archive",
    "load_cifar10_archive",
    "load_dataset",
    "load_imagefolder",
    "validation_split",
]

SPLITS = ("train", "test")


def load_dataset(
    source: str | Path | None,
    split: str,
    cache_dir: str | Path,
    size: tuple[int, int] | None = None,
    *,
    progress: ProgressFn | None = None,
    resize_shorter: int = 0,
) -> ImageSet:
    """Load ``split`` ("train" or "test") from ``source``.

    - None or "": download the official CIFAR-10 archive into ``cache_dir`` (md5-checked) and parse it.
    - an official CIFAR-10 python archive: parse it.
    - anything else is an ImageFolder directory or archive that must hold a ``<split>/`` folder
      (``<root>/<split>/<class>/<image>``); its decoded arrays are cached in ``cache_dir``.
    ``size=(H, W)`` resizes (cv2.INTER_AREA) images of another size; with ``resize_shorter`` n > 0
    their shorter side is resized to n and the centre (H, W) cut out, as the model's preprocessing says.
    """
    if split not in SPLITS:
        raise PipelineError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if source is None or str(source) == "":
        # Module attributes read at call time, so a test or a mirror can point them elsewhere.
        archive = cifar.download_cifar10(cache_dir, url=cifar.CIFAR10_URL, md5=cifar.CIFAR10_MD5)
        return _resize(cifar.load_cifar10_archive(archive, split), size, resize_shorter)
    path = Path(source).expanduser()
    if path.is_file() and cifar.is_cifar10_archive(path):
        return _resize(cifar.load_cifar10_archive(path, split), size, resize_shorter)
    return load_imagefolder(path, subdir=split, size=size, cache_dir=cache_dir, progress=progress,
                            resize_shorter=resize_shorter)


def _resize(data: ImageSet, size: tuple[int, int] | None, resize_shorter: int = 0) -> ImageSet:
    """Every image brought to ``size=(H, W)`` by ``fit_input`` (resize, or resize_shorter and centre crop);
    unchanged if already that size."""
    if size is None or tuple(size) == data.images.shape[1:3]:
        return data
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise PipelineError(f"size must be (height, width) in whole pixels, e.g. (32, 32); got {size!r}")
    out = np.empty((len(data), h, w, 3), dtype=np.uint8)  # (N, H, W, 3) uint8 BGR
    for i, img in enumerate(data.images):
        out[i] = fit_input(img, (h, w), resize_shorter)
    return ImageSet(out, data.labels, data.classes)
