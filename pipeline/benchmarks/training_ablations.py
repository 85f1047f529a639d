"""The recipe's ablation table: short runs of one change each against one base, same seed and schedule.

    anytime bench ablations --data DATA --out runs/ablation [--epochs 6] [--limit 10000] \\
        [--seed 0] [--only base,wd5e-4] [--extra "--bn-bias-lr-scale 4"] [--json reports/ablations.json]

Each row is ``python -m pipeline.training`` with the base options plus the row's change, writing
``OUT/<row>-s<seed>.pt``; a row whose checkpoint is complete is not run again, and an interrupted one
resumes, so the table can be built across several sittings. The figure is each exit's validation
accuracy after the last epoch (the weight average where the row has one) with its standard error,
sqrt(p(1-p)/n) on the n validation images; a difference between two rows is a gain only where it
exceeds about twice the standard error of each, and a repeat with another ``--seed`` agrees.
Two more columns say what the exit rule makes of each row's model (label smoothing, for one,
changes the confidence it reads): the cascade's held-out validation accuracy at exit 2's cost
(``pipeline.training.evaluation.exit_rule_check``) and exit 1's mean confidence; they are kept
in ``OUT/<row>-s<seed>.exitrule.json`` beside the checkpoint, with the last column: exit 1's and the last
exit's accuracy on corrupted copies of the validation split, the mean over the five corruptions of
``pipeline.data.corruptions`` at severity 2 (what ``--camera-augment`` is for).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, cli_main

# The base: the previous shipped recipe's optimiser on a short schedule, at the faster batch size.
BASE = ["--batch-size", "128", "--lr", "0.2", "--weight-decay", "1e-4", "--schedule", "cosine"]
SPEED = ["--bf16", "--threads", "2", "--compile", "on", "--no-progress"]
TEACHER = "{teacher}"  # stands for the runner's --teacher in a row's options
ROWS: dict[str, list[str]] = {
    "base": [],
    "batch64": ["--batch-size", "64", "--lr", "0.1"],
    "wd5e-4": ["--weight-decay", "5e-4"],
    "nesterov": ["--nesterov"],
    "onecycle": ["--schedule", "onecycle", "--warmup-epochs", "1"],
    "ema": ["--ema", "0.99"],
    "smooth0.1": ["--label-smoothing", "0.1"],
    "bnbias4": ["--bn-bias-lr-scale", "4"],
    "equilibrium": ["--gradient-equilibrium"],
    "distill0.5": ["--distill", "0.5"],
    "cutout8": ["--cutout", "8"],
    "cutout16": ["--cutout", "16"],
    "wd5e-4+cutout16": ["--weight-decay", "5e-4", "--cutout", "16"],
    "camera0.2": ["--camera-augment", "0.2"],
    "camera0.5": ["--camera-augment", "0.5"],
    # Distillation from a trained teacher (--teacher of this runner; `make teacher` trains it).
    "teacher0.5": ["--teacher", TEACHER, "--distill", "0.5"],
    "teacher0.8": ["--teacher", TEACHER, "--distill", "0.8"],
}


# The figures exit_rule keeps; a cache that lacks one (kept before it existed) is computed again.
FIGURES = ("cascade_at_exit2_cost", "cost_share", "exit1_confidence", "corrupted_exit1", "corrupted_last")


def row_options(name: str, args: argparse.Namespace) -> list[str]:
    """The row's change, with the teacher placeholder replaced by the runner's ``--teacher``."""
    return [args.teacher if a == TEACHER else a for a in ROWS[name]]


def row_command(name: str, args: argparse.Namespace) -> list[str]:
    out = args.out / f"{name}-s{args.seed}.pt"
    # A later option overrides an earlier one in argparse: --extra overrides the base and the speed options,
    # and the row's change comes last.
    return [sys.executable, "-m", "pipeline.training", "--data", args.data, "--out", str(out), "--resume",
            "--epochs", str(args.epochs), "--limit", str(args.limit), "--seed", str(args.seed),
            *BASE, *SPEED, *shlex.split(args.extra), *row_options(name, args)]


def result(path: Path, epochs: int) -> dict[str, Any] | None:
    """The row's last validation accuracies, or None while it is unfinished."""
    from pipeline.checkpoint import read_checkpoint

    if not path.exists():
        return None
    state = read_checkpoint(path).get("train_state", {})
    history = state.get("history", [])
    if state.get("epoch") != epochs or not history:
        return None
    acc = history[-1]["val_acc"]
    n = int(read_checkpoint(path)["split"]["size"])
    se = [100 * math.sqrt(max(a / 100 * (1 - a / 100), 1e-12) / n) for a in acc]
    minutes = sum(h["seconds"] for h in history) / 60
    return {"val_acc": acc, "stderr": se, "images": n, "minutes": minutes}


def exit_rule(path: Path, data: str) -> dict[str, float]:
    """The row's exit-rule figures, computed once per checkpoint (its size and time stamp it)."""
    from pipeline.files import atomic_write_text

    cache = path.with_suffix(".exitrule.json")
    stamp = f"{path.stat().st_size}-{path.stat().st_mtime_ns}"
    if cache.exists():
        try:
            kept = json.loads(cache.read_text())
            if kept.get("stamp") == stamp and set(FIGURES) <= set(kept["figures"]):
                return dict(kept["figures"])
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: computed again below
    from pipeline.models.loading import load_model
    from pipeline.data.cache import default_cache_dir
    from pipeline.data.splits import evaluation_images
    from pipeline.models.flops import exit_costs
    from pipeline.robustness import exit_probs
    from pipeline.training.evaluation import exit_rule_check

    model, ckpt = load_model(path)
    p = model.cfg.preprocess
    frames, labels = evaluation_images(data, "validation", default_cache_dir(), (p.height, p.width), ckpt["classes"],
                                       ckpt["split"], resize_shorter=p.resize_shorter)
    costs = [c["flops"] for c in exit_costs(model)]
    figures = exit_rule_check(exit_probs(model, frames), labels, costs)
    figures.update(corrupted_accuracy(model, frames, labels))
    atomic_write_text(cache, json.dumps({"stamp": stamp, "figures": figures}, indent=2) + "\n")
    return figures


def corrupted_accuracy(model: Any, frames: Any, labels: Any, severity: int = 2) -> dict[str, float]:
    """Exit 1's and the last exit's accuracy (%), mean over every corruption at ``severity``."""
    import numpy as np

    from pipeline.data.corruptions import CORRUPTIONS, corrupt
    from pipeline.robustness import exit_probs, row

    acc = np.mean([row(name, severity, exit_probs(model, corrupt(frames, name, severity, seed=0)), labels, None)
                   ["accuracy"] for name in CORRUPTIONS], axis=0)  # (K,)
    return {"corrupted_exit1": float(acc[0]), "corrupted_last": float(acc[-1])}


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anytime bench ablations", description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated rows (default: all)")
    ap.add_argument("--extra", default="", metavar="OPTIONS",
                    help="training options added to the base of every row, e.g. '--bn-bias-lr-scale 4'")
    ap.add_argument("--teacher", default="models/teacher_cifar10.pt", help="the teacher checkpoint of the teacher rows")
    ap.add_argument("--report-only", action="store_true", help="print the table of finished rows, run nothing")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise PipelineError(f"unknown row {', '.join(unknown)}; rows: {', '.join(ROWS)}")
    if args.epochs < 1 or args.limit < 0:
        raise PipelineError("--epochs must be at least 1 and --limit not negative")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        path = args.out / f"{name}-s{args.seed}.pt"
        if not args.report_only and result(path, args.epochs) is None:
            cmd = row_command(name, args)
            print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
            done = subprocess.run(cmd)
            if done.returncode != 0:
                raise PipelineError(f"row {name} failed (exit {done.returncode}); see its output above")
        res = result(path, args.epochs)
        if res is not None:
            rows.append({"row": name, "change": " ".join(row_options(name, args)) or "(base)", **res,
                         "exit_rule": exit_rule(path, args.data)})
    print(f"\nablation, {args.epochs} epochs on {args.limit or 'all'} training images, seed {args.seed}; "
          f"base: {' '.join([*BASE, *shlex.split(args.extra)])}")
    k = max((len(r["val_acc"]) for r in rows), default=0)
    print("| change | " + " | ".join(f"exit {i + 1}" for i in range(k))
          + " | cascade at exit 2's cost | exit 1 mean confidence | corrupted, exit 1 / last | minutes |")
    print("|---|" + "---|" * (k + 4))
    for r in rows:
        cells = [f"{a:.2f} ± {s:.2f}" for a, s in zip(r["val_acc"], r["stderr"])]
        e = r["exit_rule"]
        print(f"| {r['change']} | " + " | ".join(cells)
              + f" | {e['cascade_at_exit2_cost']:.2f} | {e['exit1_confidence']:.1f} | "
              f"{e['corrupted_exit1']:.2f} / {e['corrupted_last']:.2f} | {r['minutes']:.1f} |")
    if args.json is not None:
        from pipeline.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
