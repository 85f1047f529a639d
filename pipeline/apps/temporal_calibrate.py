"""Calibrate frame reuse, the cut threshold, the temporal prior and smoothing on validation clips.

    python -m pipeline.apps.temporal_calibrate --engines engines/ranet --data DATA [--precisions fp32 int8]

Clips are generated from the validation split (:mod:`pipeline.video.scenes`: a mixed clip and one
whose camera never stops), every frame runs through every exit once, and the temporal cascade is
replayed on those numbers (:mod:`pipeline.temporal.simulate`) for each candidate setting:

- the cut threshold: ``CUT_MARGIN`` times the 1st percentile of the change across the clips' cuts,
  so nearly every cut is seen as one (a fast move taken for a cut only costs the prior that frame);
- the reuse threshold, the confidence below which an answer is doubtful and how many frames a
  doubtful answer may still be reused, and the prior floor, together:
  the cheapest setting (mean cost per frame, a reused frame costing nothing) whose accuracy loss
  against the frame-by-frame cascade (same exit thresholds: the manifest's policy) stays within
  ``--tolerance`` points at the one-sided ``--confidence`` level. Reuse makes a scene's frames
  err together, so the loss is judged paired scene by scene, scenes being the independent units:
  judged on its mean over frames, a setting is chosen for the luck of one set of clips. The reuse
  threshold stays at most ``REUSE_CUT_RATIO`` times the cut threshold: a cut whose change falls
  below it is missed outright (the old answer is reused), and the validation cuts say little about
  how weak the weakest cut of another clip is;
- smoothing: the weight, among a few, with the fewest flips of the shown answer whose shown
  accuracy stays within the tolerance of the answers' own.

The settings go into the manifest's ``temporal`` table for the variant, which the runtime reads.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.build.folder import model_lock
from pipeline.errors import PipelineError, check_seed, cli_main
from pipeline.temporal.rule import DEFAULT_MAX_AGE_FRAMES, TemporalSettings
from pipeline.temporal.simulate import ClipExits, Replay, replay
from pipeline.thresholds import check_calibration_options, from_scores, to_scores

CUT_MARGIN = 0.8
REUSE_CUT_RATIO = 0.5  # the reuse threshold's ceiling, as a fraction of the cut threshold
DEFAULT_TOLERANCE = 0.25  # accuracy points the temporal cascade may give up against frame by frame (half the
# half-point the product promises: a clip of a hundred scenes measures the difference only to about 0.3)
DEFAULT_CONFIDENCE = 0.95  # one-sided confidence that the loss is within the tolerance
SMOOTHING_CHOICES = (0.0, 0.3, 0.5, 0.7)
MIN_CONFIDENCES = (0.0, 0.6, 0.7, 0.8, 0.9)  # below this confidence an answer is doubtful ...
DOUBTFUL_AGES = (0, 1, 2)  # ... and reused for at most this many frames


def clip_frames(plan: Any, images: np.ndarray, size: tuple[int, int], colour_order: str = "BGR") -> np.ndarray:
    """(F, H, W, 3) uint8 model inputs of every frame of ``plan``, as the camera app makes them (``--crop``)."""
    from pipeline.video.frames import to_model_input
    from pipeline.video.scenes import render_frames

    return np.stack([to_model_input(f, size, colour_order, crop=True) for f in render_frames(plan, images)])


def cut_threshold(clips: Sequence[ClipExits]) -> float:
    """``CUT_MARGIN`` x the 1st percentile of the change between the frames around each cut."""
    from pipeline.temporal.change import ChangeMeter

    d = [ChangeMeter.distance(c.thumbs[i], c.thumbs[i - 1]) for c in clips for i in c.cuts]
    if not d:
        raise PipelineError("the calibration clips have no cut; generate them with at least two scenes")
    return float(CUT_MARGIN * np.percentile(d, 1))


def _total(clips: Sequence[ClipExits], s: TemporalSettings, plain: np.ndarray, costs: np.ndarray,
           criterion: str) -> tuple[float, float, float, list[Replay]]:
    """Accuracy (%), mean cost per frame, reuse rate over all clips, and each clip's replay."""
    runs = [replay(c, s, plain, costs, criterion) for c in clips]
    n = sum(len(c.labels) for c in clips)
    correct = sum(int((r.answers == c.labels).sum()) for r, c in zip(runs, clips))
    cost = sum(float(r.costs.sum()) for r in runs)
    reused = sum(int((~r.ran).sum()) for r in runs)
    return 100.0 * correct / n, cost / n, reused / n, runs


def scene_losses(clips: Sequence[ClipExits], base: Sequence[Replay], runs: Sequence[Replay]) -> np.ndarray:
    """(scenes,) frames ``base`` answers right less those ``runs`` does, scene by scene over all clips."""
    out: list[int] = []
    for c, b, r in zip(clips, base, runs):
        edges = [0, *c.cuts, len(c.labels)]
        hit_b, hit_r = b.answers == c.labels, r.answers == c.labels
        out += [int(hit_b[i:j].sum()) - int(hit_r[i:j].sum()) for i, j in zip(edges[:-1], edges[1:])]
    return np.asarray(out, dtype=np.float64)


def loss_bound(losses: np.ndarray, frames: int, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """One-sided upper bound, in accuracy points over ``frames``, on the loss; scenes are the independent units."""
    n = len(losses)
    z = statistics.NormalDist().inv_cdf(confidence)
    spread = float(losses.std(ddof=1)) * math.sqrt(n) if n > 1 else 0.0  # of the total over n scenes
    return 100.0 * (float(losses.sum()) + z * spread) / frames


def calibrate(clips: Sequence[ClipExits], thresholds: Sequence[float], costs: Sequence[float],
              criterion: str = "confidence", tolerance: float = DEFAULT_TOLERANCE,
              max_age_frames: int = DEFAULT_MAX_AGE_FRAMES, confidence: float = DEFAULT_CONFIDENCE,
              reuse_grid: int = 8) -> tuple[TemporalSettings, dict]:
    """The settings (see the module's docstring) and what they gave on the clips, frame by frame alongside."""
    if not tolerance >= 0:
        raise PipelineError(f"--tolerance should be 0 or more accuracy points; got {tolerance}")
    if not 0 < confidence < 1:
        raise PipelineError(f"--confidence should be between 0 and 1; got {confidence}")
    plain, costs_a = to_scores(thresholds, criterion), np.asarray(costs, dtype=np.float64)
    cut = cut_threshold(clips)
    frames = sum(len(c.labels) for c in clips)
    base = TemporalSettings(cut_threshold=cut, max_age_frames=max_age_frames, thumb=int(clips[0].thumbs.shape[1]))
    fbf_acc, fbf_cost, _, fbf_runs = _total(clips, base, plain, costs_a, criterion)
    # prior floors: exit 1's scores on the clips, from surer to less sure (criterion units)
    first = np.concatenate([c.scores[:, 0] for c in clips])
    floors = [None] + [float(f) for f in from_scores(np.quantile(first, [0.5, 0.2]), criterion)]
    best = (fbf_cost, base, fbf_acc, 0.0, 0.0)
    doubt = [(0.0, 0)] + [(c, a) for c in MIN_CONFIDENCES if c > 0 for a in DOUBTFUL_AGES if a <= max_age_frames]
    for r in (float(r) for r in np.geomspace(1.0, REUSE_CUT_RATIO * cut, reuse_grid)):
        for f in floors:
            for c, a in doubt:
                s = replace(base, reuse_threshold=r, prior_floor=f, min_confidence=c, doubtful_age_frames=a)
                acc, cost, rate, runs = _total(clips, s, plain, costs_a, criterion)
                if cost < best[0]:
                    bound = loss_bound(scene_losses(clips, fbf_runs, runs), frames, confidence)
                    if bound <= tolerance:
                        best = (cost, s, acc, rate, bound)
    cost, chosen, acc, rate, bound = best
    # smoothing: fewest flips of the shown answer while the shown accuracy holds
    flips, pick = None, 0.0
    for w in SMOOTHING_CHOICES:
        runs = _total(clips, replace(chosen, smoothing=w), plain, costs_a, criterion)[3]
        shown_acc = 100.0 * sum(int((r.shown == c.labels).sum()) for r, c in zip(runs, clips)) / frames
        n_flips = sum(r.flips(shown=True) for r in runs)
        if shown_acc >= acc - tolerance and (flips is None or n_flips < flips):
            flips, pick = n_flips, w
    chosen = replace(chosen, smoothing=pick)
    report = {"frames": frames, "clips": len(clips), "scenes": sum(len(c.cuts) + 1 for c in clips),
              "tolerance": tolerance, "confidence": confidence,
              "frame_by_frame": {"accuracy": round(fbf_acc, 3), "mean_cost": fbf_cost},
              "temporal": {"accuracy": round(acc, 3), "mean_cost": cost, "reuse_rate": round(rate, 4),
                           "loss_bound": round(bound, 3), "shown_flips": flips}}
    return chosen, report


def validation_clips(manifest: Any, data: str, cache_dir: Path, scenes: int, seed: int) -> list[tuple[Any, np.ndarray]]:
    """A mixed clip and a continuous-motion clip from the validation split: (plan, (F, H, W, 3) frames) each."""
    from pipeline.data.splits import split_images
    from pipeline.video.scenes import ClipSpec, plan_clip

    images, labels = split_images(manifest, data, "validation", cache_dir)
    size = manifest.input.size
    order = manifest.input.colour_order or "BGR"
    out = []
    for i, motion in enumerate(("mixed", "continuous")):
        spec = ClipSpec(scenes=scenes if motion == "mixed" else max(2, scenes // 2),
                        motion=motion)  # scenes as long as the test clips': reuse lasts longer in longer ones
        plan = plan_clip(labels, spec, seed + i)
        out.append((plan, clip_frames(plan, images, size, order)))
    return out


def exits_of(chain: Any, clips: list[tuple[Any, np.ndarray]], aggregate: str, criterion: str,
             thumb: int) -> list[ClipExits]:
    """Every exit of ``chain`` on every frame of each clip, as the replay takes them."""
    from pipeline.profiling import chain_exit_probs

    return [ClipExits.from_probs(frames, chain_exit_probs(chain, frames), plan.frame_labels(), plan.cuts(),
                                 aggregate, criterion, thumb) for plan, frames in clips]


@cli_main
def main(argv: list[str] | None = None) -> int:
    from pipeline.backends import BACKENDS, REFERENCE_BACKEND
    from pipeline.data.options import add_data_options

    ap = argparse.ArgumentParser(prog="anytime temporal", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    add_data_options(ap)
    ap.add_argument("--backend", default=REFERENCE_BACKEND, choices=list(BACKENDS))
    ap.add_argument("--precisions", default="all",
                    help="all (every one with calibrated exit thresholds) or a comma list: fp32,fp16,int8")
    ap.add_argument("--policy", default="default", help="the exit policy the frame-by-frame cascade uses")
    ap.add_argument("--scenes", type=int, default=300, help="scenes of the mixed validation clip (half for the other)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="accuracy points")
    ap.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE)
    ap.add_argument("--max-age-frames", type=int, default=DEFAULT_MAX_AGE_FRAMES)
    args = ap.parse_args(argv)
    if args.scenes < 2:
        raise PipelineError(f"--scenes should be 2 or more (the cut threshold needs cuts); got {args.scenes}")
    if args.max_age_frames < 1:
        raise PipelineError(f"--max-age-frames should be 1 or more; got {args.max_age_frames}")
    check_seed(args.seed)
    check_calibration_options(args.tolerance, args.confidence)  # before the clips are rendered and run
    # The build's lock: no build or profiler changes the folder meanwhile.
    with model_lock(args.engines, "the temporal calibration"):
        return calibrate_folder(args)


def calibrate_folder(args: argparse.Namespace) -> int:
    """Calibrate and write the temporal tables of ``args.engines``, its manifest read under the lock."""
    from pipeline.backends import load_chain
    from pipeline.data.options import DataOptions
    from pipeline.manifest import load_manifest, variant_key, write_manifest
    from pipeline.temporal.change import DEFAULT_THUMB
    from pipeline.thresholds import policy_thresholds

    manifest = load_manifest(args.engines, verify=True)
    wanted = [k.split("/", 1)[1] for k in manifest.thresholds if k.startswith(args.backend + "/")] \
        if args.precisions == "all" else [p.strip() for p in args.precisions.split(",") if p.strip()]
    keys = {p: variant_key(args.backend, p) for p in wanted}
    missing = [k for k in keys.values() if k not in manifest.thresholds]
    if not keys or missing:
        raise PipelineError(f"no exit thresholds for {', '.join(missing) or args.backend} in {args.engines}: "
                            "calibrate them first with `make profile`")
    data = DataOptions.from_args(args)
    clips = validation_clips(manifest, data.source, data.cache_dir, args.scenes, args.seed)
    for precision, key in keys.items():
        table = manifest.thresholds[key]
        criterion = table.criterion
        thresholds = policy_thresholds(table.to_dict(), args.policy).tolist()
        latency = manifest.latency.get(key)
        rows = latency.stages if latency is not None else []
        costs = (np.cumsum([r["p50_ms"] for r in rows]).tolist() if rows
                 else [float(s.flops) for s in manifest.stages])  # the manifest's FLOPs are cumulative
        with load_chain(manifest, args.engines, args.backend, precision, 1) as chain:
            exits = exits_of(chain, clips, table.aggregate, criterion, DEFAULT_THUMB)
        settings, report = calibrate(exits, thresholds, costs, criterion, args.tolerance, args.max_age_frames,
                                     args.confidence)
        manifest.temporal[key] = {**settings.to_table(), "policy": args.policy, "validation": report}
        fbf, tmp = report["frame_by_frame"], report["temporal"]
        print(f"{key}: {settings.describe()}; on {report['frames']} validation "
              f"frames: reuse {tmp['reuse_rate']:.1%}, cost {fbf['mean_cost'] / max(tmp['mean_cost'], 1e-9):.2f}x "
              f"lower, accuracy {tmp['accuracy']:.2f}% against {fbf['accuracy']:.2f}% frame by frame", file=sys.stderr)
    write_manifest(args.engines, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
