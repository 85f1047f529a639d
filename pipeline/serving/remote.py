"""The cascade across a Triton server: a remote StageChain the existing Cascade drives, and the cascade model's client.

Client-driven (``remote_cascade``): each stage is a request to the stage's model; the carried maps
come back with each answer and go out again with the next stage's request. The exit rule and the
deadline rule stay on the client, which knows each frame's deadline: ``Cascade`` runs unchanged
over :class:`RemoteChain`, with the manifest's thresholds for the variant the server runs, and its
latency predictor started from round trips measured at start-up (it then follows what it
observes). Every request's timeout is the time left to the frame's deadline (``set_deadline``):
a server that cannot keep up costs a frame its answer, never a stall.

Answer only (:class:`CascadeModelClient`): one request to the ``cascade`` BLS model, with the
budget left; the server applies the same rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.backends.base import StageChain
from pipeline.runtime.cascade import Cascade
from pipeline.runtime.deadline import LatencyPredictor
from pipeline.errors import PipelineError
from pipeline.manifest import Manifest
from pipeline.serving.configs import WIRE_TO_NUMPY
from pipeline.serving.repository import CASCADE, stage_model
from pipeline.serving.rule import exit_rule
from pipeline.serving.wire import Connection, NotSent, RemoteFailure, RequestTimedOut, ServerError, ServerUnavailable

NO_DEADLINE_S = 30.0  # a request's timeout when the frame has no deadline
RESERVE_MS = 1.0  # a request gives up this long before the deadline: the client's time to answer from what it has


def server_config(conn: Connection, model: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The served configuration of ``model``; PipelineErrors naming the model where it is absent or unready."""
    try:
        status, ready = conn.get_json(f"/v2/models/{model}/ready", timeout_s)
        if status != 200:
            _, index = conn.get_json("/v2/repository/index", timeout_s, method="POST")
            have = sorted(m.get("name", "?") for m in index or [] if isinstance(m, dict) and m.get("state") == "READY")
            raise PipelineError(f"the server at {conn.url} has no ready model {model} (ready: "
                                f"{', '.join(have) or 'none'}); serve a repository written by `anytime triton repo` "
                                "for this model")
        status, config = conn.get_json(f"/v2/models/{model}/config", timeout_s)
    except ServerUnavailable as exc:
        raise PipelineError(f"no Triton server answers at {conn.url} ({str(exc).rsplit('(', 1)[-1].rstrip(')')}); "
                            "start one with `anytime triton serve`") from None
    except RequestTimedOut:
        raise PipelineError(f"the Triton server at {conn.url} did not answer within {timeout_s:.0f} s") from None
    if status != 200 or not isinstance(config, dict):
        raise PipelineError(f"the server at {conn.url} gave no configuration for {model} (HTTP {status})")
    return config


def check_served(config: dict[str, Any], model: str, kind: str, want: Sequence[tuple[str, str, Sequence[int]]]) -> None:
    """Refuse a served model whose ``kind`` ("input"/"output") tensors differ from ``want`` (name, dtype, dims)."""
    served = {t["name"]: (WIRE_TO_NUMPY.get(str(t.get("data_type", "")).replace("TYPE_", ""), t.get("data_type")),
                          [int(d) for d in t.get("dims", [])]) for t in config.get(kind, [])}
    for name, dtype, dims in want:
        got = served.get(name)
        if got != (dtype, list(dims)):
            found = f"{got[1]} {got[0]}" if got else f"no {kind} {name}"
            raise PipelineError(f"the server's {model} has {found} where the manifest says {kind} {name} is "
                                f"{list(dims)} {dtype}; serve a repository written for this model by "
                                "`anytime triton repo`")


class RemoteChain(StageChain):
    """Stages 1..K as requests to the server's stage models; the carried maps travel with each request."""

    backend = "triton"

    def __init__(self, url: str, manifest: Manifest, *, connect_timeout_s: float = 1.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.url = url
        self.manifest = manifest
        self.conn = Connection(url, connect_timeout_s)
        self.clock = clock
        self.deadline: float | None = None  # clock seconds; requests give up then
        self.variant = ""
        self.round_trips: list[list[float]] = [[] for _ in manifest.stages]  # ms per stage, every run
        self.frame_logits: list[np.ndarray] = []  # this frame's logits so far, exit 1 first
        self._carry: dict[str, np.ndarray] = {}

    @property
    def num_stages(self) -> int:
        return self.manifest.num_exits

    def set_deadline(self, deadline: float | None) -> None:
        """The current frame's deadline on ``clock`` (None: none); requests time out then."""
        self.deadline = deadline

    def _activate(self) -> None:
        """Check every stage model the server serves against the manifest, by name, dims and type."""
        sha = self.manifest.model.get("checkpoint_sha256", "")
        for spec in self.manifest.stages:
            model = stage_model(spec.index)
            config = server_config(self.conn, model)
            for kind, tensors in (("input", spec.inputs), ("output", spec.outputs)):
                check_served(config, model, kind, [(t.name, t.dtype, [int(d) for d in t.shape[1:]]) for t in tensors])
            params = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
            if sha and params.get("checkpoint_sha256") and params["checkpoint_sha256"] != sha:
                raise PipelineError(f"the server's {model} was written from checkpoint "
                                    f"{params['checkpoint_sha256'][:12]}..., the manifest's is {sha[:12]}...; serve "
                                    "the repository of this model")
            self.variant = self.variant or params.get("variant", "")
        self.precision = self.variant.partition("/")[2]

    def _frame_spec(self) -> tuple[tuple[int, ...], np.dtype]:
        t = self.manifest.stages[0].inputs[0]
        return (1, *(int(d) for d in t.shape[1:])), np.dtype(t.dtype)

    def _set_frame(self, frame: np.ndarray) -> None:
        self._carry = {self.manifest.stages[0].inputs[0].name: frame}
        self.frame_logits = []

    def _run(self, stage: int) -> np.ndarray:
        spec = self.manifest.stages[stage - 1]
        left = NO_DEADLINE_S if self.deadline is None else self.deadline - self.clock() - RESERVE_MS / 1e3
        t0 = self.clock()
        outs = self.conn.infer(stage_model(stage), {t.name: self._carry[t.name] for t in spec.inputs},
                               [t.name for t in spec.outputs], timeout_s=left,
                               server_timeout_us=0 if self.deadline is None else max(1, int(left * 1e6)))
        self.round_trips[stage - 1].append((self.clock() - t0) * 1e3)
        self._carry = {t.name: outs[t.name] for t in spec.outputs[1:]}
        logits = outs[spec.outputs[0].name].astype(np.float32, copy=False)
        self.frame_logits.append(logits)
        return logits

    def _deactivate(self) -> None:
        self.conn.close()
        self._carry = {}


def measure_round_trips(chain: RemoteChain, frames: int = 8, warmup: int = 2) -> tuple[list[float], list[float]]:
    """Run ``warmup`` then ``frames`` noise frames through every stage: per stage (median, 90th percentile)
    round trip in ms of the latter (first calls pay one-off costs the predictor should not start from)."""
    chain.activate()
    shape, dtype = chain._frame_spec()
    rng = np.random.default_rng(0)
    for _ in range(warmup + max(1, frames)):
        chain.set_deadline(None)
        chain.run_all(rng.integers(0, 256, size=shape).astype(dtype))
    times = [sorted(t[-max(1, frames):]) for t in chain.round_trips]
    return [t[len(t) // 2] for t in times], [t[int(0.9 * (len(t) - 1))] for t in times]


def remote_cascade(url: str, manifest: Manifest, policy: str = "default",
                   start_ms: tuple[list[float], list[float]] | None = None, warmup: int = 8) -> Cascade:
    """A Cascade over the server's stage models: the manifest's exit rule for the served variant, and a
    latency predictor started from ``start_ms`` (median, high) round trips, measured here when not given."""
    chain = RemoteChain(url, manifest)
    chain.activate()
    typical, high = start_ms if start_ms is not None else measure_round_trips(chain, warmup)
    rule = exit_rule(manifest, chain.variant, policy)
    predictor = LatencyPredictor(manifest.num_exits, high, typical, manifest.stage_flops(),
                                 source="round trips measured at start")
    cascade = Cascade(chain, manifest.classes, rule.thresholds, predictor, rule.criterion, aggregate=rule.aggregate,
                      frame_size=manifest.input.size, colour_order=manifest.input.colour_order,
                      notes=[rule.note] if rule.note else [])
    cascade.backend, cascade.precision, cascade.policy = "triton", chain.precision, policy
    return cascade


@dataclass(frozen=True)
class ModelAnswer:
    label: int
    exit: int
    confidence: float
    server_ms: float


class Admission:
    """Whether to send a frame: the time to its first answer predicted within the time left, else not sent.

    Under overload a request sent anyway comes back late and takes the place of one that could
    have made it; the client sheds it instead (:class:`NotSent`). The time to the first answer
    is estimated as the deadline rule estimates a stage (smoothed mean plus a multiple of the
    smoothed deviation, gains 1/8 and 1/4), with a margin of two deviations. No answer in time
    says only that it would have come later than the time left: it is observed as twice that
    (as TCP doubles its timer after a loss). Each frame not sent pulls the estimate 1/8 of the
    way back to its start, without the deadline rule's backoff: a camera that stopped sending
    finds out within a few frames whether the server has recovered.
    """

    GAIN, SPREAD_GAIN, MARGIN = 1 / 8, 1 / 4, 2.0

    def __init__(self, typical_ms: float):
        self.start = (max(float(typical_ms), 0.0), max(float(typical_ms), 0.0) / 2)
        self.mean_ms, self.dev_ms = self.start

    def predict(self) -> float:
        return self.mean_ms + self.MARGIN * self.dev_ms

    def admit(self, left_ms: float, what: str) -> None:
        """Raise NotSent where the first answer is predicted after ``left_ms``."""
        predicted = self.predict()
        if predicted > left_ms:
            self.mean_ms += self.GAIN * (self.start[0] - self.mean_ms)
            self.dev_ms += self.GAIN * (self.start[1] - self.dev_ms)
            raise NotSent(f"{what}: the first answer is predicted in {predicted:.1f} ms, {left_ms:.1f} ms are left")

    def observe(self, ms: float) -> None:
        """A first answer that came after ``ms``."""
        err = ms - self.mean_ms
        self.mean_ms += self.GAIN * err
        self.dev_ms += self.SPREAD_GAIN * (abs(err) - self.dev_ms)

    def missed(self, left_ms: float) -> None:
        """No answer within ``left_ms``."""
        self.observe(2 * max(left_ms, 0.0))


class CascadeModelClient:
    """Frames to the ``cascade`` model, each with the budget left to its deadline; overload shed by ``Admission``.

    The time to a frame's first answer is the round trip less the time the model spent past its
    first exit: the round trip minus ``server_ms`` plus the model's typical time to exit 1.
    """

    def __init__(self, url: str, manifest: Manifest, connect_timeout_s: float = 1.0,
                 clock: Callable[[], float] = time.perf_counter, shed: bool = True):
        self.manifest = manifest
        self.conn = Connection(url, connect_timeout_s)
        self.clock = clock
        self.shed = shed
        self.admission = Admission(10.0)
        self.first_ms = 1.0  # the model's time to answer at exit 1, smoothed

    def activate(self, warmup: int = 4) -> None:
        """Check the served model against the manifest, and time ``warmup`` answers (the first one's not kept)."""
        config = server_config(self.conn, CASCADE)
        t = self.manifest.input
        check_served(config, CASCADE, "input", [(t.name, t.dtype, [int(d) for d in t.shape[1:]])])
        frame = np.zeros([int(d) for d in t.shape[1:]], t.dtype)
        overheads, inside = [], []
        for _ in range(warmup + 1):
            t0 = self.clock()
            answer = self._send(frame, None, NO_DEADLINE_S)
            overheads.append((self.clock() - t0) * 1e3 - answer.server_ms)
            inside.append(answer.server_ms)
        kept = sorted(overheads[1:] or overheads)
        self.first_ms = min(inside[1:] or inside)  # the cheapest answer seen: closest to exit 1 alone
        self.admission = Admission(kept[len(kept) // 2] + self.first_ms)  # the median: one slow call does not count

    def _send(self, frame: np.ndarray, deadline: float | None, left: float) -> ModelAnswer:
        inputs = {self.manifest.input.name: frame[None] if frame.ndim == 3 else frame}
        if deadline is not None:
            inputs["budget_ms"] = np.array([[max(left, 0.0) * 1e3]], np.float32)
        try:
            outs = self.conn.infer(CASCADE, inputs, ["label", "exit", "confidence", "server_ms"], timeout_s=left,
                                   server_timeout_us=0 if deadline is None else max(1, int(left * 1e6)))
        except ServerError as exc:
            if "no time left" in str(exc):  # the cascade model shed it: its budget had run out in the queue
                raise RequestTimedOut(str(exc)) from None
            raise
        return ModelAnswer(int(outs["label"].reshape(-1)[0]), int(outs["exit"].reshape(-1)[0]),
                           float(outs["confidence"].reshape(-1)[0]), float(outs["server_ms"].reshape(-1)[0]))

    def classify(self, frame: np.ndarray, deadline: float | None = None) -> ModelAnswer:
        """One (H, W, 3) uint8 frame; a RemoteFailure where no answer comes by ``deadline`` (clock seconds)."""
        now = self.clock()
        left = NO_DEADLINE_S if deadline is None else deadline - now - RESERVE_MS / 1e3
        if deadline is not None and self.shed:
            self.admission.admit(left * 1e3, CASCADE)
        try:
            answer = self._send(frame, deadline, left)
        except RemoteFailure:
            self.admission.missed(max(self.clock() - now, left) * 1e3)
            raise
        if answer.exit == 1:
            self.first_ms += (answer.server_ms - self.first_ms) / 8
        self.admission.observe((self.clock() - now) * 1e3 - answer.server_ms + self.first_ms)
        return answer

    def close(self) -> None:
        self.conn.close()


__all__ = ["Admission", "CascadeModelClient", "ModelAnswer", "NotSent", "RemoteChain", "RemoteFailure",
           "measure_round_trips",
           "remote_cascade", "server_config", "check_served"]
