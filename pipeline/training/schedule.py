"""Learning-rate schedules as a function of the (fractional) epoch, so a resumed run recomputes them.

- cosine: from the peak down to 0 along half a cosine;
- step: the peak, divided by 10 at 50% and again at 75% of the epochs (the paper's schedule);
- onecycle: linear from 0 to the peak during the warm-up, then linear down to 0 (triangular).
A warm-up (linear from 0) may precede cosine and step too; onecycle needs one.
"""

from __future__ import annotations

import math

from pipeline.training.options import TrainOptions


def lr_at(opts: TrainOptions, epoch: float) -> float:
    """The peak-relative learning rate times ``opts.lr`` at ``epoch`` (0 <= epoch <= opts.epochs)."""
    warm = opts.warmup_epochs
    if warm > 0 and epoch < warm:
        return opts.lr * epoch / warm
    if opts.schedule == "onecycle":
        return opts.lr * max(0.0, (opts.epochs - epoch) / (opts.epochs - warm))
    if opts.schedule == "cosine":
        return 0.5 * opts.lr * (1 + math.cos(math.pi * (epoch - warm) / (opts.epochs - warm)))
    return opts.lr * (0.1 ** ((epoch >= 0.5 * opts.epochs) + (epoch >= 0.75 * opts.epochs)))
