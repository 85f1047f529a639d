"""Benchmark 5: the temporally adaptive cascade against the frame-by-frame cascade on generated video.

    anytime bench video --engines engines/ranet --data DATA \\
        [--precisions fp32,int8] [--scenes 200] [--continuous-scenes 80] [--calib-scenes 300] \\
        [--json reports/video_benchmark.json]

For each precision: exit thresholds as the manifest's ``default`` policy has them (calibrated here
on the validation split, costs in FLOPs, when the manifest has none); the temporal settings
calibrated on validation clips (``pipeline.apps.temporal_calibrate``, as ``make temporal`` does); then
two test-split clips (``pipeline.video.scenes``): a mixed one (pans, fast moves, static stretches,
cuts) and one whose camera never stops. On every frame of each, the frame-by-frame cascade and
the temporal cascade (wrapping the same Cascade: same engines, same thresholds) run one after the
other, in alternating order, each timed around its ``classify`` call: the temporal one includes
its change measure. Figures: mean and p99 cascade time per frame and their ratio, accuracy of
each (and the difference's standard error, taking scenes as the independent units: reuse makes
a scene's frames err together), the reuse rate, answer flips, and the share of cuts whose answer
comes from the new scene by the frame after the cut.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.backends import BACKENDS
from pipeline.data.options import add_data_options
from pipeline.benchmarks.common import bench_inputs, command_text, write_report
from pipeline.errors import PipelineError, check_seed, cli_main
from pipeline.files import check_output
from pipeline.runtime.cascade import Cascade
from pipeline.temporal.cascade import TemporalCascade
from pipeline.temporal.rule import TemporalSettings


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime bench video", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    add_data_options(ap)
    ap.add_argument("--backend", default=BACKENDS[0], choices=list(BACKENDS))
    ap.add_argument("--precisions", default="fp32,int8", help="comma list; those without engines are skipped")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scenes", type=int, default=200, help="scenes of the mixed test clip (30 to 60 frames each)")
    ap.add_argument("--continuous-scenes", type=int, default=80, help="scenes of the continuous-motion test clip")
    ap.add_argument("--calib-scenes", type=int, default=300,
                    help="scenes of the mixed validation clip (and half as many of a continuous one)")
    ap.add_argument("--seed", type=int, default=5, help="seed of the test clips (validation clips: 1)")
    ap.add_argument("--json", type=Path, default=Path("reports/video_benchmark.json"))
    return ap


def _exit_thresholds(bench: dict[str, Any], precision: str, chain: Any) -> tuple[list[float], dict[str, Any]]:
    """(K,) thresholds of the default policy and their table: the manifest's, else calibrated here."""
    from pipeline.manifest import variant_key
    from pipeline.profiling import chain_exit_probs
    from pipeline.thresholds import policy_thresholds, thresholds_table

    m = bench["manifest"]
    stored = m.thresholds.get(variant_key(bench["args"].backend, precision))
    table = stored.to_dict() if stored is not None else None
    if not table:
        val_images, val_labels = bench["validation"]
        table = thresholds_table(chain_exit_probs(chain, val_images), val_labels, [s.flops for s in m.stages])
    return policy_thresholds(table, "default").tolist(), table


def _costs(bench: dict[str, Any], key: str) -> np.ndarray:
    m = bench["manifest"]
    latency = m.latency.get(key)
    rows = latency.stages if latency is not None else []
    return np.cumsum([r["p50_ms"] for r in rows]) if rows else np.asarray([s.flops for s in m.stages], float)


def run_clip(cascade: Cascade, temporal: TemporalCascade, frames: np.ndarray, labels: np.ndarray, cuts: list[int],
             clock: Callable[[], float] = time.perf_counter, warmup: int = 20) -> dict[str, Any]:
    """Both cascades on every frame, interleaved; the figures of one clip."""
    for i in range(min(warmup, len(frames))):
        cascade.classify(frames[i])
    temporal.reset()
    n = len(frames)
    ms = np.empty((2, n))
    pred = np.empty((2, n), np.int64)
    shown, source, measure = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n)
    reused = np.zeros(n, bool)
    src = -1
    for i in range(n):
        frame = frames[i]
        for j in ((0, 1) if i % 2 == 0 else (1, 0)):  # alternate the order: shared noise hits both
            t0 = clock()
            if j == 0:
                pred[0, i] = cascade.classify(frame).label
                ms[0, i] = (clock() - t0) * 1e3
                continue
            r = temporal.classify(frame)
            ms[1, i] = (clock() - t0) * 1e3
            pred[1, i] = r.answer.label
            reused[i], shown[i], measure[i] = r.reused, r.shown_label, r.measure_ms
            src = src if r.reused else i
            source[i] = src
    followed = [c for c in cuts if source[min(c + 1, n - 1)] >= c]
    edges = [0, *cuts, n]  # scene by scene: the accuracy difference's standard error, scenes independent
    hits = pred == labels[None, :]
    per_scene = np.array([int(hits[1, i:j].sum()) - int(hits[0, i:j].sum()) for i, j in zip(edges[:-1], edges[1:])])
    diff_se = 100.0 * float(per_scene.std(ddof=1)) * np.sqrt(len(per_scene)) / n if len(per_scene) > 1 else 0.0
    at_cut = [c for c in cuts if source[c] >= c]
    fbf, tmp = ms[0], ms[1]

    def flips(seq: np.ndarray) -> int:
        return int((seq[1:] != seq[:-1]).sum())

    return {
        "frames": n, "scenes": len(cuts) + 1,
        "frame_by_frame": {"mean_ms": float(fbf.mean()), "p99_ms": float(np.percentile(fbf, 99)),
                           "accuracy": 100.0 * float((pred[0] == labels).mean()), "flips": flips(pred[0])},
        "temporal": {"mean_ms": float(tmp.mean()), "p99_ms": float(np.percentile(tmp, 99)),
                     "accuracy": 100.0 * float((pred[1] == labels).mean()), "flips": flips(pred[1]),
                     "shown_flips": flips(shown), "shown_accuracy": 100.0 * float((shown == labels).mean()),
                     "reuse_rate": float(reused.mean()), "measure_mean_ms": float(measure.mean()),
                     "ran_mean_ms": float(tmp[~reused].mean()) if (~reused).any() else None},
        "ratio_mean": float(fbf.mean() / tmp.mean()),
        "accuracy_diff": 100.0 * float((pred[1] == labels).mean() - (pred[0] == labels).mean()),
        "accuracy_diff_se": diff_se,
        "cuts": len(cuts), "cuts_followed_within_one_frame": len(followed) / max(1, len(cuts)),
        "cuts_followed_at_the_cut": len(at_cut) / max(1, len(cuts)),
    }


def run_precision(bench: dict[str, Any], precision: str) -> dict[str, Any]:
    from pipeline.backends import load_chain
    from pipeline.runtime.cascade import Cascade
    from pipeline.runtime.deadline import LatencyPredictor
    from pipeline.manifest import variant_key
    from pipeline.apps.temporal_calibrate import calibrate, exits_of
    from pipeline.temporal.cascade import TemporalCascade
    from pipeline.temporal.change import DEFAULT_THUMB

    a, m = bench["args"], bench["manifest"]
    key = variant_key(a.backend, precision)
    chain = load_chain(m, a.engines, a.backend, precision, a.threads)
    with chain:
        thresholds, table = _exit_thresholds(bench, precision, chain)
        aggregate, criterion = table["aggregate"], table.get("criterion", "confidence")
        exits = exits_of(chain, bench["validation_clips"], aggregate, criterion, DEFAULT_THUMB)
        settings, calib = calibrate(exits, thresholds, _costs(bench, key).tolist(), criterion)
        cascade = Cascade(chain, m.classes, thresholds, LatencyPredictor(m.num_exits), criterion, aggregate=aggregate,
                          frame_size=m.input.size)
        temporal = TemporalCascade(cascade, settings)
        clips = {name: run_clip(cascade, temporal, frames, plan.frame_labels(), plan.cuts())
                 for name, (plan, frames) in bench["test_clips"].items()}
    return {"variant": key, "thresholds": thresholds, "settings": settings.to_table(), "validation": calib,
            "clips": clips}


def _row(name: str, r: dict[str, Any]) -> str:
    f, t = r["frame_by_frame"], r["temporal"]
    return (f"| {name} | {r['frames']} / {r['scenes']} | **{r['ratio_mean']:.2f}x** | {f['mean_ms']:.3f} / "
            f"{t['mean_ms']:.3f} | {f['p99_ms']:.3f} / {t['p99_ms']:.3f} | {f['accuracy']:.2f} / {t['accuracy']:.2f} "
            f"({r['accuracy_diff']:+.2f} +- {r['accuracy_diff_se']:.2f}) | {t['reuse_rate']:.1%} | "
            f"{r['cuts_followed_within_one_frame']:.1%} of {r['cuts']} | {f['flips']} / {t['flips']} / {t['shown_flips']} | {t['measure_mean_ms'] * 1e3:.1f} |")


def format_table(results: dict[str, Any]) -> str:
    lines = [f"Device: {results['device_line']}", "",
             "| variant, clip | frames / scenes | mean time, frame by frame / temporal | mean ms | p99 ms | "
             "accuracy % (diff +- its standard error, scenes independent) | reused | cuts followed within one frame "
             "| flips: frame by frame / temporal / shown | change measure us |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in results["precisions"]:
        for name, r in p["clips"].items():
            lines.append(_row(f"{p['variant']}, {name}", r))
    for p in results["precisions"]:
        settings = TemporalSettings.from_table(p["settings"])
        lines.append(f"\n{p['variant']}: {settings.describe()} (calibrated on {p['validation']['frames']} "
                     "validation frames)")
    return "\n".join(lines) + "\n"


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.data.options import DataOptions
    from pipeline.data.splits import split_images
    from pipeline.backends.facts import describe_device, device_facts
    from pipeline.manifest import load_manifest
    from pipeline.apps.temporal_calibrate import clip_frames, validation_clips
    from pipeline.video.scenes import ClipSpec, plan_clip

    args = build_parser().parse_args(argv)
    if args.threads < 1 or min(args.scenes, args.continuous_scenes, args.calib_scenes) < 2:
        raise PipelineError("--threads should be 1 or more and every --*scenes 2 or more")
    check_seed(args.seed, "--seed")
    check_output(args.json, "--json", bench_inputs(args))
    started = time.time()
    m = load_manifest(args.engines, verify=True)
    data = DataOptions.from_args(args)
    cache, source = data.cache_dir, data.source
    precisions = [p for p in (x.strip() for x in args.precisions.split(",")) if p]
    have = [p for p in precisions if len(m.files(backend=args.backend, precision=p, engines=True)) == m.num_exits]
    if not have:
        raise PipelineError(f"no {args.backend} engines for {args.precisions} in {args.engines}; run `make engines`")
    test_images, test_labels = split_images(m, source, "test", cache)
    size, order = m.input.size or (test_images.shape[1], test_images.shape[2]), m.input.colour_order or "BGR"
    test_clips = {}
    for name, motion, scenes, seed in (("mixed", "mixed", args.scenes, args.seed),
                                       ("continuous", "continuous", args.continuous_scenes, args.seed + 1)):
        plan = plan_clip(test_labels, ClipSpec(scenes=scenes, motion=motion), seed)
        test_clips[name] = (plan, clip_frames(plan, test_images, size, order))
    bench = {"args": args, "manifest": m, "test_clips": test_clips,
             "validation": split_images(m, source, "validation", cache),
             "validation_clips": validation_clips(m, source, cache, args.calib_scenes, 1)}
    facts = device_facts([args.backend], args.threads)
    results: dict[str, Any] = {"command": command_text("video", argv),
               "device": facts, "device_line": describe_device(facts),
               "precisions": [run_precision(bench, p) for p in have]}
    results["seconds"] = time.time() - started
    print(format_table(results), end="")
    write_report(args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
