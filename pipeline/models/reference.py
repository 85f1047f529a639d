"""Convert a checkpoint of the reference MSDNet implementation (MSDNet-PyTorch) into this project's format.

    python -m pipeline.models.reference --checkpoint model_best.pth.tar --config imagenet \\
        --classes /data/imagenet/train --out models/msdnet_imagenet.pt

The reference's ``main.py`` saves ``{"epoch", "arch", "state_dict", "best_prec1", "optimizer"}``,
its weights under DataParallel's ``module.`` prefix. Every tensor is renamed by the module it
belongs to (:mod:`pipeline.models.reference_layout`) and its shape checked against this package's
MSDNet of the chosen configuration; the first tensor that does not fit is named, with the
configuration options its shapes imply. The file is read with ``weights_only=True``: nothing in
it runs. The reference's evaluation preprocessing (its mean and std, RGB order, ImageNet's
resize to 256 and centre crop of 224) goes into the converted checkpoint's config, so stage 1's
graph does what the reference's data loader did, and ``origin`` records where the weights came from.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError, cli_main
from pipeline.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from pipeline.models.reference_layout import differing_options, inferred_options, our_key, strip_prefix

if TYPE_CHECKING:
    from pipeline.models.msdnet import MSDNet

IMPLEMENTATION = "MSDNet-PyTorch"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class ReferenceConfiguration:
    """One of the reference's ``--data`` settings: the model it builds and the preprocessing it evaluates with."""

    model: str  # registered model of this package
    overrides: dict[str, Any]
    preprocess: PreprocessConfig
    val_size: int  # the reference's held-out validation size with --use-valid
    classes: tuple[str, ...] = field(default=())  # () : --classes is needed


CONFIGURATIONS = {
    "cifar10": ReferenceConfiguration(
        "msdnet_cifar", {"num_classes": 10},
        PreprocessConfig(32, 32, "BGR", (0.4914, 0.4824, 0.4467), (0.2471, 0.2435, 0.2616)), 5000, CIFAR10_CLASSES),
    "cifar100": ReferenceConfiguration(
        "msdnet_cifar", {"num_classes": 100},
        PreprocessConfig(32, 32, "BGR", (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)), 5000),
    "imagenet": ReferenceConfiguration(
        "msdnet_imagenet", {"num_classes": 1000},
        PreprocessConfig(224, 224, "BGR", IMAGENET_MEAN, IMAGENET_STD, resize_shorter=256), 50000),
}


def configuration_config(name: str, overrides: Mapping[str, Any] | None = None) -> Any:
    """The MSDNetConfig of reference configuration ``name`` with this package's option ``overrides``."""
    from pipeline.models import model_config

    if name not in CONFIGURATIONS:
        raise PipelineError(f"unknown reference configuration {name!r}; choose one of {', '.join(CONFIGURATIONS)}")
    conf = CONFIGURATIONS[name]
    return model_config(conf.model, **{**conf.overrides, "preprocess": conf.preprocess, **(overrides or {})})


def read_reference(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, metadata: arch, epoch, best_prec1) of a reference checkpoint; PipelineError when unreadable."""
    import torch

    from pipeline.checkpoint import FORMAT, load_failure

    if not path.is_file():
        raise PipelineError(f"reference checkpoint {path} does not exist; pass the .pth.tar that its main.py saved")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated, foreign or unsafe files
        unsafe, cause = load_failure(exc)
        if unsafe:
            raise PipelineError(f"{path} holds Python objects besides tensors and numbers ({cause}); it is not "
                                "loaded, since unpickling them would run code: save {'state_dict': "
                                "model.state_dict()} from the reference code and convert that") from None
        raise PipelineError(f"{path} could not be read ({cause}); it is truncated or not a PyTorch checkpoint: "
                            "download or copy it again") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        raise PipelineError(f"{path} is already a checkpoint of this project ({FORMAT}); build it with `make engines`")
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                           for k, v in state.items()):
        raise PipelineError(f"{path} holds no state dict (expected a dict with 'state_dict', as the reference's "
                            f"main.py saves, or a dict of tensors by name); found {type(obj).__name__}")
    meta = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in obj.items()
            if k in ("arch", "epoch", "best_prec1") and (not isinstance(v, torch.Tensor) or v.numel() == 1)}
    return state, meta


def _explain(shapes: Mapping[str, tuple[int, ...]], cfg: Any, configuration: str) -> str:
    """What the checkpoint's shapes say about the options it was trained with, against ``cfg``."""
    inferred = inferred_options(shapes)
    diffs = differing_options(inferred, cfg.to_dict())
    if not diffs:
        return ("; its shapes imply no option that differs from the configuration (bn_factor or reduction may: "
                "pass them with --model-opt)")
    fits = [n for n in CONFIGURATIONS if n != configuration
            and not differing_options(inferred, configuration_config(n).to_dict())]
    also = f"; --config {fits[0]} fits it" if fits else ""
    return (f"; its shapes imply {', '.join(diffs)}: pass --model-opt with those values (e.g. "
            f"--model-opt {diffs[0].split(' ')[0]}){also}")


def convert_state_dict(state: Mapping[str, Any], configuration: str, overrides: Mapping[str, Any] | None = None,
                       what: str = "the checkpoint") -> tuple["MSDNet", dict[str, Any]]:
    """This package's MSDNet holding the reference ``state``; returns (model in eval mode, mapping facts).

    Every tensor of either side must meet exactly one of the other with the same shape. The
    reference's BatchNorm step counters, absent in checkpoints of PyTorch before 0.4.1, are optional.
    """
    from pipeline.models.msdnet import MSDNet

    cfg = configuration_config(configuration, overrides)
    names, prefixed = strip_prefix(list(state))
    ref = dict(zip(names, state.values()))
    shapes = {n: tuple(t.shape) for n, t in ref.items()}
    mapped: dict[str, str] = {}  # our key -> reference key
    for name in names:
        key = our_key(name)
        if key is None:
            raise PipelineError(f"{what}: tensor {name!r} belongs to no MSDNet module (expected names such as "
                                "'blocks.0.0.layers.0.net.0.weight' or 'classifier.0.linear.weight'); it is not a "
                                f"state dict of {IMPLEMENTATION}'s MSDNet")
        mapped[key] = name
    model = MSDNet(cfg)
    ours = model.state_dict()
    loaded, filled = {}, 0
    for key, tensor in ours.items():
        src = mapped.get(key)
        if src is None:
            if key.endswith("num_batches_tracked"):
                loaded[key], filled = tensor, filled + 1
                continue
            raise PipelineError(f"{what} has no tensor for {key} {tuple(tensor.shape)} of the {configuration} "
                                f"configuration" + _explain(shapes, cfg, configuration))
        if tuple(tensor.shape) != shapes[src]:
            raise PipelineError(f"{what}: tensor {src} has shape {shapes[src]}, the {configuration} configuration "
                                f"expects {tuple(tensor.shape)} for it ({key})" + _explain(shapes, cfg, configuration))
        loaded[key] = ref[src]
    extra = [mapped[k] for k in mapped if k not in ours]
    if extra:
        raise PipelineError(f"{what} holds {len(extra)} tensors the {configuration} configuration lacks, the first "
                            f"{extra[0]} {shapes[extra[0]]}" + _explain(shapes, cfg, configuration))
    model.load_state_dict(loaded, strict=True)
    facts = {"tensors": len(names), "values": int(sum(t.numel() for t in ref.values()
                                                           if t.is_floating_point())),
             "data_parallel_prefix": prefixed, "filled_batch_counters": filled}
    return model.eval(), facts


def read_classes(spec: str | None, configuration: str, num_classes: int) -> list[str]:
    """Class names from ``--classes`` (an ImageFolder root: its sorted class folders; or a file, one a line)."""
    if not spec:
        known = CONFIGURATIONS[configuration].classes
        if len(known) != num_classes:
            raise PipelineError(f"the {configuration} configuration has {num_classes} classes and no list of their "
                                "names here; pass --classes with the training folder (its class folders, sorted "
                                "as the reference's loader sorted them) or a text file with one name a line")
        return list(known)
    path = Path(spec)
    if path.is_dir():
        classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    elif path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise PipelineError(f"--classes {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8, one "
                                "name a line") from None
        classes = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        raise PipelineError(f"--classes {path} does not exist; pass a folder of class folders or a text file")
    if len(classes) != num_classes:
        raise PipelineError(f"--classes {path} names {len(classes)} classes, the model has {num_classes}; pass the "
                            "list the checkpoint was trained on")
    return classes


def convert_file(src: Path, out: Path, configuration: str, overrides: Mapping[str, Any] | None = None,
                 classes: str | None = None, val_size: int | None = None) -> dict[str, Any]:
    """Convert ``src`` into ``out`` (written atomically, never over ``src``); returns the recorded origin."""
    from pipeline.checkpoint import check_checkpoint_output, save_checkpoint
    from pipeline.files import sha256_file

    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise PipelineError(f"--out {out} is the reference checkpoint itself; write the converted one elsewhere")
    check_checkpoint_output(out, "--out", [("--checkpoint", src), ("--classes", Path(classes) if classes else None)])
    state, meta = read_reference(src)
    model, facts = convert_state_dict(state, configuration, overrides, what=str(src))
    names = read_classes(classes, configuration, model.cfg.num_classes)
    conf = CONFIGURATIONS[configuration]
    size = conf.val_size if val_size is None else val_size
    split = {"seed": 0, "size": size, "source": "drawn by this pipeline from each command's --data; the reference's "
             "own validation indices are not used"}
    origin = {"implementation": IMPLEMENTATION, "configuration": configuration, "file": src.name,
              "sha256": sha256_file(src), **meta, **facts, "overrides": dict(overrides or {})}
    save_checkpoint(out, model, conf.model, names, split, origin=origin)
    return origin


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime convert", description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True, help="the reference's checkpoint (.pth.tar)")
    ap.add_argument("--config", required=True, choices=sorted(CONFIGURATIONS),
                    help="the reference's --data it was trained with")
    ap.add_argument("--out", type=Path, required=True, help="the converted checkpoint (.pt)")
    ap.add_argument("--classes", help="class names: the ImageFolder training folder, or a file with one name a line")
    ap.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE",
                    help="configuration option as this package names it (n_blocks=7, step=1, ...), repeatable")
    ap.add_argument("--val-size", type=int, default=None, help="validation images drawn from the training data")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.models import parse_overrides

    args = build_parser().parse_args(argv)
    if args.val_size is not None and args.val_size < 1:
        raise PipelineError(f"--val-size must be at least 1, got {args.val_size}")
    origin = convert_file(args.checkpoint, args.out, args.config, parse_overrides(args.model_opt), args.classes,
                          args.val_size)
    p = CONFIGURATIONS[args.config].preprocess
    crop = f", shorter side {p.resize_shorter} then centre crop" if p.resize_shorter else ""
    print(f"converted {origin['tensors']} tensors ({origin['values']:,} weights and BatchNorm statistics, {args.config} configuration"
          f"{', epoch ' + str(origin['epoch']) if 'epoch' in origin else ''}) -> {args.out}; stage 1 takes "
          f"{p.height}x{p.width} uint8 BGR frames{crop}, normalised with mean {list(p.mean)} std {list(p.std)} in RGB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
