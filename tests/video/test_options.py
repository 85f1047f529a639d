"""The camera app's options: frozen, checked when made, paths as Paths, the frame budget derived."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.video.options import CameraOptions


def test_defaults_paths_and_budget():
    o = CameraOptions(engines="engines/m", source="0", fps=25, log="f.jsonl")
    assert o.engines == Path("engines/m") and o.log == Path("f.jsonl") and o.output is None
    assert o.frame_budget_ms == 40.0 and o.outputs() == {"--log": Path("f.jsonl")}
    assert CameraOptions(Path("e"), "0", budget_ms=12).frame_budget_ms == 12.0
    assert CameraOptions(Path("e"), "0").frame_budget_ms is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.fps = 30  # type: ignore[misc]


@pytest.mark.parametrize("kw, match", [
    (dict(budget_ms=math.nan), "budget_ms should be a positive"),
    (dict(budget_ms=5, fps=30), "not both"),
    (dict(fps=0), "fps should be a positive"),
    (dict(fps=True), "fps should be a positive"),
    (dict(threads=0), "--threads should be 1 or more"),
    (dict(max_frames=0), "--max-frames should be 1 or more"),
    (dict(reconnects=-1), "--reconnects should be 0 or more"),
    (dict(stall_timeout_s=math.inf), "--stall-timeout should be a positive"),
    (dict(precision="int4"), "unknown precision 'int4'"),
])
def test_bad_options_are_refused(kw, match):
    with pytest.raises(PipelineError, match=match):
        CameraOptions(Path("e"), "0", **kw)
