"""The Makefile keeps CHECKPOINT and ENGINES whole when they hold spaces: each reaches the command as one argument."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.faults.conftest import ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_paths_with_spaces_stay_one_argument(tmp_path):
    checkpoint = tmp_path / "my models" / "m.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    engines = tmp_path / "my engines"
    # -n prints the recipes without running them (-o setup: no install step); PY prints each argument and a |.
    script = subprocess.run(["make", "-s", "-n", "-o", "setup", "engines", "profile", "verify", "bench", "evaluate",
                             f"CHECKPOINT={checkpoint}", f"ENGINES={engines}", "PY=printf '%s|'", "DATA=d"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    printed = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    commands = [c.split("|") for c in printed.split("-m|")[1:]]
    assert len(commands) == 6
    for args in commands:
        if "--engines" in args:
            assert args[args.index("--engines") + 1] == f"{engines}/ranet"
        if args[1] != "bench" or args[2] == "cascade":  # every command that takes the checkpoint gets it whole
            assert args[args.index("--checkpoint") + 1] == str(checkpoint), args


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_results_remeasures_every_published_figure_of_the_chosen_model_in_order():
    """`make results` runs the documented commands, each on ENGINES/NAME and the CHECKPOINT given."""
    script = subprocess.run(["make", "-s", "-n", "results", "PY=PY", "DATA=d", "NAME=ranet", "CHECKPOINT=c.pt",
                             "MODEL=pipeline.models.ranet:build", "REPORTS=out"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = [line.split("PY -m pipeline.cli ", 1)[1] for line in script.replace("\\\n", " ").splitlines()
             if "PY -m pipeline.cli " in line]
    steps = [" ".join(line.split()[:2 if line.startswith(("bench", "triton")) else 1]) for line in lines]
    steps = [s for s in steps if s not in ("engines", "train", "triton setup")]
    assert steps == ["profile", "profile", "bench cascade", "bench video", "bench cascade", "bench anchors", "verify",
                     "evaluate", "bench streams", "bench triton", "profile", "temporal", "clip", "camera"], steps
    measured = [line for line in lines if not line.startswith(("engines", "train", "triton setup", "clip"))]
    for line in measured:
        assert '--engines "engines/ranet"' in line or "--engines engines/ranet" in line, line
    builds = [line for line in lines if line.startswith("engines") and "--name ranet" in line]
    assert builds and all(line.startswith('engines --checkpoint "c.pt"') for line in builds), builds
    assert "--split test" in lines[[i for i, s in enumerate(lines) if s.startswith("profile")][1]]
    int8 = [line for line in lines if line.startswith("bench cascade")][1]
    assert "--precision int8" in int8 and "--json out/benchmarks_int8.json" in int8
    card = next(line for line in lines if line.startswith("evaluate"))
    assert '--checkpoint "c.pt"' in card and "--split test" in card and "--card models/README.md" in card


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_train_bench_times_the_model_make_train_trains():
    script = subprocess.run(["make", "-s", "-n", "-o", "setup", "train-bench", "train", "-o", "teacher", "PY=PY"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    models = [line.split("--model ", 1)[1].split()[0] for line in script.replace("\\\n", " ").splitlines()
              if "--model " in line]
    assert len(models) == 2 and models[0] == models[1] == "pipeline.models.ranet:build", script
