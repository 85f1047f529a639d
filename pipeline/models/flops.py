"""Cumulative cost to each exit, counted with torch's own FLOP counter (``torch.utils.flop_counter``).

FLOPs are torch's count: 2 per multiply-accumulate of convolutions and matrix products (the
paper's "FLOPs" are multiply-adds, i.e. half of this). Parameters are cumulative over stages 1..k.

    python -m pipeline.models.flops --model msdnet_cifar [--checkpoint models/x.pt]
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pipeline.errors import cli_main

if TYPE_CHECKING:
    from pipeline.models.msdnet import MSDNet


def exit_costs(model: "MSDNet") -> list[dict[str, int]]:
    """Per exit k: cumulative ``flops`` and ``params`` of stages 1..k for one frame, and the stage's own."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    p = model.cfg.preprocess
    carried: tuple = (torch.zeros(1, p.height, p.width, 3, dtype=torch.uint8),)
    rows, total_flops, total_params = [], 0, 0
    model.eval()
    for k, stage in enumerate(model.stages, start=1):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            out = stage(*carried)
        carried = out[1:]
        flops = int(counter.get_total_flops())
        params = sum(t.numel() for t in stage.parameters())
        total_flops += flops
        total_params += params
        rows.append({"exit": k, "stage_flops": flops, "stage_params": params,
                     "flops": total_flops, "params": total_params})
    return rows


def format_costs(rows: list[dict]) -> str:
    lines = ["| exit | cumulative MFLOPs | cumulative params (M) | stage MFLOPs |", "|---|---|---|---|"]
    lines += [f"| {r['exit']} | {r['flops'] / 1e6:.2f} | {r['params'] / 1e6:.3f} | {r['stage_flops'] / 1e6:.2f} |"
              for r in rows]
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anytime flops", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="msdnet_cifar")
    ap.add_argument("--checkpoint", help="take the config from this checkpoint instead of --model")
    args = ap.parse_args(argv)
    if args.checkpoint:
        from pipeline.models.loading import load_model

        model, _ = load_model(args.checkpoint)
    else:
        from pipeline.models import create_model

        model = create_model(args.model)
    print(format_costs(exit_costs(model)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
