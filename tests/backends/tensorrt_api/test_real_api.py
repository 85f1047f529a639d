"""The TensorRT backend held to the real Python bindings of TensorRT 8.6, 10.3, 10.13 and 11.4, without a GPU.

Each version's report comes from a process that imported the real module (``probe``): every
``trt.*`` use read from the backend's source and resolved on it, the builder and the chain run with
Builder, OnnxParser and Runtime replaced by doubles spec'd from the real classes, and the behaviour
tests' fakes compared with it. The planted faults show that each kind of mismatch is caught.
"""

from __future__ import annotations

import pytest

from tests.backends.tensorrt_api.bindings import VERSIONS

pytestmark = pytest.mark.tensorrt_api
LATEST = "11.4.0.106"
BUILDS = ("fp32", "fp16", "int8", "fp16-dla", "fp32-timing-cache", "int8-batch-profile")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_trt_use_resolves_on_the_real_module(real_report, version):
    report = real_report(version)
    assert report["version"] == version
    assert report["static"]["problems"] == []
    uses = "\n".join(report["static"]["uses"])
    # the reader follows the objects the calls return, down to the chain's per-stage calls
    for call in ("builder.create_network(", "config.set_memory_pool_limit(", "parser.parse_from_file(",
                 "builder.build_serialized_network(", "deserialize_cuda_engine(", "context.set_tensor_address(",
                 "execute_async_v3(", "trt.nptype("):
        assert call in uses, call


@pytest.mark.parametrize("version, absent_there", [
    ("8.6.1", ["trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED"]),
    ("10.3.0", ["trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH"]),
    (LATEST, ["trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH", "trt.BuilderFlag.FP16", "trt.BuilderFlag.INT8"]),
])
def test_uses_that_the_version_checks_rule_out_are_not_required(real_report, version, absent_there):
    skipped = "\n".join(real_report(version)["static"]["skipped"])
    for use in absent_there:
        assert use in skipped, use


@pytest.mark.parametrize("case", BUILDS)
@pytest.mark.parametrize("version", VERSIONS)
def test_builder_runs_on_the_real_api(real_report, version, case):
    build = real_report(version)["builds"][case]
    assert (build["error"], build["mismatches"]) == (None, []), build["detail"]
    assert build["detail"] == "plan"


@pytest.mark.parametrize("version", VERSIONS)
def test_chain_runs_on_the_real_api(real_report, version):
    run = real_report(version)["chain"]
    assert (run["error"], run["mismatches"]) == (None, []), run["detail"]
    assert run["detail"] == [[1, 3], [1, 3], [3, 3], [1, 3]]  # each stage's logits: batch 1, then 3 narrowed to 1


@pytest.mark.parametrize("version", VERSIONS)
def test_the_behaviour_tests_fakes_agree_with_the_real_module(real_report, version):
    assert real_report(version)["fakes"] == []


def test_a_drifted_fake_is_caught(real_report):
    problems = real_report(LATEST, "fake-drift")["fakes"]
    assert "BuilderFlag.FP16 is absent in the real module, present in the fake" in problems
    assert "fake NetworkDefinitionCreationFlag.STRONGLY_TYPED = 1, real 0" in problems


@pytest.mark.parametrize("version", VERSIONS)
def test_the_real_constructors_fail_as_they_do_where_cuda_cannot_start(real_report, version):
    assert real_report(version)["nullptr"] == "TypeError: pybind11::init(): factory function returned nullptr"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_tensorrt_that_cannot_start_cuda_is_a_clear_error_and_not_offered(real_report, version):
    found = real_report(version)["no_cuda"]
    for what, made in (("build", "builder"), ("chain", "runtime")):
        error = found[what]["error"] or ""
        assert error.startswith(f"PipelineError: TensorRT {version} could not create its {made}: CUDA did not start")
        assert "CUDA driver older than the CUDA this TensorRT was built for" in error and "nullptr" not in error
    assert found["pushed_after"] == 0  # the failed activation left no context pushed
    assert "could not create its runtime" in found["unavailable_reason"]  # so "auto" picks ONNX Runtime


@pytest.mark.parametrize("plant, static_says, build_says", [
    ("removed-flag", "trt.BuilderFlag.FP16: BuilderFlag has no 'FP16'", "has no attribute 'FP16'"),
    ("argument-count", "'pool_size' not given", "'pool_size' not given"),
    ("string-for-enum", "flag must be BuilderFlag, got str", "flag must be BuilderFlag, got str"),
])
def test_planted_faults_are_caught_on_tensorrt_11(real_report, plant, static_says, build_says):
    report = real_report(LATEST, plant)
    line = report["planted_line"]
    assert [p.split(":")[1] for p in report["static"]["problems"]] == [str(line)]
    assert static_says in report["static"]["problems"][0]
    for case in BUILDS:
        assert build_says in (report["builds"][case]["error"] or ""), case
