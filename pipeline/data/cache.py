"""Where downloads and decoded images are kept, and the decoded-image cache of ImageFolder data.

An entry is keyed by what decides its pixels (source identity, sub-folder, size, crop rule, OpenCV
version), written array first and marker last, each atomically: a half-written entry is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from pipeline.data.imageset import ImageSet
from pipeline.files import atomic_write

CACHE_VERSION = 1
Fit = tuple[tuple[int, int], int]  # (H, W) and resize_shorter: how an image of another size is read


def default_cache_dir() -> Path:
    """``$ANYTIME_CACHE`` or ``~/.cache/anytime-pipeline``."""
    return Path(os.environ.get("ANYTIME_CACHE") or Path.home() / ".cache" / "anytime-pipeline")


def cache_key(path: Path, subdir: str | None, fit: Fit | None, listing: str | None) -> str:
    """sha256 of what decides the decoded pixels: the source file's identity, subdir, size, crop rule, OpenCV.

    ``resize_shorter`` enters only when set, so the key of a plain resize is the one it always was.
    """
    import cv2

    st = path.stat()
    payload = {
        "version": CACHE_VERSION,
        "source": str(path.resolve()),
        "bytes": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "listing": listing,  # directories: hash of every image's (path, bytes, mtime_ns)
        "subdir": subdir,
        "size": list(fit[0]) if fit else None,
        "opencv": cv2.__version__,
    }
    if fit and fit[1]:
        payload["resize_shorter"] = fit[1]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _cache_paths(cache_dir: str | Path, key: str) -> tuple[Path, Path, Path]:
    base = Path(cache_dir).expanduser() / f"imagefolder-{key}"
    return (base.with_name(base.name + ".images.npy"), base.with_name(base.name + ".labels.npy"),
            base.with_name(base.name + ".json"))


def cache_load(cache_dir: str | Path | None, key: str) -> ImageSet | None:
    """The cached ``ImageSet`` for ``key``, or None if absent or unusable (then it is rebuilt)."""
    if cache_dir is None:
        return None
    images_path, labels_path, meta_path = _cache_paths(cache_dir, key)
    try:
        meta = json.loads(meta_path.read_text())  # written last: its presence marks a complete entry
        images = np.load(images_path, mmap_mode=None, allow_pickle=False)  # (N, H, W, 3) uint8 BGR
        labels = np.load(labels_path, mmap_mode=None, allow_pickle=False)  # (N,) int64
        if (meta.get("version") != CACHE_VERSION or list(images.shape) != meta["shape"]
                or images.dtype != np.uint8 or labels.shape != images.shape[:1]):
            return None
        return ImageSet(images, labels, tuple(meta["classes"]))
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None


def cache_save(cache_dir: str | Path | None, key: str, data: ImageSet) -> None:
    """Write arrays, then the json marker, each via temp file + os.replace; a failure only warns."""
    if cache_dir is None:
        return
    images_path, labels_path, meta_path = _cache_paths(cache_dir, key)
    meta = {"version": CACHE_VERSION, "classes": list(data.classes), "shape": list(data.images.shape)}
    try:
        images_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(images_path, lambda f: np.save(f, data.images))
        atomic_write(labels_path, lambda f: np.save(f, data.labels))
        atomic_write(meta_path, lambda f: f.write(json.dumps(meta).encode()))
    except OSError as exc:
        warnings.warn(f"could not write the decoded-image cache in {images_path.parent}: {exc}; "
                      f"the next run decodes again", RuntimeWarning, stacklevel=3)
