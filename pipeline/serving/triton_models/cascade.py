"""The anytime cascade inside Triton, as a BLS Python-backend model: a frame in, (label, exit, confidence) out.

For clients that only want an answer. The repository carries this file as ``cascade/1/model.py``
with ``cascade.json`` beside it: the stage models' names and tensors, the exit rule (score
thresholds, criterion, aggregate) and the measured per-stage latency the deadline rule starts
from. A batch the dynamic batcher formed runs together: stage k runs once (through BLS, in chunks
of the stage models' batch size) on the frames that are still undecided and whose budget allows
stage k; decided frames leave the batch. An ensemble could not do this: it runs every stage.

Inputs: ``frame`` (H, W, 3) uint8, optional ``budget_ms`` (1,) float32, counted from when this
model starts on the batch. Outputs: ``label``, ``exit`` (1-based) int32, ``confidence`` (max
softmax at the exit taken) and ``server_ms`` (time in this model) float32. The deadline rule is
the pipeline's: stage 1 always runs; stage k+1 runs when the time spent plus its predicted time
fits the budget, the prediction being a smoothed mean plus four smoothed deviations of the
observed BLS calls, started from the manifest's median and 99th percentile.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

# The Python backend's embedded interpreter ignores PYTHONPATH; a launcher that sets it (to the site-packages
# holding numpy and onnxruntime) means it: honour it before those imports.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


class Predictor:
    """Per stage: mean m and mean deviation d of observed call times, predicting m + 4 d (gains 1/8, 1/4).

    A stage the rule skips is not observed, so each skip pulls its estimate 1/16 of the way back
    to its start: one slow call (a burst) does not keep a stage off for good.
    """

    def __init__(self, p50: list[float | None], p99: list[float | None]):
        self.m = [a if a is not None else 0.0 for a in p50]
        self.d = [((b - a) / 4 if a is not None and b is not None and b >= a else 0.0) for a, b in zip(p50, p99)]
        self.start = list(zip(self.m, self.d))

    def skipped(self, stage: int) -> None:
        i = stage - 1
        self.m[i] += (self.start[i][0] - self.m[i]) / 16
        self.d[i] += (self.start[i][1] - self.d[i]) / 16

    def predict(self, stage: int) -> float:
        return self.m[stage - 1] + 4 * self.d[stage - 1]

    def observe(self, stage: int, ms: float) -> None:
        i = stage - 1
        err = ms - self.m[i]
        self.m[i] += err / 8
        self.d[i] += (abs(err) - self.d[i]) / 4


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        self.name = config["name"]
        path = Path(args["model_repository"]) / str(args["model_version"]) / "cascade.json"
        spec = json.loads(path.read_text())
        self.stages = spec["stages"]  # [{"model", "inputs", "outputs"}], outputs[0] the exit's logits
        self.score_thr = [-math.inf if t is None else float(t) for t in spec["score_thresholds"]]
        self.criterion, self.aggregate = spec["criterion"], spec["aggregate"]
        self.chunk = int(spec.get("chunk") or spec["stage_max_batch"])  # frames per BLS request
        self.predictor = Predictor(spec["latency_p50_ms"], spec["latency_p99_ms"])

    def _call(self, stage: dict[str, Any], feeds: dict[str, np.ndarray], timeout_us: int) -> list[np.ndarray]:
        """One BLS request to a stage model; RuntimeError with its message where it fails."""
        request = pb_utils.InferenceRequest(model_name=stage["model"], requested_output_names=stage["outputs"],
                                            inputs=[pb_utils.Tensor(n, np.ascontiguousarray(a))
                                                    for n, a in feeds.items()],
                                            timeout=timeout_us)
        response = request.exec()
        if response.has_error():
            raise RuntimeError(response.error().message())
        return [pb_utils.get_output_tensor_by_name(response, n).as_numpy() for n in stage["outputs"]]

    def _exit_test(self, logits: np.ndarray, rows: np.ndarray, stage: int, sums: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(b, C) logits of ``rows`` -> label, confidence, score per row (with the "mean" aggregate: of exits 1..k)."""
        z = logits.astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        if self.aggregate == "mean":
            sums[rows] += p
            p = sums[rows] / stage
        label = p.argmax(axis=1)
        conf = p[np.arange(len(p)), label]
        if self.criterion == "confidence":
            return label, conf, conf
        logp = np.log(np.where(p > 0, p, 1.0))
        return label, conf, (p * logp).sum(axis=1)  # minus the entropy

    def execute(self, requests: list[Any]) -> list[Any]:
        t0 = time.perf_counter()
        frames, budgets, sizes = [], [], []
        for request in requests:
            f = pb_utils.get_input_tensor_by_name(request, "frame").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "budget_ms")
            frames.append(f)
            sizes.append(len(f))
            budgets.append(np.full(len(f), np.inf) if b is None else b.as_numpy().reshape(-1).astype(np.float64))
        batch, budget = np.concatenate(frames), np.concatenate(budgets)
        n, k_last = len(batch), len(self.stages)
        label, exit_, conf = np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.float32)
        done_ms, failed = np.zeros(n, np.float32), [""] * n
        sums = np.zeros((n, 0), np.float64)
        rows = np.arange(n)  # frames still undecided, in the order of ``carry``'s rows
        carry: dict[str, np.ndarray] = {self.stages[0]["inputs"][0]: batch}
        for k, stage in enumerate(self.stages, start=1):
            spent = (time.perf_counter() - t0) * 1e3
            if k > 1:
                keep = spent + self.predictor.predict(k) <= budget[rows]  # the deadline rule, per frame
                if not keep.all():
                    self.predictor.skipped(k)
                rows, carry = rows[keep], {name: a[keep] for name, a in carry.items()}
            if not len(rows):
                break
            outs: list[list[np.ndarray]] = []
            ok = np.ones(len(rows), bool)
            for s in range(0, len(rows), self.chunk):
                spent = (time.perf_counter() - t0) * 1e3
                if k == 1:  # shed frames whose budget stage 1 cannot meet any more (queued too long)
                    late = spent + self.predictor.predict(1) > budget[rows[s:s + self.chunk]]
                    for r in rows[s:s + self.chunk][late]:
                        failed[r] = (f"{stage['model']}: no time left for it ({budget[r] - spent:.1f} ms left, "
                                     f"{self.predictor.predict(1):.1f} ms predicted)")
                    ok[s:s + self.chunk] = ~late
                    if late.any():
                        self.predictor.skipped(1)
                    if late.all():
                        outs.append([])
                        continue
                part = np.flatnonzero(ok[s:s + self.chunk]) + s
                left = budget[rows[part]].max() - spent
                timeout_us = 0 if not math.isfinite(left) else max(1, int(left * 1e3))
                t = time.perf_counter()
                try:
                    outs.append(self._call(stage, {nm: a[part] for nm, a in carry.items()}, timeout_us))
                except RuntimeError as exc:  # those frames keep their previous exit (stage 1: an error)
                    ok[part] = False
                    for r in rows[part]:
                        failed[r] = f"{stage['model']}: {' '.join(str(exc).split())}" if k == 1 else ""
                    outs.append([])
                    continue
                self.predictor.observe(k, (time.perf_counter() - t) * 1e3)
            rows, carry = rows[ok], {name: a[ok] for name, a in carry.items()}
            outs = [o for o in outs if o]
            if not outs:
                break
            joined = [np.concatenate([o[j] for o in outs]) for j in range(len(stage["outputs"]))]
            if sums.shape[1] == 0:
                sums = np.zeros((n, joined[0].shape[1]), np.float64)
            lab, cf, score = self._exit_test(joined[0], rows, k, sums)
            label[rows], conf[rows], exit_[rows] = lab, cf, k
            done_ms[rows] = (time.perf_counter() - t0) * 1e3
            decided = score >= self.score_thr[k - 1] if k < k_last else np.ones(len(rows), bool)
            rows = rows[~decided]
            if k < k_last:
                wanted = set(self.stages[k]["inputs"])  # stage k+1 reads stage k's maps by name
                carry = {nm: a[~decided] for nm, a in zip(stage["outputs"][1:], joined[1:]) if nm in wanted}
        responses, start = [], 0
        for size in sizes:
            span = slice(start, start + size)
            start += size
            errors = [e for e in failed[span] if e]
            if errors:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(errors[0])))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("label", label[span].reshape(-1, 1)),
                pb_utils.Tensor("exit", exit_[span].reshape(-1, 1)),
                pb_utils.Tensor("confidence", conf[span].reshape(-1, 1)),
                pb_utils.Tensor("server_ms", done_ms[span].reshape(-1, 1))]))
        return responses
