"""Fixtures that build tiny datasets in tmp_path: ImageFolder trees (PNG, exact pixels) and CIFAR-10 archives."""

from __future__ import annotations

import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

CLASSES = ("cat", "dog", "frog")


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, list[np.ndarray]]]]:
    """Write ``<base>/<prefix>/<class>/NN.png`` random 8x8 BGR images; return (base, {class: images})."""

    def make(prefix: str = "", per_class: int = 2, shape: tuple[int, int] = (8, 8), seed: int = 0,
             classes: tuple[str, ...] = CLASSES, base: Path | None = None) -> tuple[Path, dict[str, list[np.ndarray]]]:
        base = base or tmp_path / "tree"
        rng = np.random.default_rng(seed)
        made: dict[str, list[np.ndarray]] = {}
        for cls in classes:
            folder = base / prefix / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)  # (H, W, 3) BGR
                ok, buf = cv2.imencode(".png", img)
                assert ok
                (folder / f"{i:02d}.png").write_bytes(buf.tobytes())
                made.setdefault(cls, []).append(img)
        return base, made

    return make


@pytest.fixture
def make_tar(tmp_path: Path) -> Callable[[Path, str], Path]:
    """Pack a folder's contents into ``tmp_path/<name>`` (mode from the name: .tar or .tar.gz)."""

    def make(folder: Path, name: str) -> Path:
        out = tmp_path / name
        with tarfile.open(out, "w:gz" if name.endswith(("gz", "tgz")) else "w") as tf:
            for entry in sorted(folder.iterdir()):
                tf.add(entry, arcname=entry.name)
        return out

    return make


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


@pytest.fixture
def make_cifar(tmp_path: Path) -> Callable[..., Path]:
    """A CIFAR-10 python archive in the official layout: 5 train batches of 4 images, a test batch of 3.

    Image i of each batch has R, G, B planes filled with 10*i+1, 10*i+2, 10*i+3, except pixel
    (row 1, col 2) of the first train image: R=200, G=150, B=100. Labels are i % 10.
    """

    def make(name: str = "cifar-10-python.tar.gz", skip: tuple[str, ...] = (),
             override: dict[str, bytes] | None = None) -> Path:
        out = tmp_path / name
        batches = {f"data_batch_{b}": 4 for b in range(1, 6)} | {"test_batch": 3}
        with tarfile.open(out, "w:gz") as tf:
            meta = {b"label_names": [f"class{k}".encode() for k in range(10)], b"num_cases_per_batch": 4}
            members = {"batches.meta": pickle.dumps(meta, protocol=2)}
            for bname, n in batches.items():
                data = np.zeros((n, 3072), dtype=np.uint8)
                for i in range(n):
                    for plane in range(3):
                        data[i, plane * 1024:(plane + 1) * 1024] = 10 * i + plane + 1
                if bname == "data_batch_1":
                    r, c = 1, 2
                    data[0, 0 * 1024 + r * 32 + c] = 200
                    data[0, 1 * 1024 + r * 32 + c] = 150
                    data[0, 2 * 1024 + r * 32 + c] = 100
                batch = {b"batch_label": bname.encode(), b"labels": [i % 10 for i in range(n)], b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(n)]}
                members[bname] = pickle.dumps(batch, protocol=2)
            members.update(override or {})
            for mname, blob in members.items():
                if mname not in skip:
                    _add_bytes(tf, f"cifar-10-batches-py/{mname}", blob)
        return out

    return make
