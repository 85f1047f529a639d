"""The one write path: files that are either whole or absent, outputs checked before they are written, hashes.

Every command's output goes through :func:`check_output` (before any work) and :func:`write_output`
(or :func:`atomic_write` for the build's own files): an output that is one of the command's inputs,
inside one of its input folders or any file of a built model folder, a folder, a device node, a FIFO,
a socket or a symbolic link is refused in one line; the file is written to a temporary beside it,
renamed into place and its size checked afterwards. Nothing here follows a symbolic link it did not make.

A temporary file is ``.<name>.<random>.<pid>.tmp`` beside its destination, marked as ours by the
extended attribute :data:`TEMP_MARK` holding the writer's process id: a process killed before its
clean-up (SIGKILL, a power cut) leaves one, and :func:`remove_dead_temps` lets a later run recognise
it by that mark (not by its name alone) and remove it once the writer is gone. :func:`hold_lock` is
the advisory lock the build, the profiler, the temporal calibration and the camera's outputs share.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Callable

from pipeline.errors import PipelineError


TEMP_MARK = "user.anytime.temporary"  # extended attribute on our temporaries: the writer's process id
MODEL_MARK = "manifest.json"  # a folder holding one is a built model: only the build and its tools write there


def mark_temporary(fd: int) -> None:
    """Mark an open temporary file as ours (a file system without extended attributes: left unmarked,
    so a later run never removes it: a leftover is safer than a wrong deletion)."""
    try:
        os.setxattr(fd, TEMP_MARK, str(os.getpid()).encode())
    except (OSError, AttributeError):
        pass


def temporary_writer(path: Path) -> int | None:
    """The process id that marked ``path`` as its temporary, or None when it is not one of ours."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        pid = os.getxattr(path, TEMP_MARK, follow_symlinks=False).decode()
    except (OSError, AttributeError, UnicodeDecodeError):
        return None
    return int(pid) if pid.isdigit() else None


def refuse_special(dest: Path, what: str = "the file") -> None:
    """Refuse a destination that exists and is not a regular file: a folder, a device, a FIFO, a socket,
    or a symbolic link (replacing it would change what it is; following it would write elsewhere)."""
    try:
        st = os.lstat(dest)
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there yet (a path under a file is told by the folder's check)
    except OSError as exc:
        raise PipelineError(f"cannot write {what} {dest}: {exc.strerror}") from None
    kinds = [(stat.S_ISLNK, "a symbolic link; name the file it points to, or another path"),
             (stat.S_ISDIR, "a folder; pass a file name"),
             (stat.S_ISCHR, "a device, not a regular file; write to a file"),
             (stat.S_ISBLK, "a device, not a regular file; write to a file"),
             (stat.S_ISFIFO, "a FIFO (named pipe), not a regular file; write to a file"),
             (stat.S_ISSOCK, "a socket, not a regular file; write to a file")]
    for test, told in kinds:
        if test(st.st_mode):
            raise PipelineError(f"cannot write {what} {dest}: it is {told}")


def atomic_write(dest: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write to a marked temp file in ``dest``'s folder, fsync, rename over ``dest``, then check its size:
    never a half file, never a device or a link replaced."""
    dest = Path(dest)
    refuse_special(dest)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=f".{os.getpid()}.tmp")
    try:
        mark_temporary(fd)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache should stay readable
        try:
            os.removexattr(tmp, TEMP_MARK)  # in place it is a file like any other
        except OSError:
            pass
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write names no file: name ``dest``
            raise OSError(exc.errno, exc.strerror, str(dest)) from exc
        raise
    if os.lstat(dest).st_size != size:
        raise PipelineError(f"{dest} holds {os.lstat(dest).st_size} bytes after writing {size}; another process "
                            "wrote it at the same time: run one command at a time on it")


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
    """Remove the temporary files that :func:`atomic_write` marked in ``folder`` for processes that no longer
    exist; those of running processes, and files that only look like ours, are left alone. Returns what
    was removed."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        pid = temporary_writer(path)
        if pid is None or process_alive(pid) or not path.name.endswith(f".{pid}.tmp"):
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


def model_folder_of(path: Path) -> Path | None:
    """The built model folder (one holding a manifest) that ``path`` would be written in, if any: its own
    folder or the one above (a model's files lie at most one folder deep: ``onnx/``, ``tensorrt/``)."""
    folder = Path(os.path.realpath(path.parent if path.parent != Path("") else Path(".")))
    for candidate in (folder, folder.parent):
        if (candidate / MODEL_MARK).is_file():
            return candidate
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output(path: str | Path, what: str, inputs: Iterable[tuple[str, Path | None]] = ()) -> Path:
    """Refuse, in one line and before any work, an output that would destroy something; creates nothing.

    Refused: a folder, device, FIFO, socket or symbolic link at ``path``; a path under a file or in a
    folder that cannot be written; any path inside a built model folder; one of ``inputs`` ((option,
    path) pairs: a file compared by inode, so links and relative paths are seen through) or a path
    inside one of them (a data folder). ``what`` names the output in the message (``--json``).
    """
    path = Path(path)
    refuse_special(path, what)
    check_output_folder(path.parent if str(path.parent) else Path("."), f"the folder of {what}")
    model = model_folder_of(path)
    if model is not None:
        raise PipelineError(f"cannot write {what} {path}: it is inside the built model folder {model}, whose files "
                            "only the build and its tools write; choose a path outside it")
    for option, source in inputs:
        if source is None or not os.path.lexists(source):
            continue
        if os.path.lexists(path) and _same_file(path, source):
            raise PipelineError(f"cannot write {what} {path}: it is {option} {source}, an input of this command; "
                                "it would be overwritten. Choose another path")
        if os.path.isdir(source) and (Path(os.path.realpath(path.parent)) == Path(os.path.realpath(source))
                                      or Path(os.path.realpath(source)) in Path(os.path.realpath(path)).parents):
            raise PipelineError(f"cannot write {what} {path}: it is inside {option} {source}, an input of this "
                                "command; choose a path outside it")
    return path


def write_output(path: str | Path, data: bytes | str | Callable[[BinaryIO], object], what: str,
                 inputs: Iterable[tuple[str, Path | None]] = ()) -> Path:
    """Check ``path`` as :func:`check_output` does, then write it whole (``data``: bytes, text, or a
    function writing to the file) beside its destination and rename it into place."""
    path = check_output(path, what, list(inputs))
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes):
        payload = data
        atomic_write(path, lambda f: f.write(payload))
    else:
        atomic_write(path, data)
    return path


@contextlib.contextmanager
def hold_lock(path: Path, busy: str, holder: str = "") -> Iterator[None]:
    """Hold an advisory ``flock`` on ``path`` (released by the system if the process dies); a PipelineError
    ``busy`` when another process has it, its ``{who}`` replaced by what that process said it is (``holder``)
    and its process id. A symbolic link or any other non-regular file at ``path`` is refused, never followed.
    The file is removed on release, so a lock taken on a file that was removed meanwhile is taken again on the
    new one."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):  # a folder that is missing, not writable
                raise PipelineError(f"cannot take the lock {path}: "
                                    f"{(exc.strerror or str(exc)).lower()}") from None
            fd = -1
        if fd < 0 or not stat.S_ISREG(os.fstat(fd).st_mode):
            if fd >= 0:
                os.close(fd)
            kind = "a symbolic link" if os.path.islink(path) else "not a regular file"
            raise PipelineError(f"cannot take the lock {path}: it is {kind}, not a lock this pipeline made (it is "
                                "never followed); remove it and run again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid, _, what = os.read(fd, 256).decode(errors="replace").strip().partition(" ")  # "<pid> <holder>"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            who = f" ({what + ', ' if what else ''}process {pid})" if pid.isdigit() else ""
            raise PipelineError(busy.replace("{who}", who)) from None
        try:
            if os.lstat(path).st_ino == os.fstat(fd).st_ino:
                break  # the lock is on the file that is there
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder released and removed it between our open and our lock: again
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {' '.join(holder.split())}\n".encode())
        yield
    finally:
        try:
            os.unlink(path)  # while still holding the lock: whoever opens it after gets a new file
        except FileNotFoundError:
            pass
        os.close(fd)
