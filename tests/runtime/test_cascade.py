"""The cascade with a StageChain double: scripted logits per frame and stage times on a fake clock."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import pipeline.backends
from pipeline.backends.base import StageChain
from pipeline.runtime.cascade import Cascade
from pipeline.runtime.deadline import LatencyPredictor
from pipeline.errors import PipelineError
from pipeline.manifest import InputSpec, LatencyTable, Manifest, StageSpec, TensorSpec, ThresholdTable, write_manifest
from pipeline.thresholds import aggregate_exits, exit_index, exit_scores, softmax, thresholds_table, to_scores
from tests.helpers import FakeClock

H, W, K, C = 8, 8, 3, 5
CLASSES = [f"class{i}" for i in range(C)]


class ScriptedChain(StageChain):
    """Frame i gets ``logits[i, k - 1]`` from stage k; stage k advances the clock by ``stage_ms[k - 1]``."""

    backend, precision = "double", "fp32"

    def __init__(self, logits: np.ndarray, stage_ms: list[float], clock: FakeClock):
        self.logits, self.stage_ms, self.clock = logits.astype(np.float32), list(stage_ms), clock
        self.frame_index = -1
        self.ran: list[list[int]] = []  # stages run, per frame
        self.active = False

    @property
    def num_stages(self) -> int:
        return self.logits.shape[1]

    def activate(self) -> None:
        self.active = True

    def deactivate(self) -> None:
        self.active = False

    def set_frame(self, frame: np.ndarray) -> None:
        assert frame.shape == (1, H, W, 3) and frame.dtype == np.uint8
        self.frame_index += 1
        self.ran.append([])

    def run(self, stage: int) -> np.ndarray:
        assert stage == len(self.ran[-1]) + 1, "stages must run in order"
        self.ran[-1].append(stage)
        self.clock.t += self.stage_ms[stage - 1] / 1e3
        return self.logits[self.frame_index, stage - 1][None]  # (1, C)


def random_logits(frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(frames, K, C)) * np.array([1.0, 2.0, 3.0])[None, :, None]  # surer with depth


def make(logits, thresholds, stage_ms=(1.0, 2.0, 3.0), criterion="confidence", predictor=None, aggregate="last"):
    clock = FakeClock()
    chain = ScriptedChain(logits, list(stage_ms), clock)
    predictor = predictor or LatencyPredictor(K, list(stage_ms))  # starts at the true times, no jitter
    cascade = Cascade(chain, CLASSES, thresholds, predictor, criterion, aggregate=aggregate, frame_size=(H, W),
                      colour_order="BGR", clock=clock)
    return cascade, chain


FRAME = np.zeros((H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("aggregate", ["last", "mean"])
@pytest.mark.parametrize("criterion,thresholds", [("confidence", [0.6, 0.8, -math.inf]),
                                                  ("entropy", [0.9, 0.6, math.inf])])
def test_exits_equal_running_all_stages_and_replaying_the_rule(criterion, thresholds, aggregate):
    logits = random_logits(300)
    cascade, chain = make(logits, thresholds, criterion=criterion, aggregate=aggregate)
    results = [cascade.classify(FRAME) for _ in range(len(logits))]
    probs = aggregate_exits(softmax(logits.astype(np.float32).astype(np.float64)), aggregate)  # (F, K, C)
    want = exit_index(exit_scores(probs, criterion), to_scores(thresholds, criterion))  # (F,) 0-based
    assert 0 < (want == 0).sum() < len(want) and (want == 2).sum() > 0  # every exit is exercised
    assert [r.exit for r in results] == (want + 1).tolist()
    assert [r.label for r in results] == probs.argmax(-1)[np.arange(len(want)), want].tolist()
    own = logits.argmax(-1)[np.arange(len(want)), want]  # each exit's own answer
    assert (np.array([r.label for r in results]) != own).any() == (aggregate == "mean")
    assert [r.confidence for r in results] == pytest.approx(probs.max(-1)[np.arange(len(want)), want].tolist())
    assert all(r.stopped_by == ("last-exit" if r.exit == K else "confidence") for r in results)
    assert [len(ran) for ran in chain.ran] == [r.exit for r in results]  # no stage run past the exit
    r = results[0]
    assert r.class_name == CLASSES[r.label] and r.num_exits == K and r.budget_ms is None and r.deadline_met is None
    assert r.stage_ms == pytest.approx([1.0, 2.0, 3.0][:r.exit]) and r.total_ms == pytest.approx(sum(r.stage_ms))


@pytest.mark.parametrize("budget,deadline_exit", [(2.5, 1), (3.5, 2), (5.9, 2), (6.5, 3)])
def test_stages_that_would_overrun_are_skipped(budget, deadline_exit):
    logits = random_logits(200, seed=1)
    thresholds = [0.7, 0.7, -math.inf]
    cascade, chain = make(logits, thresholds)
    results = [cascade.classify(FRAME, budget_ms=budget) for _ in range(len(logits))]
    probs = softmax(logits.astype(np.float32).astype(np.float64))
    sure = exit_index(exit_scores(probs), to_scores(thresholds, "confidence")) + 1  # exits without a deadline
    assert [r.exit for r in results] == np.minimum(sure, deadline_exit).tolist()
    for r, s in zip(results, sure):
        want = "confidence" if s <= deadline_exit and s < K else "deadline" if deadline_exit < K else "last-exit"
        assert r.stopped_by == want
        assert r.deadline_met and r.total_ms <= budget and r.budget_ms == budget


def test_stage_1_always_runs():
    logits = random_logits(5)
    cascade, chain = make(logits, None)  # no thresholds: only the deadline stops early
    r = cascade.classify(FRAME, budget_ms=0.1)  # less than stage 1 alone
    assert r.exit == 1 and chain.ran[-1] == [1] and r.stopped_by == "deadline"
    assert r.deadline_met is False and r.total_ms == pytest.approx(1.0)
    r = cascade.classify(FRAME)  # without a budget or thresholds: to the last exit
    assert r.exit == K and r.stopped_by == "last-exit"


def test_the_online_estimate_adapts():
    """Stage 3 suddenly takes 4 ms instead of 3: one frame overruns, then it is no longer scheduled."""
    logits = random_logits(2000)
    cascade, chain = make(logits, None)  # the predictor starts at the true times 1, 2, 3 ms
    budget = 6.5  # 1 + 2 + 3 = 6 fits
    assert [cascade.classify(FRAME, budget).exit for _ in range(5)] == [3] * 5
    chain.stage_ms[2] = 4.0
    first = cascade.classify(FRAME, budget)
    assert first.exit == 3 and not first.deadline_met  # predicted 3 ms, took 4
    later = [cascade.classify(FRAME, budget) for _ in range(20)]
    assert all(r.exit == 2 and r.stopped_by == "deadline" and r.deadline_met for r in later)
    # The slowdown lasts: each failed retry doubles the wait, so only a handful of frames miss.
    later = [cascade.classify(FRAME, budget) for _ in range(600)]
    assert sum(not r.deadline_met for r in later) <= 5
    # Fast again: skips relax its estimate until it is retried, observed and kept.
    chain.stage_ms[2] = 3.0
    exits = [cascade.classify(FRAME, budget).exit for _ in range(1000)]
    assert exits[-100:] == [3] * 100


def test_wrong_frames_are_refused():
    cascade, _ = make(random_logits(2), None)
    for bad in (np.zeros((H, W), np.uint8), np.zeros((H, W, 3), np.float32), np.zeros((2, H, W, 3), np.uint8),
                np.zeros((H + 1, W, 3), np.uint8), np.zeros((H, W, 4), np.uint8), [[0]]):
        with pytest.raises(PipelineError, match=r"expected a 8x8 \(H, W, 3\) or \(1, H, W, 3\) uint8 frame in BGR"):
            cascade.classify(bad)
    assert cascade.classify(np.zeros((1, H, W, 3), np.uint8)).exit == K  # batch of one is fine


def test_bad_construction_is_refused():
    clock = FakeClock()
    chain = ScriptedChain(random_logits(1), [1.0, 2.0, 3.0], clock)
    with pytest.raises(PipelineError, match="expected 3 thresholds"):
        Cascade(chain, CLASSES, [0.5, -math.inf], LatencyPredictor(K))
    with pytest.raises(PipelineError, match="unknown exit criterion"):
        Cascade(chain, CLASSES, None, LatencyPredictor(K), criterion="margin")
    with pytest.raises(PipelineError, match="covers 2 stages"):
        Cascade(chain, CLASSES, None, LatencyPredictor(2))
    cascade = Cascade(chain, CLASSES[:3], None, LatencyPredictor(K), clock=clock)
    with pytest.raises(PipelineError, match="returned 5 logits, the model lists 3 classes"):
        cascade.classify(FRAME)
    broken = random_logits(1)
    broken[0, 0, 2] = np.nan  # stage 1 of frame 0
    with pytest.raises(PipelineError, match="stage 1 returned logits that are not finite numbers"):
        Cascade(ScriptedChain(broken, [1.0, 2.0, 3.0], clock), CLASSES, None, LatencyPredictor(K),
                clock=clock).classify(FRAME)


# --- from_folder, with the backend loader replaced by the double ---------------------------------------------


def write_model(folder, thresholds=None, latency=None):
    stages = [StageSpec(index=1, inputs=[TensorSpec("frame", ["N", H, W, 3], "uint8")],
                        outputs=[TensorSpec("logits_1", ["N", C], "float32")], flops=100, params=0)]
    stages += [StageSpec(index=k, inputs=[], outputs=[TensorSpec(f"logits_{k}", ["N", C], "float32")],
                         flops=100 * k, params=0) for k in range(2, K + 1)]
    m = Manifest(model={"name": "double"}, classes=CLASSES, input=InputSpec("frame", ["N", H, W, 3], "uint8", "BGR"),
                 stages=stages, thresholds={k: ThresholdTable.from_dict(v) for k, v in (thresholds or {}).items()},
                 latency={k: LatencyTable.from_dict(v) for k, v in (latency or {}).items()})
    return write_manifest(folder, m)


@pytest.fixture
def fake_backends(monkeypatch):
    calls = []

    def load_chain(manifest, folder, backend, precision, threads):
        calls.append((backend, precision, threads))
        return ScriptedChain(random_logits(50), [1.0, 2.0, 3.0], FakeClock())

    monkeypatch.setattr(pipeline.backends, "load_chain", load_chain, raising=False)
    monkeypatch.setattr(pipeline.backends, "pick_backend", lambda manifest: "onnxruntime", raising=False)
    return calls


def calibrated_table(criterion="confidence"):
    logits = random_logits(400, seed=3)
    labels = logits[:, -1].argmax(-1)  # the last exit is right by construction
    return thresholds_table(softmax(logits).astype(np.float32), labels, [1.0, 3.0, 6.0], criterion,
                            max_accuracy_at_ms=[3.0], aggregate="mean")


def test_from_folder_reads_policy_and_latencies(tmp_path, fake_backends):
    table = calibrated_table()
    lat = {"stages": [{"p50_ms": 0.5, "p99_ms": 0.9}, {"p50_ms": 1.0, "p99_ms": 1.5}, {"p50_ms": 2.0, "p99_ms": 2.5}]}
    write_model(tmp_path, {"onnxruntime/fp32": table}, {"onnxruntime/fp32": lat})
    cascade = Cascade.from_folder(tmp_path, policy="max-accuracy@3ms", threads=2)
    assert fake_backends == [("onnxruntime", "fp32", 2)]
    assert cascade.backend == "onnxruntime" and cascade.policy == "max-accuracy@3ms" and cascade.notes == []
    assert cascade.aggregate == "mean"  # as the table was calibrated
    assert cascade.thresholds[0] == pytest.approx(table["policies"]["max-accuracy@3ms"]["thresholds"][0])
    assert cascade.thresholds[-1] == -math.inf and cascade.frame_size == (H, W)
    assert cascade.predictor.predict(3) == pytest.approx(2.5)
    assert cascade.classify(FRAME).num_exits == K
    # A table written before aggregates existed (schema version 1) answers with each exit alone.
    path = write_model(tmp_path, {"onnxruntime/fp32": table}, {"onnxruntime/fp32": lat})
    raw = json.loads(path.read_text())
    raw["schema_version"] = 1
    del raw["thresholds"]["onnxruntime/fp32"]["aggregate"], raw["thresholds"]["onnxruntime/fp32"]["providers"]
    path.write_text(json.dumps(raw))
    assert Cascade.from_folder(tmp_path).aggregate == "last"
    # Entropy tables carry their criterion; asking for the other one is an error.
    write_model(tmp_path, {"onnxruntime/fp32": calibrated_table("entropy")})
    assert Cascade.from_folder(tmp_path).criterion == "entropy"
    with pytest.raises(PipelineError, match="calibrated on 'entropy', not 'confidence'"):
        Cascade.from_folder(tmp_path, criterion="confidence")


def test_unknown_policy_lists_known_ones(tmp_path, fake_backends):
    write_model(tmp_path, {"onnxruntime/fp32": calibrated_table()})
    with pytest.raises(PipelineError, match=r"unknown threshold policy 'fast'; known: default, last-exit, "
                                            r"max-accuracy@3ms"):
        Cascade.from_folder(tmp_path, policy="fast")
    assert fake_backends == []  # refused before any engine was loaded
    with pytest.raises(PipelineError, match="unknown precision 'fp8'"):
        Cascade.from_folder(tmp_path, precision="fp8")


def test_without_thresholds_runs_to_the_last_exit_and_says_so(tmp_path, fake_backends):
    write_model(tmp_path)
    cascade = Cascade.from_folder(tmp_path, precision="int8")
    assert any("no exit thresholds for onnxruntime/int8" in n for n in cascade.notes)
    assert any("no measured latencies" in n for n in cascade.notes)
    assert all(cascade.classify(FRAME).exit == K for _ in range(5))
    with pytest.raises(PipelineError, match="needs thresholds for onnxruntime/int8"):
        Cascade.from_folder(tmp_path, precision="int8", policy="max-accuracy@3ms")


def test_importing_the_runtime_does_not_import_torch():
    code = ("import sys, pipeline.runtime.cascade, pipeline.thresholds, pipeline.runtime.deadline; "
            "heavy = [m for m in ('torch', 'tensorrt', 'pycuda') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tables_measured_under_other_execution_providers_are_refused(tmp_path, fake_backends):
    lat = {"stages": [{"p50_ms": 1.0, "p99_ms": 1.0}] * K, "providers": ["CUDAExecutionProvider"]}
    write_model(tmp_path, {"onnxruntime/fp32": calibrated_table()}, {"onnxruntime/fp32": lat})
    with pytest.raises(PipelineError, match=r"latency for onnxruntime/fp32 were measured on the execution providers "
                                            r"\['CUDAExecutionProvider'\], but the chain runs on \[\]"):
        Cascade.from_folder(tmp_path)
    write_model(tmp_path, {"onnxruntime/fp32": {**calibrated_table(), "providers": ["CPUExecutionProvider"]}})
    with pytest.raises(PipelineError, match="thresholds for onnxruntime/fp32 were measured"):
        Cascade.from_folder(tmp_path)
