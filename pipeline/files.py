"""Files that are either whole or absent (written to a temporary file, renamed into place), and hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(dest: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write to a temp file in ``dest``'s folder, fsync, then rename over ``dest``: never a half file."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache should stay readable
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(dest: str | Path, data: bytes) -> None:
    atomic_write(dest, lambda f: f.write(data))


def atomic_write_text(dest: str | Path, text: str) -> None:
    atomic_write(dest, lambda f: f.write(text.encode()))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
