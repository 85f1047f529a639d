"""The fleet's in-process batched mode: every camera's newest frame answered in one loop by a ``BatchedCascade``.

This is what ``anytime streams`` does in one process, run on the fleet's simulated cameras, so that
benchmark 8 sets it beside the server's modes on the same feeds, frame rate and deadlines. Each pass
of the loop takes, from every camera, the newest frame that has arrived and not been answered (older
ones are skipped: their deadlines are the loop's to miss, as a camera thread's would be), and runs the
cascade's stages once on that batch; early exit and the deadline rule hold per frame. A batch is only as
large as stage 1 can finish within its members' deadlines (``admit``): past that, frames get no answer, not
late ones.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.serving.report import IN_BUDGET, LATE, NO_ANSWER, Outcome

if TYPE_CHECKING:
    from pipeline.manifest import Manifest
    from pipeline.serving.cameras import Feed
    from pipeline.serving.fleet import FleetOptions


Taken = tuple  # (camera, tick, arrival s, frame, truth)


def admit(taken: list[Taken], budget_s: float, now: float, predict: Callable[..., float]
          ) -> tuple[list[Taken], list[Taken]]:
    """(run, shed): the largest set of frames, most time left first, whose every member's time left covers stage 1's
    predicted cost for a batch of that size; the rest get no answer rather than a late one (stage 1 always runs on
    every frame it is given, so a batch too large for the budget would make every answer in it late)."""
    order = sorted(taken, key=lambda t: t[2], reverse=True)  # the latest arrival has the most time left
    for size in range(len(order), 0, -1):
        left_ms = (order[size - 1][2] + budget_s - now) * 1e3
        if predict(1, batch=size) <= left_ms:
            return order[:size], order[size:]
    return [], order


def run_batched(manifest: "Manifest", engines: Path, feeds: Sequence["Feed"], opts: "FleetOptions",
                clock: Callable[[], float] = time.perf_counter) -> list[Outcome]:
    """Every camera's frames for ``opts.seconds``, camera i's arrivals staggered by i / cameras of a frame period
    as the threaded modes' are; one outcome per frame shown."""
    from pipeline.backends import REFERENCE_BACKEND
    from pipeline.runtime.batched import BatchedCascade
    from pipeline.runtime.cascade import Cascade

    n, period, budget_s = opts.cameras, 1.0 / opts.fps, opts.budget_s
    cascade = Cascade.from_folder(engines, backend=REFERENCE_BACKEND, precision=opts.precision, policy=opts.policy)
    batched = BatchedCascade(cascade)
    outcomes: list[Outcome] = []
    t0 = clock() + 0.2
    starts = [t0 + period * i / n for i in range(n)]
    end = t0 + opts.seconds
    nxt = [0] * n  # each camera's first frame not yet taken
    last = [math.ceil((end - s) / period) - 1 for s in starts]  # each camera's last frame shown before ``end``
    with cascade:
        while True:
            now = clock()
            taken = []  # (camera, tick, arrival, frame, truth)
            for i in range(n):
                tick = min(last[i], math.floor((now - starts[i]) / period)) if now >= starts[i] else -1
                if tick < nxt[i]:
                    continue
                for skipped in range(nxt[i], tick):  # arrived while the loop was busy: superseded
                    outcomes.append(Outcome(i, skipped, NO_ANSWER, None, feeds[i].at(skipped)[1], why="skipped"))
                nxt[i] = tick + 1
                arrival = starts[i] + tick * period
                frame, truth = feeds[i].at(tick)
                if now >= arrival + budget_s:
                    outcomes.append(Outcome(i, tick, NO_ANSWER, None, truth, why="skipped"))
                    continue
                taken.append((i, tick, arrival, frame, truth))
            if not taken:
                waiting = [starts[i] + nxt[i] * period for i in range(n) if nxt[i] <= last[i]]
                if not waiting:
                    return outcomes
                time.sleep(max(0.0, min(waiting) - clock()))
                continue
            taken, shed = admit(taken, budget_s, clock(), cascade.predictor.predict)
            outcomes += [Outcome(i, tick, NO_ANSWER, None, truth, why="not run") for i, tick, _, _, truth in shed]
            if not taken:
                continue
            results = batched.classify_batch([t[3] for t in taken], [budget_s * 1e3] * len(taken),
                                             arrived=[t[2] for t in taken])
            for (i, tick, _, _, truth), r in zip(taken, results):
                status = IN_BUDGET if r.total_ms <= budget_s * 1e3 else LATE
                outcomes.append(Outcome(i, tick, status, r.total_ms, truth, r.label, r.exit))
