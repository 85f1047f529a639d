"""Checks on the files a run writes, made before anything is opened, and one-line causes for write errors.

An output must never be one of the run's inputs (the source, the images a folder or glob source
reads, the labels, the manifest): outputs are compared with inputs by device and inode, which
resolves symbolic links, hard links and relative paths alike. An output must also be writable
where it is asked for: not a folder, not under a file, in a folder that exists and may be
written, with a name the file system accepts. Failing any of these is a user's mistake, told in
one line before the slow start-up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.files import hold_lock, model_folder_of, refuse_special

def _name_limits(folder: Path) -> tuple[int, int]:
    """(longest file name, longest path) in bytes that ``folder``'s file system accepts."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def check_output(path: Path, what: str) -> None:
    """Refuse, in one line, an output that cannot be written at ``path``; creates nothing.

    ``what`` names the output in the message ("the log", "the annotated video").
    """
    head = f"cannot write {what} {path}"
    parent = path.parent
    name_max, path_max = _name_limits(parent)  # first: a name too long fails every other look at the path
    if len(os.fsencode(path.name)) > name_max:
        short = parent / f"{path.name[:24]}..."
        raise PipelineError(f"cannot write {what} {short}: the file name is {len(os.fsencode(path.name))} bytes "
                            f"long, more than the {name_max} this file system allows; choose a shorter name")
    if len(os.fsencode(os.path.abspath(path))) >= path_max:
        raise PipelineError(f"cannot write {what} {str(path)[:60]}...: the path is longer than the {path_max} "
                            "bytes this system allows")
    if os.path.isdir(path) and not os.path.islink(path):
        raise PipelineError(f"{head}: it is a folder; give a file name, e.g. {path / 'frames.jsonl'}")
    refuse_special(path, what)  # a link, a device, a FIFO: never written through
    model = model_folder_of(path)
    if model is not None:
        raise PipelineError(f"{head}: it is inside the built model folder {model}, whose files only the build "
                            "and its tools write; choose a path outside it")
    ancestor = parent
    while not os.path.exists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if os.path.exists(ancestor) and not os.path.isdir(ancestor):
        raise PipelineError(f"{head}: {ancestor} is a file, not a folder; choose a path in a folder")
    if not os.path.isdir(parent):
        raise PipelineError(f"{head}: folder {parent} does not exist; create it or choose another folder")
    target = path if os.path.exists(path) else parent
    if not os.access(target, os.W_OK | (os.X_OK if target is parent else 0)):
        kind = "folder" if target is parent else "file"
        where = "on a read-only file system" if os.statvfs(target).f_flag & os.ST_RDONLY else \
            "read-only for this user"
        raise PipelineError(f"{head}: the {kind} {target} is {where}; make it writable or choose another path")


@contextlib.contextmanager
def lock_outputs(outputs: dict[str, Path]) -> Iterator[None]:
    """Hold a lock on each output (``.<name>.lock`` beside it) for the whole run: a second run writing the
    same file is refused in one line instead of both claiming every frame and one losing its output."""
    with contextlib.ExitStack() as locks:
        for option, path in outputs.items():
            if not os.path.isdir(path.parent):
                continue  # told by check_output
            lock = path.parent / f".{path.name}.lock"
            locks.enter_context(hold_lock(lock, f"another run is writing {option} {path}{{who}}; wait for it to "
                                                f"finish or choose another {option}"))
        yield


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refuse_inputs(outputs: dict[str, Path], inputs: Iterable[tuple[str, Path]]) -> None:
    """Refuse an output that is an input, or two outputs that are one file; ``outputs``: option -> path."""
    named = list(outputs.items())
    for i, (option, path) in enumerate(named):
        for other, other_path in named[i + 1:]:
            if os.path.realpath(path) == os.path.realpath(other_path) or (
                    _identity(path) is not None and _identity(path) == _identity(other_path)):
                raise PipelineError(f"{option} {path} and {other} {other_path} are the same file; give each "
                                    "output its own path")
    existing = {option: (path, _identity(path)) for option, path in named}
    existing = {option: item for option, item in existing.items() if item[1] is not None}
    if not existing:  # an output that does not exist yet is no input
        return
    for role, source in inputs:
        ident = _identity(source)
        for option, (path, out_ident) in existing.items():
            if ident == out_ident:
                same = "" if os.path.realpath(path) == os.path.realpath(source) else \
                    f" (both are {os.path.realpath(source)})"
                raise PipelineError(f"{option} {path} is the same file as {role} {source}{same}; it would be "
                                    f"overwritten. Choose another {option} path")
