"""Per-exit accuracy of a checkpoint in PyTorch, with each exit's cumulative cost: the model card's table.

    python -m pipeline.evaluate --checkpoint models/msdnet_cifar10.pt --data DATA --split test [--card models/README.md]

``--split validation`` re-draws the checkpoint's own validation split from the training images;
``--split test`` is for final reporting only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from pipeline.errors import PipelineError, cli_main


def evaluate_checkpoint(checkpoint: Path, data: str, split: str, cache_dir: Path, threads: int = 0) -> dict:
    """``{"split", "images", "accuracy": [% per exit], "costs": [...], "seconds"}`` for one checkpoint."""
    import torch

    from pipeline.checkpoint import load_model
    from pipeline.data import load_dataset, validation_split
    from pipeline.models.flops import exit_costs
    from pipeline.train import evaluate

    if threads:
        torch.set_num_threads(threads)
    model, ckpt = load_model(checkpoint)
    p = model.cfg.preprocess
    data_split = "test" if split == "test" else "train"
    images = load_dataset(data or None, data_split, cache_dir=cache_dir, size=(p.height, p.width))
    if list(images.classes) != list(ckpt["classes"]):
        raise PipelineError(f"the data's classes {list(images.classes)} differ from the checkpoint's "
                            f"{ckpt['classes']}; evaluate on the data the model was trained for")
    labels = images.labels
    frames = images.images
    if split == "validation":
        _, val_idx = validation_split(labels, size=ckpt["split"]["size"], seed=ckpt["split"]["seed"])
        frames, labels = frames[val_idx], labels[val_idx]
    t0 = time.time()
    acc = evaluate(model, torch.from_numpy(frames), torch.from_numpy(labels.astype("int64")))
    return {"split": split, "images": int(len(labels)), "accuracy": acc, "costs": exit_costs(model),
            "seconds": time.time() - t0, "epoch": ckpt.get("train_state", {}).get("epoch")}


def format_report(report: dict) -> str:
    lines = [f"{report['split']} split, {report['images']} images" +
             (f", checkpoint at epoch {report['epoch']}" if report.get("epoch") else ""),
             "| exit | top-1 accuracy (%) | cumulative MFLOPs | cumulative params (M) |", "|---|---|---|---|"]
    for acc, cost in zip(report["accuracy"], report["costs"]):
        lines.append(f"| {cost['exit']} | {acc:.2f} | {cost['flops'] / 1e6:.2f} | {cost['params'] / 1e6:.3f} |")
    return "\n".join(lines)


def model_card(checkpoint: Path, report: dict, command: str) -> str:
    """The model card: config, how it was trained, on what machine, and the per-exit table of ``report``."""
    import platform

    from pipeline.device import cpu_name
    from pipeline.checkpoint import read_checkpoint

    ckpt = read_checkpoint(checkpoint)
    state = ckpt.get("train_state", {})
    history = state.get("history", [])
    train_args = state.get("args", {})
    hours = sum(h["seconds"] for h in history) / 3600
    opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in train_args.items()
                    if k in ("epochs", "batch_size", "lr", "schedule", "distill", "temperature", "bf16"))
    last = history[-1] if history else {}
    lines = [
        f"# Model card: {checkpoint.name}", "",
        f"- model: `{ckpt['model']}`, {len(ckpt['config'].get('gr_factor', []))} scales, "
        f"{ckpt['config'].get('n_blocks')} exits; config: `{ckpt['config']}`",
        f"- classes: {', '.join(ckpt['classes'])}",
        f"- preprocessing (inside stage 1): {ckpt['preprocess']}",
        f"- validation split: {ckpt['split']}",
        f"- trained with `make train` ({opts}): {state.get('epoch', '?')} of {state.get('epochs', '?')} epochs done, "
        f"{state.get('step', '?')} steps, {hours:.2f} h of training wall time",
        f"- machine: {cpu_name()}, {platform.machine()} (training wall time includes other work sharing the CPU)",
        "- last epoch's validation accuracy per exit (%): "
        + " ".join(f"{a:.2f}" for a in last.get("val_acc", [])),
        "", f"Reproduce the table: `{command}`", "", format_report(report), "",
    ]
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.data import default_cache_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", default=os.environ.get("ANYTIME_DATA", ""))
    ap.add_argument("--split", choices=["validation", "test"], default="validation")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the report as JSON")
    ap.add_argument("--card", type=Path, help="also write the model card (Markdown) here")
    args = ap.parse_args(argv)
    report = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.cache_dir or default_cache_dir(),
                                 args.threads)
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.card:
        import shlex

        command = "python -m pipeline.evaluate " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        args.card.write_text(model_card(args.checkpoint, report, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
