"""What every benchmark command shares: its measurement options checked before any work, its inputs (which its
``--json`` must not be), and the report written whole through the one write path."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from pipeline.device import check_threads
from pipeline.errors import PipelineError
from pipeline.files import write_output

AT_LEAST_ONE = ("threads", "runs")
NOT_NEGATIVE = ("frames", "calib_frames", "warmup")


def command_text(name: str, argv: list[str] | None) -> str:
    """The command a report came from, as a user types it: ``anytime bench NAME ARGS...``."""
    return " ".join(shlex.quote(x) for x in ["anytime", "bench", name, *(sys.argv[1:] if argv is None else argv)])


def check_counts(args: argparse.Namespace) -> None:
    """``--threads`` and ``--runs`` at least 1, ``--frames``, ``--calib-frames`` and ``--warmup`` 0 or more."""
    for name in AT_LEAST_ONE:
        if getattr(args, name) < 1:
            raise PipelineError(f"--{name} must be at least 1, got {getattr(args, name)}")
    for name in NOT_NEGATIVE:
        if getattr(args, name) < 0:
            raise PipelineError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
    check_threads(args.threads)


def bench_inputs(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    """What a benchmark reads, which its --json must not be."""
    return [("--engines", args.engines), ("--checkpoint", getattr(args, "checkpoint", None)),
            ("--data", Path(args.data) if getattr(args, "data", None) else None),
            *(("--static", folder) for folder in getattr(args, "static", []))]


def write_report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """``results`` as JSON at ``--json``, whole or not at all, and a line saying so."""
    write_output(args.json, json.dumps(results, indent=2) + "\n", "--json", bench_inputs(args))
    seconds = results.get("seconds")
    print(f"wrote {args.json}" + (f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""))
