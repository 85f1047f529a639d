"""`make keep-run` / `drop-run`: a long run's checkpoint and resume state committed on the current branch, alone,
so that the next checkout resumes it; taken out of the tree once the run is done; the local files never touched."""

from __future__ import annotations

import fcntl
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
    """A repository like the project's: checkpoints/ ignored, a run in progress there."""
    repo = tmp_path / "clone"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "code.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("checkpoints/\n")
    git(repo, "add", "code.py", ".gitignore")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "checkpoints").mkdir()
    (repo / "checkpoints" / "r.pt").write_bytes(b"weights 1")
    (repo / "checkpoints" / "r.state.pt").write_bytes(b"state 1")
    return repo


def changed_in(repo: Path, rev: str) -> list[str]:
    return git(repo, "show", "--name-only", "--format=", rev).split()


def test_a_kept_run_is_one_commit_of_its_two_files_and_other_work_stays_as_it_was(repo):
    (repo / "code.py").write_text("x = 2\n")
    git(repo, "add", "code.py")  # staged work of its own
    (repo / ".gitignore").write_text("checkpoints/\nother/\n")  # and an unstaged change
    done = make(repo, "keep-run")
    assert done.returncode == 0, done.stderr
    assert "kept checkpoints/r.pt and its resume state in" in done.stdout
    assert changed_in(repo, "HEAD") == ["checkpoints/r.pt", "checkpoints/r.state.pt"]
    assert git(repo, "rev-list", "--count", "HEAD") == "2"
    assert git(repo, "diff", "--cached", "--name-only") == "code.py"
    assert git(repo, "diff", "--name-only") == ".gitignore"
    assert (repo / "checkpoints" / "r.pt").read_bytes() == b"weights 1"


def test_the_next_session_keeps_the_new_state_and_an_unchanged_run_is_not_committed_again(repo):
    assert make(repo, "keep-run").returncode == 0
    (repo / "checkpoints" / "r.state.pt").write_bytes(b"state 2")
    assert make(repo, "keep-run").returncode == 0
    assert git(repo, "show", "HEAD:checkpoints/r.state.pt") == "state 2"
    assert changed_in(repo, "HEAD") == ["checkpoints/r.state.pt"]
    done = make(repo, "keep-run")
    assert done.returncode == 0 and "is kept as it is" in done.stdout
    assert git(repo, "rev-list", "--count", "HEAD") == "3"


def test_a_clone_holds_the_kept_run_although_its_folder_is_ignored(repo, tmp_path):
    assert make(repo, "keep-run").returncode == 0
    clone = tmp_path / "next"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    assert (clone / "checkpoints" / "r.pt").read_bytes() == b"weights 1"
    assert (clone / "checkpoints" / "r.state.pt").read_bytes() == b"state 1"


def test_dropping_a_run_takes_both_files_out_of_the_tree_and_keeps_them_here(repo):
    assert make(repo, "keep-run").returncode == 0
    (repo / "code.py").write_text("x = 3\n")
    git(repo, "add", "code.py")  # staged work of its own stays staged, out of the commit
    done = make(repo, "drop-run")
    assert done.returncode == 0 and "dropped checkpoints/r.pt and its resume state" in done.stdout, done.stderr
    assert git(repo, "ls-files") == ".gitignore\ncode.py" and git(repo, "ls-tree", "--name-only", "HEAD") == ".gitignore\ncode.py"
    assert changed_in(repo, "HEAD") == ["checkpoints/r.pt", "checkpoints/r.state.pt"]
    assert git(repo, "diff", "--cached", "--name-only") == "code.py" and git(repo, "status", "--porcelain") == "M  code.py"
    assert (repo / "checkpoints" / "r.pt").read_bytes() == b"weights 1"
    assert (repo / "checkpoints" / "r.state.pt").read_bytes() == b"state 1"
    done = make(repo, "drop-run")
    assert done.returncode == 0 and "is not in the tree; nothing to drop" in done.stdout
    assert git(repo, "rev-list", "--count", "HEAD") == "3"


def test_keeping_without_a_run_or_with_half_of_one_is_refused(repo):
    (repo / "checkpoints" / "r.state.pt").unlink()
    done = make(repo, "keep-run")
    assert done.returncode == 2 and "no run at checkpoints/r.pt with its resume state" in done.stderr
    assert git(repo, "rev-list", "--count", "HEAD") == "1" and git(repo, "ls-files") == ".gitignore\ncode.py"


@pytest.mark.parametrize("train_out", ["/abs/r.pt", "check points/r.pt"])
def test_a_path_outside_the_repository_or_with_spaces_is_refused(repo, train_out):
    for target in ("keep-run", "drop-run"):
        done = make(repo, target, train_out)
        assert done.returncode == 2 and "TRAIN_OUT must be a relative path without spaces" in done.stderr
    assert git(repo, "rev-list", "--count", "HEAD") == "1"


@pytest.mark.skipif(shutil.which("flock") is None, reason="no flock(1)")
def test_a_run_still_training_is_not_kept(repo):
    """Its two files could be of different epochs: keep-run waits for the run's lock (held by `anytime train`)."""
    lock = repo / "checkpoints" / "r.pt.lock"
    with lock.open("w") as f:
        f.write("4242 a training run")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = make(repo, "keep-run")
        fcntl.flock(f, fcntl.LOCK_UN)
    assert done.returncode == 2 and "checkpoints/r.pt is being trained (process 4242)" in done.stderr
    assert git(repo, "rev-list", "--count", "HEAD") == "1"
    done = make(repo, "keep-run")  # a lock file left by a killed run is no obstacle
    assert done.returncode == 0 and git(repo, "ls-files", "checkpoints") == "checkpoints/r.pt\ncheckpoints/r.state.pt"
