"""``anytime``: the pipeline's one command line, each subcommand one of the package's commands.

    anytime engines --checkpoint models/ranet_cifar10.pt --data DATA --out engines
    anytime profile --engines engines/ranet --data DATA
    anytime camera --engines engines/ranet --source 0 --fps 30
    anytime bench cascade --engines engines/ranet --data DATA
    anytime triton repo --engines engines/ranet --out triton/ranet

A subcommand is a name for a module's ``main(argv)``: the arguments after the name go to it
untouched, so options, checks and exit codes are that module's own (``anytime engines`` and
``python -m pipeline.build`` are one command). Only the module of the subcommand that runs is
imported: importing this one, or listing the subcommands, loads no torch, OpenCV or ONNX Runtime.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline import __version__
from pipeline.errors import PipelineError, cli_main

PROG = "anytime"


@dataclass(frozen=True)
class Command:
    """One subcommand: the module whose ``main(argv)`` runs it, or a group of subcommands of its own."""

    summary: str
    module: str = ""
    group: Mapping[str, Command] = field(default_factory=dict)


BENCHMARKS: dict[str, Command] = {
    "cascade": Command("the cascade's four figures: against the full network, ONNX Runtime against PyTorch, "
                       "INT8 against FP32, deadlines", "pipeline.benchmarks.cascade_benchmarks"),
    "architectures": Command("multi-exit architectures on one short schedule, judged by their budgeted curves",
                             "pipeline.benchmarks.architectures"),
    "anchors": Command("the cascade's budgeted curve against static networks trained on the same data",
                       "pipeline.benchmarks.static_anchors"),
    "video": Command("the temporal cascade against frame by frame on generated video",
                     "pipeline.benchmarks.video_benchmark"),
    "train-throughput": Command("training images per second, two setups side by side",
                                "pipeline.benchmarks.train_throughput"),
    "ablations": Command("the training recipe's ablation table: short runs of one change each",
                         "pipeline.benchmarks.training_ablations"),
    "imagenet-size": Command("MSDNet's ImageNet configuration at 224x224 through engines, profiler and camera app",
                             "pipeline.benchmarks.imagenet_size"),
    "triton": Command("cameras against a Triton server, client-driven and BLS, beside the in-process cascade",
                      "pipeline.serving.bench"),
    "streams": Command("many streams in one process: the batched cascade against one cascade per stream",
                       "pipeline.benchmarks.streams"),
}

TRITON: dict[str, Command] = {
    "setup": Command("prepare this Python for the bundled Triton server (numpy 1.x for its Python backend)",
                     "pipeline.serving.install"),
    "repo": Command("a Triton model repository from an engines folder: a model per stage and the cascade model",
                    "pipeline.serving.repository"),
    "serve": Command("check a model repository and serve it with the bundled Triton server",
                     "pipeline.serving.serve"),
    "fleet": Command("simulated cameras against a Triton server (or in process), bounded in time",
                     "pipeline.serving.fleet"),
}

COMMANDS: dict[str, Command] = {
    "engines": Command("per-stage ONNX, engines for this machine and the manifest, from a checkpoint",
                       "pipeline.build.cli"),
    "profile": Command("per-stage latency and accuracy-vs-latency curves; latency and exit thresholds into the "
                       "manifest", "pipeline.apps.profile_latency"),
    "camera": Command("live anytime classification of a camera, stream, video or images",
                      "pipeline.apps.camera"),
    "streams": Command("many cameras, streams, videos or image folders in one process, batched across streams",
                       "pipeline.apps.streams"),
    "temporal": Command("calibrate frame reuse, cuts, the temporal prior and smoothing into the manifest",
                        "pipeline.apps.temporal_calibrate"),
    "verify": Command("every built engine against the reference: per-exit logit differences and top-1 agreement",
                      "pipeline.verify"),
    "evaluate": Command("a checkpoint's per-exit accuracy and cost in PyTorch: the model card's table",
                        "pipeline.evaluate"),
    "train": Command("train a multi-exit model", "pipeline.training.cli"),
    "kept-run": Command("commit a long training run in progress on the current branch (keep), or its removal "
                        "(drop)", "pipeline.training.kept_run"),
    "clip": Command("a labelled test clip from a split: scenes seen by a moving camera, joined by cuts",
                    "pipeline.video.clip"),
    "convert": Command("a reference MSDNet checkpoint (MSDNet-PyTorch) in this project's format",
                       "pipeline.models.reference"),
    "flops": Command("a model's cumulative cost (FLOPs, parameters) to each exit", "pipeline.models.flops"),
    "corrupt": Command("corrupted copies of a split as ImageFolder trees", "pipeline.data.corruptions"),
    "factory": Command("a checkpoint of fresh weights from --model-factory or a registered --model",
                       "pipeline.models.factory"),
    "triton": Command("the cascade on Triton Inference Server: " + ", ".join(TRITON), group=TRITON),
    "bench": Command("the benchmarks: " + ", ".join(BENCHMARKS), group=BENCHMARKS),
}


def listing(prog: str, commands: Mapping[str, Command]) -> str:
    """The help of ``prog``: its usage, then each subcommand with its one line."""
    width = max(map(len, commands)) + 2
    rows = [f"  {name:<{width}}{command.summary}" for name, command in commands.items()]
    version = " [--version]" if prog == PROG else ""
    return (f"usage: {prog}{version} <command> [options]    ({prog} <command> --help: that command's options)\n\n"
            "commands:\n" + "\n".join(rows) + "\n")


def dispatch(prog: str, commands: Mapping[str, Command], argv: Sequence[str]) -> int:
    """Run the subcommand ``argv[0]`` of ``prog`` with the rest of ``argv``; list them without one."""
    if not argv or argv[0] in ("-h", "--help"):
        print(listing(prog, commands), end="")
        return 0
    name, rest = argv[0], list(argv[1:])
    command = commands.get(name)
    if command is None:
        near = difflib.get_close_matches(name, commands, n=1)
        raise PipelineError(f"{prog} has no command {name!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                            + f"; choose one of {', '.join(commands)}")
    if command.group:
        return dispatch(f"{prog} {name}", command.group, rest)
    code = importlib.import_module(command.module).main(rest)  # its parser is named `anytime <name>`
    return 0 if code is None else int(code)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """``anytime [--version] <command> [options]``; ``anytime`` alone lists the commands."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--version"]:
        print(f"{PROG} {__version__}")
        return 0
    return dispatch(PROG, COMMANDS, args)


if __name__ == "__main__":
    sys.exit(main())
