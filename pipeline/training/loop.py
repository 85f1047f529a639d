"""The epoch loop: data order, augmentation, forward (eager or compiled), loss, step, averaging, checkpoints.

The order and augmentation of an epoch depend only on (seed, epoch), and everything else a step
reads is in the checkpoint, so ``--resume`` after any epoch repeats an uninterrupted run. SIGINT or
SIGTERM end the run after the step in flight with the partial epoch saved (its step and generator
state, as ``--max-steps`` does), so a run stopped at any moment loses at most one step.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

from pipeline.errors import PipelineError
from pipeline.stop import StopFlag
from pipeline.training.augment import augment, mean_colour
from pipeline.training.camera import camera_augment
from pipeline.training.data import TrainData, load_train_data
from pipeline.training.evaluation import exit_accuracy
from pipeline.training.loss import multi_exit_loss
from pipeline.training.options import TrainOptions
from pipeline.training.schedule import lr_at
from pipeline.training.setup import (RunState, bf16_is_native, build_state, setup_device, training_machine,
                                     training_state)


REPORT_EVERY_S = 300.0  # without a progress bar, a line this often inside an epoch (long epochs on a CPU)


def remaining_text(seconds: float) -> str:
    """``95 s``, ``12 min``, ``3.4 h``: how long something has left, for a log line."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def training_forward(model: Any, opts: TrainOptions) -> Any:
    """The module a step calls: the model itself, or the model with gradient equilibrium."""
    from torch import nn

    if not opts.gradient_equilibrium:
        return model

    from pipeline.training.equilibrium import forward_with_equilibrium

    class _Equilibrium(nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, frames: Any) -> Any:
            return forward_with_equilibrium(self.inner, frames)

    return _Equilibrium(model)


class CompiledOrEager:
    """Calls ``torch.compile(net)``; if compiling fails (no C++ compiler, an unsupported operator), says
    so once and calls the eager module from then on. Compiling happens on the first call, so that is
    where a failure shows."""

    def __init__(self, net: Any, log: Callable[[str], None]) -> None:
        import torch

        self.eager = net
        self.log = log
        try:
            self.compiled: Any = torch.compile(net)
        except Exception as exc:  # compile support differs between platforms and builds
            self._fall_back(exc)

    def _fall_back(self, exc: BaseException) -> None:
        self.compiled = None
        self.log(f"note: torch.compile failed here ({type(exc).__name__}: {str(exc)[:200]}); training eagerly")

    def __call__(self, x: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as exc:  # noqa: BLE001 - any compile failure leaves the eager path
                self._fall_back(exc)
        return self.eager(x)


def train_step(net: Any, state: RunState, x: Any, y: Any, opts: TrainOptions, autocast_dev: str,
               bf16: bool, teacher: Callable[[Any], Any] | None = None) -> tuple[Any, list]:
    """One optimiser step on batch ``x`` (N, H, W, 3) uint8, ``y`` (N,); returns (loss, logits). ``bf16``:
    autocast to bfloat16, as the run resolved ``opts.bf16`` for its hardware. ``teacher``: the
    teacher's logits for the batch (``--teacher``), the target every exit distils from."""
    import torch

    with torch.autocast(autocast_dev, dtype=torch.bfloat16, enabled=bf16):
        logits = net(x)
        taught = teacher(x) if teacher is not None else None
    loss = multi_exit_loss(logits, y, opts.distill, opts.temperature, opts.label_smoothing, taught)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    if state.average is not None:
        state.average.update(state.model)
    state.step += 1
    return loss, logits


def run_training(opts: TrainOptions) -> int:
    """Train until ``opts.epochs`` (or ``--max-steps``); returns 0, or 130 / 143 once a SIGINT / SIGTERM
    has stopped the run with its state saved."""
    stop = StopFlag(patient=True)  # a repeated signal must not cut a save short
    stop.install()
    try:
        complete = _train(opts, stop)
    finally:
        stop.restore()
    if stop.reason is None or complete:
        return 0
    print(f"stopped: {stop.reason}", file=sys.stderr)
    return stop.exit_code


def _train(opts: TrainOptions, stop: StopFlag) -> bool:
    """The run; True when it has all its epochs."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from pipeline.checkpoint import read_checkpoint, save_checkpoint
    from pipeline.models import model_config

    cfg = model_config(opts.model, **opts.model_overrides)
    device, rank, world = setup_device(opts)
    main_proc = rank == 0

    def log(msg: str) -> None:
        if main_proc:
            print(msg, flush=True)

    state = build_state(opts, cfg, device)
    data: TrainData = load_train_data(opts, cfg)
    n_train = len(data.train_labels)
    log(f"training {opts.model}: {n_train} train / {len(data.val_labels)} validation images, "
        f"{len(data.classes)} classes, {state.model.num_exits} exits, device {device} x{world}")
    net = training_forward(state.model, opts)
    # The last stage's finer-scale maps feed no exit in some configurations: their parameters get no
    # gradient, which DDP must be told about.
    if world > 1:
        net = DistributedDataParallel(net, find_unused_parameters=True)
    if opts.compile == "on":
        net = CompiledOrEager(net, log)
    steps_per_epoch = n_train // (opts.batch_size * world)
    if steps_per_epoch == 0:
        raise PipelineError(f"{n_train} training images are fewer than one batch of {opts.batch_size * world}")
    autocast_dev = "cuda" if device.startswith("cuda") else "cpu"
    fill = mean_colour(cfg.preprocess)
    bf16 = opts.bf16 and bf16_is_native(device)
    if opts.bf16 and not bf16:
        log(f"note: --bf16 asked for, but {device} has no hardware bfloat16 (it would be emulated, several "
            "times slower); training in float32")
    machine = training_machine(device, world, bf16)

    teacher = None
    if opts.teacher:
        from pathlib import Path

        from pipeline.training.teacher import load_teacher

        teacher = load_teacher(Path(opts.teacher), data.split, len(data.classes),
                               (cfg.preprocess.height, cfg.preprocess.width), device, opts.channels_last,
                               opts.compile == "on", log)

    def stop_asked() -> bool:
        """Whether a signal asked this run to stop; with several processes, whether any of them was asked, so
        that all leave the loop at the same step (one waiting alone in an all-reduce would hang)."""
        asked = stop.reason is not None
        if world > 1:
            flag = torch.tensor([float(asked)], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            asked = bool(flag.item())
        return asked

    while state.epoch < opts.epochs:
        epoch = state.epoch
        gen = torch.Generator().manual_seed(opts.seed * 100_003 + epoch)
        order = torch.randperm(n_train, generator=gen)
        first = state.epoch_step  # > 0: this epoch was begun by a run stopped with --max-steps
        if first and state.generator is not None:
            gen.set_state(state.generator)  # where the stopped run's augmentation draws had reached
        state.model.train()
        tally = state.epoch_tally if first else {}  # the figures of the epoch's steps before a stop
        t0, seen, loss_sum = time.time(), int(tally.get("seen", 0)), float(tally.get("loss_sum", 0.0))
        earlier_s = float(tally.get("seconds", 0.0))
        correct = torch.tensor(tally["correct"]) if "correct" in tally else torch.zeros(state.model.num_exits)
        bar = None
        if main_proc and opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{opts.epochs}", file=sys.stderr, leave=False)
        stopped_inside = False
        reported = t0
        for i in range(first, steps_per_epoch):
            idx = order[(i * world + rank) * opts.batch_size:(i * world + rank + 1) * opts.batch_size]
            x = camera_augment(augment(data.train_frames[idx], gen, cutout=opts.cutout, fill=fill), gen,
                               opts.camera_augment).to(device)
            y = data.train_labels[idx].to(device)
            lr = lr_at(opts, epoch + i / steps_per_epoch)
            for g in state.optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            loss, logits = train_step(net, state, x, y, opts, autocast_dev, bf16, teacher)
            step_loss = float(loss.detach())
            if not math.isfinite(step_loss):
                kept = f"the last good checkpoint {opts.out} is kept" if opts.out.exists() else "nothing was written"
                raise PipelineError(f"the training loss became {step_loss} at step {state.step} (epoch {epoch + 1}); "
                                    f"{kept}. Lower --lr (now {opts.lr}) or check the data")
            seen += len(y)
            loss_sum += step_loss * len(y)
            correct += torch.stack([(z.argmax(1) == y).sum().cpu() for z in logits])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                                acc="/".join(f"{100 * float(c) / seen:.0f}" for c in correct))
            elif time.time() - reported >= REPORT_EVERY_S:
                reported = time.time()
                rate = (i + 1 - first) / (reported - t0)  # steps per second in this process
                log(f"epoch {epoch + 1}/{opts.epochs}: step {i + 1} of {steps_per_epoch}, "
                    f"{rate * opts.batch_size * world:.0f} images/s, loss {loss_sum / seen:.4f}; the epoch ends in "
                    f"about {remaining_text((steps_per_epoch - i - 1) / rate)}")
            if (opts.max_steps and state.step >= opts.max_steps) or stop_asked():
                stopped_inside = i + 1 < steps_per_epoch
                break
        if bar is not None:
            bar.close()
        if stopped_inside:  # not a finished epoch: record where it stopped, so --resume takes the rest of it
            state.epoch_step, state.generator = i + 1, gen.get_state()
            state.epoch_tally = {"seen": seen, "loss_sum": loss_sum, "correct": correct.tolist(),
                                 "seconds": earlier_s + time.time() - t0}
            if main_proc:
                with stop.hold():
                    save_checkpoint(opts.out, state.shipped, opts.model, data.classes, data.split,
                                    training_state(state, opts))
            if world > 1:
                torch.distributed.barrier()  # no rank leaves (and lets torchrun end the group) before the save
            why = f" on {stop.reason}" if stop.reason is not None else ""
            log(f"stopped{why} after step {state.step} ({i + 1} of epoch {epoch + 1}'s {steps_per_epoch}); --resume "
                "continues it")
            break
        state.epoch_step, state.generator, state.epoch_tally = 0, None, {}
        train_seconds = time.time() - t0
        val_acc = exit_accuracy(state.shipped, data.val_frames, data.val_labels, device=device) \
            if len(data.val_labels) else []
        state.epoch = epoch + 1
        record = {"epoch": state.epoch, "step": state.step, "loss": loss_sum / max(seen, 1),
                  "train_acc": [100 * float(c) / max(seen, 1) for c in correct], "val_acc": val_acc,
                  "seconds": earlier_s + time.time() - t0,
                  "images_per_second": seen * world / max(earlier_s + train_seconds, 1e-9),
                  "lr": lr_at(opts, state.epoch), "machine": machine}
        state.history.append(record)
        # A whole epoch's seconds at this pace: this process's steps scaled to the epoch, then the evaluation.
        pace = train_seconds * steps_per_epoch / max(steps_per_epoch - first, 1) + (time.time() - t0 - train_seconds)
        left = "" if state.epoch >= opts.epochs else \
            f"; about {remaining_text(pace * (opts.epochs - state.epoch))} to epoch {opts.epochs} at this pace"
        log(f"epoch {state.epoch}/{opts.epochs} loss {record['loss']:.4f} val acc per exit "
            + " ".join(f"{a:.2f}" for a in val_acc) + f" ({record['seconds']:.0f} s, "
            f"{record['images_per_second']:.0f} images/s{left})")
        if main_proc:
            with stop.hold():
                save_checkpoint(opts.out, state.shipped, opts.model, data.classes, data.split,
                                training_state(state, opts))
        if (opts.max_steps and state.step >= opts.max_steps) or stop_asked():
            break
    if world > 1:
        torch.distributed.destroy_process_group()
    if main_proc and opts.out.exists():
        done = read_checkpoint(opts.out)["train_state"]
        log(f"checkpoint {opts.out} at epoch {done['epoch']}/{opts.epochs}, step {done['step']}")
    return state.epoch >= opts.epochs
