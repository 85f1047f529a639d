"""Training throughput on this machine: images per second of whole optimiser steps, two setups side by side.

    anytime bench train-throughput [--model msdnet_cifar] [--rounds 6] [--steps 6] \\
        [--setup "before=batch=64,bf16"] [--setup "after=batch=128,bf16,compile,channels_last"] [--json FILE]

A step is what the training loop does: augmentation of a uint8 batch, forward (eager or compiled,
optionally bf16 autocast, channels-last), the multi-exit loss, backward and an SGD step. Setups take
turns in rounds of ``--steps`` steps, so a change in the machine's speed weighs on all of them; the
figure is each setup's median over rounds and the ratio of medians against the first setup.
Compilation and the first round are warm-up and not counted. Synthetic frames: throughput does not
depend on the pixels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, cli_main

FLAGS = ("bf16", "compile", "channels_last", "nesterov")


@dataclass(frozen=True)
class Setup:
    name: str
    batch: int = 64
    bf16: bool = False
    compile: bool = False
    channels_last: bool = False
    nesterov: bool = False

    @classmethod
    def parse(cls, text: str) -> "Setup":
        """``name=batch=128,bf16,compile`` -> Setup."""
        name, sep, rest = text.partition("=")
        if not sep or not name:
            raise PipelineError(f"--setup {text!r} should look like NAME=batch=128,bf16,compile")
        kw: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if key == "batch" and eq and value.isdigit() and int(value) > 0:
                kw["batch"] = int(value)
            elif key in FLAGS and not eq:
                kw[key] = True
            else:
                raise PipelineError(f"--setup {text!r}: unknown item {item!r}; use batch=N and any of "
                                    f"{', '.join(FLAGS)}")
        return cls(name, **kw)


def make_step(setup: Setup, model_name: str, threads: int, overrides: dict[str, Any]) -> Any:
    """A closure running one training step of ``setup`` on a fresh model; returns images done.

    The step is the training loop's own (``build_state``, ``train_step``), so what is timed is what a run does.
    """
    import torch

    from pipeline.models import model_config
    from pipeline.training.augment import augment
    from pipeline.training.loop import CompiledOrEager, train_step
    from pipeline.training.options import TrainOptions
    from pipeline.training.setup import build_state

    torch.set_num_threads(threads)
    opts = TrainOptions(out=Path("unused.pt"), model=model_name, model_overrides=overrides, batch_size=setup.batch,
                        lr=0.05, nesterov=setup.nesterov, weight_decay=5e-4, channels_last=setup.channels_last,
                        bf16=setup.bf16, compile="on" if setup.compile else "off")
    cfg = model_config(model_name, **overrides)
    state = build_state(opts, cfg, "cpu")
    net = CompiledOrEager(state.model, lambda msg: print(msg, file=sys.stderr)) if setup.compile else state.model
    p = cfg.preprocess
    gen = torch.Generator().manual_seed(0)
    pool = torch.randint(0, 256, (1024, p.height, p.width, 3), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, cfg.num_classes, (1024,), generator=gen)

    def step() -> int:
        idx = torch.randint(0, len(pool), (setup.batch,), generator=gen)
        train_step(net, state, augment(pool[idx], gen), labels[idx], opts, "cpu", setup.bf16)
        return setup.batch

    return step


def measure(setups: list[Setup], model_name: str, rounds: int, steps: int, threads: int,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    runners = {s.name: make_step(s, model_name, threads, overrides or {}) for s in setups}
    rates: dict[str, list[float]] = {s.name: [] for s in setups}
    for name, step in runners.items():  # warm-up: compilation, allocator, caches
        for _ in range(2):
            step()
    for r in range(rounds + 1):
        for name, step in runners.items():
            t0 = time.perf_counter()
            done = sum(step() for _ in range(steps))
            if r:  # round 0 is warm-up
                rates[name].append(done / (time.perf_counter() - t0))
    first = setups[0].name
    med = {n: statistics.median(v) for n, v in rates.items()}
    return {"model": model_name, "threads": threads, "rounds": rounds, "steps_per_round": steps,
            "setups": [{**vars(s), "images_per_second": med[s.name], "min": min(rates[s.name]),
                        "max": max(rates[s.name]), "ratio": med[s.name] / med[first]} for s in setups]}


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anytime bench train-throughput", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="msdnet_cifar")
    ap.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    ap.add_argument("--setup", action="append", default=[], help="NAME=batch=N,bf16,compile,channels_last,nesterov")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.threads < 1:
        raise PipelineError("--rounds, --steps and --threads must be at least 1")
    texts = args.setup or ["before=batch=64,bf16", "after=batch=128,bf16,compile,channels_last"]
    setups = [Setup.parse(t) for t in texts]
    if len({s.name for s in setups}) != len(setups):
        raise PipelineError("--setup names must differ")
    if args.json is not None and args.json.exists() and args.json.is_dir():
        raise PipelineError(f"--json {args.json} is a folder; name a file")
    from pipeline.models import parse_overrides

    res = measure(setups, args.model, args.rounds, args.steps, args.threads, parse_overrides(args.model_opt))
    import torch

    from pipeline.training.setup import bf16_is_native

    native = bf16_is_native("cpu")
    print(f"training throughput, {args.model}, {args.threads} threads, median of {args.rounds} rounds "
          f"of {args.steps} steps; CPU {torch.backends.cpu.get_cpu_capability()}, bfloat16 in hardware: "
          + ("yes" if native else "no (a bf16 setup here is emulated; training itself falls back to float32)"))
    print("| setup | batch | bf16 | compile | channels-last | images/s (min-max) | vs first |")
    print("|---|---|---|---|---|---|---|")
    for s in res["setups"]:
        print(f"| {s['name']} | {s['batch']} | {s['bf16']} | {s['compile']} | {s['channels_last']} | "
              f"{s['images_per_second']:.0f} ({s['min']:.0f}-{s['max']:.0f}) | {s['ratio']:.2f}x |")
    if args.json is not None:
        from pipeline.files import atomic_write_text

        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
