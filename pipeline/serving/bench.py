"""Benchmark 8: N cameras against a Triton server, client-driven and BLS, beside the in-process cascades.

    anytime bench triton --engines engines/ranet --data DATA \\
        [--cameras 1,4,16,64] [--modes local,batched,client,bls] [--seconds 10] [--fps 30] \\
        [--json reports/triton_benchmark.json]

The repository is written from the engines into a temporary folder (or ``--repo`` is served) and
the bundled server started on free loopback ports. First, what one frame costs each way on the
same frames, without a deadline and one at a time: the in-process cascade, the client-driven
cascade (a round trip per stage, the carried maps both ways) and one request to the ``cascade``
BLS model (a BLS hop per stage inside the server); with the per-stage round trip and the bytes
each stage sends and receives. Then each camera count in each mode for ``--seconds``
(``pipeline.serving.fleet``): throughput, latency percentiles, deadline misses, exits, accuracy. The
in-process rows are ``local`` (one cascade per camera, in threads) and ``batched`` (one loop that runs each
stage once on the newest frames of all cameras, as ``anytime streams`` does).
The server and the clients share this machine's cores: read the ratios between rows, and say so.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError, cli_main
from pipeline.files import check_output, write_output

MODES = ("local", "batched", "client", "bls")


def build_parser() -> argparse.ArgumentParser:
    from pipeline.data.options import add_data_options

    ap = argparse.ArgumentParser(prog="anytime bench triton", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    add_data_options(ap, help="the labelled images the generated clips show (test split)")
    ap.add_argument("--repo", type=Path, default=None, help="serve this repository (default: write one for --engines)")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--cameras", default="1,4,16,64", help="comma list of camera counts")
    ap.add_argument("--modes", default=",".join(MODES), help="comma list of " + ", ".join(MODES))
    ap.add_argument("--seconds", type=float, default=10.0, help="per camera count and mode")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--budget-ms", type=float, default=None, help="each frame's deadline (default: one frame period)")
    ap.add_argument("--frames", type=int, default=100, help="frames of the one-at-a-time cost comparison")
    ap.add_argument("--json", type=Path, default=Path("reports/triton_benchmark.json"))
    return ap


def frame_costs(url: str, manifest: Any, engines: Path, frames: np.ndarray, precision: str) -> dict[str, Any]:
    """Per frame, one at a time and without a deadline: in-process, client-driven and BLS ms; per stage round trips."""
    from pipeline.runtime.cascade import Cascade
    from pipeline.serving.remote import CascadeModelClient, RemoteChain, remote_cascade

    local = Cascade.from_folder(engines, backend="onnxruntime", precision=precision)
    remote = remote_cascade(url, manifest)
    bls = CascadeModelClient(url, manifest)
    bls.activate()
    chain = remote.chain
    assert isinstance(chain, RemoteChain)
    out: dict[str, list[float]] = {"local": [], "client": [], "bls": [], "bls_server": []}
    exits: dict[str, list[int]] = {"local": [], "client": [], "bls": []}
    try:
        for f in frames[:5]:  # warm every path
            local.classify(f)
            remote.classify(f)
            bls.classify(f)
        chain.round_trips = [[] for _ in chain.round_trips]
        sent0, got0 = chain.conn.bytes_sent, chain.conn.bytes_received
        for f in frames:
            for name, run in (("local", lambda: local.classify(f).exit), ("client", lambda: remote.classify(f).exit)):
                t = time.perf_counter()
                exits[name].append(run())
                out[name].append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            answer = bls.classify(f)
            out["bls"].append((time.perf_counter() - t) * 1e3)
            out["bls_server"].append(answer.server_ms)
            exits["bls"].append(answer.exit)
        stage_runs = [len(t) for t in chain.round_trips]
        stage_p50 = [float(np.median(t)) if t else None for t in chain.round_trips]
        sent, got = chain.conn.bytes_sent - sent0, chain.conn.bytes_received - got0
    finally:
        local.close()
        remote.close()
        bls.close()
    in_process = [r["p50_ms"] for r in manifest.latency[f"onnxruntime/{precision}"].stages] \
        if f"onnxruntime/{precision}" in manifest.latency else None
    maps = carried_maps_cost(url, manifest, frames)
    return {"frames": len(frames),
            "ms_per_frame": {k: {"mean": float(np.mean(v)), "p50": float(np.median(v)),
                                 "p99": float(np.percentile(v, 99))} for k, v in out.items()},
            "mean_exit": {k: float(np.mean(v)) for k, v in exits.items()},
            "same_exits": {k: float(np.mean(np.array(v) == np.array(exits["local"]))) for k, v in exits.items()},
            "round_trip_p50_ms": stage_p50, "stage_runs": stage_runs, "in_process_stage_p50_ms": in_process,
            "bytes_per_frame": {"sent": sent / len(frames), "received": got / len(frames)},
            "stage1_round_trip_ms": maps}


def carried_maps_cost(url: str, manifest: Any, frames: np.ndarray) -> dict[str, float]:
    """Stage 1's round trip p50 asking for its logits alone and for its logits and carried maps: what carrying
    the maps on the wire costs (what keeping them on the server would save on the way back)."""
    from pipeline.serving.wire import Connection

    spec = manifest.stages[0]
    names = [t.name for t in spec.outputs]
    conn = Connection(url)
    times: dict[str, list[float]] = {"logits_only": [], "with_maps": []}
    try:
        for f in frames:
            for key, wanted in (("logits_only", names[:1]), ("with_maps", names)):
                t = time.perf_counter()
                conn.infer("stage1", {spec.inputs[0].name: f[None]}, wanted, timeout_s=30)
                times[key].append((time.perf_counter() - t) * 1e3)
    finally:
        conn.close()
    return {k: float(np.median(v)) for k, v in times.items()}


def table(rows: list[dict[str, Any]]) -> str:
    def f(v: Any, fmt: str = ".1f") -> str:
        return "-" if v is None else format(v, fmt)

    lines = ["| cameras | mode | offered /s | answers /s | in budget /s | p50 ms | p99 ms | max ms | misses % "
             "(late / no answer) | mean exit | accuracy % answered / all |", "|---" * 11 + "|"]
    for r in rows:
        lines.append(f"| {r['cameras']} | {r['mode']} | {r['offered_per_s']:.0f} | {f(r['answers_per_s'])} | "
                     f"{f(r['in_budget_per_s'])} | {f(r['p50_ms'], '.2f')} | {f(r['p99_ms'], '.2f')} | "
                     f"{f(r['max_ms'], '.2f')} | {f(100 * r['miss_rate'])} ({r['late']} / {r['no_answer']}) | "
                     f"{f(r['mean_exit'], '.2f')} | {f(r['accuracy_answered'], '.2f')} / "
                     f"{f(r['accuracy_all'], '.2f')} |")
    return "\n".join(lines) + "\n"


def costs_text(c: dict[str, Any]) -> str:
    m = c["ms_per_frame"]
    lines = [f"One frame at a time, no deadline ({c['frames']} frames; mean exit local {c['mean_exit']['local']:.2f}, "
             f"client {c['mean_exit']['client']:.2f}, BLS {c['mean_exit']['bls']:.2f}):",
             f"  in-process cascade {m['local']['p50']:.2f} ms p50 | client-driven {m['client']['p50']:.2f} ms | "
             f"BLS {m['bls']['p50']:.2f} ms (of which {m['bls_server']['p50']:.2f} ms inside the cascade model)",
             "  round trip per stage p50 (ms): " + " ".join(f(x) for x in c["round_trip_p50_ms"])
             + (" | in-process stage p50: " + " ".join(f(x) for x in c["in_process_stage_p50_ms"])
                if c["in_process_stage_p50_ms"] else ""),
             f"  carried over the wire per frame: {c['bytes_per_frame']['sent'] / 1e3:.0f} kB sent, "
             f"{c['bytes_per_frame']['received'] / 1e3:.0f} kB received",
             f"  stage 1 round trip p50: {c['stage1_round_trip_ms']['logits_only']:.2f} ms asking for its logits "
             "alone, "
             f"{c['stage1_round_trip_ms']['with_maps']:.2f} ms with its carried maps"]
    return "\n".join(lines) + "\n"


def f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.data.options import DataOptions
    from pipeline.backends.facts import describe_device, device_facts
    from pipeline.manifest import load_manifest
    from pipeline.serving.cameras import clip_feeds
    from pipeline.serving.fleet import FleetOptions, run_fleet
    from pipeline.serving.repository import RepoOptions, write_repository
    from pipeline.serving.serve import check_repository
    from pipeline.serving.server import TritonServer

    args = build_parser().parse_args(argv)
    inputs = [("--engines", args.engines), ("--repo", args.repo), ("--data", Path(args.data) if args.data else None)]
    check_output(args.json, "--json", inputs)
    try:
        counts = [int(x) for x in args.cameras.split(",") if x.strip()]
    except ValueError:
        raise PipelineError(f"--cameras should be a comma list of whole numbers, got {args.cameras!r}") from None
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not counts or min(counts) < 1 or not modes or any(m not in MODES for m in modes):
        raise PipelineError(f"--cameras needs counts of 1 or more and --modes a comma list of {', '.join(MODES)}")
    for n in counts:
        FleetOptions(n, args.fps, args.seconds, "local", args.budget_ms).check()
    started = time.time()
    manifest = load_manifest(args.engines)
    data = DataOptions.from_args(args)
    feeds = clip_feeds(manifest, data.source, data.cache_dir, max(counts), int(args.fps * args.seconds) + 1)
    facts = device_facts(["onnxruntime"], 1)
    results: dict[str, Any] = {
        "command": " ".join(shlex.quote(x) for x in ["anytime", "bench", "triton",
                                                     *(sys.argv[1:] if argv is None else argv)]),
        "device": facts, "device_line": describe_device(facts),
        "note": "the server, the clients and the in-process cascades share this machine's cores"}
    with tempfile.TemporaryDirectory(prefix="anytime-triton-bench-") as tmp:
        repo = args.repo
        if repo is None:
            repo = Path(tmp) / "repository"
            write_repository(args.engines, repo, RepoOptions(precision=args.precision))
        check_repository(repo)
        with TritonServer(repo, log_path=Path(tmp) / "server.log") as server:
            frames = feeds[0].frames[:args.frames]
            results["costs"] = frame_costs(server.url, manifest, args.engines, frames, args.precision)
            print(costs_text(results["costs"]), flush=True)
            rows = []
            for n in counts:
                for mode in modes:
                    opts = FleetOptions(n, args.fps, args.seconds, mode, args.budget_ms, url=server.url,
                                        precision=args.precision)
                    summary = run_fleet(manifest, args.engines, feeds[:n], opts)
                    rows.append(summary)
                    print(table([summary]).splitlines()[-1], flush=True)
                    time.sleep(1.0)  # let the server drain before the next row
    results["rows"] = rows
    results["seconds"] = time.time() - started
    print(f"\nDevice: {results['device_line']} ({results['note']})\n")
    print(costs_text(results["costs"]))
    print(table(rows), end="")
    write_output(args.json, json.dumps(results, indent=1) + "\n", "--json", inputs)
    print(f"wrote {args.json} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
