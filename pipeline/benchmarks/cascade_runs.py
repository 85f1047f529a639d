"""The four cascade benchmarks, each measured from built engines on this machine.

:class:`Bench` loads the data and profiles each (backend, precision) once; the four functions
compute one benchmark each from it (see ``cascade_benchmarks`` for the command).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any, Callable

import numpy as np

from pipeline.backends import BACKENDS, StageChain
from pipeline.data.options import DataOptions
from pipeline.errors import PipelineError

PORTABLE = BACKENDS[0]  # benchmarks 2 and 3 compare on the backend that runs everywhere (ONNX Runtime)
MATCH_POINTS = 0.3  # the cascade may be at most this far below the last exit's FP32 test accuracy
DEADLINE_SLACK_MS = 1.0


class Bench:
    """Loaded data, and each variant's latency profile and test probabilities, measured once and reused."""

    def __init__(self, args: argparse.Namespace):
        from pipeline.data.splits import split_images
        from pipeline.manifest import load_manifest

        self.args = args
        self.folder = args.engines
        self.manifest = load_manifest(self.folder, verify=True)
        data = DataOptions.from_args(args)
        self.val = split_images(self.manifest, data.source, "validation", data.cache_dir,
                                limit=args.calib_frames or None)
        self.test = split_images(self.manifest, data.source, "test", data.cache_dir, limit=args.frames or None)
        self._measured: dict[tuple[str, str], tuple[Any, np.ndarray]] = {}

    def chain(self, backend: str, precision: str) -> Any:
        from pipeline.backends import load_chain

        return load_chain(self.manifest, self.folder, backend, precision, self.args.threads)

    def has(self, backend: str, precision: str) -> bool:
        return len(self.manifest.files(backend=backend, precision=precision, engines=True)) == self.manifest.num_exits

    def measure(self, *variants: tuple[str, str]) -> list[tuple[Any, np.ndarray]]:
        """(LatencyProfile, (N, K, C) test softmax) of each (backend, precision); those not yet measured
        are profiled together, interleaved run by run, so that their ratios are side by side."""
        from pipeline.profiling import chain_exit_probs, profile_chains

        todo = [v for v in dict.fromkeys(variants) if v not in self._measured]
        if todo:
            with contextlib.ExitStack() as stack:
                chains = [stack.enter_context(self.chain(*v)) for v in todo]
                profiles = profile_chains(chains, self.test[0], self.args.runs, self.args.warmup, self.args.threads)
                for v, chain, profile in zip(todo, chains, profiles):
                    self._measured[v] = (profile, chain_exit_probs(chain, self.test[0]))
        return [self._measured[v] for v in variants]


def _timed(clock: Callable[[], float], fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = clock()
    out = fn()
    return (clock() - t0) * 1e3, out


def _full_network(chain: StageChain, stages: int, seen: list[np.ndarray] | None = None
                  ) -> Callable[[np.ndarray], tuple[int, int]]:
    """(label, exit) of a frame from every stage of ``chain``: the baseline the cascade is compared with.
    ``seen``: replaced by the frame's exit logits on each call (the chain's buffers: copy before its next run)."""
    def full(frame: np.ndarray) -> tuple[int, int]:
        out = chain.run_all(frame)
        if seen is not None:
            seen[:] = out
        return int(out[-1].argmax()), stages
    return full


def cascade_vs_full(bench: Bench, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Benchmark 1 (and the thresholds and profile that benchmark 4 reuses).

    Thresholds are calibrated on the validation split (the "default" policy: walking the
    budgeted sweep from the full network towards cheaper points, the last point before the first whose
    loss against the last exit, paired per image, may exceed ``--tolerance`` points at the one-sided
    ``--confidence`` level), then the Cascade runs on every
    test frame and, interleaved with it, the full chain on the same frame, same backend, precision,
    threads and sessions. Figure: mean latency per frame of the full network / of the cascade.
    Matched: the cascade's test accuracy is at most ``MATCH_POINTS`` below the last exit's FP32
    test accuracy. A lower precision's cascade is also timed against the FP32 full network in the
    same loop: the deployed cascade against the unquantized network it replaces.
    """
    from pipeline.runtime.cascade import Cascade
    from pipeline.runtime.deadline import LatencyPredictor
    from pipeline.profiling import chain_exit_probs, profile_chain
    from pipeline.thresholds import default_policy, softmax, thresholds_table
    from pipeline.thresholds.limits import speedup_limits

    a, m = bench.args, bench.manifest
    images, labels = bench.test
    k_last = m.num_exits
    chain = bench.chain(a.backend, a.precision)
    # A lower-precision cascade is also timed against the FP32 full network: the deployment question.
    fp32_chain = bench.chain(a.backend, "fp32") if a.precision != "fp32" and bench.has(a.backend, "fp32") else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(chain)
        profile = profile_chain(chain, images, a.runs, a.warmup, a.threads)
        val_probs = chain_exit_probs(chain, bench.val[0])  # (N, K, C)
        table = thresholds_table(val_probs, bench.val[1], profile.cumulative_p50(), tolerance=a.tolerance,
                                 confidence=a.confidence, aggregate=a.aggregate)
        chosen, default = default_policy(table)
        thresholds = chosen.tolist()
        size = m.input.size
        cascade = Cascade(chain, m.classes, thresholds, LatencyPredictor(k_last), aggregate=table["aggregate"],
                          frame_size=size)  # no budget

        def anytime(frame: np.ndarray) -> tuple[int, int]:
            r = cascade.classify(frame)
            return r.label, r.exit

        seen: list[np.ndarray] = []  # the full network's exit logits of the frame it last ran
        runners = [anytime, _full_network(chain, k_last, seen)]  # each: frame -> (label, exit)
        if fp32_chain is not None:
            stack.enter_context(fp32_chain)
            runners.append(_full_network(fp32_chain, k_last))

        for i in range(min(a.warmup, len(images))):
            for run in runners:
                run(images[i:i + 1])
        n = len(labels)
        ms = np.empty((len(runners), n))
        pred, exits = (np.empty((len(runners), n), dtype=np.int64) for _ in range(2))
        logits = np.empty((n, k_last, len(m.classes)), dtype=np.float32)  # (N, K, C), for the bounds below
        for i in range(n):
            frame = images[i:i + 1]  # (1, H, W, 3)
            order = range(len(runners)) if i % 2 == 0 else reversed(range(len(runners)))
            for j in order:  # alternate the order: shared noise hits every variant
                ms[j, i], (pred[j, i], exits[j, i]) = _timed(clock, lambda: runners[j](frame))
                if j == 1:  # untimed: the full network's exits, kept before the cascade reuses the chain
                    logits[i] = [z.reshape(-1) for z in seen]
    # What bounds the figure on these test frames, at the profile's costs: the full network's own exits.
    limits = speedup_limits(softmax(logits, axis=-1), labels, profile.cumulative_p50(), MATCH_POINTS,
                            table["criterion"], table["aggregate"], calibration=(val_probs, bench.val[1]))
    casc_ms, full_ms, fp32_ms = ms[0], ms[1], (ms[2] if fp32_chain is not None else None)
    casc_pred, full_pred = pred[0], pred[1]

    full_acc = 100.0 * float((full_pred == labels).mean())
    fp32_last: float | None = None  # the full network's answer is the last exit's
    if a.precision == "fp32":
        fp32_last = full_acc
    elif fp32_chain is not None:
        fp32_last = 100.0 * float((pred[2] == labels).mean())
    casc_acc = 100.0 * float((casc_pred == labels).mean())
    return {
        "variant": f"{a.backend}/{a.precision}", "frames": n, "threads": a.threads, "aggregate": table["aggregate"],
        "ratio_mean": float(full_ms.mean() / casc_ms.mean()),
        "cascade_mean_ms": float(casc_ms.mean()), "full_mean_ms": float(full_ms.mean()),
        "cascade_p50_ms": float(np.median(casc_ms)), "full_p50_ms": float(np.median(full_ms)),
        "fp32_full_mean_ms": None if fp32_ms is None else float(fp32_ms.mean()),
        "ratio_mean_vs_fp32_full": None if fp32_ms is None else float(fp32_ms.mean() / casc_ms.mean()),
        "cascade_accuracy": casc_acc, "full_accuracy": full_acc, "fp32_last_exit_accuracy": fp32_last,
        "matched": None if fp32_last is None else bool(casc_acc >= fp32_last - MATCH_POINTS),
        "exit_fractions": (np.bincount(exits[0] - 1, minlength=k_last) / n).tolist(),
        "thresholds": default["thresholds"], "calibration_frames": int(len(bench.val[1])),
        "validation_expected": {"accuracy": default["expected_accuracy"], "cost_ms": default["expected_cost_ms"]},
        "limits": limits.to_dict(), "_profile": profile, "_thresholds": thresholds,
    }


def ort_vs_torch(bench: Bench) -> dict[str, Any]:
    """Benchmark 2: full network, batch 1, same threads, ONNX Runtime FP32 against PyTorch eager (p50 and mean
    ratios; needs ``--checkpoint`` and torch)."""
    from pipeline.profiling.torch_baseline import profile_torch, torch_available

    a = bench.args
    if a.checkpoint is None:
        return {"skipped": "no --checkpoint given"}
    if not torch_available():
        return {"skipped": "torch is not installed"}
    if not bench.has(PORTABLE, "fp32"):
        return {"skipped": f"no {PORTABLE}/fp32 engines"}
    from pipeline.models.loading import load_model
    from pipeline.manifest import sha256_file

    if sha256_file(a.checkpoint) != bench.manifest.model.get("checkpoint_sha256"):
        raise PipelineError(f"{a.checkpoint} is not the checkpoint the engines in {bench.folder} were built from; "
                            "pass that one to --checkpoint")
    ort_profile = bench.measure((PORTABLE, "fp32"))[0][0]
    model, _ = load_model(a.checkpoint)
    torch_profile = profile_torch(model, bench.test[0], a.runs, a.warmup, a.threads)
    ort, tch = ort_profile.cumulative()[-1], torch_profile.cumulative()[-1]
    return {"threads": a.threads, "runs": a.runs, PORTABLE: ort, "pytorch_eager": tch,
            "ratio_p50": tch["p50_ms"] / ort["p50_ms"], "ratio_mean": tch["mean_ms"] / ort["mean_ms"]}


def int8_vs_fp32(bench: Bench) -> dict[str, Any]:
    """Benchmark 3: per stage on ONNX Runtime, latency ratio FP32/INT8 and test accuracy INT8 - FP32; the two
    chains are profiled taking turns in blocks of runs."""
    from pipeline.metrics import accuracy_per_exit

    missing = [p for p in ("fp32", "int8") if not bench.has(PORTABLE, p)]
    if missing:
        return {"skipped": f"no {PORTABLE}/{' or '.join(missing)} engines"}
    (p32, probs32), (p8, probs8) = bench.measure((PORTABLE, "fp32"), (PORTABLE, "int8"))
    labels = bench.test[1]
    acc32, acc8 = accuracy_per_exit(probs32, labels), accuracy_per_exit(probs8, labels)
    s32, s8 = p32.stages(), p8.stages()
    stages = [{"stage": k, "fp32_p50_ms": a["p50_ms"], "int8_p50_ms": b["p50_ms"],
               "ratio_p50": a["p50_ms"] / b["p50_ms"],
               "fp32_accuracy": x, "int8_accuracy": y, "accuracy_diff": y - x}
              for k, (a, b, x, y) in enumerate(zip(s32, s8, acc32, acc8), start=1)]
    full32, full8 = p32.cumulative()[-1]["p50_ms"], p8.cumulative()[-1]["p50_ms"]
    return {"stages": stages, "full_ratio_p50": full32 / full8, "fp32_full_p50_ms": full32, "int8_full_p50_ms": full8}


def deadline_adherence(bench: Bench, first: dict[str, Any], clock: Callable[[], float] = time.perf_counter
                       ) -> dict[str, Any]:
    """Benchmark 4: budget = half the full network's p50; the share of frames answered (wall time around
    ``classify``) within budget + 1 ms, and the accuracy. The predictor starts from this run's profile."""
    from pipeline.runtime.cascade import Cascade
    from pipeline.runtime.deadline import LatencyPredictor

    a, m = bench.args, bench.manifest
    profile = first["_profile"]
    budget = 0.5 * profile.cumulative_p50()[-1]
    stages = profile.stages()
    predictor = LatencyPredictor(m.num_exits, [s["p99_ms"] for s in stages], [s["p50_ms"] for s in stages],
                                 m.stage_flops(), source="this run's profile")
    images, labels = bench.test
    n = len(labels)
    wall, preds, exits = np.empty(n), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    met = np.empty(n, dtype=bool)
    cascade = Cascade(bench.chain(a.backend, a.precision), m.classes, first["_thresholds"], predictor,
                      aggregate=first["aggregate"], frame_size=m.input.size)
    with cascade:
        for i in range(min(a.warmup, n)):
            cascade.classify(images[i:i + 1], budget_ms=budget)
        for i in range(n):
            frame = images[i:i + 1]
            wall[i], r = _timed(clock, lambda: cascade.classify(frame, budget_ms=budget))
            preds[i], exits[i], met[i] = r.label, r.exit, bool(r.deadline_met)
    return {"variant": f"{a.backend}/{a.precision}", "budget_ms": budget, "frames": n,
            "within_budget_plus_1ms": float((wall <= budget + DEADLINE_SLACK_MS).mean()),
            "within_budget": float((wall <= budget).mean()), "cascade_deadline_met": float(met.mean()),
            "accuracy": 100.0 * float((preds == labels).mean()), "p99_ms": float(np.percentile(wall, 99)),
            "max_ms": float(wall.max()), "exit_fractions": (np.bincount(exits - 1, minlength=m.num_exits) / n).tolist()}
