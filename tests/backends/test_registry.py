"""The registry is closed: every backend module says what the Backend protocol asks, its own options included."""

from __future__ import annotations

import inspect

import pytest

from pipeline.backends import (BACKENDS, REFERENCE_BACKEND, EngineOptions, backend_module, backend_versions,
                               check_engine_options, package_versions, unavailable_reason)
from pipeline.backends.base import Backend
from pipeline import package_version
from pipeline.backends.facts import describe_device, device_facts
from pipeline.errors import PipelineError
from pipeline.names import PRECISIONS

MEMBERS = sorted({*Backend.__annotations__, *(n for n, v in vars(Backend).items()
                                                if inspect.isfunction(v) and not n.startswith("_"))})


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_module_exposes_the_protocol(name):
    module = backend_module(name)
    assert [m for m in MEMBERS if not hasattr(module, m)] == []
    assert module.NAME == name and name in module.PACKAGES  # the runtime itself is one of its packages
    assert all(isinstance(d, tuple) and d and all(isinstance(x, str) for x in d) for d in module.PACKAGES.values())
    assert {"PACKAGES", "check_options"} <= set(MEMBERS)


def test_the_reference_backend_is_registered_and_runs_here():
    assert REFERENCE_BACKEND in BACKENDS and unavailable_reason(REFERENCE_BACKEND) is None
    assert "fp32" in backend_module(REFERENCE_BACKEND).buildable_precisions()


def test_versions_come_from_each_backends_packages():
    packages = [p for name in BACKENDS for p in backend_module(name).PACKAGES]
    versions = package_versions()
    assert list(versions) == packages
    for name in BACKENDS:
        for package, dists in backend_module(name).PACKAGES.items():
            assert versions[package] == package_version(*dists)
    assert list(backend_versions()) == list(BACKENDS)
    assert backend_versions()[REFERENCE_BACKEND] is not None  # installed: the tests run on it


def test_device_facts_and_their_line_name_every_backend():
    facts = device_facts()
    assert all(name in facts for name in BACKENDS)
    assert facts[REFERENCE_BACKEND] == backend_versions()[REFERENCE_BACKEND]
    line = describe_device({**facts, **{name: None for name in BACKENDS if name != REFERENCE_BACKEND}})
    assert f"{backend_module(REFERENCE_BACKEND).TITLE} {facts[REFERENCE_BACKEND]}" in line
    for name in BACKENDS:
        if name != REFERENCE_BACKEND:
            assert f"{backend_module(name).TITLE} not installed" in line


@pytest.mark.parametrize("engine,precisions,targets,message", [
    (EngineOptions(workspace_mb=0), ["fp32"], ["onnxruntime"], "--workspace-mb must be at least 1, got 0"),
    (EngineOptions(dla_core=0), ["fp16"], ["onnxruntime"],
     "--dla-core needs a non-negative core number and the TensorRT backend"),
    (EngineOptions(dla_core=-1), ["fp16"], ["tensorrt"],
     "--dla-core needs a non-negative core number and the TensorRT backend"),
    (EngineOptions(dla_core=1), ["fp16", "int8"], ["tensorrt"], "--dla-core builds FP16 plans only"),
    (EngineOptions(max_batch=0), ["fp32"], ["tensorrt"], "--max-batch must be at least 1"),
    (EngineOptions(max_batch=4, opt_batch=8), ["fp32"], ["tensorrt"], "--opt-batch between 1 and it"),
    (EngineOptions(max_batch=4), ["fp32"], ["onnxruntime"], "build for the TensorRT backend, or drop them"),
    (EngineOptions(dla_core=0, max_batch=4), ["fp16"], ["tensorrt"], "--dla-core builds batch 1 only"),
])
def test_each_backend_refuses_its_own_bad_options(engine, precisions, targets, message):
    with pytest.raises(PipelineError, match=message):
        check_engine_options(engine, precisions, targets)


def test_good_options_pass_every_backend():
    check_engine_options(EngineOptions(), list(PRECISIONS), list(BACKENDS))
    check_engine_options(EngineOptions(dla_core=0), ["fp16"], ["tensorrt"])
    check_engine_options(EngineOptions(threads=4, workspace_mb=64), ["fp32"], ["onnxruntime"])
    check_engine_options(EngineOptions(max_batch=16, opt_batch=4), ["fp32", "int8"], ["tensorrt"])


def test_each_backend_says_which_batches_its_engines_take():
    from pipeline.backends import backend_batch_ranges

    ranges = backend_batch_ranges(list(BACKENDS), EngineOptions(max_batch=16, opt_batch=4))
    assert ranges == {"tensorrt": {"min": 1, "opt": 4, "max": 16}, "onnxruntime": {"min": 1, "opt": 1, "max": 0}}
