"""Hand-edited manifest values of the right type but absurd (thresholds out of their criterion's range,
latencies NaN, infinite or 1e308, a prior floor of -1, a cut below the reuse threshold, a number of 10^400,
nesting 100k deep) are refused on load in one line naming the field, as a wrong type is."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import PipelineError
from pipeline.manifest import MANIFEST_NAME, load_manifest

KEY = "onnxruntime/fp32"


def thresholds(values):
    return {KEY: {"criterion": "confidence", "aggregate": "last", "samples": 10, "default_tolerance": 1.0,
                  "default_confidence": 0.9, "policies": {"default": {"thresholds": values}}, "curve": []}}


def latency(value, stages):
    return {KEY: {"stages": [{"p50_ms": 1.0}] * (stages - 1) + [{"p50_ms": value}]}}


CASES = [
    (lambda raw, k: raw.update(thresholds=thresholds([True] + [None] * (k - 1))), "thresholds[0] should be a number"),
    (lambda raw, k: raw.update(thresholds=thresholds([-1] + [None] * (k - 1))), "thresholds[0] should be a number"),
    (lambda raw, k: raw.update(thresholds=thresholds([2.0] + [None] * (k - 1))), "from 0 to 1, found a number (2.0)"),
    (lambda raw, k: raw.update(latency=latency(float("nan"), k)), "p50_ms should be a number from 0 to 60000"),
    (lambda raw, k: raw.update(latency=latency(float("inf"), k)), "p50_ms should be a number from 0 to 60000"),
    (lambda raw, k: raw.update(latency=latency(1e308, k)), "p50_ms should be a number from 0 to 60000"),
    (lambda raw, k: raw.update(thresholds=thresholds([0.9] * k), temporal={KEY: {"prior_floor": -1}}),
     "temporal['onnxruntime/fp32'].prior_floor should be a number from 0 to 1"),
    (lambda raw, k: raw.update(temporal={KEY: {"reuse_threshold": 4.0, "cut_threshold": 2.0}}),
     "cut_threshold 2.0 is below its reuse_threshold 4.0"),
    (lambda raw, k: raw["model"].update(split=[5000, 0]), "model.split should be an object, found an array"),
    (lambda raw, k: raw.update(thresholds=thresholds([0.9] * (k - 1))), "an array of one threshold per stage"),
    (lambda raw, k: raw.update(latency=latency(1.0, k - 1)), "one row with a p50_ms per stage"),
    (lambda raw, k: raw.update(latency={KEY: {"stages": [{"p99_ms": 1.0}] * k}}), "0 with a p50_ms"),
    (lambda raw, k: raw["model"]["split"].update(size=None), "model.split.size should be a whole number from 0"),
    (lambda raw, k: raw["model"]["split"].update(seed=-1), "model.split.seed should be a whole number from 0"),
    (lambda raw, k: raw["model"]["split"].update(size=2.5), "model.split.size should be a whole number from 0"),
]


@pytest.mark.parametrize("change, told", CASES)
def test_values_out_of_range_are_refused_naming_the_field(tiny, tmp_path, change, told):
    folder = tiny.copy(tmp_path)
    raw = json.loads((folder / MANIFEST_NAME).read_text())
    change(raw, len(raw["stages"]))
    (folder / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(PipelineError, match="malformed") as caught:
        load_manifest(folder)
    assert told in str(caught.value) and "\n" not in str(caught.value)


def test_a_huge_number_and_deep_nesting_are_one_line(tiny, tmp_path):
    folder = tiny.copy(tmp_path)
    text = (folder / MANIFEST_NAME).read_text()
    raw = json.loads(text)
    raw["latency"] = latency(1.0, len(raw["stages"]))
    (folder / MANIFEST_NAME).write_text(json.dumps(raw).replace('"p50_ms": 1.0}]}', '"p50_ms": 1e400}]}'))
    with pytest.raises(PipelineError, match="p50_ms should be a number from 0 to 60000, found a number"):
        load_manifest(folder)
    (folder / MANIFEST_NAME).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PipelineError, match="is not valid JSON"):
        load_manifest(folder)
