"""Shared tiny fixtures: a three-exit MSDNet small enough to build, train and export in seconds."""

from __future__ import annotations

import pytest

TINY = dict(n_blocks=3, step=1, base=2, n_channels=8, growth_rate=4)


@pytest.fixture(autouse=True, scope="session")
def int8_everywhere_in_builds():
    """The suite's in-process builds keep INT8 at every stage of the ONNX Runtime INT8 chain: which graph of a
    stage is faster depends on this machine's load at the time, and a test's results must not (builds in a
    child process make the choice; no test reads their INT8 stages). The choice itself is tested in
    tests/backends/test_int8_stages.py."""
    try:
        import pipeline.backends.onnxruntime as ort_backend
    except ImportError:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ort_backend, "prefer_faster", lambda manifest, folder, precision, options: None)
        yield


@pytest.fixture
def tiny_model():
    torch = pytest.importorskip("torch")
    from pipeline.models import create_model

    torch.manual_seed(0)
    return create_model("msdnet_cifar", **TINY).eval()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """A loud line when the TensorRT backend was not held to the real bindings (their wheels could not be had):
    the rest of the suite passing says nothing about the TensorRT code then."""
    import os

    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "tensorrt_api" in getattr(r, "keywords", {})]
    if not skipped:
        return
    where = "CI" if os.environ.get("CI") == "true" else "this run"
    terminalreporter.write_sep("!", f"{len(skipped)} TensorRT API checks did not run in {where}", red=True, bold=True)
    reasons = sorted({str(r.longrepr[-1]) if isinstance(r.longrepr, tuple) else str(r.longrepr) for r in skipped})
    for reason in reasons[:5]:
        terminalreporter.write_line(f"  {reason}", red=True)
