"""Train a multi-exit classifier: the sum of every exit's cross-entropy, optional self-distillation.

    python -m pipeline.train --data DATA --epochs 300 --out models/msdnet_cifar10.pt [--resume]
    torchrun --nproc-per-node 4 -m pipeline.train ...      # several GPUs (DistributedDataParallel)

SGD with Nesterov-free momentum, weight decay, cosine or step schedule; random crop (4-pixel zero
padding) and horizontal flip on the uint8 frames, so the model's own first layer does all the
normalising. A checkpoint is written atomically after every epoch; ``--resume`` continues from it
with the same data order and augmentation as an uninterrupted run (both are seeded per epoch).
Distillation (as in IMTA, Li et al. 2019): exits 1..K-1 also match the last exit's softened output.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, cli_main


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["n_blocks=3", "gr_factor=1,2"]`` -> ``{"n_blocks": 3, "gr_factor": (1, 2)}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise PipelineError(f"model option {item!r} should look like key=value, e.g. n_blocks=3")
        parts = [p for p in value.split(",") if p]
        conv = [int(p) if p.lstrip("-").isdigit() else float(p) if p.replace(".", "", 1).isdigit() else p for p in parts]
        out[key] = tuple(conv) if "," in value else conv[0]
    return out


def augment(frames: Any, gen: Any, pad: int = 4) -> Any:
    """Random crop after zero padding and random horizontal flip. (N, H, W, 3) uint8 -> same."""
    import torch

    n, h, w, _ = frames.shape
    padded = torch.nn.functional.pad(frames, (0, 0, pad, pad, pad, pad))  # (N, H+2p, W+2p, 3)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (N, 1, W)
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None], (w - 1 - (cols - dx[:, None, None])) + dx[:, None, None], cols)
    return padded[torch.arange(n)[:, None, None], rows, cols]


def multi_exit_loss(logits: list[Any], target: Any, distill: float, temperature: float) -> Any:
    """Sum over exits of CE; with ``distill`` > 0, exits 1..K-1 mix CE with KL to the last exit (detached)."""
    import torch.nn.functional as F

    ce = [F.cross_entropy(z.float(), target) for z in logits]
    if distill <= 0 or len(logits) == 1:
        return sum(ce)
    teacher = F.softmax(logits[-1].detach().float() / temperature, dim=1)
    loss = ce[-1]
    for z, c in zip(logits[:-1], ce[:-1]):
        kd = F.kl_div(F.log_softmax(z.float() / temperature, dim=1), teacher, reduction="batchmean")
        loss = loss + (1 - distill) * c + distill * temperature**2 * kd
    return loss


def evaluate(model: Any, frames: Any, labels: Any, batch_size: int = 500, device: str = "cpu") -> list[float]:
    """Top-1 accuracy (%) of every exit. frames (N, H, W, 3) uint8 tensor, labels (N,) int64."""
    import torch

    model.eval()
    correct = None
    with torch.no_grad():
        for i in range(0, len(labels), batch_size):
            outs = model(frames[i:i + batch_size].to(device))
            hits = torch.stack([(o.argmax(1).cpu() == labels[i:i + batch_size]).sum() for o in outs])
            correct = hits if correct is None else correct + hits
    return [100.0 * float(c) / len(labels) for c in correct]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="msdnet_cifar", help="registered model name")
    ap.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    ap.add_argument("--data", default=os.environ.get("ANYTIME_DATA", ""),
                    help="ImageFolder folder/archive or official CIFAR-10 archive; empty: download CIFAR-10")
    ap.add_argument("--cache-dir", type=Path, default=None, help="downloads and decoded images (default ~/.cache)")
    ap.add_argument("--out", type=Path, required=True, help="checkpoint path, rewritten every epoch")
    ap.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--schedule", choices=["cosine", "step"], default="cosine", help="step: /10 at 50%% and 75%%")
    ap.add_argument("--distill", type=float, default=0.0, help="weight of distillation from the last exit (0: off)")
    ap.add_argument("--temperature", type=float, default=3.0)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use only N training images, a seeded random subset (smoke runs, ablations)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many optimiser steps (smoke runs)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPU with AVX512-BF16/AMX, or CUDA)")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def _check_args(args: argparse.Namespace) -> None:
    """Reject bad option values before any data is read."""
    for name in ("epochs", "batch_size", "lr", "val_size"):
        if getattr(args, name) <= 0:
            raise PipelineError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0.0 <= args.distill < 1.0:
        raise PipelineError(f"--distill must be in [0, 1), got {args.distill}")


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    from pipeline.training_loop import run_training

    run_training(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
