"""`make keep-run` / `restore-run` / `drop-run`: a long run's state kept on a side branch, never on main, never over a file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.faults.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="no make or git")

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=ENV, capture_output=True, text=True, check=True).stdout.strip()


def make(repo: Path, target: str, train_out: str = "checkpoints/r.pt") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), target, f"TRAIN_OUT={train_out}"],
                          cwd=repo, env=ENV, capture_output=True, text=True)


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "code.py").write_text("x = 1\n")
    git(repo, "add", "code.py")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "checkpoints").mkdir()
    (repo / "checkpoints" / "r.pt").write_bytes(b"weights 1")
    (repo / "checkpoints" / "r.state.pt").write_bytes(b"state 1")
    return repo


def test_a_kept_run_is_one_commit_on_its_branch_and_main_is_untouched(repo):
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    for round_ in (1, 2):
        (repo / "checkpoints" / "r.state.pt").write_bytes(f"state {round_}".encode())
        done = make(repo, "keep-run")
        assert done.returncode == 0, done.stderr
        assert "kept checkpoints/r.pt on branch runs/r" in done.stdout
    assert git(repo, "ls-tree", "-r", "--name-only", "runs/r").split() == ["checkpoints/r.pt", "checkpoints/r.state.pt"]
    assert git(repo, "show", "runs/r:checkpoints/r.state.pt") == "state 2"
    assert git(repo, "rev-list", "--count", "runs/r") == "1"  # replaced, not appended: clones never carry old states
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == status
    assert git(repo, "ls-files") == "code.py"


def test_a_kept_run_comes_back_where_it_is_missing(repo):
    assert make(repo, "keep-run").returncode == 0
    for f in ("r.pt", "r.state.pt"):
        (repo / "checkpoints" / f).unlink()
    done = make(repo, "restore-run")
    assert done.returncode == 0, done.stderr
    assert (repo / "checkpoints" / "r.pt").read_bytes() == b"weights 1"
    assert (repo / "checkpoints" / "r.state.pt").read_bytes() == b"state 1"
    assert not list((repo / "checkpoints").glob("*.restoring"))


def test_restoring_never_writes_over_a_file(repo):
    assert make(repo, "keep-run").returncode == 0
    (repo / "checkpoints" / "r.pt").write_bytes(b"newer weights")
    assert make(repo, "restore-run").returncode == 0  # the run is there: nothing to do
    assert (repo / "checkpoints" / "r.pt").read_bytes() == b"newer weights"
    (repo / "checkpoints" / "r.pt").unlink()
    (repo / "checkpoints" / "r.state.pt").write_bytes(b"a state of its own")
    done = make(repo, "restore-run")
    assert done.returncode != 0 and "exists without checkpoints/r.pt" in done.stderr
    assert (repo / "checkpoints" / "r.state.pt").read_bytes() == b"a state of its own"
    assert not (repo / "checkpoints" / "r.pt").exists()


def test_without_a_branch_restoring_does_nothing_and_keeping_without_a_run_is_refused(repo):
    for f in ("r.pt", "r.state.pt"):
        (repo / "checkpoints" / f).unlink()
    done = make(repo, "restore-run")
    assert done.returncode == 0 and done.stdout == "" and not (repo / "checkpoints" / "r.pt").exists()
    done = make(repo, "keep-run")
    assert done.returncode != 0 and "no run at checkpoints/r.pt" in done.stderr
    assert git(repo, "branch", "--list", "runs/r") == ""


def test_dropping_a_run_removes_its_branch_and_keeps_the_files(repo):
    assert make(repo, "keep-run").returncode == 0
    assert make(repo, "drop-run").returncode == 0
    assert git(repo, "branch", "--list", "runs/r") == ""
    assert (repo / "checkpoints" / "r.pt").read_bytes() == b"weights 1"


def test_a_plain_clone_restores_the_run_from_origin(repo, tmp_path):
    assert make(repo, "keep-run").returncode == 0
    clone = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(clone))  # the branch arrives as refs/remotes/origin/runs/r
    assert git(clone, "branch", "--list", "runs/r") == ""
    done = make(clone, "restore-run")
    assert done.returncode == 0 and "from refs/remotes/origin/runs/r" in done.stdout, done.stderr
    assert (clone / "checkpoints" / "r.pt").read_bytes() == b"weights 1"
    assert (clone / "checkpoints" / "r.state.pt").read_bytes() == b"state 1"


def test_dropping_a_branch_that_is_not_there_says_so(repo):
    done = make(repo, "drop-run")
    assert done.returncode == 0 and "no branch runs/r here" in done.stdout


@pytest.mark.parametrize("train_out", ["/abs/r.pt", "check points/r.pt"])
def test_a_path_that_cannot_name_a_branch_is_refused(repo, train_out):
    for target in ("keep-run", "restore-run"):
        done = make(repo, target, train_out)
        assert done.returncode == 2 and "TRAIN_OUT must be a relative path without spaces" in done.stderr
    assert git(repo, "branch", "--list", "runs/*") == ""
