"""Keep a long training run in the repository between sessions, and take it out once it is done.

    anytime kept-run keep checkpoints/ranet_long.pt    # make keep-run
    anytime kept-run drop checkpoints/ranet_long.pt    # make drop-run

A run in progress lives in ignored files (its checkpoint and resume state); only what the branch holds
reaches the next checkout. ``keep`` commits exactly those files on the current branch, once per session,
after checking that no process is training into them (it holds the run's lock while it works), that they
are one pair (the checkpoint names each resume state file's sha256) and that each fits in a commit.
``drop`` commits their removal from the tree. Both build their commit in a temporary index and move the
branch only if nobody moved it meanwhile, then refresh the run's paths in the real index: the user's staged work stays staged,
out of the commit, and a failed step leaves the branch and the index as they were. Hooks do not run:
the commit holds data, not code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from pipeline.errors import PipelineError, cli_main

MAX_FILE_BYTES = 20_000_000  # the largest file this repository takes in a commit


def git(repo: Path, *args: str, index: str | None = None, check: bool = True) -> str:
    """``git args`` in ``repo``, stdout stripped; ``index``: a temporary index file instead of the real one."""
    env = {**os.environ, "GIT_INDEX_FILE": index} if index else None
    try:
        done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise PipelineError("git is not installed here; a run is kept in the repository with git") from None
    if check and done.returncode != 0:
        raise PipelineError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip() if done.returncode == 0 else ""


def repo_top() -> Path:
    """The top folder of the repository the command runs in."""
    return Path(git(Path.cwd(), "rev-parse", "--show-toplevel")).resolve()


def relative(top: Path, f: Path) -> str:
    """``f`` as a path inside the repository at ``top``; a file outside it is refused."""
    try:
        return f.resolve().relative_to(top).as_posix()
    except ValueError:
        raise PipelineError(f"{f} is outside the repository at {top}; a kept run lives inside it") from None


def tracked_run_files(top: Path, out: Path) -> list[str]:
    """The files of the run at ``out`` in HEAD's tree: its checkpoint and every file of its resume state."""
    from pipeline.checkpoint import state_part_of

    folder = relative(top, out.parent)
    listed = git(top, "ls-tree", "-z", "--name-only", "HEAD", "--", f"{folder}/" if folder != "." else ".",
                 check=False)
    return [p for p in listed.split("\0")
            if p and (p.rsplit("/", 1)[-1] == out.name or state_part_of(out, p.rsplit("/", 1)[-1]))]


def head_blob(top: Path, path: str) -> str:
    """The object id of ``path`` in HEAD's tree, or "" where HEAD has no such file."""
    return git(top, "rev-parse", "-q", "--verify", f"HEAD:{path}", check=False)


def commit_tree(top: Path, message: str, changes: dict[str, str | None]) -> str:
    """A commit of HEAD's tree with each path of ``changes`` set to its blob (None: removed), made and moved
    onto the branch without touching the real index until the branch has moved; returns the new commit."""
    head = git(top, "rev-parse", "--verify", "HEAD")
    if not git(top, "var", "GIT_COMMITTER_IDENT", check=False):
        raise PipelineError("git has no name and email to commit with here; set them (git config user.name ..., "
                            "git config user.email ...) and run again")
    with tempfile.TemporaryDirectory(prefix="kept-run-") as tmp:
        index = str(Path(tmp) / "index")
        git(top, "read-tree", head, index=index)
        gone = [path for path, blob in changes.items() if blob is None]
        if gone:
            git(top, "update-index", "--force-remove", "--", *gone, index=index)
        for path, blob in changes.items():
            if blob is not None:
                git(top, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", index=index)
        tree = git(top, "write-tree", index=index)
    commit = git(top, "commit-tree", tree, "-p", head, "-m", message)
    git(top, "update-ref", "-m", message.split(":")[0], "HEAD", commit, head)  # refused if HEAD moved
    try:
        git(top, "reset", "-q", "--", *changes)  # the real index takes the run's paths from the new HEAD
    except PipelineError as exc:  # an index out of step with the branch would undo the commit at the next one
        git(top, "update-ref", "-m", "undo", "HEAD", head, commit, check=False)
        raise PipelineError(f"{exc}; the commit was taken back, nothing changed: run again once the index is free")
    return commit


def keep(out: Path) -> str:
    """Commit the run at ``out`` and its resume state, alone (and a file of an older state of it out of the
    tree); the line to print."""
    from pipeline.checkpoint import resume_state_files, resume_state_matches, state_files_on_disk
    from pipeline.files import hold_lock
    from pipeline.training.cli import run_lock_path

    top = repo_top()
    busy = (f"{out} is being trained by another process{{who}}; stop it first with SIGTERM (it saves its state), "
            "so that its files are of one step")
    with hold_lock(run_lock_path(out), busy, "keeping the run"):
        stopped = ("(a run stopped between its writes); resume it with `make train` and stop it again, then "
                   "keep it")
        state = resume_state_files(out) if out.is_file() else []
        if state and not all(f.is_file() for f in state) and state_files_on_disk(out, previous=True):
            raise PipelineError(f"the resume state beside {out} is not whole {stopped}")
        if not state or not all(f.is_file() for f in state):
            raise PipelineError(f"no run at {out} with its resume state beside it")
        files = [out, *state]
        big = [f"{f} ({f.stat().st_size / 1e6:.1f} MB)" for f in files if f.stat().st_size > MAX_FILE_BYTES]
        if big:
            raise PipelineError(f"{', '.join(big)} is over the repository's {MAX_FILE_BYTES / 1e6:.0f} MB limit "
                                "for a file; this run cannot be kept in a commit")
        paths = [relative(top, f) for f in files]
        if not resume_state_matches(out):
            raise PipelineError(f"the resume state beside {out} is not the one it was saved with {stopped}")
        changes: dict[str, str | None] = {p: None for p in tracked_run_files(top, out) if p not in paths}
        changes.update({p: git(top, "hash-object", "-w", "--", p) for p in paths})
        if all(head_blob(top, p) == (blob or "") for p, blob in changes.items()):
            return f"{out} is kept as it is"
        commit = commit_tree(top, f"Run in progress: {paths[0]} and its resume state", changes)
    return f"kept {out} and its resume state ({len(state)} file{'s' * (len(state) > 1)}) in {commit[:7]}"


def drop(out: Path) -> str:
    """Commit the removal of the run at ``out`` and its resume state from the tree; the files here stay."""
    top = repo_top()
    tracked = tracked_run_files(top, out)
    if not tracked:
        return f"{out} is not in the tree; nothing to drop"
    commit = commit_tree(top, f"Run done: {relative(top, out)} and its resume state out of the tree",
                         {p: None for p in tracked})
    return f"dropped {out} and its resume state from the tree in {commit[:7]}"


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anytime kept-run",
                                 description="Commit a long run in progress (keep) or its removal (drop).")
    ap.add_argument("action", choices=("keep", "drop"))
    ap.add_argument("out", type=Path, help="the run's checkpoint (TRAIN_OUT); its resume state lies beside it")
    args = ap.parse_args(argv)
    if not args.out.name or args.out.name in (".", ".."):
        raise PipelineError(f"give the run's checkpoint file (make's TRAIN_OUT), got {str(args.out)!r}")
    print(keep(args.out) if args.action == "keep" else drop(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
