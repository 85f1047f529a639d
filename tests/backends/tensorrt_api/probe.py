"""Run in a process of its own: import one real TensorRT version and check the backend against it.

    python -m tests.backends.tensorrt_api.probe '{"version": ..., "site": ..., "libs": [...]}' [PLANT]

Prints one JSON report: the source check (every ``trt.*`` use under ``pipeline/backends/tensorrt/``),
the builder and the chain run with Builder, OnnxParser and Runtime replaced by doubles spec'd from
the real classes, the hand-written fakes compared with the real module, and what the real
constructors raise with no CUDA behind them. ``PLANT`` inserts a known fault into the builder's
source first (:data:`PLANTS`), to show that the checks catch it.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import inspect
import json
import re
import sys
import tempfile
import traceback
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
BACKEND = ROOT / "pipeline" / "backends" / "tensorrt"
CONFIG_LINE = re.compile(r"^([ \t]*)(\w+) = builder\.create_builder_config\(\)[ \t]*$", re.M)
# fault -> the statement inserted after the builder config is made ({config}: its variable)
PLANTS = {
    "removed-flag": "{config}.set_flag(trt.BuilderFlag.FP16)",  # gone in TensorRT 11
    "argument-count": "{config}.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE)",  # the size is missing
    "string-for-enum": '{config}.set_flag("GPU_FALLBACK")',  # a str where a BuilderFlag is expected
}


FAKE_DRIFT = "fake-drift"  # the behaviour tests' fake given a flag the version lacks and a wrong enum value


def drifted(fake_tensorrt: Any) -> Any:
    def make(version: str, **kw: Any) -> Any:
        fake = fake_tensorrt(version, **kw)
        fake.BuilderFlag.FP16 = "FP16"  # gone in TensorRT 11
        fake.NetworkDefinitionCreationFlag.STRONGLY_TYPED = 1  # 0 in TensorRT 11
        return fake

    return make


def sources(plant: str | None) -> tuple[dict[Path, str], int | None]:
    """The backend's files (path -> text), with the fault planted; and the planted line's number."""
    texts = {p: p.read_text() for p in sorted(BACKEND.rglob("*.py"))}
    if plant in (None, FAKE_DRIFT):
        return texts, None
    for path, text in texts.items():
        match = CONFIG_LINE.search(text)
        if match:
            line = match.group(1) + PLANTS[plant].format(config=match.group(2))
            texts[path] = text[:match.end()] + "\n" + line + text[match.end():]
            return texts, text[:match.end()].count("\n") + 2
    raise SystemExit("no `config = builder.create_builder_config()` line to plant a fault after")


def install_planted(texts: dict[Path, str]) -> None:
    """Run planted files in their modules' namespaces, and rebind what other modules imported from them."""
    for path, text in texts.items():
        if text == path.read_text():
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = importlib.import_module(name)
        old = dict(vars(module))
        exec(compile(text, str(path), "exec"), module.__dict__)
        for other in [m for n, m in list(sys.modules.items()) if n.startswith("pipeline") and m is not None]:
            for attr, value in list(vars(other).items()):
                if any(value is v for v in old.values()) and getattr(value, "__module__", "") == name:
                    setattr(other, attr, vars(module)[getattr(value, "__name__", attr)])


def static(trt: Any, texts: dict[Path, str]) -> dict[str, Any]:
    from tests.backends.tensorrt_api.uses import check_sources

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for path, text in texts.items():
            paths.append(Path(tmp) / path.relative_to(BACKEND))
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            paths[-1].write_text(text)
        check = check_sources(paths, trt, version_tuple(trt))
    return {"uses": sorted(check.uses), "skipped": sorted(check.skipped), "problems": [str(p) for p in check.problems]}


def version_tuple(trt: Any) -> tuple[int, int]:
    major, minor = trt.__version__.split(".")[:2]
    return int(major), int(minor)


def attempt(fn: Any) -> dict[str, Any]:
    from tests.backends.tensorrt_api import doubles

    doubles.MISMATCHES.clear()
    try:
        detail = fn()
        error = None
    except Exception as exc:  # reported, not raised: the test reads the report
        error, detail = f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=-3)
    return {"error": error, "mismatches": list(doubles.MISMATCHES), "detail": detail}


def builds(trt: Any, tmp: Path) -> dict[str, Any]:
    from pipeline.backends.tensorrt import engine_from_onnx

    (tmp / "cache").write_bytes(b"an earlier timing cache")
    cases = {"fp32": {}, "fp16": {}, "int8": {}, "fp16-dla": {"dla_core": 1}, "fp32-timing-cache":
             {"timing_cache": tmp / "cache"}, "int8-batch-profile": {"max_batch": 16, "opt_batch": 4}}
    out = {}
    for case, kw in cases.items():
        precision = case.split("-")[0]
        out[case] = attempt(lambda: engine_from_onnx(tmp / "stage1.onnx", tmp / f"{case}.plan", precision, **kw)
                            .read_bytes().decode())
    return out


def chain_run(trt: Any, tmp: Path) -> dict[str, Any]:
    from pipeline.backends.tensorrt import TensorRTChain
    import numpy as np

    io = [[["frame", "INPUT", "uint8", [-1, 4, 4, 3]], ["logits_1", "OUTPUT", "float32", [-1, 3]],
           ["stage1_map0", "OUTPUT", "float32", [-1, 2, 4, 4]]],
          [["stage1_map0", "INPUT", "float32", [-1, 2, 4, 4]], ["logits_2", "OUTPUT", "float32", [-1, 3]]]]
    plans, batched = [], []
    for k, spec in enumerate(io, start=1):
        plans.append(tmp / f"stage{k}.plan")
        plans[-1].write_text(json.dumps({"stage": k, "io": spec}))
        batched.append(tmp / f"stage{k}.b4.plan")  # an optimisation profile up to batch 4
        batched[-1].write_text(json.dumps({"stage": k, "io": spec, "max_batch": 4}))

    def run() -> list[list[int]]:
        chain = TensorRTChain(plans, "fp32")
        chain.activate()
        try:
            chain.set_frame(np.zeros((1, 4, 4, 3), np.uint8))
            shapes = [list(chain.run(k).shape) for k in (1, 2)]
            chain.last_run_ms()
        finally:
            chain.deactivate()
        chain = TensorRTChain(batched, "fp32")
        chain.activate()
        try:  # a batch of 3, narrowed to 1 between the stages: set_input_shape per call, rows packed
            chain.set_frame(np.zeros((3, 4, 4, 3), np.uint8))
            shapes.append(list(chain.run(1).shape))
            chain.keep([2])
            shapes.append(list(chain.run(2).shape))
        finally:
            chain.deactivate()
        return shapes

    return attempt(run)


def fakes(trt: Any, fake_tensorrt: Any, used: set[tuple[str, str]]) -> list[str]:
    """Where the behaviour tests' fake module of this major version names or numbers things otherwise."""
    fake = fake_tensorrt(trt.__version__)
    problems = []
    for enum in ("NetworkDefinitionCreationFlag", "BuilderFlag", "MemoryPoolType", "DeviceType", "TensorIOMode"):
        real, ours = getattr(trt, enum), vars(getattr(fake, enum))
        for member, value in ours.items():
            if not hasattr(real, member):
                problems.append(f"fake {enum}.{member}: the real module has no such member")
            elif isinstance(value, int) and value != int(getattr(real, member)):
                problems.append(f"fake {enum}.{member} = {value}, real {int(getattr(real, member))}")
        for e, member in used:
            if e == enum and hasattr(real, member) != (member in ours):
                problems.append(f"{enum}.{member} is {'present' if hasattr(real, member) else 'absent'} in the real "
                                f"module, {'present' if member in ours else 'absent'} in the fake")
    for level in ("WARNING", "ERROR"):
        if int(getattr(trt.Logger, level)) != getattr(fake.Logger, level):
            problems.append(f"fake Logger.{level} = {getattr(fake.Logger, level)}, "
                            f"real {int(getattr(trt.Logger, level))}")
    builder = fake.Builder(None)
    network = builder.create_network(0)
    objects = [(builder, "Builder"), (builder.create_builder_config(), "IBuilderConfig"),
               (network, "INetworkDefinition"), (network.get_input(0), "ITensor"),
               (builder.create_optimization_profile(), "IOptimizationProfile"),
               (fake.OnnxParser(None, None), "OnnxParser"), (fake.Runtime(None), "Runtime")]
    from tests.backends import test_tensorrt as behaviour

    classes = [(behaviour.FakeEngine, "ICudaEngine"), (behaviour.FakeContext, "IExecutionContext")]
    for obj, real_name in objects + classes:
        real = getattr(trt, real_name)
        names = {n for n in dir(obj) if not n.startswith("_")} | set(getattr(obj, "__dict__", {}))
        for name in sorted(n for n in names if not n.startswith("_") and n not in RECORDERS):
            if not hasattr(real, name):
                problems.append(f"fake {real_name}.{name}: the real class has no such attribute")
                continue
            problems += _arity(getattr(obj, name), getattr(real, name), f"{real_name}.{name}")
    return problems


RECORDERS = {"shapes", "engine", "addresses", "stage", "io"}  # what the fakes record for the tests to read


def _arity(ours: Any, real: Any, what: str) -> list[str]:
    from tests.backends.tensorrt_api import signatures as sg

    if not callable(ours) or isinstance(real, property):
        return []
    sigs = sg.signatures(real)
    try:
        params = [p for p in inspect.signature(ours).parameters.values() if p.kind == p.POSITIONAL_OR_KEYWORD]
    except (TypeError, ValueError):
        return []
    params = params[1:] if params and params[0].name == "self" else params  # a fake class's own function
    if not sigs or any(len([p for p in s.params if not p.star]) >= len(params) >= len([p for p in s.params
                                                                                      if not p.optional])
                       for s in sigs):
        return []
    return [f"fake {what} takes {len(params)} arguments; the real one: {' or '.join(map(str, sigs))}"]


def no_cuda(trt: Any, driver: Any) -> dict[str, Any]:
    """The backend on the real constructors, which fail as they do where TensorRT cannot start CUDA."""
    from pipeline.backends import tensorrt as backend

    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "stage1.plan"
        plan.write_text("{}")
        out = {"build": attempt(lambda: backend.engine_from_onnx(Path(tmp) / "s.onnx", Path(tmp) / "s.plan", "fp32")),
               "chain": attempt(lambda: backend.TensorRTChain([plan], "fp32").activate()),
               "pushed_after": len(driver.stack())}
    backend.unavailable_reason.cache_clear()
    out["unavailable_reason"] = backend.unavailable_reason()
    return out


def main() -> None:
    spec = json.loads(sys.argv[1])
    plant = sys.argv[2] if len(sys.argv) > 2 else None
    sys.path.insert(0, str(ROOT))
    from tests.backends.test_tensorrt import fake_tensorrt  # before the real module and the pycuda double

    from tests.backends.tensorrt_api import bindings, doubles

    trt = bindings.load(spec["site"], spec["libs"])
    report: dict[str, Any] = {"version": trt.__version__}
    texts, line = sources(plant)
    report["planted_line"] = line
    report["static"] = static(trt, texts)
    used = {tuple(m.groups()) for t in texts.values() for m in re.finditer(r"trt\.(\w+)\.([A-Z_0-9]+)\b", t)}
    nullptr = attempt(lambda: trt.Builder(trt.Logger(trt.Logger.WARNING)))
    report["nullptr"] = nullptr["error"]
    if plant == FAKE_DRIFT:
        report["fakes"] = fakes(trt, drifted(fake_tensorrt), used)
        print(json.dumps(report))
        return
    report["fakes"] = fakes(trt, fake_tensorrt, used) if plant is None else []
    pycuda = types.ModuleType("pycuda")
    pycuda.__spec__ = importlib.machinery.ModuleSpec("pycuda", None)  # found, as an installed package is
    pycuda.driver = doubles.pycuda_driver()
    sys.modules.update({"pycuda": pycuda, "pycuda.driver": pycuda.driver})
    install_planted(texts)
    if plant is None:
        report["no_cuda"] = no_cuda(trt, pycuda.driver)
    doubles.install_doubles(trt)
    with tempfile.TemporaryDirectory() as tmp:
        report["builds"] = builds(trt, Path(tmp))
        report["chain"] = chain_run(trt, Path(tmp)) if plant is None else None
    print(json.dumps(report))


if __name__ == "__main__":
    main()
