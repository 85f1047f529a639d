"""The batched cascade on the tiny model: per-frame answers equal the plain cascade's; a tight deadline drops
only the frames whose budgets the batch's predicted cost exceeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from pipeline.backends import load_chain  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.manifest import load_manifest  # noqa: E402
from pipeline.runtime.batched import BatchedCascade  # noqa: E402
from pipeline.runtime.cascade import Cascade  # noqa: E402
from pipeline.runtime.deadline import LatencyPredictor  # noqa: E402
from tests.backends.conftest import model_folder  # noqa: E402,F401  (the tiny ONNX Runtime model)
from tests.export.conftest import exported, image_like  # noqa: E402,F401
from tests.helpers import FakeClock  # noqa: E402

CLASSES = ["a", "b", "c"]


def _cascade(folder, thresholds, criterion="confidence", aggregate="last", predictor=None, clock=None) -> Cascade:
    chain = load_chain(load_manifest(folder), folder, "onnxruntime", "fp32")
    return Cascade(chain, CLASSES, thresholds, predictor or LatencyPredictor(3), criterion, aggregate=aggregate,
                   frame_size=(32, 32), **({"clock": clock} if clock else {}))


def _medians(folder, frames, criterion, aggregate) -> list[float]:
    """Per exit, the median of the criterion over ``frames``: about half the frames leave at each exit."""
    with load_chain(load_manifest(folder), folder, "onnxruntime", "fp32") as chain:
        z = np.stack(chain.run_all(frames), axis=1).astype(np.float64)  # (N, K, C)
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    if aggregate == "mean":
        p = np.cumsum(p, axis=1) / np.arange(1, 4)[None, :, None]
    values = p.max(axis=2) if criterion == "confidence" else -(p * np.log(p)).sum(axis=2)
    return [float(np.median(values[:, k])) for k in range(2)] + [math.inf if criterion == "confidence" else -math.inf]


@pytest.mark.parametrize("criterion,aggregate", [("confidence", "last"), ("entropy", "last"),
                                                 ("confidence", "mean"), ("entropy", "mean")])
def test_without_a_deadline_each_frame_gets_the_plain_cascades_answer(model_folder, criterion, aggregate):  # noqa: F811
    frames = image_like(12, seed=3)
    thresholds = _medians(model_folder, frames, criterion, aggregate)
    plain = _cascade(model_folder, thresholds, criterion, aggregate)
    one = []
    for f in frames:
        one.append(plain.classify(f))
        one[-1] = (one[-1], plain.answer_probs().copy())
    batched = BatchedCascade(_cascade(model_folder, thresholds, criterion, aggregate))
    got = batched.classify_batch(list(frames))
    assert len({r.exit for r, _ in one}) >= 2  # frames leave at different exits
    for i, (g, (r, probs)) in enumerate(zip(got, one)):
        assert (g.label, g.exit, g.stopped_by) == (r.label, r.exit, r.stopped_by)
        assert g.confidence == pytest.approx(r.confidence, abs=1e-6) and len(g.stage_ms) == g.exit
        assert np.abs(batched.probs[i] - probs).max() < 1e-6
    low = -math.inf  # a prior bar every score meets: a frame whose exit agrees with its prior leaves there
    priors = [(r.label, [low] * 3) if i % 2 else None for i, (r, _) in enumerate(one)]
    with_prior = [plain.classify(f, prior=p) for f, p in zip(frames, priors)]
    got = batched.classify_batch(list(frames), priors=priors)
    assert [(g.exit, g.stopped_by) for g in got] == [(r.exit, r.stopped_by) for r in with_prior]
    assert aggregate == "mean" or "prior" in {r.stopped_by for r in got}
    plain.close()
    batched.cascade.close()


def test_a_tight_deadline_drops_only_the_frames_whose_budgets_the_batch_would_overrun(model_folder):  # noqa: F811
    """Stage k costs 2 ms at batch 1 and 4 ms at batch 4 (linear between) on a fake clock, as predicted."""
    def predictor() -> LatencyPredictor:
        return LatencyPredictor(3, [2.0] * 3, [2.0] * 3, batch_p50={1: [2.0] * 3, 4: [4.0] * 3})

    clock, ref = FakeClock(), predictor()
    cascade = _cascade(model_folder, None, predictor=predictor(), clock=clock)
    run = cascade.chain.run

    def timed_run(k: int) -> np.ndarray:
        clock.t += 2e-3 * ref.batch_factor(k, cascade.chain.batch)
        return run(k)

    cascade.chain.run = timed_run  # type: ignore[method-assign]
    frames = list(image_like(4, seed=5))
    got = BatchedCascade(cascade).classify_batch(frames, [100.0, 100.0, 5.0, 3.0])
    # after stage 1 (4 ms): left 96, 96, 1, -1; stage 2 for 3 frames is predicted 3.33 ms, for 2 frames 2.67 ms
    assert [r.exit for r in got] == [3, 3, 1, 1]
    assert [r.stopped_by for r in got] == ["last-exit", "last-exit", "deadline", "deadline"]
    assert [r.deadline_met for r in got] == [True, True, True, False]  # stage 1 always runs
    assert got[0].total_ms == pytest.approx(4.0 + 2 * 8 / 3) and got[2].total_ms == pytest.approx(4.0)
    cascade.chain.run = run  # type: ignore[method-assign]
    alone = Cascade(cascade.chain, CLASSES, None, LatencyPredictor(3))
    assert [alone.classify(f).label for f in frames[:2]] == [r.label for r in got[:2]]
    with pytest.raises(PipelineError, match="one budget, arrival time and prior per frame"):
        BatchedCascade(cascade).classify_batch(frames, [1.0])
    cascade.close()


def test_a_stage_that_returns_nan_stops_the_batch_in_one_line(model_folder, monkeypatch):  # noqa: F811
    batched = BatchedCascade(_cascade(model_folder, [0.99, 0.99, math.inf]))
    chain = batched.cascade.chain
    run = chain.run

    def broken(stage, *args, **kwargs):
        out = run(stage, *args, **kwargs)
        return np.full_like(out, np.nan) if stage == 2 else out

    monkeypatch.setattr(chain, "run", broken)
    with pytest.raises(PipelineError, match="stage 2 returned logits that are not finite numbers"):
        batched.classify_batch(list(image_like(4, seed=1)))
    batched.cascade.close()
