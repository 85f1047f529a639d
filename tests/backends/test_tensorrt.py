"""The TensorRT backend. Plans are built and run only where tensorrt, pycuda and a GPU are present;
everywhere else fake ``tensorrt`` and ``pycuda`` modules check which API calls the builder makes
for each TensorRT version, how the chain binds its buffers, and the refusal paths."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import types
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.backends import load_chain, unavailable_reason
from pipeline.errors import PipelineError
from pipeline.manifest import FileEntry, load_manifest
from tests.export.conftest import image_like

REASON = unavailable_reason("tensorrt")
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"TensorRT cannot run here: {REASON}")
HERE = {"gpu": "NVIDIA H100", "compute_capability": "9.0", "tensorrt": "10.9.0"}


# --- fake tensorrt and pycuda ------------------------------------------------------------------------


def fake_tensorrt(version: str, *, dla_cores: int = 0, parse_ok: bool = True, build_ok: bool = True,
                  cache_ok: bool = True, fast_int8: bool = True) -> types.ModuleType:
    """Just the API surface the backend uses, as each version has it; ``trt.calls`` records the calls."""
    major = int(version.split(".")[0])
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = calls = []
    creation = {8: {"EXPLICIT_BATCH": 0}, 10: {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}}.get(major, {"STRONGLY_TYPED": 0})
    trt.NetworkDefinitionCreationFlag = SimpleNamespace(**creation)
    trt.BuilderFlag = SimpleNamespace(GPU_FALLBACK="GPU_FALLBACK",
                                      **({"FP16": "FP16", "INT8": "INT8"} if major < 11 else {}))
    trt.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.DeviceType = SimpleNamespace(GPU="GPU", DLA="DLA")
    trt.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.Logger = type("Logger", (), {"WARNING": 2, "ERROR": 1, "__init__": lambda self, severity: None})
    trt.nptype = np.dtype

    class Config:
        def set_memory_pool_limit(self, pool, size):
            calls.append(("pool", pool, size))

        def set_flag(self, flag):
            calls.append(("flag", flag))

        def add_optimization_profile(self, profile):
            calls.append(("profile", profile.shapes))

        def create_timing_cache(self, data):
            return SimpleNamespace(serialize=lambda: b"timed:" + data)

        def set_timing_cache(self, cache, ignore_mismatch):
            calls.append(("timing_cache", cache.serialize()))
            return cache_ok or cache.serialize() == b"timed:"

    class Builder:
        num_DLA_cores = dla_cores

        def __init__(self, logger):
            if major < 11:  # removed in TensorRT 11
                self.platform_has_fast_fp16, self.platform_has_fast_int8 = True, fast_int8

        def create_network(self, flags):
            calls.append(("network", flags))
            return SimpleNamespace(num_inputs=1, get_input=lambda i: SimpleNamespace(name="frame", shape=(-1, 4, 4, 3)))

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            profile = SimpleNamespace(shapes={})
            profile.set_shape = lambda name, lo, opt, hi: profile.shapes.update({name: (lo, opt, hi)})
            return profile

        def build_serialized_network(self, network, config):
            calls.append(("build", {k: v for k, v in vars(config).items()}))
            return b"plan" if build_ok else None

    class OnnxParser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            return parse_ok

        def get_error(self, i):
            return "In node 3 (Conv): unsupported"

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    trt.Runtime = FakeRuntime
    return trt


class FakeRuntime:
    """Deserializes the JSON "plans" of ``write_plan``: {"stage": k, "io": [[name, mode, dtype, shape], ...]}, with
    "max_batch" (default 1) the optimisation profile's largest batch."""

    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, data):
        try:
            return FakeEngine(json.loads(data))
        except ValueError:
            return None  # what TensorRT does with another version's plan


class FakeEngine:
    def __init__(self, spec):
        self.stage, self.io = spec["stage"], {n: (m, d, tuple(s)) for n, m, d, s in spec["io"]}
        self.max_batch = spec.get("max_batch", 1)
        self.num_io_tensors = len(self.io)

    def get_tensor_profile_shape(self, name, profile_index):
        rest = self.io[name][2][1:]
        return [(1, *rest), (self.max_batch, *rest), (self.max_batch, *rest)]  # min, opt, max

    def get_tensor_name(self, i):
        return list(self.io)[i]

    def get_tensor_mode(self, name):
        return self.io[name][0]

    def get_tensor_dtype(self, name):
        return self.io[name][1]

    def get_tensor_shape(self, name):
        return self.io[name][2]

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    """Stage k "computes" on the fake device memory, row by row of the batch its input shapes are set for: each
    output row is (mean of the inputs' rows) + k."""

    def __init__(self, engine):
        self.engine, self.addresses, self.shapes = engine, {}, {}

    def set_input_shape(self, name, shape):
        driver.log.append(("shape", self.engine.stage, name, tuple(shape)))
        if not 1 <= shape[0] <= self.engine.max_batch:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        mode, _, shape = self.engine.io[name]
        return self.shapes[name] if mode == "INPUT" else (self.shapes[next(iter(self.shapes))][0], *shape[1:])

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def execute_async_v3(self, stream_handle):
        driver.need_context("enqueueV3")
        driver.log.append(("execute", self.engine.stage, stream_handle))
        driver.clock[0] += 0.25
        n = next(iter(self.shapes.values()))[0]

        def rows(name, d, shape):  # (n, row) of the tensor's buffer
            return driver.memory[self.addresses[name]].view(np.dtype(d)).reshape(-1, int(np.prod(shape[1:])))[:n]

        ins = [rows(name, d, s).mean(axis=1) for name, (m, d, s) in self.engine.io.items() if m == "INPUT"]
        for name, (m, d, s) in self.engine.io.items():
            if m == "OUTPUT":
                rows(name, d, s)[:] = (np.mean(ins, axis=0) + self.engine.stage)[:, None]
        return True


def fake_pycuda() -> types.ModuleType:
    """pycuda.driver over a dict of numpy "device" buffers; ``driver.log`` records copies, syncs, events.

    As the driver does, it keeps a context stack per thread, and memory, copies, streams and
    TensorRT's enqueue need a context current on the calling thread (``drv.need_context``).
    """
    drv = types.ModuleType("pycuda.driver")
    drv.memory, drv.log, drv.clock = {}, [], [0.0]
    drv.init = lambda: None
    drv.Error = type("Error", (Exception,), {})
    drv.LogicError = type("LogicError", (drv.Error,), {})
    stacks: dict[int, list] = {}
    drv.stack = lambda: stacks.setdefault(threading.get_ident(), [])

    def need_context(what):
        if not drv.stack():
            raise drv.LogicError(f"{what} failed: invalid device context")

    drv.need_context = need_context
    addresses = itertools.count(1)

    class Context:
        depth = 0  # pushes minus pops, every thread

        def push(self):
            drv.stack().append(self)
            Context.depth += 1

        @staticmethod
        def pop():
            need_context("cuCtxPopCurrent")
            drv.stack().pop()
            Context.depth -= 1

    class Device:
        count = staticmethod(lambda: 1)

        def __init__(self, i):
            pass

        name = lambda self: "NVIDIA H100"  # noqa: E731
        compute_capability = lambda self: (9, 0)  # noqa: E731
        retain_primary_context = lambda self: Context()  # noqa: E731

    class Alloc:
        def __init__(self, nbytes):
            need_context("cuMemAlloc")
            self.address = 4096 * next(addresses)  # never reused, as a leaked buffer's is not
            drv.memory[self.address] = np.zeros(nbytes, dtype=np.uint8)

        def __int__(self):
            return self.address

        def free(self):
            del drv.memory[self.address]

    class Stream:
        handle = 77

        def synchronize(self):
            need_context("cuStreamSynchronize")
            drv.log.append(("sync",))

    class Event:  # the fake device takes 0.25 ms per copy or stage
        def record(self, stream):
            self.t = drv.clock[0]
            drv.log.append(("event",))

        def time_since(self, start):
            return self.t - start.t

    def htod(dst, src, stream):
        need_context("cuMemcpyHtoDAsync")
        data = np.frombuffer(src.tobytes(), np.uint8)  # as the driver does: the host array's bytes, at the start
        drv.memory[int(dst)][:data.size] = data
        drv.clock[0] += 0.25
        drv.log.append(("htod", int(dst), stream.handle))

    def dtoh(dst, src, stream):
        need_context("cuMemcpyDtoHAsync")
        dst.view(np.uint8).reshape(-1)[:] = drv.memory[int(src)][:dst.nbytes]
        drv.clock[0] += 0.25
        drv.log.append(("dtoh", int(src), stream.handle))

    drv.Context, drv.Device, drv.Stream, drv.Event, drv.mem_alloc = Context, Device, Stream, Event, Alloc
    def dtod(dst, src, size, stream):
        need_context("cuMemcpyDtoDAsync")

        def at(address):  # the allocation holding ``address``, and the offset into it
            base = max(a for a in drv.memory if a <= address)
            return drv.memory[base], address - base

        (d, i), (s, j) = at(int(dst)), at(int(src))
        d[i:i + size] = s[j:j + size]
        drv.log.append(("dtod", int(dst), int(src), size, stream.handle))

    drv.memcpy_htod_async, drv.memcpy_dtoh_async, drv.memcpy_dtod_async = htod, dtoh, dtod
    drv.pagelocked_empty = lambda shape, dtype: np.zeros(shape, dtype)
    return drv


driver = fake_pycuda()  # rebuilt per test by the fixture below


@pytest.fixture
def fake(monkeypatch):
    """Install a fake TensorRT (version chosen by the test) and pycuda; yields a function version -> trt."""
    global driver
    driver = fake_pycuda()
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)

    def install(version: str = "10.3.0", **kw):
        trt = fake_tensorrt(version, **kw)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return trt

    return install


def write_plan(path, stage, io, max_batch=1):
    path.write_text(json.dumps({"stage": stage, "io": io, "max_batch": max_batch}))
    return path


def built_config(trt):
    return next(c[1] for c in trt.calls if c[0] == "build")


def three_plans(tmp_path, map_dtype="float32", max_batch=1):
    """Stage 1 reads the frame; each stage writes its logits and one map the next stage reads."""
    return [write_plan(tmp_path / "s1.plan", 1, [["frame", "INPUT", "uint8", [-1, 4, 4, 3]],
                                                 ["logits_1", "OUTPUT", "float32", [-1, 3]],
                                                 ["stage1_map0", "OUTPUT", "float32", [-1, 2, 4, 4]]], max_batch),
            write_plan(tmp_path / "s2.plan", 2, [["stage1_map0", "INPUT", map_dtype, [-1, 2, 4, 4]],
                                                 ["logits_2", "OUTPUT", "float32", [-1, 3]],
                                                 ["stage2_map0", "OUTPUT", "float32", [-1, 2, 2, 2]]], max_batch),
            write_plan(tmp_path / "s3.plan", 3, [["stage2_map0", "INPUT", "float32", [-1, 2, 2, 2]],
                                                 ["logits_3", "OUTPUT", "float32", [-1, 3]]], max_batch)]


# --- builder -----------------------------------------------------------------------------------------


def test_importing_the_backend_needs_neither_tensorrt_nor_pycuda():
    code = ("import sys, pipeline.backends.tensorrt; "
            "assert not {'tensorrt', 'pycuda', 'pycuda.driver'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("version, precision, flags, precision_flags", [
    ("8.6.2", "fp32", 1 << 0, []),  # weakly typed, EXPLICIT_BATCH
    ("8.6.2", "fp16", 1 << 0, ["FP16"]),
    ("8.6.2", "int8", 1 << 0, ["INT8"]),  # Q/DQ; unquantized layers stay FP32
    ("10.3.0", "fp16", 1 << 1, []),  # STRONGLY_TYPED: precision from the graph
    ("10.3.0", "int8", 1 << 1, []),
    ("11.0.0", "int8", 0, []),  # always strongly typed; no precision flags exist
])
def test_builder_calls_the_api_of_each_tensorrt_version(fake, tmp_path, version, precision, flags, precision_flags):
    from pipeline.backends.tensorrt import engine_from_onnx

    trt = fake(version)
    out = engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "plans" / "s1.plan", precision, workspace_mb=64,
                           timing_cache=tmp_path / "tc")
    assert out.read_bytes() == b"plan"
    assert ("network", flags) in trt.calls
    assert [c[1] for c in trt.calls if c[0] == "flag"] == precision_flags
    assert ("pool", "WORKSPACE", 64 << 20) in trt.calls
    assert ("profile", {"frame": ((1, 4, 4, 3),) * 3}) in trt.calls  # batch 1, static
    assert built_config(trt) == {}  # the GPU
    assert (tmp_path / "tc").read_bytes() == b"timed:"  # a new cache, written back


def test_a_batch_range_becomes_the_plans_optimisation_profile(fake, tmp_path):
    """--max-batch / --opt-batch: min 1, opt, max on the batch axis; opt defaults to max."""
    from pipeline.backends.base import EngineOptions
    from pipeline.backends.tensorrt import engine_from_artifact

    trt = fake("10.3.0")
    engine_from_artifact(tmp_path / "s1.onnx", tmp_path / "a.plan", "fp32", EngineOptions(max_batch=16, opt_batch=4))
    assert ("profile", {"frame": ((1, 4, 4, 3), (4, 4, 4, 3), (16, 4, 4, 3))}) in trt.calls
    engine_from_artifact(tmp_path / "s1.onnx", tmp_path / "b.plan", "fp32", EngineOptions(max_batch=8))
    assert ("profile", {"frame": ((1, 4, 4, 3), (8, 4, 4, 3), (8, 4, 4, 3))}) in trt.calls


@pytest.mark.parametrize("version, flags, precision_flags", [("8.6.2", 1 << 0, ["FP16", "GPU_FALLBACK"]),
                                                               ("10.3.0", 0, ["FP16", "GPU_FALLBACK"]),
                                                               ("11.4.1", 0, ["GPU_FALLBACK"])])
def test_dla_builds_fp16_batch1_with_gpu_fallback(fake, tmp_path, version, flags, precision_flags):
    from pipeline.backends.tensorrt import engine_from_onnx

    trt = fake(version, dla_cores=2)
    engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", "fp16", dla_core=1)
    assert ("network", flags) in trt.calls
    assert [c[1] for c in trt.calls if c[0] == "flag"] == precision_flags
    assert built_config(trt) == {"default_device_type": "DLA", "DLA_core": 1}


@pytest.mark.parametrize("precision, kw, match", [
    ("fp32", {"dla_core": 0}, "DLA cannot run fp32"),
    ("int8", {"dla_core": 0}, "DLA cannot run int8"),
    ("fp16", {"dla_core": 0, "max_batch": 8}, "batch 1"),
    ("fp16", {"dla_core": 2}, "DLA core 2 requested, but this device has 2 DLA cores"),
    ("bf16", {}, "unknown precision 'bf16'"),
])
def test_unsupported_combinations_are_refused(fake, tmp_path, precision, kw, match):
    from pipeline.backends.tensorrt import engine_from_onnx

    fake("10.3.0", dla_cores=2)
    with pytest.raises(PipelineError, match=match):
        engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", precision, **kw)
    assert not (tmp_path / "s1.plan").exists()


def test_old_tensorrt_parse_and_build_failures_are_clear_errors(fake, tmp_path):
    from pipeline.backends.tensorrt import engine_from_onnx

    fake("8.4.3")
    with pytest.raises(PipelineError, match="TensorRT 8.4.3 is too old.*8.5 or newer"):
        engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", "fp32")
    fake("10.3.0", parse_ok=False)
    with pytest.raises(PipelineError, match=r"could not parse s1.onnx: In node 3 \(Conv\): unsupported"):
        engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", "fp32")
    fake("10.3.0", build_ok=False)
    with pytest.raises(PipelineError, match="failed to build a fp16 plan from s1.onnx"):
        engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", "fp16")


def test_a_timing_cache_from_another_gpu_is_replaced(fake, tmp_path, capsys):
    from pipeline.backends.tensorrt import engine_from_onnx

    (tmp_path / "tc").write_bytes(b"other gpu")
    trt = fake("10.3.0", cache_ok=False)
    engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", "fp32", timing_cache=tmp_path / "tc")
    assert [c[1] for c in trt.calls if c[0] == "timing_cache"] == [b"timed:other gpu", b"timed:"]
    assert "new TensorRT timing cache" in capsys.readouterr().out
    assert (tmp_path / "tc").read_bytes() == b"timed:"
    trt = fake("10.3.0")  # a matching cache is kept
    (tmp_path / "tc").write_bytes(b"this gpu")
    engine_from_onnx(tmp_path / "s1.onnx", tmp_path / "s1.plan", "fp32", timing_cache=tmp_path / "tc")
    assert [c[1] for c in trt.calls if c[0] == "timing_cache"] == [b"timed:this gpu"]


def test_buildable_precisions_and_device_facts(fake, monkeypatch):
    from pipeline.backends.tensorrt import builder

    fake("8.6.2", fast_int8=False)
    assert builder.gpu_info() == {"gpu": "NVIDIA H100", "compute_capability": "9.0", "tensorrt": "8.6.2"}
    assert builder.buildable_precisions() == {"fp32", "fp16"}
    fake("11.0.0")  # the query is gone: strongly typed networks build what they hold
    assert builder.buildable_precisions() == {"fp32", "fp16", "int8"}
    monkeypatch.setattr(driver.Device, "count", staticmethod(lambda: 0))
    with pytest.raises(PipelineError, match="no CUDA GPU is visible"):
        builder.gpu_info()


def test_plan_device_check(fake, monkeypatch):
    from pipeline.backends.tensorrt import builder

    monkeypatch.setattr(builder, "gpu_info", lambda: HERE)
    builder.check_plan_device(dict(HERE))  # same TensorRT and GPU: accepted
    with pytest.raises(PipelineError, match="built for compute_capability '8.7' \\(here: '9.0'\\).*rebuild"):
        builder.check_plan_device({**HERE, "compute_capability": "8.7"})
    with pytest.raises(PipelineError, match="built for tensorrt 'unknown'"):
        builder.check_plan_device({"gpu": HERE["gpu"], "compute_capability": "9.0"})


def test_plans_are_refused_where_tensorrt_cannot_run_or_for_another_device(model_folder, monkeypatch):
    m = load_manifest(model_folder)
    m.engines += [FileEntry(k, "fp32", f"tensorrt/stage{k}.fp32.plan", "0" * 64, backend="tensorrt") for k in (1, 2, 3)]
    m.device.backends["tensorrt"] = {"gpu": "Orin", "compute_capability": "8.7", "tensorrt": "10.3.0"}
    import pipeline.backends.tensorrt.builder as builder

    if REASON is not None:
        with pytest.raises(PipelineError, match="TensorRT|pycuda|GPU"):
            load_chain(m, model_folder, "tensorrt", "fp32")
    monkeypatch.setattr(builder, "gpu_info", lambda: HERE)
    with pytest.raises(PipelineError, match="built for tensorrt '10.3.0'.*rebuild them here"):
        load_chain(m, model_folder, "tensorrt", "fp32")


# --- chain -------------------------------------------------------------------------------------------


def test_chain_keeps_maps_on_the_device_and_copies_only_frame_and_logits(fake, tmp_path):
    from pipeline.backends.tensorrt import TensorRTChain

    fake("10.3.0")
    chain = TensorRTChain(three_plans(tmp_path), "fp32")
    chain.activate()
    assert chain.last_run_ms() is None
    allocated = dict(driver.memory)
    frame = np.full((1, 4, 4, 3), 6, dtype=np.uint8)
    for _ in range(2):  # frames reuse the buffers
        driver.log.clear()
        chain.set_frame(frame)
        logits = [chain.run(k) for k in (1, 2, 3)]
        assert driver.memory.keys() == allocated.keys()
        assert [z.dtype for z in logits] == [np.float32] * 3 and logits[0].shape == (1, 3)
        assert [float(z[0, 0]) for z in logits] == [7.0, 9.0, 12.0]  # 6 + 1, then + 2, then + 3: maps flowed
        copies = [e for e in driver.log if e[0] in ("htod", "dtoh")]
        assert [e[0] for e in copies] == ["htod", "dtoh", "dtoh", "dtoh"]  # the frame up, logits down: no maps
        assert {e[-1] for e in driver.log if e[0] in ("htod", "dtoh", "execute")} == {77}  # one stream
        assert driver.log[-1] == ("sync",)  # synchronised before the logits were returned
    assert chain.last_run_ms() == 0.5  # stage 3 and its logits' copy
    chain.set_frame(frame)
    with pytest.raises(PipelineError, match="stage 3 needs stage 2's maps"):
        chain.run(3)
    chain.deactivate()
    assert driver.memory == {} and driver.Context.depth == 0
    assert chain.last_run_ms() is None


def test_a_batched_chain_sets_its_shapes_per_call_and_packs_kept_rows_on_the_device(fake, tmp_path):
    """Buffers sized for the profile's max batch; each call's batch set on every context (set_input_shape);
    keep moves the wanted rows of the next stage's maps to the front on the device and narrows later stages."""
    from pipeline.backends.tensorrt import TensorRTChain

    fake("10.3.0")
    chain = TensorRTChain(three_plans(tmp_path, max_batch=4), "fp32")
    chain.activate()
    assert chain.max_batch == 4
    assert len(driver.memory[int(chain._device["stage1_map0"])]) == 4 * 2 * 4 * 4 * 4  # 4 rows of float32 maps
    frames = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (10, 20, 30, 40)])
    driver.log.clear()
    chain.set_frame(frames)
    assert {e[1:] for e in driver.log if e[0] == "shape"} == {(1, "frame", (4, 4, 4, 3)),
                                                           (2, "stage1_map0", (4, 2, 4, 4)),
                                                           (3, "stage2_map0", (4, 2, 2, 2))}
    assert chain.run(1)[:, 0].tolist() == [11.0, 21.0, 31.0, 41.0]
    driver.log.clear()
    chain.keep([1, 3])
    assert [e[0] for e in driver.log if e[0] in ("dtod", "htod", "dtoh")] == ["dtod", "dtod"]  # rows 1, 3 -> 0, 1
    assert {e[1:] for e in driver.log if e[0] == "shape"} == {(2, "stage1_map0", (2, 2, 4, 4)),
                                                           (3, "stage2_map0", (2, 2, 2, 2))}
    z2 = chain.run(2)
    assert z2.shape == (2, 3) and z2[:, 0].tolist() == [23.0, 43.0]
    chain.keep([1])
    assert chain.run(3).tolist() == [[46.0] * 3]
    driver.log.clear()
    chain.set_frame(frames[:1])  # batch 1 again: the contexts not at 1 already (stage 3 is, after keep) set to 1
    assert sorted(e[1] for e in driver.log if e[0] == "shape") == [1, 2]
    assert chain.run(1).tolist() == [[11.0] * 3]
    with pytest.raises(PipelineError, match="or a batch .* of N <= 4"):
        chain.set_frame(np.zeros((5, 4, 4, 3), np.uint8))
    chain.deactivate()
    assert driver.memory == {} and driver.Context.depth == 0


def test_stages_built_for_other_batches_are_refused(fake, tmp_path):
    from pipeline.backends.tensorrt import TensorRTChain

    fake("10.3.0")
    plans = three_plans(tmp_path, max_batch=4)
    write_plan(plans[2], 3, [["stage2_map0", "INPUT", "float32", [-1, 2, 2, 2]],
                             ["logits_3", "OUTPUT", "float32", [-1, 3]]], max_batch=2)
    with pytest.raises(PipelineError, match="takes batches up to 2, stage 1's plan up to 4"):
        TensorRTChain(plans, "fp32").activate()
    assert driver.memory == {} and driver.Context.depth == 0


@pytest.mark.parametrize("plans, match", [
    (lambda p: p[1:], "stage 1 reads stage1_map0, which no earlier stage writes"),
    (lambda p: [p[0], p[2]], "stage 2 reads stage2_map0, which no earlier stage writes"),
    (lambda p: [p[0], p[0]], "stage 2 writes .*an earlier stage writes too"),
])
def test_chain_refuses_plans_that_do_not_chain(fake, tmp_path, plans, match):
    from pipeline.backends.tensorrt import TensorRTChain

    fake("10.3.0")
    with pytest.raises(PipelineError, match=match):
        TensorRTChain(plans(three_plans(tmp_path)), "fp32").activate()
    assert driver.memory == {} and driver.Context.depth == 0  # nothing left behind


def test_chain_refuses_mismatched_maps_and_foreign_plans(fake, tmp_path):
    from pipeline.backends.tensorrt import TensorRTChain

    fake("10.3.0")
    with pytest.raises(PipelineError, match="stage 2 reads stage1_map0 as .* float16, but it is written as"):
        TensorRTChain(three_plans(tmp_path, map_dtype="float16"), "fp16").activate()
    plans = three_plans(tmp_path)
    plans[2].write_bytes(b"\x00plan of another TensorRT")
    with pytest.raises(PipelineError, match="could not load .*s3.plan.*rebuild"):
        TensorRTChain(plans, "fp32").activate()
    assert driver.memory == {} and driver.Context.depth == 0


def test_profiler_reads_the_chains_cuda_event_times(fake, tmp_path):
    from pipeline.backends.tensorrt import TensorRTChain
    from pipeline.profiling.timing import profile_chain

    fake("10.3.0")
    chain = TensorRTChain(three_plans(tmp_path), "fp32")
    prof = profile_chain(chain, np.zeros((2, 4, 4, 3), np.uint8), runs=3, warmup=1)
    chain.deactivate()
    assert prof.clock == "cuda-events"
    assert prof.device_ms.tolist() == [[0.75, 0.5, 0.5]] * 3  # stage 1 also covers the frame's upload


# --- on a GPU ----------------------------------------------------------------------------------------


@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_plans_chain_like_onnx_runtime(model_folder, exported, tmp_path, precision):
    from pipeline.backends.tensorrt import TensorRTChain, engine_from_onnx
    from pipeline.export.fp16 import fp16_from_onnx

    srcs = exported.paths if precision == "fp32" else \
        [fp16_from_onnx(p, tmp_path / f"s{k}.fp16.onnx") for k, p in enumerate(exported.paths, 1)]
    plans = [engine_from_onnx(p, tmp_path / f"stage{k}.{precision}.plan", precision, timing_cache=tmp_path / "tc")
             for k, p in enumerate(srcs, start=1)]
    assert (tmp_path / "tc").is_file()
    frames = image_like(3, seed=10)
    ref = load_chain(load_manifest(model_folder), model_folder, "onnxruntime", "fp32")
    tol = 1e-3 if precision == "fp32" else 5e-2
    with TensorRTChain(plans, precision) as trt_chain, ref:
        for i in range(len(frames)):
            trt_chain.set_frame(frames[i:i + 1])
            ref.set_frame(frames[i:i + 1])
            for k in (1, 2, 3):
                a, b = trt_chain.run(k), ref.run(k)
                assert a.dtype == np.float32 and trt_chain.last_run_ms() > 0
                assert np.abs(a - b).max() <= tol * max(1.0, float(np.abs(b).max()))


@needs_gpu
def test_batched_plans_equal_their_frames_one_by_one(model_folder, exported, tmp_path):
    """Plans with a batch profile: a batch of 4 narrowed by keep gives each frame's single-frame logits."""
    from pipeline.backends.tensorrt import TensorRTChain, engine_from_onnx

    plans = [engine_from_onnx(p, tmp_path / f"stage{k}.plan", "fp32", max_batch=4, opt_batch=4)
             for k, p in enumerate(exported.paths, start=1)]
    frames = image_like(4, seed=12)
    with TensorRTChain(plans, "fp32") as chain:
        assert chain.max_batch == 4
        single = np.stack([np.concatenate(chain.run_all(frames[i:i + 1])) for i in range(4)])  # (N, K, C)
        chain.set_frame(frames)
        z1 = chain.run(1)
        chain.keep([0, 2])
        z2 = chain.run(2)
        chain.keep([1])
        z3 = chain.run(3)
    tol = 1e-3 * max(1.0, float(np.abs(single).max()))
    assert np.abs(z1 - single[:, 0]).max() <= tol and np.abs(z2 - single[[0, 2], 1]).max() <= tol
    assert np.abs(z3 - single[[2], 2]).max() <= tol


@needs_gpu
def test_parse_failure_is_a_clear_error(tmp_path):
    from pipeline.backends.tensorrt import engine_from_onnx

    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(PipelineError, match="TensorRT could not parse bad.onnx"):
        engine_from_onnx(tmp_path / "bad.onnx", tmp_path / "bad.plan", "fp32")
