"""Benchmark 6: the cascade's budgeted curve against a family of static (single-exit) networks trained on the
same data: at the accuracy of each static network, how much faster is the cascade?

    anytime bench anchors --engines engines/ranet --static engines/static_s --static engines/static_m \\
        --static engines/teacher --data DATA [--precision fp32] [--threads 1] [--frames 0] [--runs 1000] \\
        [--json reports/anchors.json]

Every model is a built engines folder (`make engines`), so the static networks run through the
same export, backend and session settings as the cascade. Per-stage latencies of all models are
profiled together, taking turns; the budgeted curve's thresholds are calibrated on the validation
split with those costs. For each static network, the operating point is chosen on validation
alone: the cheapest point of the curve whose validation accuracy reaches the static network's
validation accuracy (none: the curve does not reach it). Then, on every test frame, the cascade at
that point and the static network run interleaved (the order alternating frame by frame), and the
figure is the static network's mean latency over the cascade's, with both test accuracies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.backends import BACKENDS
from pipeline.benchmarks.common import bench_inputs, check_counts
from pipeline.data.options import DataOptions, add_data_options
from pipeline.errors import PipelineError, cli_main
from pipeline.names import PRECISIONS

MATCH_POINTS = 0.3  # the cascade counts as matching a static network at most this far below its test accuracy


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime bench anchors", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="the multi-exit model's built folder")
    ap.add_argument("--static", type=Path, action="append", default=[], required=True, metavar="FOLDER",
                    help="a static network's built folder; repeat for each member of the family")
    add_data_options(ap)
    ap.add_argument("--backend", default=BACKENDS[0], choices=list(BACKENDS))
    ap.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of every model")
    ap.add_argument("--frames", type=int, default=0, help="test frames (0: the whole test split)")
    ap.add_argument("--calib-frames", type=int, default=0, help="validation frames (0: the whole split)")
    ap.add_argument("--runs", type=int, default=1000, help="timed runs of each latency profile")
    ap.add_argument("--warmup", type=int, default=100, help="untimed runs before each measurement")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return ap


def check_options(args: argparse.Namespace) -> None:
    """Bad numbers and missing folders, before any image is loaded."""
    check_counts(args)
    for folder in [args.engines, *args.static]:
        if not (folder / "manifest.json").is_file():
            raise PipelineError(f"no built model at {folder} (no manifest.json): build it with `make engines "
                                f"CHECKPOINT=... ENGINE_ARGS='--name {folder.name}'` (`make anchors` builds the "
                                "static family)")
    real = [os.path.realpath(folder) for folder in args.static]  # one folder by two spellings is one folder
    if len(set(real)) != len(real) or os.path.realpath(args.engines) in real:
        raise PipelineError("each --static folder must be named once, and not be the --engines folder")


def _check_comparable(model: Any, static: Any, where: Path) -> None:
    """A static anchor answers at one exit, from the same classes, frames and validation split as the cascade."""
    from pipeline.data.splits import class_difference, split_keys_differing

    if static.num_exits != 1:
        raise PipelineError(f"{where} is a model of {static.num_exits} exits; a static network answers at one "
                            "(`make anchors` builds the static family)")
    if static.classes != model.classes:
        raise PipelineError(f"{where} classifies other classes than the cascade: "
                            f"{class_difference(list(static.classes), list(model.classes))}; a static network "
                            "must be trained on the same data")
    if static.input.size != model.input.size:
        raise PipelineError(f"{where} reads frames of {static.input.size}, the cascade {model.input.size}; a static "
                            "network must be trained on the same data")
    mine, theirs = static.model.get("split") or {}, model.model.get("split") or {}
    keys = split_keys_differing(mine, theirs, by_source=False)  # one data file has many spellings
    if keys:
        raise PipelineError(f"{where} was trained with another validation split than the cascade's model ("
                            + ", ".join(f"{k} {mine.get(k)} against {theirs.get(k)}" for k in keys)
                            + "); its validation accuracy would not be comparable: train both with the same --data, "
                              "--seed and --val-size")


def _timed(clock: Callable[[], float], fn: Callable[[], int]) -> tuple[float, int]:
    t0 = clock()
    label = fn()
    return (clock() - t0) * 1e3, label


def run(args: argparse.Namespace, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Benchmark 6's figures: the curve on test, the static networks, and one row per static network."""
    from pipeline.backends import load_chain
    from pipeline.runtime.cascade import Cascade
    from pipeline.data.splits import split_images
    from pipeline.runtime.deadline import LatencyPredictor
    from pipeline.manifest import load_manifest
    from pipeline.profiling import chain_exit_probs, profile_chains
    from pipeline.thresholds import aggregate_exits, budgeted_curve, simulate, thresholds_table

    check_options(args)
    model = load_manifest(args.engines)
    statics = [(folder, load_manifest(folder)) for folder in args.static]
    for folder, m in statics:
        _check_comparable(model, m, folder)
    data = DataOptions.from_args(args)
    val = split_images(model, data.source, "validation", data.cache_dir, limit=args.calib_frames or None)
    test = split_images(model, data.source, "test", data.cache_dir, limit=args.frames or None)
    with contextlib.ExitStack() as stack:
        chains = [stack.enter_context(load_chain(m, f, args.backend, args.precision, args.threads))
                  for f, m in [(args.engines, model), *statics]]
        profiles = profile_chains(chains, test[0], args.runs, args.warmup, args.threads)
        probs = [(chain_exit_probs(c, val[0]), chain_exit_probs(c, test[0])) for c in chains]
        costs = profiles[0].cumulative_p50()
        table = thresholds_table(probs[0][0], val[1], costs)
        aggregate = table["aggregate"]
        val_answers, test_answers = (aggregate_exits(p, aggregate) for p in probs[0])
        curve = budgeted_curve(val_answers, val[1], costs)
        on_test = [simulate(test_answers, test[1], p.thresholds, costs) for p in curve]
        rows = []
        for (folder, m), chain, profile, (sv, st) in zip(statics, chains[1:], profiles[1:], probs[1:]):
            s_val = 100.0 * float((sv[:, -1].argmax(-1) == val[1]).mean())
            s_test = 100.0 * float((st[:, -1].argmax(-1) == test[1]).mean())
            row: dict[str, Any] = {"static": folder.name, "static_val_accuracy": s_val, "static_test_accuracy": s_test,
                                   "static_p50_ms": profile.cumulative_p50()[-1], "flops": sum(m.stage_flops())}
            reached = [(p, t) for p, t in zip(curve, on_test) if p.accuracy >= s_val]
            if not reached:
                rows.append({**row, "reached": False, "curve_best_val_accuracy": max(p.accuracy for p in curve)})
                continue
            point, expected = min(reached, key=lambda pt: (pt[0].cost, -pt[0].accuracy))
            cascade = Cascade(chains[0], model.classes, list(point.thresholds), LatencyPredictor(model.num_exits),
                              aggregate=aggregate, frame_size=model.input.size)
            row.update(_interleaved(cascade, chain, test, args.warmup, clock))
            row.update({"reached": True, "cascade_val_accuracy": point.accuracy, "expected_test_ms": expected.mean_cost,
                        "exit_fractions": list(expected.exit_fractions),
                        "matched": bool(row["cascade_test_accuracy"] >= s_test - MATCH_POINTS)})
            rows.append(row)
    return {"variant": f"{args.backend}/{args.precision}", "threads": args.threads, "frames": int(len(test[1])),
            "calibration_frames": int(len(val[1])), "aggregate": aggregate, "stage_costs_ms": costs,
            "model": args.engines.name,
            "curve": [{"q": p.q, "val_accuracy": p.accuracy, "test_accuracy": t.accuracy, "test_mean_ms": t.mean_cost}
                      for p, t in zip(curve, on_test)],
            "rows": rows}


def _interleaved(cascade: Any, static: Any, test: tuple[np.ndarray, np.ndarray], warmup: int,
                 clock: Callable[[], float]) -> dict[str, Any]:
    """The cascade and a static chain on every test frame, taking turns (order alternating): mean times, accuracy."""
    images, labels = test
    runners: list[Callable[[np.ndarray], int]] = [lambda f: int(cascade.classify(f).label),
                                                  lambda f: int(static.run_all(f)[-1].argmax())]
    for i in range(min(warmup, len(images))):
        for r in runners:
            r(images[i:i + 1])
    n = len(labels)
    ms, pred = np.empty((2, n)), np.empty((2, n), dtype=np.int64)
    for i in range(n):
        frame = images[i:i + 1]  # (1, H, W, 3)
        for j in ((0, 1) if i % 2 == 0 else (1, 0)):
            ms[j, i], pred[j, i] = _timed(clock, lambda: runners[j](frame))
    return {"cascade_mean_ms": float(ms[0].mean()), "static_mean_ms": float(ms[1].mean()),
            "ratio_mean": float(ms[1].mean() / ms[0].mean()),
            "cascade_test_accuracy": 100.0 * float((pred[0] == labels).mean()),
            "static_test_accuracy_timed": 100.0 * float((pred[1] == labels).mean())}


def format_table(report: dict[str, Any]) -> str:
    """Benchmark 6 as Markdown: one row per static network."""
    lines = [f"Benchmark 6: {report['model']} ({report['variant']}, {report['threads']} thread(s), "
             f"{report['frames']} test frames, thresholds from {report['calibration_frames']} validation frames, "
             f"aggregate {report['aggregate']})", "",
             "| static network | MFLOPs | static test (%) | static mean (ms) | cascade test (%) | cascade mean (ms) "
             "| speed-up | matched |", "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        head = f"| {r['static']} | {r['flops'] / 1e6:.1f} | {r['static_test_accuracy']:.2f} |"
        if not r["reached"]:
            lines.append(f"{head} {r['static_p50_ms']:.3f} (p50) | not reached (best on validation "
                         f"{r['curve_best_val_accuracy']:.2f}% against {r['static_val_accuracy']:.2f}%) | - | - | - |")
            continue
        lines.append(f"{head} {r['static_mean_ms']:.3f} | {r['cascade_test_accuracy']:.2f} | "
                     f"{r['cascade_mean_ms']:.3f} | {r['ratio_mean']:.2f}x | {'yes' if r['matched'] else 'no'} |")
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.files import check_output, write_output

    args = build_parser().parse_args(argv)
    check_options(args)
    if args.json is not None:
        check_output(args.json, "--json", bench_inputs(args))
    report = run(args)
    print(format_table(report))
    if args.json is not None:
        write_output(args.json, json.dumps(report, indent=2) + "\n", "--json", bench_inputs(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
