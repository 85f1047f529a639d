"""Latency and accuracy of built stages: the numbers the profiler reports and the deadline rule reads.

Timing. ``profile_chain`` runs the full chain (stage 1..K) on real frames, batch 1: a warm-up, then
``runs`` timed runs (``profile_chains`` does so for several chains taking turns in blocks of runs,
for ratios that a drift in the machine's speed does not bias). A stage's time is read with
``time.perf_counter`` around ``run(k)``; stage 1's time also covers ``set_frame`` (copying the
frame in), as in the cascade, so the numbers are what the deadline rule observes. Every chain's
``run`` returns host logits, so it has waited for the stage to finish: on ONNX Runtime the call is
synchronous, and the TensorRT chain synchronises its CUDA stream before returning, so wall time
around ``run`` is the stage's time including the launch and the logits' copy back: that wall time
is what the deadline rule observes, so it is what the manifest's latency table holds. A chain that
also measures device time with CUDA events exposes ``last_run_ms()`` (the TensorRT chain does); the
profiler then records those GPU stage times beside the wall times (``device_stages``, ``clock:
"cuda-events"``).

Statistics per stage: mean, p50, p90, p99 and max over the runs. Cumulative latency to exit k is
taken per run (stage 1 + ... + k in the same run) before its percentiles, so cumulative p50s are
nondecreasing, as the threshold sweep requires of its costs.

Curves. The anytime curve is the accuracy of the answer at exit k (exit k's own, or the mean of
exits 1..k, as the thresholds' aggregate says) against the cumulative p50 to exit k. The
budgeted curve is MSDNet's budgeted-batch sweep (``pipeline.thresholds.budgeted_curve``) with
per-stage p50 costs: thresholds are always calibrated on the validation split; on another split
each point's thresholds are only applied (``simulate``), never refitted.

Device facts: CPU model and threads, or the GPU; ONNX Runtime and TensorRT versions; on a Jetson
the nvpmodel power mode and whether the CPU and GPU clocks are locked, with a warning when not.

numpy only at import; torch, onnxruntime, tensorrt and matplotlib are imported where used.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.backends.base import StageChain, exit_logits
from pipeline.device import describe_device, device_facts, jetson_facts  # noqa: F401
from pipeline.errors import PipelineError
from pipeline.thresholds import budgeted_curve, simulate, softmax, thresholds_to_json

STATS = ("mean", "p50", "p90", "p99", "max")
TORCH_EAGER = "pytorch-eager"  # the "backend" name of the PyTorch baseline in reports


# --- latency ---------------------------------------------------------------------------------------


def latency_stats(samples_ms: np.ndarray) -> dict[str, float]:
    """(R,) times in ms -> {"mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}."""
    x = np.asarray(samples_ms, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise PipelineError(f"expected a non-empty 1-D array of times, got shape {x.shape}")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    return {"mean_ms": float(x.mean()), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "max_ms": float(x.max())}


@dataclass
class LatencyProfile:
    """Per-run, per-stage times of one variant (e.g. "onnxruntime/int8"), batch 1."""

    key: str
    stage_ms: np.ndarray  # (R, K) time of stage k in run r
    clock: str  # "perf_counter", or "cuda-events" when device_ms holds CUDA-event times as well
    threads: int
    warmup: int
    device_ms: np.ndarray | None = None  # (R, K) GPU time of stage k in run r, from CUDA events

    @property
    def runs(self) -> int:
        return int(self.stage_ms.shape[0])

    @property
    def num_stages(self) -> int:
        return int(self.stage_ms.shape[1])

    def stages(self) -> list[dict[str, float]]:
        return [latency_stats(self.stage_ms[:, k]) for k in range(self.num_stages)]

    def cumulative(self) -> list[dict[str, float]]:
        """Statistics of the time to reach each exit, summed within each run."""
        cum = np.cumsum(self.stage_ms, axis=1)  # (R, K)
        return [latency_stats(cum[:, k]) for k in range(self.num_stages)]

    def cumulative_p50(self) -> list[float]:
        return [s["p50_ms"] for s in self.cumulative()]

    def to_json(self) -> dict[str, Any]:
        out = {"runs": self.runs, "warmup": self.warmup, "threads": self.threads, "clock": self.clock,
               "stages": self.stages(), "cumulative": self.cumulative(), "cumulative_p50_ms": self.cumulative_p50()}
        if self.device_ms is not None:
            out["device_stages"] = [latency_stats(self.device_ms[:, k]) for k in range(self.num_stages)]
        return out


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if not (isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4 and len(frames)
            and frames.shape[3] == 3):
        found = f"{frames.shape} {frames.dtype}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise PipelineError(f"expected frames of shape (N, H, W, 3) uint8 with N >= 1, got {found}")
    return np.ascontiguousarray(frames)


def _check_runs(runs: int, warmup: int) -> None:
    if runs < 1 or warmup < 0:
        raise PipelineError(f"need at least 1 timed run and no negative warm-up, got runs={runs}, warmup={warmup}")


INTERLEAVE_BLOCK = 50  # runs per turn when several chains are profiled together


def profile_chain(chain: StageChain, frames: np.ndarray, runs: int = 1000, warmup: int = 100, threads: int = 1,
                  clock: Callable[[], float] = time.perf_counter) -> LatencyProfile:
    """Time every stage of ``chain`` over ``runs`` full-chain runs on ``frames`` (N, H, W, 3) uint8, cycled.

    Activates the chain (and leaves it active for the caller, who owns it).
    """
    return profile_chains([chain], frames, runs, warmup, threads, clock)[0]


def profile_chains(chains: Sequence[StageChain], frames: np.ndarray, runs: int = 1000, warmup: int = 100,
                   threads: int = 1, clock: Callable[[], float] = time.perf_counter,
                   block: int = INTERLEAVE_BLOCK) -> list[LatencyProfile]:
    """``profile_chain`` for several chains, taking turns in blocks of ``block`` runs on the same frames.

    A ratio of two profiles taken one after the other follows whatever else the machine did in
    between (other load, clock changes); taking turns, such a drift weighs on every chain alike.
    Turns of a run each would let each chain evict the other's weights from the CPU caches before
    every run, which a deployed chain does not suffer; a block of runs keeps its caches warm.
    """
    frames = _check_frames(frames)
    _check_runs(runs, warmup)
    if not chains or block < 1:
        raise PipelineError(f"profile_chains needs at least one chain and a block of 1 or more runs, got "
                            f"{len(chains)} chain(s) and block={block}")
    timers = [_RunTimer(chain, runs, clock) for chain in chains]
    for timer in timers:
        for i in range(warmup):
            timer.run(frames[i % len(frames)][None], -1)
    for start in range(0, runs, block):
        for timer in timers:
            for i in range(start, min(start + block, runs)):
                timer.run(frames[(warmup + i) % len(frames)][None], i)  # (1, H, W, 3) view
    return [t.profile(threads, warmup) for t in timers]


class _RunTimer:
    """Times the stages of one chain run by run, with CUDA-event times where the chain offers them."""

    def __init__(self, chain: StageChain, runs: int, clock: Callable[[], float]):
        chain.activate()
        self.chain, self.clock = chain, clock
        self.times = np.empty((runs, chain.num_stages), dtype=np.float64)  # (R, K) wall ms
        self.device: np.ndarray | None = np.empty_like(self.times)  # (R, K) GPU ms, while the chain offers them

    def run(self, frame: np.ndarray, row: int) -> None:
        """One full-chain run; ``row`` < 0 is a warm-up run and is not kept."""
        t0 = self.clock()
        self.chain.set_frame(frame)
        for k in range(1, self.chain.num_stages + 1):
            self.chain.run(k)
            t1 = self.clock()
            if row >= 0:
                self.times[row, k - 1] = (t1 - t0) * 1e3
                if self.device is not None:
                    ms = self.chain.last_run_ms()  # CUDA-event time of the run just made, where measured
                    if ms is None:  # the chain could not time this run: keep wall times only
                        self.device = None
                    else:
                        self.device[row, k - 1] = ms
            t0 = t1

    def profile(self, threads: int, warmup: int) -> LatencyProfile:
        key = f"{self.chain.backend}/{self.chain.precision}"
        return LatencyProfile(key, self.times, "cuda-events" if self.device is not None else "perf_counter",
                              threads, warmup, self.device)


def chain_exit_probs(chain: StageChain, images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, K, C) float32 softmax of every exit, frame by frame exactly as the runtime runs."""
    return softmax(exit_logits(chain, _check_frames(images)), axis=-1)


# --- the PyTorch baseline ----------------------------------------------------------------------------


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def profile_torch(model: Any, frames: np.ndarray, runs: int = 1000, warmup: int = 100, threads: int = 1,
                  clock: Callable[[], float] = time.perf_counter) -> LatencyProfile:
    """The same stages in PyTorch eager mode, batch 1, ``threads`` intra-op threads, timed like the chain."""
    import torch

    frames = _check_frames(frames)
    _check_runs(runs, warmup)
    stages = list(model.eval().stages)
    used = frames[:warmup + runs]
    inputs = [torch.from_numpy(np.ascontiguousarray(f[None])) for f in used]  # (1, H, W, 3) uint8 each
    times = np.empty((runs, len(stages)), dtype=np.float64)  # (R, K) ms
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for i in range(warmup + runs):
                carried: tuple[Any, ...] = (inputs[i % len(inputs)],)
                t0 = clock()
                for k, stage in enumerate(stages):
                    out = stage(*carried)  # (logits (1, C), *maps)
                    carried = out[1:]
                    t1 = clock()
                    if i >= warmup:
                        times[i - warmup, k] = (t1 - t0) * 1e3
                    t0 = t1
    finally:
        torch.set_num_threads(before)
    return LatencyProfile(f"{TORCH_EAGER}/fp32", times, "perf_counter", threads, warmup)


def torch_exit_probs(model: Any, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, K, C) float32 softmax of every exit of the PyTorch model, in batches."""
    import torch

    images = _check_frames(images)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            logits = model.eval()(torch.from_numpy(images[i:i + batch]))  # K x (B, C)
            out.append(torch.stack(logits, dim=1).float().numpy())  # (B, K, C)
    return softmax(np.concatenate(out), axis=-1)


# --- data ---------------------------------------------------------------------------------------------


SPLITS = ("validation", "test")


def split_images(manifest: Any, data: str, split: str, cache_dir: str | Path, limit: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 frames and (N,) labels of ``split`` at the model's input size.

    "validation" is the checkpoint's own split of the training images, drawn as the manifest says
    (``model.split``); "test" is the test split. ``limit`` keeps a seeded random subset.
    """
    from pipeline.data import load_dataset, validation_split

    if split not in SPLITS:
        raise PipelineError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    size = manifest.input.size
    source = load_dataset(data or None, "train" if split == "validation" else "test", cache_dir=cache_dir, size=size)
    if list(source.classes) != list(manifest.classes):
        raise PipelineError(f"the data's classes {list(source.classes)[:5]}... differ from the model's "
                            f"{list(manifest.classes)[:5]}...; pass the --data the model was trained on")
    images, labels = source.images, source.labels
    if split == "validation":
        drawn = manifest.model.get("split") or {}
        if "size" not in drawn or "seed" not in drawn:
            raise PipelineError("the manifest does not say how the validation split was drawn (model.split with "
                                "size and seed); rebuild the engines from the checkpoint with `make engines`")
        _, idx = validation_split(labels, size=int(drawn["size"]), seed=int(drawn["seed"]))
        images, labels = images[idx], labels[idx]
    if limit is not None and 0 < limit < len(labels):
        keep = np.sort(np.random.default_rng(0).choice(len(labels), size=limit, replace=False))
        images, labels = images[keep], labels[keep]
    return np.ascontiguousarray(images), labels.astype(np.int64)


# --- accuracy and curves -----------------------------------------------------------------------------


def accuracy_per_exit(probs: np.ndarray, labels: np.ndarray) -> list[float]:
    """(N, K, C) probs, (N,) labels -> top-1 accuracy (%) of each exit."""
    hits = probs.argmax(axis=-1) == np.asarray(labels)[:, None]  # (N, K)
    return [float(100.0 * h) for h in hits.mean(axis=0)]


def anytime_curve(accuracy: Sequence[float], cumulative_ms: Sequence[float]) -> list[dict[str, float]]:
    """Accuracy at exit k against the latency to reach it: one point per exit."""
    return [{"exit": k, "latency_ms": float(ms), "accuracy": float(acc)}
            for k, (acc, ms) in enumerate(zip(accuracy, cumulative_ms), start=1)]


def budgeted_points(calib_probs: np.ndarray, calib_labels: np.ndarray, costs_ms: Sequence[float],
                    eval_probs: np.ndarray | None = None, eval_labels: np.ndarray | None = None,
                    criterion: str = "confidence") -> list[dict[str, Any]]:
    """The budgeted-batch sweep, calibrated on ``calib_*`` (the validation split) with per-exit costs.

    With ``eval_*`` (another split), each point's thresholds are applied to it and its accuracy and
    mean cost are those measured there; otherwise they are the calibration set's own.
    """
    curve = budgeted_curve(calib_probs, calib_labels, costs_ms, criterion)
    points = []
    for p in curve:
        acc, cost, fractions = p.accuracy, p.cost, p.exit_fractions
        if eval_probs is not None:
            sim = simulate(eval_probs, eval_labels, p.thresholds, costs_ms, criterion)  # type: ignore[arg-type]
            acc, cost, fractions = sim.accuracy, sim.mean_cost, sim.exit_fractions
        points.append({"q": p.q, "accuracy": acc, "cost_ms": cost, "exit_fractions": list(fractions),
                       "thresholds": thresholds_to_json(p.thresholds)})
    return points


# --- reports ----------------------------------------------------------------------------------------


def format_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: device, settings, and one table per variant."""
    lines = [f"# Latency profile: {report['model']}", "",
             f"- device: {describe_device(report['device'])}",
             f"- {report['runs']} timed runs of the full chain after {report['warmup']} warm-up runs, batch 1, "
             f"{report['threads']} intra-op thread(s)",
             f"- accuracy on the {report['split']} split ({report['images']} images); thresholds calibrated on the "
             f"validation split ({report['calibration_images']} images)"]
    lines += [f"- note: {n}" for n in report.get("notes", [])]
    lines += [f"- **warning**: {w}" for w in report["device"].get("warnings", [])]
    for key, v in report["variants"].items():
        lines += ["", f"## {key}", "", f"clock: {v['clock']}", "",
                  "| stage | mean (ms) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | cumulative p50 to exit (ms) "
                  "| exit's own accuracy (%) | cascade's answer at exit (%) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for k, (s, cum, acc, ans) in enumerate(zip(v["stages"], v["cumulative_p50_ms"], v["accuracy"],
                                                   v["answer_accuracy"]), start=1):
            lines.append(f"| {k} | {s['mean_ms']:.3f} | {s['p50_ms']:.3f} | {s['p90_ms']:.3f} | {s['p99_ms']:.3f} "
                         f"| {s['max_ms']:.3f} | {cum:.3f} | {acc:.2f} | {ans:.2f} |")
        if v.get("aggregate") == "mean":
            lines += ["", "The cascade's answer at exit k is the mean softmax of exits 1..k."]
        default = v.get("default_policy")
        if default:
            lines += ["", f"Cascade, default thresholds (from validation): {default['accuracy']:.2f}% at a mean "
                          f"{default['cost_ms']:.3f} ms per frame on the {report['split']} split; the full network: "
                          f"{v['accuracy'][-1]:.2f}% at {v['cumulative_p50_ms'][-1]:.3f} ms (p50)."]
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Anytime and budgeted curves of every variant, side by side, as a PNG (matplotlib's Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax_any, ax_bud = fig.subplots(1, 2)
    for key, v in report["variants"].items():
        style = "--" if key.startswith(TORCH_EAGER) else "-"
        xs = [p["latency_ms"] for p in v["anytime"]]
        line, = ax_any.plot(xs, [p["accuracy"] for p in v["anytime"]], style, marker="o", label=key)
        for p in v["anytime"]:
            ax_any.annotate(str(p["exit"]), (p["latency_ms"], p["accuracy"]), textcoords="offset points",
                            xytext=(3, 3), fontsize=7)
        if v.get("budgeted"):
            pts = sorted(v["budgeted"], key=lambda p: p["cost_ms"])
            ax_bud.plot([p["cost_ms"] for p in pts], [p["accuracy"] for p in pts], style, marker=".",
                        color=line.get_color(), label=key)
    split = report["split"]
    ax_any.set(title=f"anytime: accuracy of the answer at exit k ({split})",
               xlabel="cumulative p50 latency to exit (ms)",
               ylabel="top-1 accuracy (%)")
    ax_bud.set(title=f"budgeted: thresholds from validation ({split})", xlabel="mean latency per frame (ms)",
               ylabel="top-1 accuracy (%)")
    for ax in (ax_any, ax_bud):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
