"""The Jetson steps of docs/jetson.md, exactly: copy a host build's ``onnx/`` and ``manifest.json`` to the device,
then ``make engines EXTRAS=jetson,plot VENV_ARGS=--system-site-packages ENGINE_ARGS=--compile-only``.
The portable artifacts and the manifest are all it needs: the host's engines stay behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from pipeline.manifest import load_manifest, variant_key
from tests.faults.conftest import ROOT, temporaries

README = (ROOT / "docs" / "jetson.md").read_text()  # the Jetson steps moved from the README to docs/
STEP_2 = "make engines EXTRAS=jetson,plot VENV_ARGS=--system-site-packages ENGINE_ARGS=--compile-only"


def test_the_readme_still_gives_these_steps():
    jetson = README[README.index("## On a Jetson"):]
    assert re.search(r"copy `engines/ranet/onnx/` and\s+`engines/ranet/manifest.json`", jetson)
    assert f"`{STEP_2}`" in jetson


def test_compile_from_only_the_artifacts_and_the_manifest(tiny, tmp_path):
    venv = ROOT / ".venv"
    if subprocess.run(["make", "-C", str(ROOT), "-q", f"VENV={venv}", str(venv / ".installed")]).returncode != 0:
        pytest.skip("the project's .venv is older than pyproject.toml: `make setup` first")
    device = tmp_path / "engines" / "ranet"  # step 1: what is copied to the device (the Makefile's NAME)
    device.mkdir(parents=True)
    shutil.copytree(tiny.folder / "onnx", device / "onnx")
    shutil.copy2(tiny.folder / "manifest.json", device / "manifest.json")
    host = load_manifest(tiny.folder)
    assert host.engines and not (device / host.engines[0].path).exists()  # the host's engines stay behind

    env = dict(os.environ, ANYTIME_CACHE=str(tiny.cache))  # the tiny data's decoded images
    env.pop("MAKEFLAGS", None)
    proc = subprocess.run([*STEP_2.split(), f"ENGINES={tmp_path / 'engines'}", f"CHECKPOINT={tiny.checkpoint}",
                           f"DATA={tiny.data}", f"VENV={venv}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "no export here" in proc.stdout
    built = load_manifest(device)  # every file there, with its sha256
    assert [a.sha256 for a in built.artifacts] == [a.sha256 for a in host.artifacts]
    assert {variant_key(e.backend, e.precision) for e in built.engines} == \
        {variant_key(e.backend, e.precision) for e in host.engines}
    assert built.accuracy["validation"] == host.accuracy["validation"]
    assert temporaries(tmp_path / "engines") == []
