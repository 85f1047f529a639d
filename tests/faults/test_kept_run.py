"""`make keep-run` / `drop-run`: a long run's checkpoint and resume state committed on the current branch, alone and
as one pair, so that the next checkout resumes it; taken out of the tree once done; never while it trains; the
user's index, working tree and the files themselves untouched, also when a step fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.conftest import ROOT

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="no make or git")

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=ENV, capture_output=True, text=True, check=True).stdout.strip()


def make(repo: Path, target: str, train_out: str = "checkpoints/r.pt") -> subprocess.CompletedProcess[str]:
    """The Makefile's target, as a user runs it (a process of its own: a few seconds of imports)."""
    return subprocess.run(["make", "-s", "-o", "setup", "-f", str(ROOT / "Makefile"), target, f"TRAIN_OUT={train_out}",
                           f"PY={sys.executable}"], cwd=repo, env=ENV, capture_output=True, text=True)


@pytest.fixture
def kept(repo, monkeypatch, capsys):
    """What the Makefile's target runs, called in this process from the repository with the same environment:
    ``kept("keep-run" | "drop-run", train_out, **env)`` -> its exit code, output and errors (``env``: values to
    set, None to unset)."""
    from pipeline.training import kept_run

    monkeypatch.chdir(repo)

    def run(target: str, train_out: str = "checkpoints/r.pt",
            **env: str | None) -> subprocess.CompletedProcess[str]:
        for key, value in {**ENV, **env}.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            code = kept_run.main([{"keep-run": "keep", "drop-run": "drop"}[target], train_out])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return subprocess.CompletedProcess([target], code, out.out, out.err)

    return run


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[Path, Path]:
    """Two stops of one tiny run (after steps 2 and 3), each a checkpoint and its resume state."""
    from tests.training.conftest import run

    root = tmp_path_factory.mktemp("pairs")
    out = root / "r.pt"
    kept = []
    for steps in ("2", "3"):
        assert run(root, out, "--epochs", "1", "--max-steps", steps, *(["--resume"] if out.exists() else [])) == 0
        folder = root / f"after{steps}"
        folder.mkdir()
        for f in ("r.pt", "r.state.pt"):
            shutil.copy(root / f, folder / f)
        kept.append(folder)
    return kept[0], kept[1]


def place(pair: Path, repo: Path, *names: str) -> None:
    for f in names or ("r.pt", "r.state.pt"):
        shutil.copy(pair / f, repo / "checkpoints" / f)


@pytest.fixture
def repo(tmp_path, pairs):
    """A repository like the project's: checkpoints/ ignored, a run stopped after step 2 there."""
    repo = tmp_path / "clone"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "code.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("checkpoints/\n")
    git(repo, "add", "code.py", ".gitignore")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "checkpoints").mkdir()
    place(pairs[0], repo)
    return repo


def changed_in(repo: Path, rev: str) -> list[str]:
    return git(repo, "show", "--name-only", "--format=", rev).split()


def test_a_kept_run_is_one_commit_of_its_two_files_and_other_work_stays_as_it_was(repo, pairs):
    (repo / "code.py").write_text("x = 2\n")
    git(repo, "add", "code.py")  # staged work of its own
    (repo / ".gitignore").write_text("checkpoints/\nother/\n")  # and an unstaged change
    done = make(repo, "keep-run")
    assert done.returncode == 0, done.stderr
    assert "kept checkpoints/r.pt and its resume state (1 file) in" in done.stdout
    assert changed_in(repo, "HEAD") == ["checkpoints/r.pt", "checkpoints/r.state.pt"]
    assert git(repo, "rev-list", "--count", "HEAD") == "2"
    assert git(repo, "diff", "--cached", "--name-only") == "code.py" and git(repo, "diff", "--name-only") == ".gitignore"
    assert (repo / "checkpoints" / "r.pt").read_bytes() == (pairs[0] / "r.pt").read_bytes()


def test_the_next_session_keeps_the_new_pair_and_an_unchanged_run_is_not_committed_again(repo, pairs, kept):
    assert kept("keep-run").returncode == 0
    place(pairs[1], repo)
    assert kept("keep-run").returncode == 0
    assert changed_in(repo, "HEAD") == ["checkpoints/r.pt", "checkpoints/r.state.pt"]
    assert git(repo, "diff", "--cached", "--name-only") == "" and git(repo, "diff", "--name-only") == ""
    done = kept("keep-run")
    assert done.returncode == 0 and "is kept as it is" in done.stdout
    assert git(repo, "rev-list", "--count", "HEAD") == "3"


def test_a_clone_holds_the_kept_run_although_its_folder_is_ignored(repo, pairs, tmp_path, kept):
    assert kept("keep-run").returncode == 0
    clone = tmp_path / "next"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    for f in ("r.pt", "r.state.pt"):
        assert (clone / "checkpoints" / f).read_bytes() == (pairs[0] / f).read_bytes()


def test_dropping_a_run_that_trained_on_after_it_was_kept_takes_both_out_and_keeps_the_files(repo, pairs, kept):
    assert kept("keep-run").returncode == 0
    place(pairs[1], repo)  # it went on training since
    (repo / "code.py").write_text("x = 3\n")
    git(repo, "add", "code.py")  # staged work of its own stays staged, out of the commit
    done = make(repo, "drop-run")
    assert done.returncode == 0 and "dropped checkpoints/r.pt and its resume state" in done.stdout, done.stderr
    assert git(repo, "ls-tree", "--name-only", "HEAD") == ".gitignore\ncode.py"
    assert git(repo, "ls-files") == ".gitignore\ncode.py"  # not staged again: a later commit cannot bring it back
    assert changed_in(repo, "HEAD") == ["checkpoints/r.pt", "checkpoints/r.state.pt"]
    assert git(repo, "status", "--porcelain") == "M  code.py"
    assert (repo / "checkpoints" / "r.pt").read_bytes() == (pairs[1] / "r.pt").read_bytes()
    done = kept("drop-run")
    assert done.returncode == 0 and "is not in the tree; nothing to drop" in done.stdout
    assert git(repo, "rev-list", "--count", "HEAD") == "3"


@pytest.mark.parametrize("case", ["no state", "state aside", "not one pair", "outside", "no name", "no folder"])
def test_what_is_not_one_run_in_the_repository_is_refused(repo, pairs, tmp_path, case, kept):
    train_out = "checkpoints/r.pt"
    if case == "no state":
        (repo / "checkpoints" / "r.state.pt").unlink()
    elif case == "state aside":  # killed in a save, after its old state was moved aside
        (repo / "checkpoints" / "r.state.pt").rename(repo / "checkpoints" / "r.state.previous.pt")
    elif case == "not one pair":
        place(pairs[1], repo, "r.state.pt")  # a state of a later step beside the earlier checkpoint
    elif case == "no name":  # make keep-run TRAIN_OUT=
        train_out = ""
    elif case == "no folder":
        train_out = "checkpoints/missing/r.pt"
    else:
        train_out = str(tmp_path / "elsewhere" / "r.pt")
        Path(train_out).parent.mkdir()
        for f in ("r.pt", "r.state.pt"):
            shutil.copy(pairs[0] / f, Path(train_out).parent / f)
    done = kept("keep-run", train_out)
    message = {"no state": "no run at checkpoints/r.pt with its resume state",
               "state aside": "is not whole (a run stopped between its writes); resume it with `make train`",
               "not one pair": "the resume state beside checkpoints/r.pt is not the one it was saved with",
               "outside": "is outside the repository", "no name": "give the run's checkpoint file",
               "no folder": "checkpoints/missing/r.pt"}[case]
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert git(repo, "rev-list", "--count", "HEAD") == "1" and git(repo, "ls-files") == ".gitignore\ncode.py"


def test_a_run_still_training_is_not_kept(repo, kept):
    from pipeline.files import hold_lock

    with hold_lock(repo / "checkpoints" / "r.pt.lock", "held", "a training run"):
        done = kept("keep-run")
    assert done.returncode == 2 and f"is being trained by another process (a training run, process {os.getpid()})" \
        in done.stderr
    assert git(repo, "rev-list", "--count", "HEAD") == "1"
    assert kept("keep-run").returncode == 0  # once it has stopped


def test_a_branch_that_cannot_move_leaves_the_branch_and_the_index_as_they_were(repo, kept):
    head = git(repo, "rev-parse", "HEAD")
    lock = repo / ".git" / "refs" / "heads" / "main.lock"  # another git process is updating the branch
    lock.write_text("")
    done = kept("keep-run")
    lock.unlink()
    assert done.returncode == 2 and "git update-ref failed" in done.stderr and "Traceback" not in done.stderr
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "ls-files") == ".gitignore\ncode.py"
    assert git(repo, "diff", "--cached", "--name-only") == ""


def test_an_index_another_git_process_holds_takes_the_commit_back(repo, monkeypatch, capsys):
    """The branch moves first; if the index cannot follow, the branch goes back, so no later commit undoes it."""
    from pipeline.training import kept_run

    head = git(repo, "rev-parse", "HEAD")
    real = kept_run.git

    def index_locked(top, *args, **kwargs):
        if args[0] == "reset":
            (repo / ".git" / "index.lock").write_text("")
        try:
            return real(top, *args, **kwargs)
        finally:
            (repo / ".git" / "index.lock").unlink(missing_ok=True)

    monkeypatch.setattr(kept_run, "git", index_locked)
    monkeypatch.chdir(repo)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exc:
        kept_run.main(["keep", "checkpoints/r.pt"])
    assert exc.value.code == 2 and "the commit was taken back, nothing changed" in capsys.readouterr().err
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""


def test_without_a_name_and_email_to_commit_with_nothing_is_committed(repo, tmp_path, kept):
    git(repo, "config", "user.useConfigOnly", "true")  # no guessing from the host name
    nobody = {k: None for k in ENV if k.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))}
    done = kept("keep-run", HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1", EMAIL="", **nobody)
    assert done.returncode == 2 and "git has no name and email to commit with here" in done.stderr, done.stderr
    assert git(repo, "rev-list", "--count", "HEAD") == "1" and git(repo, "ls-files") == ".gitignore\ncode.py"


def test_a_file_over_the_repositorys_size_limit_is_not_committed(repo, monkeypatch, capsys):
    from pipeline.training import kept_run

    monkeypatch.setattr(kept_run, "MAX_FILE_BYTES", 1000)  # the tiny run's state is larger than this
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as exc:
        kept_run.main(["keep", "checkpoints/r.pt"])
    assert exc.value.code == 2 and "over the repository's 0 MB limit for a file" in capsys.readouterr().err
    assert git(repo, "rev-list", "--count", "HEAD") == "1"


def test_a_state_in_parts_is_kept_whole_and_a_later_state_in_fewer_parts_leaves_none_behind(repo, pairs, tmp_path,
                                                                                              monkeypatch, kept):
    from pipeline import checkpoint
    from tests.training.conftest import run

    monkeypatch.setattr(checkpoint, "STATE_PART_BYTES", 1_000_000)  # the tiny run's state: about 2.7 MB, three files
    for f in (repo / "checkpoints").iterdir():
        f.unlink()
    out = repo / "checkpoints" / "r.pt"
    assert run(tmp_path, out, "--epochs", "1", "--max-steps", "2") == 0
    parts = ["checkpoints/r.state.pt", "checkpoints/r.state.part2.pt", "checkpoints/r.state.part3.pt"]
    done = kept("keep-run")
    assert done.returncode == 0 and "its resume state (3 files) in" in done.stdout, done.stderr
    assert changed_in(repo, "HEAD") == sorted(["checkpoints/r.pt", *parts])
    place(pairs[1], repo)  # a later stop whose state is one file
    for f in parts[1:]:
        (repo / f).unlink()
    assert kept("keep-run").returncode == 0
    assert git(repo, "ls-tree", "--name-only", "HEAD", "checkpoints/") == "checkpoints/r.pt\ncheckpoints/r.state.pt"
    assert git(repo, "status", "--porcelain") == ""
    assert kept("keep-run").returncode == 0 and git(repo, "rev-list", "--count", "HEAD") == "3"
    assert kept("drop-run").returncode == 0 and git(repo, "ls-files") == ".gitignore\ncode.py"


def test_a_run_whose_name_git_would_quote_is_kept_and_dropped(repo, pairs, kept):
    for f in ("r.pt", "r.state.pt"):
        (repo / "checkpoints" / f).rename(repo / "checkpoints" / f.replace("r.", "rä.", 1))
    assert make(repo, "keep-run", "checkpoints/rä.pt").returncode == 0
    assert git(repo, "ls-tree", "-z", "-r", "--name-only", "HEAD", "checkpoints/").split("\0")[:2] == \
        ["checkpoints/rä.pt", "checkpoints/rä.state.pt"]
    done = kept("drop-run", "checkpoints/rä.pt")
    assert done.returncode == 0 and "dropped" in done.stdout, done.stdout + done.stderr
    assert git(repo, "ls-files") == ".gitignore\ncode.py"
