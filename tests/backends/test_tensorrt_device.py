"""How the TensorRT backend fails on a device, with doubles that raise what the real libraries raise.

TensorRT's factories return nothing where CUDA cannot start ("pybind11::init(): factory function
returned nullptr" from the bindings), pycuda's import fails on libcuda.so.1 without a driver, and
the driver keeps one context stack per thread (a context left on it aborts the process at exit).
The real bindings' own nullptr error is checked in ``tensorrt_api``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import pipeline.backends.tensorrt as backend
from pipeline.backends import available_backends, pick_backend
from pipeline.runtime.cascade import Cascade
from pipeline.errors import PipelineError
from pipeline.manifest import FileEntry, load_manifest, sha256_file, write_manifest
from tests.backends import test_tensorrt as base
from tests.backends.test_tensorrt import fake, three_plans  # noqa: F401  (the fake fixture)

NULLPTR = "pybind11::init(): factory function returned nullptr"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_cuda(fake, monkeypatch):  # noqa: F811
    """A TensorRT whose builder and runtime cannot start CUDA, as with a driver older than its CUDA."""
    trt = fake("10.3.0")

    def refuse(*args, **kwargs):
        raise TypeError(NULLPTR)

    monkeypatch.setattr(trt, "Builder", refuse)
    monkeypatch.setattr(trt, "Runtime", refuse)
    for name in ("pycuda", "tensorrt"):  # found by find_spec, as installed packages are
        sys.modules[name].__spec__ = importlib.machinery.ModuleSpec(name, None)
    backend.unavailable_reason.cache_clear()
    yield trt
    backend.unavailable_reason.cache_clear()


def test_tensorrt_that_cannot_start_cuda_names_the_likely_cause(no_cuda, tmp_path):
    with pytest.raises(PipelineError, match="could not create its builder: CUDA did not start.*CUDA driver older"):
        backend.engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", "fp32")
    chain = backend.TensorRTChain(three_plans(tmp_path), "fp32")
    with pytest.raises(PipelineError, match="could not create its runtime.*--backend onnxruntime"):
        chain.activate()
    assert base.driver.memory == {} and base.driver.Context.depth == 0
    with pytest.raises(PipelineError, match="activate the chain"):
        chain.run(1)


def test_auto_falls_back_to_onnx_runtime_and_says_why_once(no_cuda, model_folder, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_folder, folder)
    m = load_manifest(folder)
    for k in (1, 2, 3):
        plan = folder / f"tensorrt/stage{k}.fp32.plan"
        plan.parent.mkdir(exist_ok=True)
        plan.write_bytes(b"plan")
        m.engines.append(FileEntry(k, "fp32", f"tensorrt/stage{k}.fp32.plan", sha256_file(plan), backend="tensorrt"))
    m.device.backends["tensorrt"] = {"gpu": "NVIDIA H100", "compute_capability": "9.0", "tensorrt": "10.3.0"}
    write_manifest(folder, m)
    assert "could not create its runtime" in backend.unavailable_reason()
    assert available_backends() == ["onnxruntime"]
    assert pick_backend(load_manifest(folder)) == "onnxruntime"
    with Cascade.from_folder(folder, precision="fp32") as cascade:
        assert cascade.backend == "onnxruntime"
        why = [n for n in cascade.notes if "TensorRT" in n]
        assert len(why) == 1 and "has TensorRT engines, but they cannot run here" in why[0]
        assert "CUDA driver older" in why[0] and why[0].endswith("Running ONNX Runtime instead")
    with Cascade.from_folder(folder, backend="onnxruntime", precision="fp32") as cascade:
        assert not [n for n in cascade.notes if "TensorRT" in n]  # chosen, not passed over


class _NoDriver(importlib.abc.MetaPathFinder):
    """pycuda installed, no NVIDIA driver: importing pycuda.driver fails on libcuda, as the real one does."""

    def find_spec(self, name, path=None, target=None):
        if name == "pycuda.driver":
            raise ImportError("libcuda.so.1: cannot open shared object file: No such file or directory")
        return None


def test_pycuda_without_a_driver_says_no_driver_was_found(fake, monkeypatch):  # noqa: F811
    fake("10.3.0")
    monkeypatch.delitem(sys.modules, "pycuda.driver")
    monkeypatch.setattr(sys.modules["pycuda"], "__path__", [], raising=False)  # a package: submodules are looked up
    monkeypatch.setattr(sys, "meta_path", [_NoDriver(), *sys.meta_path])
    with pytest.raises(PipelineError, match="no NVIDIA driver was found.*libcuda.so.1") as info:
        backend.gpu_info()
    assert "pip install pycuda" not in str(info.value)


def test_one_logger_serves_every_builder_and_runtime(fake, tmp_path, monkeypatch):  # noqa: F811
    trt = fake("10.3.0")
    seen = []
    builder_cls, runtime_cls = trt.Builder, trt.Runtime
    monkeypatch.setattr(trt, "Builder", lambda logger: seen.append(logger) or builder_cls(logger))
    monkeypatch.setattr(trt, "Runtime", lambda logger: seen.append(logger) or runtime_cls(logger))
    backend.engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "a.plan", "fp32")
    backend.engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "b.plan", "fp16")
    with backend.TensorRTChain(three_plans(tmp_path), "fp32"):
        pass
    assert len(seen) == 3 and all(lg is seen[0] for lg in seen) and isinstance(seen[0], trt.Logger)


def test_release_frees_every_buffer_and_leaves_the_chain_inactive_when_a_free_fails(fake, tmp_path):  # noqa: F811
    fake("10.3.0")
    chain = backend.TensorRTChain(three_plans(tmp_path), "fp32")
    chain.activate()
    first = chain._device["logits_1"]
    first.free = lambda: (_ for _ in ()).throw(base.driver.LogicError("cuMemFree failed: an illegal address"))
    with pytest.raises(PipelineError, match="releasing the TensorRT chain's device memory failed.*cuMemFree"):
        chain.deactivate()
    assert list(base.driver.memory) == [int(first)]  # every other buffer freed
    assert base.driver.Context.depth == 0 and chain.last_run_ms() is None
    with pytest.raises(PipelineError, match="activate the chain before running it"):
        chain.run(1)
    chain.activate()  # and it can start again
    chain.deactivate()


def test_a_failing_pop_still_leaves_the_chain_inactive(fake, tmp_path, monkeypatch):  # noqa: F811
    fake("10.3.0")
    chain = backend.TensorRTChain(three_plans(tmp_path), "fp32")
    chain.activate()
    real_pop = base.driver.Context.pop

    def pop():
        real_pop()
        raise base.driver.LogicError("cuCtxPopCurrent failed: invalid context")

    monkeypatch.setattr(base.driver.Context, "pop", staticmethod(pop))
    with pytest.raises(base.driver.LogicError, match="cuCtxPopCurrent"):
        chain.deactivate()
    assert base.driver.memory == {} and base.driver.Context.depth == 0
    with pytest.raises(PipelineError, match="activate the chain"):
        chain.set_frame(np.zeros((1, 4, 4, 3), np.uint8))


def test_any_thread_may_call_the_chain_one_call_at_a_time(fake, tmp_path):  # noqa: F811
    fake("10.3.0")
    chain = backend.TensorRTChain(three_plans(tmp_path), "fp32")
    chain.activate()  # on this thread
    frame = np.full((1, 4, 4, 3), 6, dtype=np.uint8)
    got: list = []
    worker = threading.Thread(target=lambda: got.append([float(z[0, 0]) for z in chain.run_all(frame)]))
    worker.start()
    worker.join()
    assert got == [[7.0, 9.0, 12.0]]  # the worker had the context current for its calls
    assert base.driver.stack() == [] and base.driver.Context.depth == 0  # none is left pushed between calls

    entered, leave = threading.Event(), threading.Event()
    context = chain._contexts[0]
    execute = context.execute_async_v3

    def slow(handle):
        entered.set()
        leave.wait(5)
        return execute(handle)

    context.execute_async_v3 = slow
    chain.set_frame(frame)
    errors: list = []
    worker = threading.Thread(target=lambda: errors.append(chain.run(1)))
    worker.start()
    entered.wait(5)
    with pytest.raises(PipelineError, match="in a call from another thread.*share a Cascade"):
        chain.run(1)
    releaser = threading.Thread(target=chain.deactivate)  # waits for the call under way, then releases
    releaser.start()
    releaser.join(0.2)
    assert releaser.is_alive() and base.driver.memory  # still waiting: nothing freed under the running stage
    leave.set()
    worker.join()
    releaser.join(5)
    assert len(errors) == 1 and float(errors[0][0, 0]) == 7.0
    assert base.driver.memory == {} and base.driver.Context.depth == 0


EXIT_SCRIPT = """
import atexit, os, sys, types
sys.path.insert(0, {root!r})
from tests.backends import test_tensorrt as base

driver = base.driver = base.fake_pycuda()
pycuda = types.ModuleType("pycuda")
pycuda.driver = driver
sys.modules.update({{"pycuda": pycuda, "pycuda.driver": driver, "tensorrt": base.fake_tensorrt("10.3.0")}})


def module_cleanup():  # what pycuda does when its module is torn down with a context still pushed
    if any(driver.Context.depth for _ in [0]):
        print("PyCUDA ERROR: The context stack was not empty upon module cleanup.", flush=True)
        os.abort()
    print(f"buffers left: {{len(driver.memory)}}", flush=True)


atexit.register(module_cleanup)
import pathlib, threading, numpy as np
from pipeline.backends.tensorrt import TensorRTChain
from tests.backends.test_tensorrt import three_plans

chain = TensorRTChain(three_plans(pathlib.Path({tmp!r})), "fp32")
{body}
"""


@pytest.mark.parametrize("body, code, out", [
    ("chain.activate(); chain.run_all(np.zeros((1, 4, 4, 3), np.uint8))", 0, "buffers left: 0"),
    ("t = threading.Thread(target=chain.activate); t.start(); t.join()", 0, "buffers left: 0"),
    ("chain.activate(); driver.Context().push()", -6, "context stack was not empty"),  # the double aborts
])
def test_a_chain_left_active_at_exit_is_released_without_an_abort(tmp_path, body, code, out):
    script = EXIT_SCRIPT.format(root=str(ROOT), tmp=str(tmp_path), body=body)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == code, done.stderr
    assert out in done.stdout
