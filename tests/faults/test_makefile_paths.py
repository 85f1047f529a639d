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
            assert args[args.index("--engines") + 1] == f"{engines}/msdnet_cifar"
        if args[1] != "bench" or args[2] == "cascade":  # every command that takes the checkpoint gets it whole
            assert args[args.index("--checkpoint") + 1] == str(checkpoint), args
