"""Files that are either whole or absent (written to a temporary file, renamed into place), and hashes.

A temporary file is ``.<name>.<random>.<pid>.tmp`` beside its destination: a process killed
before its clean-up (SIGKILL, a power cut) leaves one, and :func:`remove_dead_temps` lets a later
run recognise it by the writer's process id and remove it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from pipeline.errors import PipelineError


def atomic_write(dest: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write to a temp file in ``dest``'s folder, fsync, then rename over ``dest``: never a half file."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=f".{os.getpid()}.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache should stay readable
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write names no file: name ``dest``
            raise OSError(exc.errno, exc.strerror, str(dest)) from exc
        raise


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temps(folder: str | Path) -> list[Path]:
    """Remove the temporary files that :func:`atomic_write` left in ``folder`` for processes that no longer
    exist; those of running processes are left alone. Returns what was removed."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        pid = path.name.removesuffix(".tmp").rpartition(".")[2]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass  # another run removed it first
        except OSError:
            continue  # not ours to remove (a read-only folder): leave it
    return removed


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


def _name_limits(folder: str | Path) -> tuple[int, int]:
    """(longest file name, longest path) in bytes that ``folder``'s file system accepts."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def check_output_folder(path: str | Path, what: str) -> None:
    """Refuse, in one line, a folder that cannot be created or written at ``path``; creates nothing.

    ``what`` names it in the message (``--out``, ``the engines folder``). A folder that does not
    exist yet is judged by the nearest one above it that does.
    """
    path = Path(path)
    ancestor = path
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    name_max, path_max = _name_limits(ancestor if os.path.isdir(ancestor) else ancestor.parent)
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise PipelineError(f"cannot write {what} {str(path)[:60]}...: the name {part[:24]}... is "
                                f"{len(os.fsencode(part))} bytes long, more than the {name_max} this file system "
                                "allows; choose a shorter name")
    if len(os.fsencode(os.path.abspath(path))) >= path_max:
        raise PipelineError(f"cannot write {what} {str(path)[:60]}...: the path is longer than the {path_max} "
                            "bytes this system allows")
    if ancestor == path and not os.path.isdir(path):
        raise PipelineError(f"cannot write {what} {path}: it is a file, not a folder; choose a folder")
    if not os.path.isdir(ancestor):
        raise PipelineError(f"cannot write {what} {path}: {ancestor} is a file, not a folder; choose a path "
                            "in a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        where = "on a read-only file system" if os.statvfs(ancestor).f_flag & os.ST_RDONLY else \
            "read-only for this user"
        shown = "it" if ancestor == path else f"the folder {ancestor} it would be made in"
        raise PipelineError(f"cannot write {what} {path}: {shown} is {where}; make it writable or choose "
                            "another folder")
