"""The options of a training run, as one frozen dataclass built by the command line and read by the loop.

The options that fix the schedule, the data order and the loss are recorded in the checkpoint, and a
resumed run must match them: resuming with another learning rate would not continue the same run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, check_seed

# The value a run made before an option existed had: the option off.
BEFORE_OPTION_EXISTED: dict[str, Any] = {"nesterov": False, "warmup_epochs": 0.0, "bn_bias_lr_scale": 1.0,
                                         "label_smoothing": 0.0, "ema_decay": 0.0, "gradient_equilibrium": False,
                                         "cutout": 0, "teacher": "", "camera_augment": 0.0}
SCHEDULES = ("cosine", "step", "onecycle")
COMPILE_MODES = ("off", "on")


@dataclass(frozen=True)
class TrainOptions:
    """Everything a training run reads. Defaults are the plain recipe of the earlier 60-epoch model; `make train`
    adds the shipped recipe's options (the README's "Training")."""

    out: Path
    model: str = "msdnet_cifar"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    cache_dir: Path | None = None
    resume: bool = False
    epochs: int = 60
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | step (/10 at 50% and 75%) | onecycle (linear up, linear down)
    warmup_epochs: float = 0.0
    bn_bias_lr_scale: float = 1.0  # BatchNorm biases learn this much faster than the rest
    label_smoothing: float = 0.0
    cutout: int = 0  # side of the cutout square in pixels; 0: off
    camera_augment: float = 0.0  # share of images given camera-like noise, blur or low contrast; 0: off
    ema_decay: float = 0.0  # 0: no weight averaging; else the EMA weights are evaluated and saved
    gradient_equilibrium: bool = False
    distill: float = 0.0
    temperature: float = 3.0
    teacher: str = ""  # a checkpoint whose last exit every exit distils from; "": the student's own last exit
    val_size: int = 5000
    seed: int = 0
    limit: int = 0
    max_steps: int = 0
    threads: int = 0
    channels_last: bool = False
    bf16: bool = False
    compile: str = "off"
    progress: bool = True

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise PipelineError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        check_seed(self.seed)
        for name in ("epochs", "batch_size", "lr", "val_size"):
            if getattr(self, name) <= 0:
                raise PipelineError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in ("momentum", "weight_decay", "warmup_epochs", "limit", "max_steps", "threads", "cutout"):
            if getattr(self, name) < 0:
                raise PipelineError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not 0.0 <= self.distill < 1.0:
            raise PipelineError(f"--distill must be in [0, 1), got {self.distill}")
        if not 0.0 <= self.camera_augment <= 1.0:
            raise PipelineError(f"--camera-augment must be a share in [0, 1], got {self.camera_augment}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise PipelineError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise PipelineError(f"--ema must be a decay in [0, 1) (0 turns it off), got {self.ema_decay}")
        if self.bn_bias_lr_scale <= 0:
            raise PipelineError(f"--bn-bias-lr-scale must be positive, got {self.bn_bias_lr_scale}")
        if self.teacher and self.distill == 0:
            raise PipelineError("--teacher needs --distill A > 0: the weight of the teacher's targets")
        if self.temperature <= 0:
            raise PipelineError(f"--temperature must be positive, got {self.temperature}")
        if self.schedule not in SCHEDULES:
            raise PipelineError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.compile not in COMPILE_MODES:
            raise PipelineError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.warmup_epochs >= self.epochs:
            raise PipelineError(f"--warmup-epochs {self.warmup_epochs} leaves no epoch after the warm-up "
                                f"of a {self.epochs}-epoch run")
        if self.nesterov and self.momentum == 0:
            raise PipelineError("--nesterov needs a momentum above 0")

    # Options that define the run: a resumed run must use the same values. Speed options
    # (threads, bf16, compile, channels-last) may change between sessions.
    RUN_DEFINING = ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
                    "warmup_epochs", "bn_bias_lr_scale", "label_smoothing", "cutout", "camera_augment", "ema_decay",
                    "gradient_equilibrium", "distill", "temperature", "teacher", "seed", "limit", "val_size")

    def recorded(self) -> dict[str, str]:
        """The options as strings, as stored in a checkpoint's training state."""
        return {k: str(v) for k, v in asdict(self).items()}

    def changed_from(self, saved: dict[str, str]) -> list[str]:
        """The run-defining options whose recorded value differs from this run's, as ``--name old (now new)``.

        An option that a checkpoint does not record (it predates the option) had the value that
        turns it off, which is what that run used.
        """
        out = []
        for k in self.RUN_DEFINING:
            before = saved.get(k, str(BEFORE_OPTION_EXISTED.get(k)))
            if before != str(getattr(self, k)):
                out.append(f"--{k.replace('_', '-')} {before} (now {getattr(self, k)})")
        return out
