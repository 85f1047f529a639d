"""The pycuda calls of the TensorRT backend, and the pycuda doubles of the tests, held to pycuda's source.

Without a GPU pycuda neither builds (it needs CUDA's headers) nor imports (it needs libcuda), so
its names and declared argument lists come from its source distribution (``pycuda_api``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends.tensorrt_api import bindings, doubles, pycuda_api
from tests.backends.tensorrt_api.uses import check_sources

pytestmark = pytest.mark.tensorrt_api
BACKEND = Path(__file__).resolve().parents[3] / "pipeline" / "backends" / "tensorrt"
RECORDERS = {"memory", "log", "clock", "stack", "need_context", "depth", "buffer", "freed", "ordinal", "t", "address"}


@pytest.fixture(scope="module")
def driver():
    try:
        return pycuda_api.read_source(bindings.pycuda_source())
    except bindings.Unavailable as exc:
        pytest.skip(f"pycuda's source cannot be had here: {exc}")


def check(paths, driver):
    return check_sources(paths, driver, (0, 0), root="cuda", owner="pycuda")


def test_every_pycuda_use_of_the_backend_is_in_pycudas_source(driver):
    result = check(sorted(BACKEND.rglob("*.py")), driver)
    assert [str(p) for p in result.problems] == []
    uses = "\n".join(sorted(result.uses))
    for call in ("cuda.init(", "cuda.Stream(", "cuda.pagelocked_empty(", "cuda.memcpy_htod_async(",
                 "cuda.memcpy_dtoh_async(", "retain_primary_context(", "cuda.mem_alloc"):
        assert call in uses, call


def test_a_wrong_pycuda_call_is_caught(driver, tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import pycuda.driver as cuda\n\n\ndef f(a, b, s):\n"
                       "    cuda.memcpy_htod_async(a, b, s, 0)\n"  # one argument too many
                       "    cuda.mem_alloc_async(16)\n"  # no such function
                       "    cuda.Stream().synchronise()\n")  # misspelt
    problems = [str(p) for p in check([planted], driver).problems]
    assert [p.split(":")[1] for p in problems] == ["5", "6", "7"]
    assert "4 positional arguments, at most 3" in problems[0] and "'mem_alloc_async'" in problems[1]


def _public(obj):
    return {n for n in dir(obj) if not n.startswith("_") and n not in RECORDERS}


@pytest.mark.parametrize("make", ["probe", "behaviour"])
def test_the_pycuda_doubles_name_only_what_pycuda_has(driver, make):
    if make == "probe":
        double = doubles.pycuda_driver()
    else:
        from tests.backends.test_tensorrt import fake_pycuda

        double = fake_pycuda()
    missing = []
    for name in sorted(_public(double)):
        if not hasattr(driver, name):
            missing.append(name)
        elif isinstance(getattr(double, name), type):  # a class, or a factory standing in for one (mem_alloc)
            real = getattr(driver, name)
            real = real if isinstance(real, type) else getattr(driver, pycuda_api.RETURNS[name])
            missing += [f"{name}.{m}" for m in sorted(_public(getattr(double, name))) if not hasattr(real, m)]
    assert missing == []
