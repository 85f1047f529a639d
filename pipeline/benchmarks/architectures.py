"""Multi-exit architectures compared on one short schedule, judged by their budgeted curves through built engines.

    anytime bench architectures --data DATA [--out runs/architectures] [--epochs 10] [--seed 0] \\
        [--teacher models/teacher_cifar10.pt] [--only today,lingrow,ranet] [--report-only] [--runs 1000] \\
        [--json reports/architectures.json]

Each row trains one architecture with the same recipe, teacher, seed and data (``OUT/<row>-s<seed>.pt``;
a finished row is not trained again, an interrupted one resumes), then builds its FP32 engines
(``OUT/engines/<row>``). All rows' chains are profiled together, taking turns, on validation frames;
each row's exit thresholds are swept on the validation split with its measured per-stage costs. A
row is judged by where its curve lies in measured latency, not by FLOPs or per-exit accuracy alone:
the latency at which it first reaches each accuracy, and its speed-up over its own full chain at
matched accuracy (the cheapest point within ``MATCH_POINTS`` of its last exit).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, cli_main
from pipeline.thresholds.limits import times_text

# The shipped recipe on a short schedule; the teacher is the runner's --teacher.
RECIPE = ["--batch-size", "128", "--lr", "0.2", "--weight-decay", "5e-4", "--cutout", "16", "--schedule", "cosine",
          "--ema", "0.999", "--bn-bias-lr-scale", "4", "--distill", "0.5"]
SPEED = ["--bf16", "--threads", "2", "--compile", "on", "--channels-last", "--no-progress"]
ROWS: dict[str, list[str]] = {
    "today": ["--model", "msdnet_cifar"],  # 5 blocks, step 2, base 4: the model shipped before
    "lingrow": ["--model", "msdnet_cifar", "--model-opt", "stepmode=lin_grow", "--model-opt", "step=1",
                "--model-opt", "base=1"],  # MSDNet with a cheap first block
    "ranet": ["--model-factory", "pipeline.models.ranet:build"],  # resolution-adaptive, plain convolutions
}
TARGETS = (85.0, 87.0, 88.0, 89.0, 90.0)  # validation accuracies (%) at which the rows' latencies are compared
MATCH_POINTS = 0.3


def row_command(name: str, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "pipeline.training", "--data", args.data, "--out", str(checkpoint(name, args)),
            "--resume", "--epochs", str(args.epochs), *RECIPE, "--teacher", str(args.teacher), "--seed",
            str(args.seed), *SPEED, *ROWS[name]]


def checkpoint(name: str, args: argparse.Namespace) -> Path:
    return Path(args.out) / f"{name}-s{args.seed}.pt"


def finished(path: Path, epochs: int) -> bool:
    from pipeline.checkpoint import read_checkpoint

    return path.exists() and read_checkpoint(path).get("train_state", {}).get("epoch") == epochs


def build_engines(name: str, args: argparse.Namespace) -> Path:
    """The row's FP32 engines under ``OUT/engines/<row>`` (the build skips what is up to date)."""
    from pipeline.build.cli import main as build

    ckpt = checkpoint(name, args)
    factory = ROWS[name][1] if ROWS[name][0] == "--model-factory" else None
    code = build(["--checkpoint", str(ckpt), "--data", args.data, "--out", str(Path(args.out) / "engines"),
                  "--name", name, "--precisions", "fp32", "--skip-accuracy",
                  *(["--model-factory", factory] if factory else [])])
    if code != 0:
        raise PipelineError(f"building the engines of row {name} failed (exit {code})")
    return Path(args.out) / "engines" / name


def judge(folders: dict[str, Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each row's latencies, accuracies and budgeted curve on validation, profiled together."""
    from pipeline.backends import REFERENCE_BACKEND, load_chain
    from pipeline.data.options import DataOptions
    from pipeline.data.splits import split_images
    from pipeline.manifest import load_manifest
    from pipeline.metrics import accuracy_per_exit
    from pipeline.profiling import chain_exit_probs, profile_chains
    from pipeline.thresholds import aggregate_exits, budgeted_curve, thresholds_table
    from pipeline.thresholds.limits import speedup_limits

    manifests = {n: load_manifest(f) for n, f in folders.items()}
    first = next(iter(manifests.values()))
    data = DataOptions.from_args(args)
    frames, labels = split_images(first, data.source, "validation", data.cache_dir, limit=args.calib_frames or None)
    rows = []
    with contextlib.ExitStack() as stack:
        chains = {n: stack.enter_context(load_chain(m, folders[n], REFERENCE_BACKEND, "fp32", args.threads))
                  for n, m in manifests.items()}
        profiles = profile_chains(list(chains.values()), frames, args.runs, args.warmup, args.threads)
        for (name, chain), profile in zip(chains.items(), profiles):
            probs = chain_exit_probs(chain, frames)  # (N, K, C)
            costs = profile.cumulative_p50()
            aggregate = thresholds_table(probs, labels, costs)["aggregate"]
            curve = budgeted_curve(aggregate_exits(probs, aggregate), labels, costs)
            last = accuracy_per_exit(probs, labels)[-1]
            matched = min((p for p in curve if p.accuracy >= last - MATCH_POINTS), key=lambda p: p.cost)
            flops = manifests[name].stage_flops()
            rows.append({
                "row": name, "exits": len(costs), "val_accuracy": accuracy_per_exit(probs, labels),
                "stage_ms": [s["p50_ms"] for s in profile.stages()], "full_ms": costs[-1],
                "stage1_latency_share": costs[0] / costs[-1], "stage1_flops_share": flops[0] / sum(flops),
                "mflops": sum(flops) / 1e6, "aggregate": aggregate,
                "matched": {"accuracy": matched.accuracy, "ms": matched.cost, "speedup": costs[-1] / matched.cost},
                "limits": speedup_limits(probs, labels, costs, MATCH_POINTS, aggregate=aggregate).to_dict(),
                "ms_at": {str(t): min((p.cost for p in curve if p.accuracy >= t), default=None) for t in TARGETS},
                "curve": [{"accuracy": p.accuracy, "ms": p.cost} for p in curve]})
    return rows


def format_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"architectures, {args.epochs} epochs, seed {args.seed}, teacher {args.teacher}; ONNX Runtime FP32, "
             f"{args.threads} thread(s), budgeted curves on the validation split", "",
             "| row | exits | MFLOPs | stage 1 share (latency / FLOPs) | full chain (ms) | validation accuracy per exit "
             "(%) | matched: ms, speed-up | bounds: hindsight, labels known | "
             + " | ".join(f"ms at {t:g}%" for t in TARGETS) + " |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(TARGETS)]
    for r in rows:
        at = " | ".join("-" if r["ms_at"][str(t)] is None else f"{r['ms_at'][str(t)]:.3f}" for t in TARGETS)
        lines.append(f"| {r['row']} | {r['exits']} | {r['mflops']:.1f} | {100 * r['stage1_latency_share']:.0f}% / "
                     f"{100 * r['stage1_flops_share']:.0f}% | {r['full_ms']:.3f} | "
                     + " ".join(f"{a:.2f}" for a in r["val_accuracy"])
                     + f" | {r['matched']['ms']:.3f}, {r['matched']['speedup']:.2f}x | {times_text(r['limits']['hindsight'])}, "
                     f"{times_text(r['limits']['perfect_rule'])} | {at} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from pipeline.data.options import add_data_options

    ap = argparse.ArgumentParser(prog="anytime bench architectures", description=__doc__.split("\n")[0])
    add_data_options(ap)
    ap.add_argument("--out", type=Path, default=Path("runs/architectures"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher", type=Path, default=Path("models/teacher_cifar10.pt"))
    ap.add_argument("--only", default="", help=f"comma-separated rows (default: all of {', '.join(ROWS)})")
    ap.add_argument("--report-only", action="store_true", help="judge the finished rows, train nothing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--calib-frames", type=int, default=0, help="validation frames (0: the whole split)")
    ap.add_argument("--json", type=Path, default=None)
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise PipelineError(f"unknown row {', '.join(unknown)}; rows: {', '.join(ROWS)}")
    if args.epochs < 1 or args.seed < 0 or args.threads < 1 or args.runs < 1 or args.warmup < 0 or args.calib_frames < 0:
        raise PipelineError("--epochs, --threads and --runs must be at least 1; --seed, --warmup and --calib-frames "
                            "not negative")
    if not args.report_only and not args.teacher.is_file():
        raise PipelineError(f"the teacher {args.teacher} does not exist: train it with `make teacher`")
    if not args.data:
        raise PipelineError("--data is required: the training images (e.g. DATA of the Makefile)")
    from pipeline.files import check_output, write_output

    inputs = [("--data", Path(args.data)), ("--teacher", args.teacher), ("--out", Path(args.out))]
    if args.json is not None:
        check_output(args.json, "--json", inputs)
    for name in names:
        path = checkpoint(name, args)
        if not args.report_only and not finished(path, args.epochs):
            cmd = row_command(name, args)
            print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
            if subprocess.run(cmd).returncode != 0:
                raise PipelineError(f"row {name} failed; see its output above (it resumes when run again)")
    done = {n: build_engines(n, args) for n in names if finished(checkpoint(n, args), args.epochs)}
    if not done:
        raise PipelineError(f"no row has finished its {args.epochs} epochs under {args.out}; run without --report-only")
    rows = judge(done, args)
    print(format_table(rows, args))
    if args.json is not None:
        write_output(args.json, json.dumps(rows, indent=2) + "\n", "--json", inputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
