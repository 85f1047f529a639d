"""Benchmark 7: N live streams in one process, the batched cascade against one cascade per stream.

    anytime bench streams --engines engines/ranet --data DATA [--streams 1,4,16] [--fps 30] \\
        [--seconds 4] [--repeats 2] [--json reports/streams_benchmark.json]

Each stream is a demo clip of the test split (``pipeline.video.scenes``, rendered and converted to
the model's input beforehand: the figures are the classification's) played as a live camera at
``--fps``: frame i arrives at i / fps, every stream in step, and a stream that falls behind takes its
newest frame and drops the older ones, as ``pipeline.video.latest`` does. Each frame's budget is one
frame interval counted from its arrival. (a) batched: one loop, one :class:`BatchedCascade`; each
tick classifies the newest frame of every stream as one batch. (b) threads: one thread and one
:class:`Cascade` (its own engines) per stream, in the same process. The two take turns, ``--repeats``
times each per N. Figures: answered frames/s over all streams, per-stream p50 and p99 latency from a
frame's arrival to its answer (the median stream's p50, the worst stream's p99), late answers
(after the budget), dropped frames (never answered) and the accuracy of the answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends import BACKENDS
from pipeline.benchmarks.common import bench_inputs, command_text
from pipeline.data.options import add_data_options
from pipeline.device import check_threads
from pipeline.errors import PipelineError, check_seed, cli_main
from pipeline.files import check_output, write_output
from pipeline.names import PRECISIONS
from pipeline.runtime.cascade import Cascade
from pipeline.serving.fleet import MAX_FPS, MAX_SECONDS


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime bench streams", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    add_data_options(ap)
    ap.add_argument("--backend", default="auto", choices=["auto", *BACKENDS])
    ap.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    ap.add_argument("--policy", default="default")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of every cascade")
    ap.add_argument("--streams", default="1,4,16", help="comma list of stream counts")
    ap.add_argument("--fps", type=float, default=30.0, help="each stream's frame rate; budget = one frame interval")
    ap.add_argument("--budget-ms", type=float, default=None,
                    help="each frame's budget, when other than one frame interval (e.g. to offer more frames than "
                         "either mode can take, at the same deadline)")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each stream's clip")
    ap.add_argument("--repeats", type=int, default=2, help="turns of each mode per stream count")
    ap.add_argument("--shards", type=int, default=1,
                    help="(a) as this many batched loops, each on its share of the streams in a thread of its own "
                         "(one per core, where stage runs take one core each)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the first stream's clip (stream i: seed + i)")
    ap.add_argument("--json", type=Path, default=Path("reports/streams_benchmark.json"))
    return ap


class _Tally:
    """What one mode's run answered: per stream, each answered frame's latency and correctness; drops."""

    def __init__(self, n: int):
        self.latency: list[list[float]] = [[] for _ in range(n)]
        self.correct = [0] * n
        self.late = [0] * n
        self.dropped = [0] * n
        self.wall_s = 0.0

    def add(self, stream: int, latency_ms: float, right: bool, budget_ms: float) -> None:
        self.latency[stream].append(latency_ms)
        self.correct[stream] += int(right)
        self.late[stream] += int(latency_ms > budget_ms)


def _wait_for(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def run_batched(cascade: Cascade, clips: list[np.ndarray], labels: list[np.ndarray], fps: float,
                budget: float) -> _Tally:
    """(a): one loop; each tick the newest frame of every stream, as one batch."""
    from pipeline.runtime.batched import BatchedCascade

    batched, n, frames = BatchedCascade(cascade), len(clips), min(len(c) for c in clips)
    tally, done = _Tally(n), -1
    t0 = time.perf_counter() + 0.05
    while True:
        _wait_for(t0 + (done + 1) / fps)
        i = min(frames - 1, int((time.perf_counter() - t0) * fps))  # the newest frame that has arrived
        for s in range(n):
            tally.dropped[s] += i - done - 1
        arrived = t0 + i / fps
        results = batched.classify_batch([c[i] for c in clips], [budget] * n, arrived=[arrived] * n)
        for s, r in enumerate(results):
            tally.add(s, r.total_ms, r.label == labels[s][i], budget)
        done = i
        if done >= frames - 1:
            break
    tally.wall_s = time.perf_counter() - t0
    return tally


def run_sharded(cascades: list[Cascade], clips: list[np.ndarray], labels: list[np.ndarray], fps: float,
                budget: float) -> _Tally:
    """(a) with one batched loop per cascade, each in its own thread, stream s in loop s % len(cascades)."""
    shards = [list(range(i, len(clips), len(cascades))) for i in range(len(cascades))]
    shards = [s for s in shards if s]
    parts: list[_Tally | None] = [None] * len(shards)

    def loop(i: int) -> None:
        parts[i] = run_batched(cascades[i], [clips[s] for s in shards[i]], [labels[s] for s in shards[i]], fps, budget)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(shards))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally = _Tally(len(clips))
    for streams, part in zip(shards, parts):
        assert part is not None
        for j, s in enumerate(streams):
            tally.latency[s], tally.correct[s] = part.latency[j], part.correct[j]
            tally.late[s], tally.dropped[s] = part.late[j], part.dropped[j]
        tally.wall_s = max(tally.wall_s, part.wall_s)
    return tally


def run_threads(cascades: list[Cascade], clips: list[np.ndarray], labels: list[np.ndarray], fps: float,
                budget: float) -> _Tally:
    """(b): one thread and one cascade per stream, each taking its stream's newest frame."""
    n, frames = len(clips), min(len(c) for c in clips)
    tally = _Tally(n)
    t0 = time.perf_counter() + 0.05
    lock = threading.Lock()

    def stream(s: int) -> None:
        done = -1
        while done < frames - 1:
            _wait_for(t0 + (done + 1) / fps)
            now = time.perf_counter()
            i = min(frames - 1, int((now - t0) * fps))
            arrived = t0 + i / fps
            left = max(1e-3, budget - (now - arrived) * 1e3)
            r = cascades[s].classify(clips[s][i], budget_ms=left)
            latency = (time.perf_counter() - arrived) * 1e3
            with lock:
                tally.dropped[s] += i - done - 1
                tally.add(s, latency, r.label == labels[s][i], budget)
            done = i

    threads = [threading.Thread(target=stream, args=(s,)) for s in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally.wall_s = time.perf_counter() - t0
    return tally


def figures(tallies: list[_Tally]) -> dict[str, Any]:
    """One mode's figures over its repeats."""
    n = len(tallies[0].latency)
    per_stream = [np.concatenate([np.asarray(t.latency[s]) for t in tallies]) for s in range(n)]
    answered = sum(len(x) for x in per_stream)
    return {"frames_per_s": answered / sum(t.wall_s for t in tallies),
            "p50_ms": float(np.median([np.percentile(x, 50) for x in per_stream])),
            "p99_ms": float(max(np.percentile(x, 99) for x in per_stream)),
            "answered": answered, "late": sum(sum(t.late) for t in tallies),
            "dropped": sum(sum(t.dropped) for t in tallies),
            "accuracy": 100.0 * sum(sum(t.correct) for t in tallies) / max(1, answered)}


def format_table(results: dict[str, Any]) -> str:
    lines = [f"benchmark 7: {results['device_line']}; {results['fps']:g} frames/s per stream, budget "
             f"{results['budget_ms']:.1f} ms; batched in {results['shards']} loop(s)", "",
             "| streams | mode | frames/s | p50 ms | p99 ms | late | dropped | accuracy % |",
             "|---|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        for mode in ("batched", "threads"):
            f = row[mode]
            lines.append(f"| {row['streams']} | {mode} | {f['frames_per_s']:.1f} | {f['p50_ms']:.2f} | "
                         f"{f['p99_ms']:.2f} | {f['late']} | {f['dropped']} | {f['accuracy']:.2f} |")
        lines.append(f"| {row['streams']} | ratio | {row['speedup']:.2f}x | | | | | |")
    return "\n".join(lines) + "\n"


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.apps.temporal_calibrate import clip_frames
    from pipeline.backends.facts import describe_device, device_facts
    from pipeline.data.options import DataOptions
    from pipeline.data.splits import split_images
    from pipeline.manifest import load_manifest
    from pipeline.video.scenes import ClipSpec, plan_clip

    args = build_parser().parse_args(argv)
    try:
        counts = sorted({int(x) for x in args.streams.split(",") if x.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1 or args.repeats < 1 or args.shards < 1:
        raise PipelineError("--streams should list counts of 1 or more; --repeats and --shards should be positive")
    for option, value, most in (("--fps", args.fps, MAX_FPS), ("--seconds", args.seconds, MAX_SECONDS),
                                ("--budget-ms", args.budget_ms, MAX_SECONDS * 1e3)):
        if value is not None and not 0 < value <= most:  # also refuses nan and inf
            raise PipelineError(f"{option} should be a positive number of at most {most:g}; got {value}")
    check_threads(args.threads)
    check_seed(args.seed, "--seed")
    check_output(args.json, "--json", bench_inputs(args))
    started = time.time()
    m = load_manifest(args.engines, verify=True)
    data = DataOptions.from_args(args)
    images, labels = split_images(m, data.source, "test", data.cache_dir)
    size, order = m.input.size or (images.shape[1], images.shape[2]), m.input.colour_order or "BGR"
    frames = max(1, int(round(args.seconds * args.fps)))
    clips, truth = [], []
    for s in range(max(counts)):
        spec = ClipSpec(scenes=max(1, -(-frames // 30)), min_frames=30, max_frames=60, size=(96, 128))
        plan = plan_clip(labels, spec, args.seed + s)
        clips.append(clip_frames(plan, images, size, order)[:frames])
        truth.append(plan.frame_labels()[:frames])

    def load() -> Cascade:
        return Cascade.from_folder(args.engines, args.backend, args.precision, args.policy, threads=args.threads)

    rows = []
    backend = ""
    budget = args.budget_ms or 1000.0 / args.fps
    for n in counts:
        loops, per_stream = [load() for _ in range(min(n, args.shards))], [load() for _ in range(n)]
        backend = loops[0].backend
        try:
            runs: dict[str, list[_Tally]] = {"batched": [], "threads": []}
            for _ in range(args.repeats):  # taking turns: a drift in the machine's speed weighs on both
                runs["batched"].append(run_sharded(loops, clips[:n], truth[:n], args.fps, budget))
                runs["threads"].append(run_threads(per_stream, clips[:n], truth[:n], args.fps, budget))
        finally:
            for c in [*loops, *per_stream]:
                c.close()
        row: dict[str, Any] = {"streams": n, **{mode: figures(t) for mode, t in runs.items()}}
        row["speedup"] = row["batched"]["frames_per_s"] / row["threads"]["frames_per_s"]
        rows.append(row)
        print(f"{n} streams: batched {row['batched']['frames_per_s']:.1f} frames/s, threads "
              f"{row['threads']['frames_per_s']:.1f} ({time.time() - started:.0f} s)", file=sys.stderr)
    facts = device_facts([backend], args.threads)
    results = {"command": command_text("streams", argv),
               "device": facts, "device_line": describe_device(facts), "fps": args.fps, "budget_ms": budget,
               "shards": args.shards,
               "frames": frames,
               "backend": backend, "precision": args.precision, "rows": rows,
               "seconds": time.time() - started}
    print(format_table(results), end="")
    write_output(args.json, json.dumps(results, indent=2) + "\n", "--json", bench_inputs(args))
    print(f"wrote {args.json} ({results['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
