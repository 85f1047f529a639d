"""The deadline rule and the online stage-time predictor."""

from __future__ import annotations

import pytest

from pipeline.runtime.deadline import LatencyPredictor
from pipeline.errors import PipelineError
from pipeline.manifest import InputSpec, LatencyTable, Manifest, StageSpec


def manifest_with(latency: dict | None = None, flops=(100, 300, 700)) -> Manifest:
    stages = [StageSpec(index=k, inputs=[], outputs=[], flops=f, params=0) for k, f in enumerate(flops, start=1)]
    tables = {k: LatencyTable.from_dict(v) for k, v in (latency or {}).items()}
    return Manifest(model={"name": "tiny"}, classes=["a", "b"], input=InputSpec("frame", [], "uint8"), stages=stages,
                    latency=tables)


def rows(*p50_p90_p99):
    return [{"p50_ms": a, "p90_ms": b, "p99_ms": c} for a, b, c in p50_p90_p99]


def test_starts_from_the_measured_percentile():
    m = manifest_with({"onnxruntime/fp32": {"stages": rows((1.0, 1.2, 1.5), (2.0, 2.5, 3.0), (3.0, 3.1, 3.2))}})
    pred = LatencyPredictor.from_manifest(m, "onnxruntime", "fp32")
    assert [pred.predict(k) for k in (1, 2, 3)] == pytest.approx([1.5, 3.0, 3.2])
    assert pred.measured and pred.source == "measured p99 latency of onnxruntime/fp32"
    pred = LatencyPredictor.from_manifest(m, "onnxruntime", "fp32", percentile="p90")
    assert [pred.predict(k) for k in (1, 2, 3)] == pytest.approx([1.2, 2.5, 3.1])


def test_missing_percentile_falls_back_and_malformed_tables_are_refused():
    m = manifest_with({"tensorrt/fp16": {"stages": [{"p50_ms": 1.0}, {"p50_ms": 2.0}, {"p50_ms": 3.0}]}})
    pred = LatencyPredictor.from_manifest(m, "tensorrt", "fp16")
    assert pred.predict(2) == pytest.approx(2.0) and "p50" in pred.source
    m = manifest_with({"tensorrt/fp16": {"stages": [{"p50_ms": 1.0}]}})
    with pytest.raises(PipelineError, match="has 1 stage rows, expected 3"):
        LatencyPredictor.from_manifest(m, "tensorrt", "fp16")
    m = manifest_with({"tensorrt/fp16": {"stages": [{"max_ms": 1.0}] * 3}})
    with pytest.raises(PipelineError, match="re-run the latency profiler"):
        LatencyPredictor.from_manifest(m, "tensorrt", "fp16")
    with pytest.raises(PipelineError, match="start_ms has 2 entries, expected 3"):
        LatencyPredictor(3, [1.0, 2.0])


def test_without_measurements_guesses_from_stage_1_and_flops():
    pred = LatencyPredictor.from_manifest(manifest_with(), "onnxruntime", "int8")
    assert not pred.measured and pred.source.startswith("no measured latencies for onnxruntime/int8")
    assert pred.predict(2) == 0.0  # nothing known yet (stage 1 always runs first anyway)
    pred.observe(1, 2.0)  # stage 1: 100 FLOPs in 2 ms; stage 2 has 200, stage 3 has 400
    assert pred.predict(2) == pytest.approx(3 * 4.0)  # guess m = 4, deviation m / 2, margin 4
    assert pred.predict(3) == pytest.approx(3 * 8.0)
    pred.observe(3, 6.0)  # once seen, a stage follows its own times
    assert pred.predict(3) == pytest.approx(6.0 + 4 * 3.0)


def test_steady_times_tighten_and_a_step_change_is_followed_within_a_frame():
    pred = LatencyPredictor(2, [1.0, 3.0], [1.0, 2.0])  # stage 2: median 2, p99 3
    for _ in range(60):
        pred.observe(2, 2.0)
    assert pred.predict(2) == pytest.approx(2.0, abs=0.01)  # no jitter seen: the margin shrinks away
    pred.observe(2, 5.0)  # suddenly slower
    assert pred.predict(2) > 5.0
    for _ in range(60):
        pred.observe(2, 5.0)
    assert pred.predict(2) == pytest.approx(5.0, abs=0.05)


def test_should_run():
    pred = LatencyPredictor(3, [1.0, 2.0, 3.0])
    assert pred.should_run(1, spent_ms=50.0, budget_ms=1.0)  # stage 1 always runs
    assert pred.should_run(3, spent_ms=50.0, budget_ms=None)  # no budget: never stop
    assert pred.should_run(2, spent_ms=1.0, budget_ms=3.0)  # 1 + 2 <= 3
    assert not pred.should_run(2, spent_ms=1.0, budget_ms=2.9)
    assert not pred.should_run(3, spent_ms=3.0, budget_ms=5.5)


def skips_until(pred: LatencyPredictor, stage: int, limit_ms: float) -> int:
    n = 0
    while pred.predict(stage) > limit_ms:
        pred.skipped(stage)
        n += 1
    return n


def test_a_skipped_stage_relaxes_toward_its_start_and_backs_off():
    pred = LatencyPredictor(2, [1.0, 2.0], recover=1 / 8)
    pred.observe(2, 10.0)  # one very slow run
    high = pred.predict(2)
    assert high > 10.0
    first = skips_until(pred, 2, 2.5)
    assert 0 < first < 100
    for _ in range(200):
        pred.skipped(2)
    assert pred.predict(2) == pytest.approx(2.0, abs=0.01)
    pred.observe(2, 10.0)  # retried and still slow: the next recovery takes about twice as long
    second = skips_until(pred, 2, 2.5)
    assert second > 1.6 * first
    pred.observe(2, 2.0)  # within its prediction: back to the full step
    pred.observe(2, 10.0)
    assert skips_until(pred, 2, 2.5) < 0.7 * second
    frozen = LatencyPredictor(2, [1.0, 2.0], recover=0.0)
    frozen.observe(2, 10.0)
    frozen.skipped(2)
    assert frozen.predict(2) == pytest.approx(high)


def test_bad_observations_are_ignored_and_bad_settings_refused():
    pred = LatencyPredictor(1, [1.0])
    pred.observe(1, float("nan"))
    pred.observe(1, -1.0)
    assert pred.predict(1) == 1.0
    with pytest.raises(PipelineError, match="gain"):
        LatencyPredictor(1, gain=0.0)
    with pytest.raises(PipelineError, match="at least one stage"):
        LatencyPredictor(0)


def test_the_predicted_cost_of_a_batch_interpolates_between_measured_sizes():
    """Batch 1 is the plain estimate; between measured batches linear in the factor; beyond, proportional;
    unmeasured, b frames cost b runs; an observed batch teaches the batch-1 estimate through its factor."""
    from pipeline.runtime.deadline import LatencyPredictor

    p = LatencyPredictor(2, [2.0, 4.0], [2.0, 4.0], batch_p50={1: [2.0, 4.0], 4: [4.0, 6.0], 16: [10.0, 12.0]})
    assert p.predict(1) == 2.0 and p.predict(1, batch=1) == 2.0
    assert p.predict(1, batch=4) == pytest.approx(4.0) and p.predict(2, batch=4) == pytest.approx(6.0)
    assert p.batch_factor(1, 10) == pytest.approx(2.0 + (5.0 - 2.0) * 6 / 12)
    assert p.batch_factor(1, 32) == pytest.approx(5.0 * 2)
    assert LatencyPredictor(1, [3.0]).predict(1, batch=3) == pytest.approx(9.0)
    p.observe(1, 8.0, batch=4)  # twice the batch-4 median: the batch-1 mean moves toward 4 ms
    assert 2.0 < p.predict(1) and p.should_run(2, 0.0, 5.0, batch=1) and not p.should_run(2, 0.0, 5.0, batch=16)
