"""`make verify` on the tiny built model: every engine against the reference, passing and failing."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pipeline import verify
from pipeline.errors import PipelineError
from tests.helpers import tiny_build


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def run(tiny, capsys, *extra):
    code = verify.main(["--engines", str(tiny.folder), "--data", str(tiny.data), "--cache-dir", str(tiny.cache),
                        "--images", "16", *extra])
    return code, capsys.readouterr()


def rows(out: str) -> dict[tuple[str, int], list[str]]:
    found = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"\d+", cells[1]):
            found[(cells[0], int(cells[1]))] = cells
    return found


def test_every_engine_against_the_pytorch_model_passes(tiny, capsys, tmp_path):
    code, out = run(tiny, capsys, "--checkpoint", str(tiny.checkpoint), "--json", str(tmp_path / "v.json"))
    assert code == 0, out.out + out.err
    text = out.out
    assert "reference pytorch/fp32" in text and "16 validation images" in text
    assert re.search(r"versions: anytime-pipeline \S+, python \S+, numpy \S+, onnxruntime \S+", text)
    assert "device: CPU " in text and "power mode: not a Jetson" in text
    table = rows(text)
    assert sorted(table) == [(f"onnxruntime/{p}", k) for p in ("fp16", "fp32", "int8") for k in (1, 2, 3)]
    fp32 = table[("onnxruntime/fp32", 3)]
    assert float(fp32[2]) < 1e-3 and fp32[4] == "100.00%" and fp32[6] == "ok"
    assert text.rstrip().endswith("result: PASS")
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["reference"] == "pytorch/fp32" and len(report["variants"]["onnxruntime/int8"]["exits"]) == 3
    int8 = report["variants"]["onnxruntime/int8"]["exits"]
    assert all(e["max_abs"] >= e["mean_abs"] > 0 for e in int8)  # quantised: close, not equal


def test_a_tolerance_exceeded_fails_with_exit_1_and_says_where(tiny, capsys):
    code, out = run(tiny, capsys, "--tolerance", "int8:max_abs=0", "--tolerance", "fp16:agreement=100.5")
    assert code == 1
    text = out.out
    assert "reference onnxruntime/fp32" in text  # no checkpoint: ONNX Runtime FP32 is the reference
    assert ("onnxruntime/fp32", 1) not in rows(text)  # the reference is not compared with itself
    assert "max abs difference" in rows(text)[("onnxruntime/int8", 1)][6]
    assert "top-1 agreement 100.00% < 100.50%" in rows(text)[("onnxruntime/fp16", 2)][6]
    verdict = text.rstrip().rsplit("\n", 1)[-1]
    assert verdict.startswith("result: FAIL: outside tolerance at ") and "onnxruntime/int8 exit 1" in verdict


@pytest.mark.parametrize("extra, match", [
    (["--tolerance", "int4:max_abs=1"], "--tolerance must be PRECISION:METRIC=VALUE"),
    (["--tolerance", "fp16:max=1"], "METRIC one of max_abs, mean_abs, agreement"),
    (["--tolerance", "fp16:max_abs=-1"], "VALUE a number >= 0"),
    (["--images", "0"], "--images must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--checkpoint", "missing.pt"], "--checkpoint missing.pt does not exist"),
])
def test_bad_requests_are_one_line_errors(tiny, capsys, extra, match):
    with pytest.raises(SystemExit) as info:
        run(tiny, capsys, *extra)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert match in err


def test_another_checkpoint_is_refused(tiny, capsys, tmp_path):
    other = tmp_path / "other.pt"
    other.write_bytes(tiny.checkpoint.read_bytes() + b"\0")
    with pytest.raises(SystemExit) as info:
        run(tiny, capsys, "--checkpoint", str(other))
    assert info.value.code == 2 and "is not the checkpoint the engines" in capsys.readouterr().err


def test_compare_and_exceeded():
    ref = np.zeros((4, 2, 3), np.float32)
    ref[:, :, 0] = 1.0  # top-1 is class 0 everywhere
    got = ref.copy()
    got[0, 1] = [0.0, 2.0, 0.0]  # image 0, exit 2: another top-1, differences of 1 and 2
    stats = verify.compare(got, ref)
    assert stats[0] == {"max_abs": 0.0, "mean_abs": 0.0, "agreement": 100.0}
    assert stats[1] == {"max_abs": 2.0, "mean_abs": 0.25, "agreement": 75.0}
    tol = verify.Tolerance(max_abs=1.0, mean_abs=0.5, agreement=80.0)
    assert verify.exceeded(stats[0], tol) == []
    assert verify.exceeded(stats[1], tol) == ["max abs difference 2 > 1", "top-1 agreement 75.00% < 80.00%"]
    nan = {"max_abs": float("nan"), "mean_abs": float("nan"), "agreement": 99.0}  # an engine that answers NaN
    assert verify.exceeded(nan, tol) == ["max abs difference nan > 1", "mean abs difference nan > 0.5"]
    assert verify.parse_tolerances(["fp32:agreement=50"])["fp32"].agreement == 50.0
    with pytest.raises(PipelineError):
        verify.parse_tolerances(["fp32:agreement=nan"])


def test_versions_and_the_fallback_reference_come_from_the_registry():
    from pipeline.backends import REFERENCE_BACKEND, backend_module, package_versions

    v = verify.versions()
    assert list(v)[:3] == ["anytime-pipeline", "python", "numpy"] and list(v)[-1] == "torch"
    assert {k: v[k] for k in package_versions()} == package_versions()
    assert verify.REFERENCE_FALLBACK == (REFERENCE_BACKEND, "fp32")
    assert verify.fallback_title() == f"{backend_module(REFERENCE_BACKEND).TITLE} FP32"

