"""The build's folder transaction: a temporary folder next to the destination, renamed into place when complete.

An interrupted build leaves the previous folder as it was; the leftovers of a build that died are
cleaned up (or the previous folder put back) by the next one. ``build.json`` beside the manifest
records the build key, so a rerun with nothing changed stops at "up to date". One build at a time
writes an output folder: :func:`build_lock` holds an advisory lock on ``<out>/.build.lock`` for
the whole build, and a second build is refused instead of racing the first through the swap.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from pipeline.errors import PipelineError
from pipeline.files import atomic_write_text, process_alive, remove_dead_temps
from pipeline.manifest import load_manifest

BUILD_INFO = "build.json"  # next to the manifest: what the folder was built from, for "up to date"
LOCK_NAME = ".build.lock"  # in the output folder: held by the build writing it


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold the output folder's build lock (an advisory ``flock``, released by the system if the process
    dies); a PipelineError naming the holder when another build has it. The lock file is removed on
    release, so a lock taken on a file that was removed meanwhile is taken again on the new one."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            who = f" (process {holder})" if holder.isdigit() else ""
            raise PipelineError(f"another build of {out} is running{who}; wait for it to finish, or build into "
                                "another --out") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break  # the lock is on the file that is there
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder released and removed it between our open and our lock: again
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.unlink(path)  # while still holding the lock: whoever opens it after gets a new file
        os.close(fd)


def remove_stale_temps(out: Path) -> None:
    """Clean up after builds that died (their process is gone); a running build's folders are left alone.

    ``.<name>.tmp-<pid>`` is an unfinished build: deleted. ``.<name>.old-<pid>`` is a previous build
    set aside for the swap: put back if the swap never completed, deleted otherwise.
    """
    remove_dead_temps(out)  # files an atomic write of a killed build left
    for path in out.glob(".*-*"):
        stem, _, pid = path.name.rpartition("-")
        if not pid.isdigit() or process_alive(int(pid)):
            continue  # not one of ours, or still running
        if stem.endswith(".old") and not (out / stem[1:-4]).exists():
            os.rename(path, out / stem[1:-4])
        elif stem.endswith((".tmp", ".old")):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def temporary_folder(out: Path, name: str) -> Iterator[Path]:
    """A fresh ``out/.<name>.tmp-<pid>``, removed on the way out whatever happened (swapped or not)."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    tmp = out / f".{name or 'build'}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def swap_into_place(tmp: Path, dest: Path, key: dict[str, Any]) -> None:
    """Record ``key``, verify what the runtime will check, then rename ``tmp`` to ``dest``; the previous
    ``dest`` is kept until the rename succeeded."""
    atomic_write_text(tmp / BUILD_INFO, json.dumps(key, indent=2) + "\n")
    load_manifest(tmp, verify=True)  # checked before it is in place
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:  # an OSError, or a signal between the two renames: the previous build goes back
        if old.exists() and not dest.exists():
            os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def previous_build(out: Path, name: str, identity: dict[str, Any]) -> Path | None:
    """The model folder an earlier build of the same source wrote: ``out/name``, or found by its build info."""
    if name:
        return out / name
    for info in sorted(out.glob(f"*/{BUILD_INFO}")):
        if info.parent.name.startswith("."):
            continue  # a temporary folder, never a model
        try:
            if json.loads(info.read_text()).get("source") == identity:
                return info.parent
        except (OSError, ValueError, AttributeError):
            continue
    return None


def up_to_date(dest: Path, key: dict[str, Any]) -> bool:
    info = dest / BUILD_INFO
    if not info.is_file():
        return False
    try:
        if json.loads(info.read_text()) != key:
            return False
        load_manifest(dest, verify=True)
    except (OSError, ValueError, PipelineError):
        return False
    return True
