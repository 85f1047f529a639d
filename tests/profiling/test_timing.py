"""Timing: per-stage times on a fake clock, interleaved profiles, CUDA-event times, statistics; and the real
ONNX Runtime chain and the PyTorch baseline on the tiny built model."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.splits import split_images
from pipeline.errors import PipelineError
from pipeline.metrics import accuracy_per_exit
from pipeline.profiling.timing import LatencyProfile, chain_exit_probs, latency_stats, profile_chain, profile_chains
from pipeline.thresholds import softmax
from tests.helpers import FakeClock
from tests.profiling.conftest import EventChain, TimedChain, frames


def test_latency_stats_of_known_samples():
    s = latency_stats(np.arange(1, 101, dtype=float))  # 1..100 ms
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["max_ms"] == 100.0
    with pytest.raises(PipelineError, match="non-empty 1-D"):
        latency_stats(np.array([]))


def test_profile_chain_times_each_stage_and_skips_the_warmup():
    clock = FakeClock()
    chain = TimedChain([2.0, 1.0, 0.5], clock, frame_ms=0.25)
    prof = profile_chain(chain, frames(), runs=7, warmup=3, threads=1, clock=clock)
    assert chain.frames == 10 and chain.activations == 1
    assert prof.stage_ms.shape == (7, 3) and prof.runs == 7 and prof.clock == "perf_counter"
    np.testing.assert_allclose(prof.stage_ms, [[2.25, 1.0, 0.5]] * 7)  # stage 1 covers copying the frame in
    np.testing.assert_allclose(prof.cumulative_p50(), [2.25, 3.25, 3.75])
    assert prof.key == "double/fp32"
    j = prof.to_json()
    assert [s["p50_ms"] for s in j["stages"]] == pytest.approx([2.25, 1.0, 0.5])
    assert j["runs"] == 7 and j["warmup"] == 3


def test_interleaved_profiles_keep_their_ratio_when_the_machine_slows_down():
    """The machine runs 3x slower after the 10th timed run: taking turns in blocks of 5 runs, both chains
    see it alike."""
    clock = FakeClock()
    fast, slow = TimedChain([2.0, 1.0], clock), TimedChain([1.0, 0.5], clock)
    for chain in (fast, slow):
        chain.slowdown = lambda: 1.0 if fast.frames <= 12 else 3.0
    p_fast, p_slow = profile_chains([fast, slow], frames(), runs=20, warmup=2, clock=clock, block=5)
    assert fast.frames == slow.frames == 22 and fast.activations == slow.activations == 1
    assert (p_fast.key, p_fast.runs, p_slow.runs) == ("double/fp32", 20, 20)
    np.testing.assert_allclose(p_fast.stage_ms / p_slow.stage_ms, 2.0)
    # One after the other, the slowdown lands on the second chain alone.
    p_second = profile_chain(slow, frames(), runs=20, warmup=2, clock=clock)
    first_speed = (10 * 1.0 + 10 * 3.0) / 20
    np.testing.assert_allclose(p_fast.stage_ms.mean() / p_second.stage_ms.mean(), 2.0 * first_speed / 3.0)
    with pytest.raises(PipelineError, match="at least one chain"):
        profile_chains([], frames(), runs=1, warmup=0)
    with pytest.raises(PipelineError, match="block=0"):
        profile_chains([fast], frames(), runs=1, warmup=0, block=0)


def test_cumulative_percentiles_are_taken_per_run():
    # Stage times anti-correlated across runs: the sum of p50s differs from the p50 of the sums.
    prof = LatencyProfile("x/fp32", np.array([[1.0, 3.0], [3.0, 1.0], [2.0, 2.0]]), "perf_counter", 1, 0)
    assert prof.cumulative_p50() == pytest.approx([2.0, 4.0])
    assert prof.cumulative()[1]["max_ms"] == pytest.approx(4.0)


def test_cuda_event_times_are_recorded_beside_the_wall_times():
    """GPU stage times come from CUDA events; the wall times, which the deadline rule sees, stay the stage times."""
    clock = FakeClock()
    chain = EventChain([2.0, 1.0], clock, events=[0.7, 0.3])
    prof = profile_chain(chain, frames(), runs=4, warmup=1, clock=clock)
    assert prof.clock == "cuda-events"
    np.testing.assert_allclose(prof.stage_ms, [[2.0, 1.0]] * 4)
    np.testing.assert_allclose(prof.device_ms, [[0.7, 0.3]] * 4)
    assert [s["p50_ms"] for s in prof.to_json()["device_stages"]] == pytest.approx([0.7, 0.3])
    chain = EventChain([2.0, 1.0], clock, events=[None, None])  # no events after all: wall times only
    prof = profile_chain(chain, frames(), runs=4, warmup=1, clock=clock)
    assert prof.clock == "perf_counter" and prof.device_ms is None
    np.testing.assert_allclose(prof.stage_ms, [[2.0, 1.0]] * 4)
    assert "device_stages" not in prof.to_json()


def test_profile_rejects_bad_frames_and_counts():
    chain = TimedChain([1.0], FakeClock())
    with pytest.raises(PipelineError, match=r"expected frames of shape \(N, H, W, 3\) uint8"):
        profile_chain(chain, frames().astype(np.float32), runs=2, warmup=0)
    with pytest.raises(PipelineError, match="expected frames"):
        profile_chain(chain, frames()[:0], runs=2, warmup=0)
    with pytest.raises(PipelineError, match="at least 1 timed run"):
        profile_chain(chain, frames(), runs=0, warmup=0)


def test_chain_exit_probs_is_the_softmax_of_every_exit():
    logits = np.random.default_rng(1).normal(size=(4, 3, 5)).astype(np.float32)  # (N, K, C)
    chain = TimedChain([1.0, 1.0, 1.0], FakeClock(), logits=logits)
    probs = chain_exit_probs(chain, frames(4))
    assert probs.shape == (4, 3, 5) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, softmax(logits, axis=-1), rtol=1e-6)


def test_real_chain_profile_and_probs_match_the_build(built):
    from pipeline.backends import load_chain
    from pipeline.manifest import load_manifest

    manifest = load_manifest(built.folder)
    val_images, val_labels = split_images(manifest, str(built.data), "validation", built.cache)
    assert val_images.shape == (20, 32, 32, 3) and val_images.dtype == np.uint8
    test_images, _ = split_images(manifest, str(built.data), "test", built.cache, limit=7)
    assert len(test_images) == 7
    with load_chain(manifest, built.folder, "onnxruntime", "fp32") as chain:
        prof = profile_chain(chain, val_images, runs=20, warmup=5)
        probs = chain_exit_probs(chain, val_images)
    assert prof.stage_ms.shape == (20, 3) and np.all(prof.stage_ms > 0) and prof.key == "onnxruntime/fp32"
    assert np.all(np.diff(prof.cumulative_p50()) >= 0)
    assert probs.shape == (20, 3, 10)
    assert accuracy_per_exit(probs, val_labels) == pytest.approx(manifest.accuracy["validation"]["onnxruntime/fp32"],
                                                                 abs=1e-3)


def test_torch_baseline_matches_onnxruntime(built):
    from pipeline.backends import load_chain
    from pipeline.models.loading import load_model
    from pipeline.manifest import load_manifest
    from pipeline.profiling.torch_baseline import profile_torch, torch_exit_probs

    manifest = load_manifest(built.folder)
    images, _ = split_images(manifest, str(built.data), "validation", built.cache)
    model, _ = load_model(built.checkpoint)
    prof = profile_torch(model, images, runs=5, warmup=1, threads=1)
    assert prof.stage_ms.shape == (5, 3) and prof.key == "pytorch-eager/fp32" and np.all(prof.stage_ms > 0)
    with load_chain(manifest, built.folder, "onnxruntime", "fp32") as chain:
        ort = chain_exit_probs(chain, images[:6])
    np.testing.assert_allclose(torch_exit_probs(model, images[:6], batch=4), ort, atol=1e-4)


def test_each_batch_size_is_timed_and_stored_beside_batch_1(built):
    """profile_batches times whole batches; the manifest's table keeps them per size; the predictor reads them."""
    from pipeline.backends import load_chain
    from pipeline.manifest import load_manifest
    from pipeline.profiling.tables import latency_table
    from pipeline.profiling.timing import profile_batches
    from pipeline.runtime.deadline import LatencyPredictor

    manifest = load_manifest(built.folder)
    images, _ = split_images(manifest, str(built.data), "validation", built.cache)
    with load_chain(manifest, built.folder, "onnxruntime", "fp32") as chain:
        one = profile_chain(chain, images, runs=20, warmup=2)
        batches = profile_batches(chain, images, [1, 4, 8], runs=40, warmup=8)
    assert sorted(batches) == [4, 8] and batches[4].stage_ms.shape == (10, 3) and batches[8].runs == 10
    table = latency_table(one, {}, ["CPUExecutionProvider"], "now", batches)
    assert sorted(table.batch_rows()) == [1, 4, 8] and len(table.batches["8"]) == 3
    manifest.latency["onnxruntime/fp32"] = table
    p = LatencyPredictor.from_manifest(manifest, "onnxruntime", "fp32")
    assert "batches 1, 4, 8" in p.source and p.batch_factor(1, 8) > 1.0
