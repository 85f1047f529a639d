"""Load an ImageFolder tree (``<root>/<class>/<image>``) from a directory or a tar archive.

Why this shape: it is the layout every image dataset tool writes, it needs no index file, and a
tar of it ships as one file. Archives are read member by member (never extracted to disk), and
the decoded arrays can be cached in ``cache_dir`` so only the first run pays the 10-20 s of JPEG
decoding that 50,000 images cost. The library prints nothing; pass ``progress`` to report.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from pipeline.data.cache import Fit, cache_key, cache_load, cache_save
from pipeline.data.folder_layout import (IMAGE_EXTENSIONS, LAYOUT, class_layout, is_image, normalise_name,
                                         top_names, visible)
from pipeline.data.imageset import ImageSet
from pipeline.errors import PipelineError
from pipeline.data.geometry import fit_input

ProgressFn = Callable[[int, int], None]  # called with (images decoded so far, total)

_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)
_Fit = Fit


def load_imagefolder(
    source: str | Path,
    subdir: str | None = None,
    size: tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
    *,
    progress: ProgressFn | None = None,
    resize_shorter: int = 0,
) -> ImageSet:
    """Decode every image of an ImageFolder tree into one ``ImageSet`` (BGR, as OpenCV decodes).

    ``source`` is a directory or a .tar/.tar.gz/.tgz archive. Class folders sit directly under the
    root, or under one single top-level folder (``cifar10/<class>/...``). With ``subdir`` (e.g.
    "train"), the shallowest folder of that name is the root instead, at any depth. Classes are
    the sorted folder names, images are sorted by path within a class. ``size=(H, W)`` brings the
    images that differ to that size as ``fit_input`` does: resized (cv2.INTER_AREA), or with
    ``resize_shorter`` n > 0 their shorter side resized to n and the centre (H, W) cut out; without
    ``size`` all images must already share a size.
    With ``cache_dir``, decoded arrays are saved there and reused while the source is unchanged.
    """
    if source is None or str(source) == "":
        raise PipelineError(
            f"no ImageFolder source given: expected a directory or .tar/.tar.gz archive laid out as {LAYOUT}"
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise PipelineError(
            f"data source {path} does not exist: expected a directory or a .tar/.tar.gz/.tgz archive "
            f"laid out as {LAYOUT}; check the path"
        )
    size = _check_size(size)
    if isinstance(resize_shorter, bool) or not isinstance(resize_shorter, int) or resize_shorter < 0 \
            or (resize_shorter and size is None):
        raise PipelineError(f"resize_shorter must be 0 (resize) or, with a size, the shorter side in whole pixels "
                            f"to resize to before the centre crop; got {resize_shorter!r} with size {size!r}")
    fit = (size, resize_shorter) if size is not None else None
    subdir = subdir or None  # "" means the root itself
    if path.is_dir():
        return _load_dir(path, subdir, fit, cache_dir, progress)
    return _load_archive(path, subdir, fit, cache_dir, progress)


# --- directories and archives ------------------------------------------------------------------


def _load_dir(path: Path, subdir: str | None, fit: _Fit | None,
              cache_dir: str | Path | None, progress: ProgressFn | None) -> ImageSet:
    """Walk ``path`` once; the listing (names, sizes, mtimes) is part of the cache key."""
    stats = _walk(path)  # relative posix path -> (bytes, mtime_ns), image files only
    listing = hashlib.sha256(json.dumps(sorted(stats.items())).encode()).hexdigest()
    key = cache_key(path, subdir, fit, listing)
    cached = cache_load(cache_dir, key)
    if cached is not None:
        return cached
    top = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(path) if visible(e.name))
    classes, files, labels = class_layout(list(stats), subdir, str(path), top)

    def items() -> Iterator[tuple[int, str, bytes]]:
        for i, rel in enumerate(files):
            full = path / rel
            try:
                yield i, str(full), full.read_bytes()
            except OSError as exc:
                raise PipelineError(
                    f"cannot read image {full}: {exc.strerror or exc}; check its permissions or remove it"
                ) from exc

    images = _decode_all(items(), len(files), fit, progress)
    result = ImageSet(images, labels, classes)
    cache_save(cache_dir, key, result)
    return result


def _load_archive(path: Path, subdir: str | None, fit: _Fit | None,
                  cache_dir: str | Path | None, progress: ProgressFn | None) -> ImageSet:
    """List the archive's members, then read the chosen ones in archive order (one forward pass)."""
    try:
        is_tar = tarfile.is_tarfile(path)
    except OSError as exc:
        raise PipelineError(f"cannot read data source {path}: {exc.strerror or exc}; check its permissions") from exc
    if not is_tar:
        hint = ""
        if zipfile.is_zipfile(path):
            hint = " A .zip is not supported: repack it as .tar.gz (tar czf data.tar.gz <folder>)."
        raise PipelineError(
            f"data source {path} is a file but not a tar archive: expected a directory or a .tar/.tar.gz/.tgz "
            f"archive laid out as {LAYOUT}.{hint}"
        )
    key = cache_key(path, subdir, fit, None)
    cached = cache_load(cache_dir, key)
    if cached is not None:
        return cached
    try:
        with tarfile.open(path, "r:*") as tf:
            members: dict[str, tarfile.TarInfo] = {}  # normalised name -> member (a later duplicate wins)
            names: list[str] = []
            for m in tf:
                name = normalise_name(m.name)
                if name is None:
                    continue
                names.append(name + ("/" if m.isdir() else ""))
                if (m.isfile() or m.islnk() or m.issym()) and is_image(name):
                    members[name] = m
            classes, files, labels = class_layout(list(members), subdir, str(path), top_names(names))
            order = sorted(range(len(files)), key=lambda i: members[files[i]].offset)

            def items() -> Iterator[tuple[int, str, bytes]]:
                for i in order:
                    f = tf.extractfile(members[files[i]])
                    yield i, f"{path}:{files[i]}", f.read() if f is not None else b""

            images = _decode_all(items(), len(files), fit, progress)
    except _ARCHIVE_ERRORS as exc:
        raise PipelineError(
            f"cannot read archive {path}: {exc}. The file is truncated or corrupt: copy or build it again"
        ) from exc
    result = ImageSet(images, labels, classes)
    cache_save(cache_dir, key, result)
    return result


def _walk(root: Path) -> dict[str, tuple[int, int]]:
    """Image files under ``root`` (following links, skipping hidden entries): relpath -> (bytes, mtime_ns)."""
    found: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if visible(d)]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            if visible(name) and is_image(name):
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError as exc:
                    raise PipelineError(f"cannot read image {full}: {exc.strerror or exc}; fix or remove it") from exc
                found[name if rel_dir == "." else f"{rel_dir}/{name}"] = (st.st_size, st.st_mtime_ns)
    return found


# --- decoding ----------------------------------------------------------------------------------


def _check_size(size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
        ok = h > 0 and w > 0 and (h, w) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise PipelineError(f"size must be (height, width) in whole pixels, e.g. (32, 32); got {size!r}")
    return h, w


def _decode(data: bytes, name: str) -> np.ndarray:
    """Bytes -> (H, W, 3) uint8 BGR, or a PipelineError naming the file."""
    import cv2

    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise PipelineError(
            f"cannot decode image {name}: it is empty, corrupt or not an image "
            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); replace or delete it"
        )
    return img


def _decode_all(items: Iterable[tuple[int, str, bytes]], n: int, fit: _Fit | None,
                progress: ProgressFn | None) -> np.ndarray:
    """Decode ``(index, name, bytes)`` items into one preallocated (n, H, W, 3) uint8 BGR array."""
    images: np.ndarray | None = None
    first = ""
    for done, (index, name, data) in enumerate(items, 1):
        img = _decode(data, name)  # (h, w, 3) uint8 BGR
        if fit is not None:
            img = fit_input(img, *fit)  # (H, W, 3): resized, or resized and centre-cropped
        if images is None:
            images = np.empty((n, *img.shape[:2], 3), dtype=np.uint8)  # (N, H, W, 3) uint8 BGR
            first = name
        elif img.shape[:2] != images.shape[1:3]:
            (h, w), (fh, fw) = img.shape[:2], images.shape[1:3]
            raise PipelineError(
                f"images differ in size: {name} is {h}x{w} (HxW) but {first} is {fh}x{fw}. "
                f"Pass size=(H, W), e.g. size=({fh}, {fw}), to resize them all on load"
            )
        images[index] = img
        if progress is not None and (done % 1000 == 0 or done == n):
            progress(done, n)
    assert images is not None, "layout guarantees at least one image"
    return images
