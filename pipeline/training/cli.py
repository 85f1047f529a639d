"""The training command line: parse, check every option, build ``TrainOptions``, run.

    python -m pipeline.training --data DATA --epochs 60 --out models/msdnet_cifar10.pt [--resume]
    torchrun --nproc-per-node 4 -m pipeline.training ...      # several GPUs (DistributedDataParallel)
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from pipeline.data.options import add_data_options
from pipeline.models import parse_overrides
from pipeline.errors import PipelineError, cli_main
from pipeline.training.options import COMPILE_MODES, SCHEDULES, TrainOptions


def build_parser() -> argparse.ArgumentParser:
    d = TrainOptions(out=Path("unused"))
    ap = argparse.ArgumentParser(prog="anytime train",
                                 description="Train a multi-exit classifier (every exit's loss summed).")
    ap.add_argument("--model", default=d.model, help="registered model name")
    ap.add_argument("--model-factory", default="", metavar="PACKAGE.MODULE:FUNCTION",
                    help="your own multi-exit network instead (see the stage contract in pipeline.models.factory)")
    ap.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    add_data_options(ap, help="the training images")
    ap.add_argument("--out", type=Path, required=True, help="checkpoint path, rewritten every epoch")
    ap.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    ap.add_argument("--overwrite", action="store_true", help="replace the checkpoint at --out with a new run")
    g = ap.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="cosine; step: /10 at 50%% and 75%%; onecycle: linear up over the warm-up, linear down")
    g.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help="linear warm-up from 0")
    g.add_argument("--bn-bias-lr-scale", type=float, default=d.bn_bias_lr_scale,
                   help="learning-rate multiplier of BatchNorm biases")
    g.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    g.add_argument("--cutout", type=int, default=d.cutout, metavar="PIXELS",
                   help="cutout: one square of this side per training image set to the mean colour (0: off)")
    g.add_argument("--camera-augment", type=float, default=d.camera_augment, metavar="P",
                   help="share of training images given camera-like noise, blur or low contrast (0: off)")
    g.add_argument("--ema", dest="ema_decay", type=float, default=d.ema_decay, metavar="DECAY",
                   help="average the weights with this decay per step (e.g. 0.999) and ship the average; 0: off")
    g.add_argument("--gradient-equilibrium", action="store_true",
                   help="balance the exits' gradients in the shared blocks (IMTA)")
    g.add_argument("--distill", type=float, default=d.distill, help="weight of distillation from the last exit (0: off)")
    g.add_argument("--temperature", type=float, default=d.temperature)
    g.add_argument("--teacher", default=d.teacher, metavar="CHECKPOINT",
                   help="distil every exit from this trained network's output instead (with --distill A)")
    g.add_argument("--val-size", type=int, default=d.val_size)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--limit", type=int, default=0, help="use only N training images, a seeded random subset (ablations)")
    s = ap.add_argument_group("speed (may change when resuming)")
    s.add_argument("--max-steps", type=int, default=0, help="stop after this many optimiser steps (smoke runs)")
    s.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    s.add_argument("--channels-last", action="store_true")
    s.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPU with AVX512-BF16/AMX, or CUDA)")
    s.add_argument("--compile", choices=COMPILE_MODES, default=d.compile,
                   help="torch.compile the training step; falls back to eager where compiling fails")
    s.add_argument("--no-progress", action="store_true")
    return ap


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The frozen options of a run from parsed arguments; bad values raise PipelineError before any work."""
    return TrainOptions(
        out=args.out, model=args.model_factory or args.model, model_overrides=parse_overrides(args.model_opt), data=args.data,
        cache_dir=args.cache_dir, resume=args.resume, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, momentum=args.momentum, nesterov=args.nesterov, weight_decay=args.weight_decay,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, bn_bias_lr_scale=args.bn_bias_lr_scale,
        label_smoothing=args.label_smoothing, cutout=args.cutout, camera_augment=args.camera_augment,
        ema_decay=args.ema_decay,
        gradient_equilibrium=args.gradient_equilibrium, distill=args.distill, temperature=args.temperature,
        teacher=args.teacher, val_size=args.val_size, seed=args.seed, limit=args.limit, max_steps=args.max_steps,
        threads=args.threads, channels_last=args.channels_last, bf16=args.bf16, compile=args.compile,
        progress=not args.no_progress)


def check_out(opts: TrainOptions, overwrite: bool) -> None:
    """Refuse, before any work, an --out that would destroy an input or a finished run: the data, the
    teacher, a file inside the data folder or a model folder, a folder, a device; an existing checkpoint
    without --resume or --overwrite."""
    from pipeline.checkpoint import check_checkpoint_output, resume_state_path
    from pipeline.files import check_output

    inputs = [("--data", Path(opts.data) if opts.data else None),
              ("--teacher", Path(opts.teacher) if opts.teacher else None)]
    check_checkpoint_output(opts.out, "--out", inputs)
    check_output(resume_state_path(opts.out), "--out's resume state", inputs)
    if opts.resume and overwrite:
        raise PipelineError("--resume continues the run at --out and --overwrite replaces it: pass one of them")
    if opts.out.exists() and not opts.resume and not overwrite:
        raise PipelineError(f"--out {opts.out} already holds a checkpoint; pass --resume to continue its run, "
                            "--overwrite to replace it with a new one, or another --out")


def run_lock_path(out: Path) -> Path:
    """The lock a run holds while it trains into ``out`` (``make keep-run`` looks at it too)."""
    return out.with_name(out.name + ".lock")


def run_lock(out: Path) -> contextlib.AbstractContextManager[None]:
    """One process trains into ``out`` at a time: two resumed copies of a run would overwrite each other's
    epochs. Only the first rank of a torchrun run takes it (the others write nothing)."""
    from pipeline.files import hold_lock

    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return hold_lock(run_lock_path(out), f"--out {out} is being trained by another process{{who}}; wait for it "
                     "to finish or stop it (SIGTERM keeps its state), or pass another --out", "a training run")


def finished(opts: TrainOptions) -> str | None:
    """The line to print when ``--resume`` finds the run at ``--out`` already done with these options (no data
    loaded, no lock taken: a finished teacher is a dependency several make targets may check at once)."""
    from pipeline.checkpoint import read_checkpoint
    from pipeline.models import model_config

    if not (opts.resume and opts.out.is_file() and not opts.max_steps):
        return None
    ckpt = read_checkpoint(opts.out)
    done = ckpt.get("train_state") or {}
    if int(done.get("epoch", 0)) < opts.epochs or done.get("epoch_step") or opts.changed_from(done.get("args", {})):
        return None  # unfinished, or another run: the full path resumes it or says why not
    if ckpt["model"] != opts.model or ckpt["config"] != model_config(opts.model, **opts.model_overrides).to_dict():
        return None  # another model at this path: the full path says so
    epochs = f"{opts.epochs} epoch{'s' if opts.epochs != 1 else ''}"
    return f"checkpoint {opts.out} already has its {epochs} (step {done.get('step')}); nothing to train"


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = options_from_args(args)
    check_out(opts, args.overwrite)
    done = finished(opts)
    if done:
        print(done)
        return 0
    from pipeline.models import model_config
    from pipeline.training.loop import run_training

    model_config(opts.model, **opts.model_overrides)  # an unknown model or option, before any folder is made
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(opts.out):
        check_out(opts, args.overwrite)  # again under the lock: another run may have finished meanwhile
        if args.overwrite:  # the old run's resume state goes now: nothing may resume it in place of the new one
            from pipeline.checkpoint import state_files_on_disk

            for old in state_files_on_disk(opts.out):
                old.unlink(missing_ok=True)
        return run_training(opts)
