"""The README's four benchmarks, measured side by side in one run on this machine from built engines.

    anytime bench cascade --engines engines/ranet --data DATA \
        --checkpoint models/ranet_cifar10.pt [--backend onnxruntime] [--precision fp32] [--threads 1] \
        [--frames 0] [--calib-frames 0] [--runs 1000] [--warmup 100] [--aggregate auto] \
        [--json reports/benchmarks.json]

1. the cascade against the full network at matched accuracy (``cascade_vs_full``); 2. ONNX Runtime
against PyTorch eager (``ort_vs_torch``); 3. INT8 against FP32 per stage (``int8_vs_fp32``); 4.
deadline adherence (``deadline_adherence``). Batch 1, wall time from ``time.perf_counter``;
``--frames`` and ``--calib-frames`` keep a seeded subset of the test and validation splits.
The benchmarks themselves are in ``cascade_runs``, the table in ``cascade_report``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.backends import BACKENDS
from pipeline.benchmarks.cascade_report import format_table
from pipeline.benchmarks.common import bench_inputs, check_counts, command_text, write_report
from pipeline.benchmarks.cascade_runs import (
    DEADLINE_SLACK_MS, MATCH_POINTS, PORTABLE, Bench, cascade_vs_full, deadline_adherence, int8_vs_fp32,
    ort_vs_torch)
from pipeline.data.options import add_data_options
from pipeline.errors import PipelineError, cli_main
from pipeline.files import check_output
from pipeline.names import PRECISIONS
from pipeline.thresholds import add_calibration_options, check_calibration_options

__all__ = ["DEADLINE_SLACK_MS", "MATCH_POINTS", "PORTABLE", "Bench", "build_parser", "cascade_vs_full",
           "check_options", "deadline_adherence", "format_table", "int8_vs_fp32", "main", "ort_vs_torch"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime bench cascade", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    ap.add_argument("--checkpoint", type=Path, default=None, help="the engines' checkpoint, for benchmark 2")
    add_data_options(ap)
    ap.add_argument("--backend", default=BACKENDS[0], choices=list(BACKENDS),
                    help="backend of benchmarks 1 and 4")
    ap.add_argument("--precision", default="fp32", choices=list(PRECISIONS), help="precision of benchmarks 1 and 4")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (ONNX Runtime and PyTorch)")
    ap.add_argument("--frames", type=int, default=0, help="test frames to use (0: the whole test split)")
    ap.add_argument("--calib-frames", type=int, default=0, help="validation frames for the thresholds (0: all)")
    ap.add_argument("--runs", type=int, default=1000, help="timed full-chain runs of each latency profile")
    ap.add_argument("--warmup", type=int, default=100, help="untimed runs before each measurement")
    add_calibration_options(ap)
    ap.add_argument("--json", type=Path, default=Path("reports/benchmarks.json"), help="where to write the figures")
    return ap


def check_options(args: argparse.Namespace) -> None:
    check_counts(args)
    check_calibration_options(args.tolerance, args.confidence)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise PipelineError(f"--checkpoint {args.checkpoint} does not exist; pass the engines' checkpoint or drop it "
                            "(benchmark 2 is then skipped)")
    check_output(args.json, "--json", bench_inputs(args))


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_options(args)
    from pipeline.backends.facts import describe_device, device_facts

    started = time.time()
    bench = Bench(args)
    facts = device_facts([args.backend], args.threads)
    for w in facts["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    first = cascade_vs_full(bench)
    third = int8_vs_fp32(bench)  # before benchmark 2, which then reuses its interleaved FP32 profile
    results = {"command": command_text("cascade", argv),
               "device": facts, "device_line": describe_device(facts), "runs": args.runs,
               "ort_vs_torch": ort_vs_torch(bench), "int8_vs_fp32": third,
               "deadline": deadline_adherence(bench, first),
               "cascade_vs_full": {k: v for k, v in first.items() if not k.startswith("_")}}
    results["seconds"] = time.time() - started
    print(format_table(results), end="")
    write_report(args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
