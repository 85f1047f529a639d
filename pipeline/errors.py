"""The one exception type for a user's mistakes, one-line causes for failed writes, and the CLI wrapper
that prints either without a traceback."""

from __future__ import annotations

import errno
import functools
import resource
import sys
from pathlib import Path
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class PipelineError(Exception):
    """A problem the user can fix: the message says what was expected, what was found, what to do."""


_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}

# Errors of the storage a command writes to, not of the command: a full disk or quota, a file size
# limit, a file system remounted read-only. No check before the work can rule them out.
STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


SEED_MAX = 2**32 - 1  # numpy's seeds: 0 to 2**32 - 1


def check_seed(value: int, option: str = "--seed") -> int:
    """Refuse a random seed numpy would reject with a traceback (negative, or past 2**32 - 1)."""
    if isinstance(value, bool) or not 0 <= value <= SEED_MAX:
        raise PipelineError(f"{option} must be a whole number from 0 to {SEED_MAX}, got {value}")
    return value


def file_size_limit() -> int | None:
    """The process's file size limit in bytes (``ulimit -f``), or None when there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def write_failure(exc: OSError, what: str, path: Path | str) -> PipelineError:
    """The one-line error for a failed write: the cause first, then what was written and a way out."""
    cause = _CAUSES.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    hint = "; free some space or write it elsewhere"
    if exc.errno == errno.EFBIG:
        limit = file_size_limit()
        hint = (f" (this process may write files of at most {limit} bytes: `ulimit -f`)" if limit is not None
                else " for this file system; write it elsewhere")
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "; make it writable or write it elsewhere"
    return PipelineError(f"{cause} writing {what} {path}{hint}")


def cli_main(func: F) -> F:
    """Wrap a CLI ``main`` so a ``PipelineError`` prints ``error: ...`` and exits 2, with no traceback.

    A storage error (:data:`STORAGE_ERRORS`) that reaches it is told the same way: the commands write
    whole files or none (``pipeline.files.atomic_write``, the build's temporary folder), so by the time
    it arrives here what was half-written is already gone. Ctrl-C exits 130 quietly. Anything else is
    a bug and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> int | None:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except OSError as exc:
            if exc.errno not in STORAGE_ERRORS:
                raise
            where = exc.filename if exc.filename is not None else "(a file the system did not name)"
            print(f"error: {write_failure(exc, 'the file', where)}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
