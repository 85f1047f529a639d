"""CIFAR-10 from its official python archive: download (checked by md5), recognise, parse.

This is the path for users without the team's ImageFolder copy: one public file with a published
checksum. The batches are python pickles; they are read with an unpickler that only admits the
numpy globals an array needs, so a doctored archive cannot run code.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import lzma
import pickle
import posixpath
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline.files import atomic_write
from pipeline.data.imageset import ImageSet
from pipeline.errors import PipelineError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCHES = ("test_batch",)
_META = "batches.meta"
_SCAN_LIMIT = 64  # the official archive has 9 members; an ImageFolder tar is rejected after this many
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)
_LAYOUT = "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}"


def download_cifar10(cache_dir: str | Path, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5) -> Path:
    """Return the archive in ``cache_dir``, downloading it first unless a copy with the right md5 is there.

    The download goes to a temp file in the same folder and is renamed into place only once its
    md5 matches, so an interrupted or corrupt download never looks like a good archive.
    """
    cache = Path(cache_dir).expanduser()
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "cifar-10-python.tar.gz"
    dest = cache / name
    if dest.is_file() and _md5(dest) == md5:
        return dest
    by_hand = (f"Download {url} by hand into {cache}/ (md5 {md5}), or pass an ImageFolder "
               f"directory or archive with the data option instead")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(f"cannot create the cache folder {cache}: {exc}; pass a writable cache dir") from exc
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PipelineError(f"could not download CIFAR-10 from {url}: {reason}. {by_hand}") from exc
    def fetch(out: BinaryIO) -> None:
        digest = hashlib.md5(usedforsecurity=False)
        with response:
            while True:
                try:
                    chunk = response.read(1 << 20)
                except (http.client.HTTPException, OSError) as exc:
                    raise PipelineError(f"download of {url} broke off: {exc}. {by_hand}") from exc
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise PipelineError(
                f"the file downloaded from {url} has md5 {digest.hexdigest()}, expected {md5}: the download is "
                f"corrupt or the file changed. It was discarded; try again. {by_hand}"
            )

    atomic_write(dest, fetch)
    return dest


def is_cifar10_archive(path: str | Path) -> bool:
    """True for a tar(.gz) holding ``data_batch_1`` and ``test_batch`` among its first members.

    Stops after a few dozen members, so asking about a 60,000-file ImageFolder archive is cheap.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        return False
    seen: set[str] = set()
    try:
        with tarfile.open(p, "r:*") as tf:
            for i, m in enumerate(tf):
                if i >= _SCAN_LIMIT:
                    return False
                base = posixpath.basename(m.name.rstrip("/"))
                if m.isfile() and base in ("data_batch_1", "test_batch"):
                    seen.add(base)
                    if len(seen) == 2:
                        return True
    except _ARCHIVE_ERRORS:
        return False
    return False


def load_cifar10_archive(path: str | Path, split: str) -> ImageSet:
    """Parse the official archive's ``train`` (data_batch_1..5) or ``test`` (test_batch) split.

    Returns (N, 32, 32, 3) uint8 BGR images, consistent with what OpenCV decodes elsewhere.
    """
    if split not in ("train", "test"):
        raise PipelineError(f"split must be 'train' or 'test', got {split!r}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise PipelineError(f"CIFAR-10 archive {p} does not exist; check the path or download it again")
    wanted = _TRAIN_BATCHES if split == "train" else _TEST_BATCHES
    try:
        with tarfile.open(p, "r:*") as tf:
            members = {m.name.strip("/").removeprefix("./"): m for m in tf if m.isfile()}
            folder = _batch_folder(members)
            missing = [n for n in (_META, *wanted) if posixpath.join(folder, n) not in members]
            if missing:
                raise PipelineError(
                    f"{p} is not a complete CIFAR-10 python archive: missing {', '.join(missing)}; expected "
                    f"{_LAYOUT}. Download it again from {CIFAR10_URL}, or pass an ImageFolder source instead"
                )
            meta = _unpickle(tf, members[posixpath.join(folder, _META)], p)
            batches = [(n, _unpickle(tf, members[posixpath.join(folder, n)], p)) for n in wanted]
    except _ARCHIVE_ERRORS as exc:
        raise PipelineError(
            f"cannot read CIFAR-10 archive {p}: {exc}. It is truncated or corrupt: download it again"
        ) from exc
    classes = tuple(_text(c) for c in _field(meta, "label_names", f"{p}:{_META}"))
    return _to_imageset(batches, classes, p)


def _batch_folder(members: dict[str, tarfile.TarInfo]) -> str:
    """The folder holding the batches (``cifar-10-batches-py`` in the official archive)."""
    for name in sorted(members):
        if posixpath.basename(name) in ("data_batch_1", "test_batch"):
            return posixpath.dirname(name)
    return "cifar-10-batches-py"


def _to_imageset(batches: list[tuple[str, Any]], classes: tuple[str, ...], path: Path) -> ImageSet:
    """Concatenate batches; each row is 3072 bytes: 1024 R, 1024 G, 1024 B, each a 32x32 row-major plane."""
    parts: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for name, batch in batches:
        where = f"{path}:{name}"
        data = np.asarray(_field(batch, "data", where))  # (n, 3072) uint8
        lab = np.asarray(_field(batch, "labels", where))  # (n,) ints
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise PipelineError(
                f"{where}: 'data' must be (n, 3072) uint8, found {data.shape} {data.dtype}; the archive is damaged"
            )
        if lab.shape != (data.shape[0],) or not np.issubdtype(lab.dtype, np.integer) or (
                lab.size and (lab.min() < 0 or lab.max() >= len(classes))):
            raise PipelineError(
                f"{where}: 'labels' must be {data.shape[0]} ints in [0, {len(classes)}); the archive is damaged"
            )
        rgb = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (n, 32, 32, 3) RGB view
        parts.append(rgb[..., ::-1])  # (n, 32, 32, 3) BGR view
        labels.append(lab.astype(np.int64))
    images = np.ascontiguousarray(np.concatenate(parts))  # (N, 32, 32, 3) uint8 BGR
    return ImageSet(images, np.concatenate(labels), classes)


class _BatchUnpickler(pickle.Unpickler):
    """Admits only the globals a pickled numpy array needs (py2 and py3 numpy module names)."""

    _ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(tf: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> Any:
    f = tf.extractfile(member)
    data = f.read() if f is not None else b""
    try:
        return _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, MemoryError) as exc:
        raise PipelineError(
            f"{path}:{member.name} is not a CIFAR-10 python batch ({exc}); "
            f"download the archive again from {CIFAR10_URL}"
        ) from exc


def _field(obj: Any, key: str, where: str) -> Any:
    """``obj[b"key"]`` (python-2 pickles) or ``obj["key"]``."""
    if isinstance(obj, dict):
        for k in (key.encode(), key):
            if k in obj:
                return obj[k]
    raise PipelineError(f"{where} has no {key!r} entry; it is not a CIFAR-10 python batch. Download the archive again")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
