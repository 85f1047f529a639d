"""The one exception type for a user's mistakes, and the CLI wrapper that prints it without a traceback."""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class PipelineError(Exception):
    """A problem the user can fix: the message says what was expected, what was found, what to do."""


def cli_main(func: F) -> F:
    """Wrap a CLI ``main`` so a ``PipelineError`` prints ``error: ...`` and exits 2, with no traceback.

    Ctrl-C exits 130 quietly. Anything else is a bug and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> int | None:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
