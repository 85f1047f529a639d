"""One Cascade shared by several threads answers every frame as a lone caller would."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pipeline.backends import exit_logits, load_chain
from pipeline.runtime.cascade import Cascade
from pipeline.runtime.deadline import LatencyPredictor
from pipeline.manifest import load_manifest
from pipeline.thresholds import softmax
from tests.helpers import tiny_build

THREADS, FRAMES = 4, 150


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def test_classify_from_several_threads_gives_the_sequential_answers(tiny):
    manifest = load_manifest(tiny.folder)
    frames = np.random.default_rng(3).integers(0, 256, (FRAMES, 32, 32, 3), dtype=np.uint8)
    chain = load_chain(manifest, tiny.folder, "onnxruntime", "fp32")
    conf = softmax(exit_logits(chain, frames), axis=-1).max(-1)  # (N, K)
    k = manifest.num_exits
    thresholds = [float(np.median(conf[:, j])) for j in range(k - 1)] + [-np.inf]  # frames leave at every exit
    cascade = Cascade(chain, manifest.classes, thresholds, LatencyPredictor(k, [1.0] * k))
    expected = [cascade.classify(f) for f in frames]
    assert len({r.exit for r in expected}) == k  # the exit rule matters for these frames

    answers: list[dict[int, tuple]] = [{} for _ in range(THREADS)]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        order = np.random.default_rng(t).permutation(FRAMES)  # each thread its own order
        try:
            for i in order:
                r = cascade.classify(frames[i])
                answers[t][int(i)] = (r.label, r.exit, r.confidence, r.stopped_by, len(r.stage_ms))
        except BaseException as exc:  # reported below, with the failing thread's error
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    want = {i: (r.label, r.exit, r.confidence, r.stopped_by, len(r.stage_ms)) for i, r in enumerate(expected)}
    for got in answers:
        assert got == want
    cascade.close()
