"""Any PyTorch multi-exit network, from the user's own code: ``--model-factory package.module:function``.

The stage contract, what the factory's function must return (an ``nn.Module``):

- ``stages``: K >= 1 modules. Stage 1 takes ``(N, 3, H, W)`` float32 RGB, normalised as
  ``preprocess`` says; stage k > 1 takes exactly the tensors stage k-1 returned after its logits,
  in order. Every stage returns a tuple ``(logits (N, classes), *tensors for stage k + 1)``; the
  last stage may return its logits alone. Every parameter belongs to a stage.
- ``preprocess``: a :class:`PreprocessConfig` or a dict of its fields (``height``, ``width``,
  ``mean``, ``std`` in RGB on the 0..1 scale; ``resize_shorter`` optional). The pipeline puts it in
  front of stage 1, so stage 1's graph takes the uint8 BGR frame as the camera gives it.
- ``classes`` (optional): one name per logit. ``forward`` (optional): the K logits of the whole
  network from stage 1's input; where it exists, the chained stages must reproduce it.

:func:`check_stage_contract` runs the chain on random frames and names the stage and tensor that
break the contract. ``python -m pipeline.models.factory`` writes a checkpoint of a factory's (or a
registered model's) weights as they are, for `make engines` without training here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from pipeline import names
from pipeline.errors import PipelineError, cli_main
from pipeline.models.preprocess import Preprocess, PreprocessConfig

TOLERANCE = 1e-4  # chained stages against the whole model: float32 reassociation, not a different function


@dataclass(frozen=True)
class FactoryConfig:
    """What a checkpoint records of a factory model: where its code is, its options, what it takes and gives."""

    factory: str  # "package.module:function" or "path/to/file.py:function"
    kwargs: dict[str, Any] = field(default_factory=dict)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    num_classes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "preprocess": self.preprocess.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FactoryConfig":
        return cls(d["factory"], dict(d.get("kwargs", {})), PreprocessConfig.from_dict(d["preprocess"]),
                   int(d["num_classes"]))


class ContractStage(nn.Module):
    """A user's stage with the pipeline's calling convention: a tuple out, stage 1 fed the uint8 frame."""

    def __init__(self, stage: nn.Module, preprocess: Preprocess | None = None) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.stage = stage

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.stage(self.preprocess(inputs[0])) if self.preprocess is not None else self.stage(*inputs)
        return (out,) if isinstance(out, torch.Tensor) else tuple(out)


class FactoryModel(nn.Module):
    """A factory's network in the pipeline's shape: ``.stages``, ``.cfg``, ``forward(uint8 frames) -> K logits``."""

    def __init__(self, net: nn.Module, cfg: FactoryConfig, classes: list[str] | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.classes = classes
        # What a network made from other checkpoints records for its own: "split" (the validation split its
        # weights kept out) and "origin" (where they came from); empty for a network trained here.
        self.recorded: dict[str, dict[str, Any]] = {}
        user = list(net.stages)  # type: ignore[arg-type]  # checked by check_stage_contract
        self.stages = nn.ModuleList([ContractStage(user[0], Preprocess(cfg.preprocess))]
                                    + [ContractStage(s) for s in user[1:]])

    @property
    def num_exits(self) -> int:
        return len(self.stages)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """(N, H, W, 3) uint8 BGR -> K tensors of logits (N, classes)."""
        from pipeline.models.msdnet import chain_stages

        return chain_stages(self.stages, frames)


def load_factory(spec: str) -> Callable[..., Any]:
    """The function named by ``package.module:function`` or ``path/to/file.py:function``."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise PipelineError(f"--model-factory should look like package.module:function or path/file.py:function, "
                            f"got {spec!r}")
    if not where.endswith(".py") and not all(part.isidentifier() for part in where.split(".")):
        raise PipelineError(f"--model-factory {spec}: {where!r} is not a module name (package.module, no path "
                            "or `..`); give package.module:function, or the path of a .py file as path/file.py:function")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise PipelineError(f"--model-factory {spec}: {path} does not exist")
            loader = importlib.util.spec_from_file_location(f"model_factory_{path.stem}", path)
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as exc:
        raise PipelineError(f"--model-factory {spec}: {where} could not be imported ({exc}); run from the folder "
                            "that holds the package, or give the path of the .py file") from None
    except PipelineError:
        raise
    except Exception as exc:  # the user's code: a syntax error, or anything it raises while it is imported
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise PipelineError(f"--model-factory {spec}: importing {where} failed ({type(exc).__name__}: {first}); "
                            "fix that file") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise PipelineError(f"--model-factory {spec}: {where} has no function {attr!r}")
    return fn


def _preprocess(net: nn.Module, what: str) -> PreprocessConfig:
    p = getattr(net, "preprocess", None)
    if isinstance(p, dict):
        try:
            p = PreprocessConfig(**{**p, "mean": tuple(p["mean"]), "std": tuple(p["std"])})
        except (KeyError, TypeError) as exc:
            raise PipelineError(f"{what}: preprocess should give height, width, mean and std ({exc})") from None
    if not isinstance(p, PreprocessConfig):
        raise PipelineError(f"{what} has no preprocess (a PreprocessConfig or a dict with height, width, mean, std); "
                            "the pipeline needs it to feed stage 1 the camera's frames")
    return p


def check_stage_contract(net: nn.Module, what: str = "the model", batch: int = 2) -> tuple[PreprocessConfig, int]:
    """Check ``net`` against the stage contract on random frames; returns (preprocessing, classes).

    Every failure names the stage and the tensor (by the pipeline's tensor names) that broke it.
    """
    stages = getattr(net, "stages", None)
    if not isinstance(stages, (nn.ModuleList, nn.Sequential, list, tuple)) or not stages \
            or not all(isinstance(s, nn.Module) for s in stages):
        raise PipelineError(f"{what} has no stages: expected .stages, a list of K >= 1 nn.Modules (one per exit)")
    p = _preprocess(net, what)
    inside = {id(t) for s in stages for t in s.parameters()}
    outside = [n for n, t in net.named_parameters() if id(t) not in inside]
    if outside:
        raise PipelineError(f"{what}: parameter {outside[0]} belongs to no stage, so no stage graph would hold it; "
                            "move it into the stage that uses it")
    net.eval()
    frames = torch.randint(0, 256, (batch, p.height, p.width, 3), dtype=torch.uint8)
    chained = _chain(list(stages), Preprocess(p)(frames), what, batch)
    alone = _chain(list(stages), Preprocess(p)(frames[:1]), what, 1)
    for k, (a, b) in enumerate(zip(chained, alone), start=1):
        if not torch.allclose(a[:1], b, atol=TOLERANCE, rtol=TOLERANCE):
            raise PipelineError(f"{what}: stage {k}'s {names.logits_name(k)} for a frame depends on the other frames "
                                "of its batch (in eval mode); every frame must be computed on its own")
    classes = int(chained[0].shape[1])
    if type(net).forward is not nn.Module.forward:
        with torch.no_grad():
            whole = net(Preprocess(p)(frames))
        whole = [whole] if isinstance(whole, torch.Tensor) else list(whole)
        if len(whole) != len(chained):
            raise PipelineError(f"{what}: forward returns {len(whole)} outputs, the chained stages {len(chained)} "
                                "exits; forward should return every exit's logits")
        for k, (a, b) in enumerate(zip(whole, chained), start=1):
            if tuple(a.shape) != tuple(b.shape) or not torch.allclose(a, b, atol=TOLERANCE, rtol=TOLERANCE):
                diff = (a - b).abs().max().item() if a.shape == b.shape else f"shape {tuple(a.shape)}"
                raise PipelineError(f"{what}: exit {k} of forward differs from the chained stages' "
                                    f"{names.logits_name(k)} {tuple(b.shape)} (by {diff}); stage {k} must compute "
                                    f"what forward computes from what stage {k - 1} returns")
    names_given = getattr(net, "classes", None)
    if names_given is not None and len(list(names_given)) != classes:
        raise PipelineError(f"{what} names {len(list(names_given))} classes, its logits have {classes}")
    return p, classes


def _chain(stages: list[nn.Module], x: torch.Tensor, what: str, batch: int) -> list[torch.Tensor]:
    """Every exit's logits, each stage fed what the previous one returned; PipelineError at the first break."""
    logits: list[torch.Tensor] = []
    carried: tuple[torch.Tensor, ...] = (x,)
    for k, stage in enumerate(stages, start=1):
        fed = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names.stage_input_names(k, len(carried)), carried))
        try:
            with torch.no_grad():
                out = stage(*carried)
        except Exception as exc:  # the user's code: any error, reported with what the stage was given
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise PipelineError(f"{what}: stage {k} failed on {fed} ({type(exc).__name__}: {first})") from None
        out = (out,) if isinstance(out, torch.Tensor) else out
        if not isinstance(out, (tuple, list)) or not out or not all(isinstance(t, torch.Tensor) for t in out):
            raise PipelineError(f"{what}: stage {k} returned {type(out).__name__}; expected a tuple of tensors "
                                f"({names.logits_name(k)}, then what stage {k + 1} takes)")
        head, rest = out[0], tuple(out[1:])
        if head.ndim != 2 or head.shape[0] != batch or not head.is_floating_point():
            raise PipelineError(f"{what}: stage {k}'s first output ({names.logits_name(k)}) has shape "
                                f"{tuple(head.shape)} {head.dtype}; expected float logits ({batch}, classes)")
        if logits and head.shape[1] != logits[0].shape[1]:
            raise PipelineError(f"{what}: stage {k}'s {names.logits_name(k)} has {head.shape[1]} classes, "
                                f"{names.logits_name(1)} has {logits[0].shape[1]}")
        if k < len(stages) and not rest:
            raise PipelineError(f"{what}: stage {k} returns its logits only, so stage {k + 1} gets nothing; "
                                "return (logits, *tensors stage k + 1 needs)")
        for j, t in enumerate(rest if k < len(stages) else ()):
            if t.ndim < 1 or t.shape[0] != batch or not t.is_floating_point():
                raise PipelineError(f"{what}: stage {k}'s carried tensor {j} ({names.feature_name(k, j)}) has shape "
                                    f"{tuple(t.shape)} {t.dtype}; expected float with the batch ({batch}) first")
        logits.append(head)
        carried = rest
    return logits


def create_from_factory(spec: str, **kwargs: Any) -> FactoryModel:
    """The factory's network, checked against the stage contract, in the pipeline's shape."""
    fn = load_factory(spec)
    try:
        net = fn(**kwargs)
    except TypeError as exc:
        raise PipelineError(f"--model-factory {spec}: bad option ({exc})") from None
    except PipelineError:
        raise
    except Exception as exc:  # the user's code: anything it raises is its own mistake, told in one line
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise PipelineError(f"--model-factory {spec} raised {type(exc).__name__}: {first}; fix the factory") from None
    if not isinstance(net, nn.Module):
        raise PipelineError(f"--model-factory {spec} returned {type(net).__name__}, expected an nn.Module")
    p, classes = check_stage_contract(net, f"the model of {spec}")
    given = getattr(net, "classes", None)
    # A network made from files may name the options that remake it without them: its checkpoint records those.
    rebuild = getattr(net, "rebuild_kwargs", None)
    recorded_kwargs = dict(rebuild) if isinstance(rebuild, dict) and rebuild else dict(kwargs)
    model = FactoryModel(net, FactoryConfig(spec, recorded_kwargs, p, classes), None if given is None else list(given))
    model.recorded = {k: dict(getattr(net, k)) for k in ("split", "origin") if isinstance(getattr(net, k, None), dict)}
    split = model.recorded.get("split")
    if split and not all(isinstance(split.get(k), int) for k in ("seed", "size")):
        raise PipelineError(f"--model-factory {spec}: the network's split {split} should hold the integer seed and "
                            "size its validation images were drawn with")
    return model


def model_from_factory_config(d: dict[str, Any]) -> FactoryModel:
    """The factory model a checkpoint recorded, refused where the factory now makes another one."""
    cfg = FactoryConfig.from_dict(d)
    model = create_from_factory(cfg.factory, **cfg.kwargs)
    if model.cfg != cfg:
        what = (f"options {str(model.cfg.kwargs)[:160]}, the checkpoint recorded {str(cfg.kwargs)[:160]}"
                if model.cfg.kwargs != cfg.kwargs else
                f"{model.cfg.num_classes} classes and preprocessing {model.cfg.preprocess}, the checkpoint recorded "
                f"{cfg.num_classes} and {cfg.preprocess}")
        raise PipelineError(f"--model-factory {cfg.factory} now makes a model with {what}; use the code the "
                            "checkpoint was made with, or make it again")
    return model


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Write a checkpoint of a model's weights as the factory (or a registered model) makes them."""
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model
    from pipeline.models.reference import read_classes
    from pipeline.models import parse_overrides

    ap = argparse.ArgumentParser(prog="anytime factory", description=main.__doc__)
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument("--model-factory", help="package.module:function or path/file.py:function")
    who.add_argument("--model", help="a registered model, freshly initialised (seeded)")
    ap.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE", help="factory or config option")
    ap.add_argument("--classes", help="class names: an ImageFolder training folder, or a file with one name a line")
    ap.add_argument("--val-size", type=int, default=5000,
                    help="validation images drawn from the training data (a model made of trained checkpoints "
                         "keeps their split)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    from pipeline.checkpoint import check_checkpoint_output
    from pipeline.errors import check_seed

    check_seed(args.seed)
    if args.val_size < 1:
        raise PipelineError(f"--val-size must be at least 1, got {args.val_size}")
    check_checkpoint_output(args.out, "--out", [("--classes", Path(args.classes) if args.classes else None)])
    torch.manual_seed(args.seed)
    name = args.model_factory or args.model
    model = create_model(name, **parse_overrides(args.model_opt))
    num = int(model.cfg.num_classes)
    given = getattr(model, "classes", None)
    if not args.classes and given is None:
        raise PipelineError(f"{name} names no classes; pass --classes with the training folder (its class folders) "
                            "or a text file with one name a line")
    classes = read_classes(args.classes, "imagenet", num) if args.classes else list(given or [])
    recorded = getattr(model, "recorded", {})  # a registered model records nothing
    read = [Path(str(m.get("file"))) for m in recorded.get("origin", {}).get("members", []) if isinstance(m, dict)]
    check_checkpoint_output(args.out, "--out", [("a checkpoint the model is made from", f) for f in read])
    split = recorded.get("split") or {"seed": 0, "size": args.val_size, "source": "--data"}
    save_checkpoint(args.out, model, name, classes, split, origin=recorded.get("origin"))
    print(f"{name}: {model.num_exits} exits, {num} classes, {sum(t.numel() for t in model.parameters()):,} "
          f"parameters -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
