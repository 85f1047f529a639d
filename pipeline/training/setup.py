"""What a run builds before its first step: device, model (fresh or resumed), optimiser, averaging.

A resumed run continues from the checkpoint's training state: the raw weights, the optimiser's
momentum, the weight average and the step counter, so it repeats an uninterrupted run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PipelineError
from pipeline.training.ema import WeightAverage
from pipeline.training.options import TrainOptions


@dataclass
class RunState:
    """The model being trained, its optimiser and average, and the progress so far."""

    model: Any
    optimizer: Any
    average: WeightAverage | None
    epoch: int
    step: int
    history: list[dict[str, Any]]
    # A run stopped inside an epoch (--max-steps): the steps of epoch ``epoch`` already taken and the state of
    # the epoch's random generator after them, so a resumed run takes exactly the steps an uninterrupted one would.
    epoch_step: int = 0
    generator: Any = None
    teacher_sha256: str = ""  # the teacher's file when the run started: a resumed run must distil from the same
    # The stopped epoch's running figures (images seen, loss sum, right answers per exit, seconds), so that its
    # history record covers the whole epoch, not only the steps after the resume.
    epoch_tally: dict[str, Any] = field(default_factory=dict)

    @property
    def shipped(self) -> Any:
        """The weights a run evaluates and saves: the average where there is one."""
        return self.average.module if self.average is not None else self.model


def make_optimizer(groups: list[dict[str, Any]], opts: TrainOptions) -> Any:
    """SGD with momentum over ``groups``, as one fused kernel per step where this torch has it for these
    tensors (one pass over the weights instead of several per tensor: the step's cost on a CPU), else the
    per-tensor loop. Both compute the same update."""
    import torch

    kwargs: dict[str, Any] = dict(lr=opts.lr, momentum=opts.momentum, nesterov=opts.nesterov,
                                  weight_decay=opts.weight_decay)
    try:
        return torch.optim.SGD(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this torch, device or dtype
        return torch.optim.SGD(groups, **kwargs)


def load_optimizer_state(opt: Any, saved: dict[str, Any]) -> None:
    """Momentum buffers and step counts of a saved run into ``opt``, which keeps its own kernel choice: the
    saved groups carry the flags of the run that wrote them (torch would take those over)."""
    kernels = [{k: g.get(k) for k in ("fused", "foreach")} for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, kernel in zip(opt.param_groups, kernels):
        group.update(kernel)


def setup_device(opts: TrainOptions) -> tuple[str, int, int]:
    """(device, rank, world size). torchrun sets WORLD_SIZE; each rank then owns one GPU (or CPU, gloo)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    cuda = torch.cuda.is_available()
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}", rank, world
    return "cpu", rank, world


def training_machine(device: str, world: int, bf16: bool) -> str:
    """What an epoch ran on, recorded with it so that a model card can say how long a run took on what
    (a long run resumes across machines): the CUDA card, or the CPU with its thread count, and whether
    the steps ran in bfloat16."""
    import torch

    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        from pipeline.device import cpu_name

        name = f"{cpu_name()}, {torch.get_num_threads()} threads"
    return f"{name}{f' x{world}' if world > 1 else ''}, {'bfloat16' if bf16 else 'float32'} steps"


def bf16_is_native(device: str) -> bool:
    """Whether bfloat16 autocast runs on hardware support here: a CUDA card that has it, or a CPU that oneDNN
    runs bfloat16 on (AVX-512 or AMX). Without it (an AVX2 CPU) every bfloat16 operation is converted in
    software and a step is several times slower than in float32."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without that probe: AVX-512 is what oneDNN needs
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def parameter_groups(model: Any, opts: TrainOptions) -> list[dict[str, Any]]:
    """Two groups: BatchNorm biases (learning rate scaled by ``bn_bias_lr_scale``) and the rest."""
    from torch import nn

    bn_bias = {id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
               and m.bias is not None}
    rest = [p for p in model.parameters() if id(p) not in bn_bias]
    biases = [p for p in model.parameters() if id(p) in bn_bias]
    return [{"params": rest, "lr_scale": 1.0}, {"params": biases, "lr_scale": opts.bn_bias_lr_scale}]


def build_state(opts: TrainOptions, cfg: Any, device: str) -> RunState:
    """A fresh run, or the one saved in ``opts.out`` when resuming; on ``device``."""
    import torch

    from pipeline.models.loading import load_model
    from pipeline.models import create_model

    saved: dict[str, Any] = {}
    if opts.resume and opts.out.exists():
        shipped, ckpt = load_model(opts.out, expect_model=opts.model, expect_config=cfg.to_dict(), resume=True)
        if "train_state" not in ckpt:
            raise PipelineError(f"{opts.out} holds final weights without a training state; it cannot be resumed")
        saved = ckpt["train_state"]
        changed = opts.changed_from(saved.get("args", {}))
        if changed:
            raise PipelineError(f"{opts.out} was trained with {', '.join(changed)}; resume with the same values "
                                "or use another --out")
        model = create_model(opts.model, **opts.model_overrides)
        # With averaging, the checkpoint's weights are the average; the raw ones travel in its state.
        model.load_state_dict(saved.get("raw_state_dict", ckpt["state_dict"]))
        model.train()
    else:
        torch.manual_seed(opts.seed)
        model = create_model(opts.model, **opts.model_overrides)
    model.to(device)
    if opts.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = make_optimizer(parameter_groups(model, opts), opts)
    if "optimizer" in saved:
        load_optimizer_state(opt, saved["optimizer"])
    average = None
    if opts.ema_decay > 0:
        average = WeightAverage(model, opts.ema_decay, updates=int(saved.get("ema_updates", 0)))
        if saved:
            average.module.load_state_dict(shipped.state_dict())
            average.module.to(device)
    teacher_sha = ""
    if opts.teacher:
        from pipeline.files import sha256_file

        if not os.path.isfile(opts.teacher):
            raise PipelineError(f"--teacher {opts.teacher} does not exist; train one first (make teacher)")
        teacher_sha = sha256_file(opts.teacher)
        was = saved.get("teacher_sha256")
        if was and was != teacher_sha:
            raise PipelineError(f"the teacher {opts.teacher} changed since {opts.out} started distilling from it "
                                f"(sha256 {was[:12]}... then, {teacher_sha[:12]}... now); resume with the teacher it "
                                "started with, or start a new run with --overwrite")
    return RunState(model, opt, average, int(saved.get("epoch", 0)), int(saved.get("step", 0)),
                    list(saved.get("history", [])), int(saved.get("epoch_step", 0)), saved.get("generator"),
                    teacher_sha, dict(saved.get("epoch_tally") or {}))


def training_state(state: RunState, opts: TrainOptions) -> dict[str, Any]:
    """What a checkpoint needs beyond the shipped weights to resume the run exactly."""
    out: dict[str, Any] = {"epoch": state.epoch, "step": state.step, "history": state.history,
                           "epochs": opts.epochs, "batch_size": opts.batch_size,
                           "optimizer": state.optimizer.state_dict(), "args": opts.recorded(),
                           "epoch_step": state.epoch_step, "teacher_sha256": state.teacher_sha256}
    if state.generator is not None:
        out["generator"] = state.generator
    if state.epoch_step and state.epoch_tally:
        out["epoch_tally"] = state.epoch_tally
    if state.average is not None:
        out["ema_updates"] = state.average.updates
        out["raw_state_dict"] = {k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
    return out
