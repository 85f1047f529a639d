"""Per-exit accuracy of a checkpoint in PyTorch, with each exit's cumulative cost: the model card's table.

    anytime evaluate --checkpoint models/ranet_cifar10.pt --data DATA --split test [--card models/README.md] \
        [--corruptions all [--engines engines/ranet]]

``--split validation`` re-draws the checkpoint's own validation split from the training images;
``--split test`` is for final reporting only. ``--corruptions`` adds the accuracy of every exit on
corrupted copies of the split (``pipeline.robustness``), with the cascade's accuracy and mean exit
when ``--engines`` names a built model whose manifest holds exit thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.device import check_threads
from pipeline.errors import PipelineError, check_seed, cli_main


def evaluate_checkpoint(checkpoint: Path, data: str, split: str, cache_dir: Path, threads: int = 0,
                        robustness: dict[str, Any] | None = None) -> dict:
    """``{"split", "images", "accuracy": [% per exit], "costs": [...], "seconds"}`` for one checkpoint.

    ``robustness``: ``{"corruptions", "severities", "seed", "rule"}`` adds a ``"robustness"`` table.
    """
    import torch

    from pipeline.models.loading import load_model
    from pipeline.data.splits import evaluation_images
    from pipeline.models.flops import exit_costs
    from pipeline.training.evaluation import exit_accuracy

    if threads:
        torch.set_num_threads(threads)
    model, ckpt = load_model(checkpoint)
    p = model.cfg.preprocess
    frames, labels = evaluation_images(data, split, cache_dir, (p.height, p.width), ckpt["classes"], ckpt["split"],
                                       resize_shorter=p.resize_shorter)
    t0 = time.time()
    acc = exit_accuracy(model, torch.from_numpy(frames), torch.from_numpy(labels))
    report = {"split": split, "images": int(len(labels)), "accuracy": acc, "costs": exit_costs(model),
              "seconds": time.time() - t0, "epoch": ckpt.get("train_state", {}).get("epoch")}
    if robustness is not None:
        from pipeline.robustness import robustness_table

        rule = robustness["rule"]
        report["robustness"] = robustness_table(model, frames, labels, robustness["corruptions"],
                                                robustness["severities"], robustness["seed"], rule)
        report["robustness_rule"] = rule.source if rule is not None else None
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['split']} split, {report['images']} images" +
             (f", checkpoint at epoch {report['epoch']}" if report.get("epoch") else ""),
             "| exit | top-1 accuracy (%) | cumulative MFLOPs | cumulative params (M) |", "|---|---|---|---|"]
    for acc, cost in zip(report["accuracy"], report["costs"]):
        lines.append(f"| {cost['exit']} | {acc:.2f} | {cost['flops'] / 1e6:.2f} | {cost['params'] / 1e6:.3f} |")
    if report.get("robustness"):
        from pipeline.robustness import format_robustness

        rule = report.get("robustness_rule")
        lines += ["", f"Top-1 accuracy (%) per exit on corrupted copies of the {report['split']} split"
                  + (f"; cascade and mean exit under {rule}" if rule else "") + ":", "",
                  format_robustness(report["robustness"])]
    return "\n".join(lines)


# The training options a model card names (those left at "off" are not shown).
RECIPE_SHOWN = ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule", "warmup_epochs",
                "bn_bias_lr_scale", "label_smoothing", "cutout", "camera_augment", "ema_decay", "gradient_equilibrium",
                "distill", "temperature", "teacher", "bf16", "compile")


def _hours(history: list[dict[str, Any]]) -> float:
    """Training wall time of a run's epoch records, in hours."""
    return sum(h.get("seconds", 0.0) for h in history) / 3600


def time_by_machine(history: list[dict[str, Any]]) -> str:
    """Training wall time per machine, in the order the machines first ran an epoch; epochs saved before
    checkpoints recorded their machine are counted as "machine not recorded"."""
    hours: dict[str, list[float]] = {}
    for h in history:
        spent = hours.setdefault(h.get("machine") or "machine not recorded", [0, 0.0])
        spent[0] += 1
        spent[1] += h.get("seconds", 0.0) / 3600
    return "; ".join(f"{name}: {int(n)} epochs, {t:.2f} h" for name, (n, t) in hours.items())


def training_time_lines(history: list[dict[str, Any]], teacher: Path | None) -> list[str]:
    """The card's lines on how long training took and on what, the teacher's run (``--teacher``) included."""
    hours = _hours(history)
    lines = [f"- training wall time: {hours:.2f} h over {len(history)} epochs ({time_by_machine(history)}; "
             "the wall time includes other work sharing the machine)"]
    if teacher is not None:
        from pipeline.checkpoint import read_checkpoint

        try:
            taught = read_checkpoint(teacher).get("train_state", {}).get("history", [])
        except PipelineError as exc:
            return lines + [f"- teacher `{teacher}`: its training time is unknown here ({exc})"]
        t_hours = _hours(taught)
        lines.append(f"- teacher `{teacher}`: {t_hours:.2f} h over {len(taught)} epochs ({time_by_machine(taught)}); "
                     f"{hours + t_hours:.2f} h in all with the student's")
    return lines


FILES_HEADING = "## Files in this folder"


def files_section(folder: Path) -> str:
    """The card's list of the checkpoints beside it, with size and sha256, so a clone can check what it got."""
    from pipeline.checkpoint import read_checkpoint, state_file_of
    from pipeline.files import sha256_file

    lines = [FILES_HEADING, "", "| file | model | epochs | size (MB) | sha256 |", "|---|---|---|---|---|"]
    for path in sorted(folder.glob("*.pt")):
        state = state_file_of(path.name)
        if state:
            what = f"resume state of {state[0]}" + (f", part {state[2]}" if state[2] > 1 else "")
            lines.append(f"| {path.name} | {what} | - | {path.stat().st_size / 1e6:.2f} | {sha256_file(path)} |")
            continue
        try:
            ckpt = read_checkpoint(path)
            model, epochs = f"`{ckpt['model']}`", str(ckpt.get("train_state", {}).get("epoch", "-"))
        except PipelineError:
            model, epochs = "not a checkpoint of this project", "-"
        lines.append(f"| {path.name} | {model} | {epochs} | {path.stat().st_size / 1e6:.2f} | {sha256_file(path)} |")
    return "\n".join(lines) + "\n"


def with_files_section(card: str, folder: Path) -> str:
    """``card`` with its files section replaced by (or, where it has none, followed by) the current one."""
    head = card.split(FILES_HEADING)[0].rstrip("\n")
    return f"{head}\n\n{files_section(folder)}"


def model_shape(ckpt: dict, exits: int) -> str:
    """The card's one-line description of a model: its name, its scales where it has them (MSDNet), its exits."""
    scales = ckpt["config"].get("gr_factor")
    return f"`{ckpt['model']}`, " + (f"{len(scales)} scales, " if scales else "") + f"{exits} exits"


def model_card(checkpoint: Path, report: dict, command: str) -> str:
    """The model card: config, how it was trained, on what machine, and the per-exit table of ``report``."""
    from pipeline.checkpoint import read_checkpoint
    from pipeline.training.options import BEFORE_OPTION_EXISTED

    ckpt = read_checkpoint(checkpoint)
    state = ckpt.get("train_state", {})
    history = state.get("history", [])
    train_args = state.get("args", {})
    teacher = Path(train_args["teacher"]) if train_args.get("teacher") else None  # "": no teacher
    flag = {"ema_decay": "ema"}
    opts = " ".join(f"--{flag.get(k, k).replace('_', '-')} {v}" for k, v in train_args.items()
                    if k in RECIPE_SHOWN and not (k in BEFORE_OPTION_EXISTED and v == str(BEFORE_OPTION_EXISTED[k])))
    last = history[-1] if history else {}
    lines = [
        f"# Model card: {checkpoint.name}", "",
        f"- model: {model_shape(ckpt, len(report['accuracy']))}; config: `{ckpt['config']}`",
        f"- classes: {', '.join(ckpt['classes'])}",
        f"- preprocessing (inside stage 1): {ckpt['preprocess']}",
        f"- validation split: {ckpt['split']}",
        f"- trained with `make train` ({opts}): {state.get('epoch', '?')} of {state.get('epochs', '?')} epochs done, "
        f"{state.get('step', '?')} steps",
        *training_time_lines(history, teacher),
        "- last epoch's validation accuracy per exit (%): "
        + " ".join(f"{a:.2f}" for a in last.get("val_acc", [])),
        "", f"Reproduce the table: `{command}`", "", format_report(report), "",
    ]
    return with_files_section("\n".join(lines), checkpoint.parent)


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.data.corruptions import CORRUPTIONS, SEVERITIES, check_corruptions
    from pipeline.data.options import DataOptions, add_data_options
    from pipeline.files import check_output, write_output

    ap = argparse.ArgumentParser(prog="anytime evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    add_data_options(ap)
    ap.add_argument("--split", choices=["validation", "test"], default="validation")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the report as JSON")
    ap.add_argument("--card", type=Path, help="also write the model card (Markdown) here")
    ap.add_argument("--corruptions", default="", help=f"'all' or some of {','.join(CORRUPTIONS)}: accuracy on "
                    "corrupted copies of the split")
    ap.add_argument("--severities", default=",".join(map(str, SEVERITIES)))
    ap.add_argument("--corruption-seed", type=int, default=0)
    ap.add_argument("--engines", type=Path, default=None,
                    help="a built model folder: its exit thresholds give the cascade's accuracy and mean exit")
    ap.add_argument("--precision", default="fp32", help="whose thresholds --engines reads")
    ap.add_argument("--policy", default="default", help="the threshold policy --engines reads")
    args = ap.parse_args(argv)
    check_threads(args.threads, minimum=0)
    check_seed(args.corruption_seed, "--corruption-seed")
    inputs = [("--checkpoint", args.checkpoint), ("--data", Path(args.data) if args.data else None),
              ("--engines", args.engines)]
    for option, out in (("--json", args.json), ("--card", args.card)):
        if out is not None:
            check_output(out, option, inputs)
    if args.json is not None and args.card is not None and os.path.abspath(args.json) == os.path.abspath(args.card):
        raise PipelineError(f"--json and --card are both {args.json}; give each its own path")
    robustness = None
    if args.corruptions:
        names = list(CORRUPTIONS) if args.corruptions == "all" else [n for n in args.corruptions.split(",") if n]
        try:
            severities = [int(v) for v in args.severities.split(",") if v]
        except ValueError:
            raise PipelineError(f"--severities takes whole numbers such as 1,2,3, got {args.severities!r}") from None
        check_corruptions(names, severities)
        rule = None
        if args.engines is not None:
            from pipeline.robustness import ExitRule

            rule = ExitRule.from_manifest(args.engines, args.precision, args.policy)
        robustness = {"corruptions": names, "severities": severities, "seed": args.corruption_seed, "rule": rule}
    data = DataOptions.from_args(args)
    report = evaluate_checkpoint(args.checkpoint, data.source, args.split, data.cache_dir, args.threads, robustness)
    print(format_report(report))
    if args.json:
        write_output(args.json, json.dumps(report, indent=2) + "\n", "--json", inputs)
    if args.card:
        import shlex

        command = "anytime evaluate " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        write_output(args.card, model_card(args.checkpoint, report, command), "--card", inputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
