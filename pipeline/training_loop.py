"""The epoch loop behind ``pipeline.train``: data, optimiser, schedule, checkpoints, DDP when launched by torchrun."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

from pipeline.errors import PipelineError


# Options that define the schedule and the data order: a resumed run must use the same values.
RESUME_MUST_MATCH = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule", "distill",
                     "temperature", "seed", "limit", "val_size")


def _setup_device(args: argparse.Namespace) -> tuple[str, int, int]:
    """(device, rank, world size). torchrun sets WORLD_SIZE; each rank then owns one GPU (or CPU, gloo)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}", rank, world
    return "cpu", rank, world


def _lr_at(args: argparse.Namespace, epoch: float) -> float:
    if args.schedule == "cosine":
        return 0.5 * args.lr * (1 + math.cos(math.pi * epoch / args.epochs))
    return args.lr * (0.1 ** ((epoch >= 0.5 * args.epochs) + (epoch >= 0.75 * args.epochs)))


def subset(indices: Any, limit: int, seed: int) -> Any:
    """``limit`` of ``indices``, drawn at random with ``seed`` and sorted.

    Not the first ``limit``: the indices are sorted and ImageFolder data is sorted by class, so a
    prefix would hold only the first few classes.
    """
    import numpy as np

    pick = np.random.default_rng(seed).permutation(len(indices))[:limit]
    return np.sort(indices[pick])


def _load_data(args: argparse.Namespace, cfg: Any) -> tuple[Any, Any, Any, Any, list[str], dict]:
    """Train/validation tensors from the training split only; the test split is never touched here."""
    import numpy as np
    import torch

    from pipeline.data import load_dataset, validation_split
    from pipeline.data import default_cache_dir

    p = cfg.preprocess
    data = load_dataset(args.data or None, "train", cache_dir=args.cache_dir or default_cache_dir(),
                        size=(p.height, p.width))
    if len(data.classes) != cfg.num_classes:
        raise PipelineError(f"the data has {len(data.classes)} classes but the model has {cfg.num_classes}; "
                            f"pass --model-opt num_classes={len(data.classes)}")
    if args.val_size >= len(data):
        raise PipelineError(f"--val-size {args.val_size} leaves no training images out of {len(data)}")
    train_idx, val_idx = validation_split(data.labels, size=args.val_size, seed=args.seed)
    if args.limit:
        train_idx = subset(train_idx, args.limit, args.seed)
    frames = torch.from_numpy(np.ascontiguousarray(data.images))
    labels = torch.from_numpy(data.labels.astype(np.int64))
    split = {"seed": args.seed, "size": args.val_size, "source": str(args.data or "cifar10-official")}
    tr, va = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    return frames[tr], labels[tr], frames[va], labels[va], list(data.classes), split


def run_training(args: argparse.Namespace) -> None:
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from pipeline.checkpoint import load_model, read_checkpoint, save_checkpoint
    from pipeline.models import create_model, model_config
    from pipeline.train import augment, evaluate, multi_exit_loss, parse_overrides

    overrides = parse_overrides(args.model_opt)
    cfg = model_config(args.model, **overrides)
    device, rank, world = _setup_device(args)
    main_proc = rank == 0

    state: dict = {"epoch": 0, "step": 0, "history": []}
    if args.resume and args.out.exists():
        model, ckpt = load_model(args.out, expect_model=args.model, expect_config=cfg.to_dict())
        if "train_state" not in ckpt:
            raise PipelineError(f"{args.out} holds final weights without a training state; it cannot be resumed")
        state = ckpt["train_state"]
        saved = state.get("args", {})
        changed = [f"--{k.replace('_', '-')} {saved[k]} (now {getattr(args, k)})" for k in RESUME_MUST_MATCH
                   if k in saved and saved[k] != str(getattr(args, k))]
        if changed:
            raise PipelineError(f"{args.out} was trained with {', '.join(changed)}; resume with the same values "
                                "or use another --out")
    else:
        torch.manual_seed(args.seed)
        model = create_model(args.model, **overrides)
    xs, ys, xv, yv, classes, split = _load_data(args, cfg)
    if main_proc:
        print(f"training {args.model}: {len(ys)} train / {len(yv)} validation images, {len(classes)} classes, "
              f"{model.num_exits} exits, device {device} x{world}", flush=True)

    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    if "optimizer" in state:
        opt.load_state_dict(state["optimizer"])
    # The last stage's finer-scale maps feed no exit in some configurations: their parameters get no
    # gradient, which DDP must be told about.
    net = DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    steps_per_epoch = len(ys) // (args.batch_size * world)
    if steps_per_epoch == 0:
        raise PipelineError(f"{len(ys)} training images are fewer than one batch of {args.batch_size * world}")
    autocast_dev = "cuda" if device.startswith("cuda") else "cpu"

    for epoch in range(state["epoch"], args.epochs):
        # The epoch's order and augmentation depend only on (seed, epoch): a resumed run repeats them.
        gen = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
        order = torch.randperm(len(ys), generator=gen)
        net.train()
        t0, seen, loss_sum = time.time(), 0, 0.0
        correct = torch.zeros(model.num_exits)
        bar = None
        if main_proc and not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", file=sys.stderr, leave=False)
        for i in range(steps_per_epoch):
            idx = order[(i * world + rank) * args.batch_size:(i * world + rank + 1) * args.batch_size]
            x = augment(xs[idx], gen).to(device)
            y = ys[idx].to(device)
            for g in opt.param_groups:
                g["lr"] = _lr_at(args, epoch + i / steps_per_epoch)
            with torch.autocast(autocast_dev, dtype=torch.bfloat16, enabled=args.bf16):
                logits = net(x)
            loss = multi_exit_loss(logits, y, args.distill, args.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state["step"] += 1
            seen += len(y)
            loss_sum += float(loss.detach()) * len(y)
            correct += torch.stack([(z.argmax(1) == y).sum().cpu() for z in logits])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                                acc="/".join(f"{100 * float(c) / seen:.0f}" for c in correct))
            if args.max_steps and state["step"] >= args.max_steps:
                break
        if bar is not None:
            bar.close()
        val_acc = evaluate(model, xv, yv, device=device) if len(yv) else []
        record = {"epoch": epoch + 1, "step": state["step"], "loss": loss_sum / max(seen, 1),
                  "train_acc": [100 * float(c) / max(seen, 1) for c in correct], "val_acc": val_acc,
                  "seconds": time.time() - t0, "lr": _lr_at(args, epoch + 1)}
        state["history"].append(record)
        if main_proc:
            print(f"epoch {epoch + 1}/{args.epochs} loss {record['loss']:.4f} val acc per exit "
                  + " ".join(f"{a:.2f}" for a in val_acc) + f" ({record['seconds']:.0f} s)", flush=True)
            train_state = {**state, "epoch": epoch + 1, "epochs": args.epochs, "batch_size": args.batch_size,
                           "optimizer": opt.state_dict(), "args": {k: str(v) for k, v in vars(args).items()}}
            save_checkpoint(args.out, model, args.model, classes, split, train_state)
        if args.max_steps and state["step"] >= args.max_steps:
            break
    if world > 1:
        torch.distributed.destroy_process_group()
    if main_proc and args.out.exists():
        done = read_checkpoint(args.out)["train_state"]
        print(f"checkpoint {args.out} at epoch {done['epoch']}/{args.epochs}, step {done['step']}", flush=True)
