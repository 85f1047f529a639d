"""The runtime seam: the plain and the temporal cascade are both an AnytimeRuntime, used the same way."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.runtime.cascade import Cascade, CascadeResult
from pipeline.runtime.interface import AnytimeRuntime
from pipeline.temporal.cascade import FrameResult, TemporalCascade, TemporalResult, answer_of
from pipeline.temporal.rule import TemporalOptions, TemporalSettings
from pipeline.video.run import model_input
from tests.temporal.doubles import CLASSES, colour_cascade, scene
from tests.runtime.test_cascade import fake_backends, write_model  # noqa: F401  (fake_backends: a fixture)
from tests.video.fakes import FakeCascade

FACTS = ("backend", "precision", "policy", "classes", "num_exits", "frame_size", "colour_order", "resize_shorter",
         "notes")


def answers(runtime: AnytimeRuntime[FrameResult], frames: list[np.ndarray]) -> list[tuple[str, int]]:
    """What a caller typed against the seam sees: (class, exit) per frame, the runtime closed at the end."""
    with runtime as held:
        assert held is runtime
        return [(answer_of(r).class_name, answer_of(r).exit) for r in map(held.classify, frames)]


def test_both_cascades_subclass_the_seam_and_pass_its_runtime_check():
    assert AnytimeRuntime in Cascade.__mro__ and AnytimeRuntime in TemporalCascade.__mro__  # declared, not by shape
    plain = colour_cascade()
    temporal = TemporalCascade(colour_cascade(), TemporalSettings())
    for runtime in (plain, temporal, FakeCascade()):
        assert isinstance(runtime, AnytimeRuntime)
        assert all(hasattr(runtime, name) for name in FACTS)
    assert not isinstance(object(), AnytimeRuntime)
    assert [getattr(temporal, name) for name in FACTS] == [getattr(plain, name) for name in FACTS]


def test_a_caller_typed_against_the_seam_runs_either_and_closes_it():
    frames = [scene(label, seed=label) for label in (0, 2, 1)]
    plain, wrapped = colour_cascade(), colour_cascade()
    temporal = TemporalCascade(wrapped, TemporalSettings())
    expected = answers(plain, frames)
    assert [c for c, _ in expected] == [CLASSES[label] for label in (0, 2, 1)]
    assert answers(temporal, frames) == expected  # nothing temporal is on: the same answers
    assert not plain.chain._active and not wrapped.chain._active  # the context manager closed both
    assert model_input(plain) == model_input(temporal) == ((32, 32), "BGR")


def test_the_temporal_result_holds_the_cascade_result():
    t = TemporalCascade(colour_cascade(), TemporalSettings(reuse_threshold=3.0, cut_threshold=20.0))
    a = scene(0, seed=1)
    ran, reused = t.classify(a), t.classify(a)
    assert isinstance(ran, TemporalResult) and isinstance(ran.answer, CascadeResult)
    assert ran.cascade is ran.answer and not ran.reused and ran.stopped_by == ran.answer.stopped_by
    assert reused.cascade is None and reused.answer is ran.answer and reused.reused
    assert (reused.stage_ms, reused.stages, reused.stopped_by) == ([], 0, "reused")
    assert answer_of(reused) is ran.answer and answer_of(ran.answer) is ran.answer
    for moved in ("label", "class_name", "confidence", "exit", "num_exits"):  # read through .answer only
        assert not hasattr(reused, moved)


def test_from_folder_adds_the_temporal_notes_to_the_cascades(tmp_path, fake_backends):  # noqa: F811
    path = write_model(tmp_path)
    with TemporalCascade.from_folder(tmp_path) as t:
        assert any("no measured latencies" in n for n in t.notes)  # the cascade's own
        assert any("no temporal calibration for onnxruntime/fp32" in n for n in t.notes)
        assert not any("temporal" in n for n in t.cascade.notes)
    with TemporalCascade.from_folder(tmp_path, temporal=TemporalOptions(reuse=False)) as t:
        assert not any("temporal calibration" in n for n in t.notes)  # frame by frame: nothing to calibrate
    raw = json.loads(path.read_text())
    raw["temporal"] = {"onnxruntime/fp32": {**TemporalSettings().to_table(), "policy": "last-exit"}}
    path.write_text(json.dumps(raw))
    with TemporalCascade.from_folder(tmp_path) as t:
        assert any("calibrated with the 'last-exit' exit policy, not 'default'" in n for n in t.notes)
