"""Damaged copies of a tiny built model's manifest: every tool refuses them in one line naming the field,
and ``make engines`` rebuilds over them instead of calling them up to date or failing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.manifest import MANIFEST_NAME, load_manifest
from tests.faults.conftest import build_argv, one_error, run_command


def damage(folder, change) -> None:
    path = folder / MANIFEST_NAME
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


def profile(tiny, folder, tmp_path, capsys, *extra) -> tuple[int, str]:
    from apps.profile_latency import main

    code = run_command(main, ["--engines", folder, "--data", tiny.data, "--cache-dir", tiny.cache,
                              "--out", tmp_path / "reports", "--runs", "3", "--warmup", "0", *extra])
    return code, capsys.readouterr().err


def set_path(value):
    return lambda raw: raw["engines"][0].update(path=value)


@pytest.mark.parametrize("change, field", [
    (set_path(None), "engines[0].path should be a string, found null"),
    (set_path(7), "engines[0].path should be a string, found a number (7)"),
    (lambda raw: raw["artifacts"][2].pop("sha256"), "artifacts[2] lacks the field 'sha256'"),
    (lambda raw: raw.update(classes="cat,dog"), "classes should be an array, found a string"),
    (lambda raw: raw["stages"][1]["outputs"][0].update(shape=None), "stages[1].outputs[0].shape should be an array"),
    (lambda raw: raw["device"].update(cpu_count=True), "device.cpu_count should be a whole number or null"),
    (lambda raw: raw["engines"][0].update(stage=9), "engines[0].stage is 9, but the model has stages 1 to 3"),
    (lambda raw: raw.update(thresholds={"onnxruntime/fp32": "oops"}), "thresholds['onnxruntime/fp32'] should be an "
                                                                      "object, found a string"),
    (lambda raw: raw.update(surprise=1), "has unknown field 'surprise'"),
])
def test_every_tool_names_the_damaged_field(tiny, tmp_path, capsys, change, field):
    from pipeline.runtime.cascade import Cascade

    folder = tiny.copy(tmp_path)
    damage(folder, change)
    with pytest.raises(PipelineError, match="malformed") as info:
        Cascade.from_folder(folder, precision="fp32")
    assert field in str(info.value) and "rebuild with `make engines`" in str(info.value)
    code, err = profile(tiny, folder, tmp_path, capsys)
    assert code == 2 and field in one_error(err)
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize("version", [True, 1.0, 2.0, "2", None])
def test_schema_versions_that_are_not_whole_numbers(tiny, tmp_path, version):
    folder = tiny.copy(tmp_path)
    damage(folder, lambda raw: raw.update(schema_version=version))
    with pytest.raises(PipelineError, match=f"has schema version {json.dumps(version)}, expected the whole number 2"):
        load_manifest(folder)


def test_make_engines_rebuilds_over_a_damaged_manifest(tiny, tmp_path, capsys):
    from pipeline.build import main

    folder = tiny.copy(tmp_path)
    argv = build_argv(tiny, folder.parent, tiny.folder.parent.parent / "calib", "--test-split")
    assert run_command(main, argv) == 0 and "up to date" in capsys.readouterr().out
    damage(folder, set_path(None))
    assert run_command(main, argv) == 0
    assert f"built {folder}" in capsys.readouterr().out
    assert load_manifest(folder).engines[0].path == load_manifest(tiny.folder).engines[0].path


def test_an_input_spec_that_disagrees_with_stage_1(tiny, tmp_path):
    folder = tiny.copy(tmp_path)
    damage(folder, lambda raw: raw["input"].update(shape=["N", 64, 64, 3]))
    with pytest.raises(PipelineError, match=r"input is frame \['N', 64, 64, 3\] uint8, but stage 1 reads frame "
                                            r"\['N', 32, 32, 3\] uint8"):
        load_manifest(folder)


def test_stage_shapes_that_disagree_with_the_graphs(tiny, tmp_path):
    """Input spec and stage 1 agree with each other, not with the engines: refused when the chain loads,
    naming the graph, instead of ONNX Runtime's error on the first frame."""
    from pipeline.runtime.cascade import Cascade

    folder = tiny.copy(tmp_path)

    def bigger(raw):
        raw["input"]["shape"] = raw["stages"][0]["inputs"][0]["shape"] = ["N", 64, 64, 3]

    damage(folder, bigger)
    with pytest.raises(PipelineError) as info:
        Cascade.from_folder(folder, precision="fp32").classify(np.zeros((64, 64, 3), np.uint8))
    msg = str(info.value)
    assert "the manifest says stage 1 reads frame ['N', 64, 64, 3] uint8, but its graph" in msg
    assert "stage1.fp32.onnx has ['N', 32, 32, 3] uint8" in msg and "rebuild with `make engines`" in msg


def test_a_variant_with_a_stage_missing(tiny, tmp_path, capsys):
    folder = tiny.copy(tmp_path)
    damage(folder, lambda raw: raw.update(engines=[e for e in raw["engines"]
                                                   if (e["precision"], e["stage"]) != ("fp32", 3)]))
    code, err = profile(tiny, folder, tmp_path, capsys, "--precisions", "fp32")
    err = one_error(err)
    assert code == 2 and "built here" not in err
    assert "lists onnxruntime/fp32 engines for stages 1, 2, but the model has stages 1 to 3" in err


def test_a_policies_table_that_is_not_a_table():
    from pipeline.thresholds.policies import policy_thresholds

    with pytest.raises(PipelineError, match="its policies should be an object of named policies, found str") as info:
        policy_thresholds({"criterion": "confidence", "policies": "oops"}, "fast")
    assert "o, o, p, s" not in str(info.value)
