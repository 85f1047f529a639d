"""The checkpoints shipped in models/ are the ones its model card lists, byte for byte."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.files import sha256_file

MODELS = Path(__file__).resolve().parents[1] / "models"
ROW = re.compile(r"^\| (\S+\.pt) \|.*\| ([0-9a-f]{64}) \|$")


def card_rows() -> dict[str, str]:
    return {m.group(1): m.group(2) for line in (MODELS / "README.md").read_text().splitlines()
            if (m := ROW.match(line))}


def test_the_card_lists_every_shipped_checkpoint_with_its_sha256():
    rows = card_rows()
    shipped = sorted(p.name for p in MODELS.glob("*.pt"))
    assert shipped, "models/ ships no checkpoint"
    assert sorted(rows) == shipped
    for name, digest in rows.items():
        assert sha256_file(MODELS / name) == digest, f"{name} is not the file the card lists"


def test_no_resume_state_or_copy_is_shipped():
    assert not list(MODELS.glob("*.state.*"))
    digests = [sha256_file(p) for p in MODELS.glob("*.pt")]
    assert len(digests) == len(set(digests)), "two files in models/ are copies of each other"


def test_the_files_section_is_rewritten_not_appended(tmp_path):
    pytest.importorskip("torch")
    from pipeline.evaluate import FILES_HEADING, with_files_section

    (tmp_path / "a.pt").write_bytes(b"not a checkpoint")
    card = with_files_section(with_files_section("# Model card\n", tmp_path), tmp_path)
    assert card.count(FILES_HEADING) == 1 and "| a.pt | not a checkpoint of this project | - | 0.00 |" in card
    (tmp_path / "a.state.pt").write_bytes(b"1")
    (tmp_path / "a.state.part2.pt").write_bytes(b"2")
    card = with_files_section(card, tmp_path)
    assert "| a.state.pt | resume state of a.pt | - |" in card and "| a.state.part2.pt | resume state of a.pt, part 2 |" in card


def test_the_tree_holds_at_most_one_run_in_progress_and_only_where_keep_run_puts_it():
    """Checkpoints live in models/ (shipped), examples/ and tests/; the one other run allowed is the long run
    in progress that `make keep-run` commits (checkpoints/<name>_long.pt and its resume state's files)."""
    root = MODELS.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "--", "*.pt"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()
    runs = [f for f in tracked if f.startswith("checkpoints/")]
    assert not [f for f in tracked if not f.startswith(("models/", "examples/", "tests/", "checkpoints/"))], tracked
    assert not [f for f in tracked if ".state." in f and not f.startswith("checkpoints/")], tracked
    if runs:
        from pipeline.checkpoint import state_part_of

        weights = min(runs, key=len)
        assert weights.endswith("_long.pt") and "/" not in weights[len("checkpoints/"):], runs
        parts = sorted(state_part_of(Path(weights), f[len("checkpoints/"):]) or (True, 0) for f in runs if f != weights)
        assert parts == [(False, n) for n in range(1, len(runs))], runs  # its resume state's files, in place


def test_the_card_is_that_of_the_checkpoint_make_engines_builds_and_it_is_no_worse_than_the_one_it_replaced():
    """The card describes `CHECKPOINT` of the Makefile, and its last exit on the test split is at least the
    90.26% of the MSDNet it replaced (models/msdnet_cifar10.pt, kept for comparison)."""
    makefile = (MODELS.parent / "Makefile").read_text()
    shipped = re.search(r"^CHECKPOINT\s*\?=\s*(\S+)$", makefile, re.M)
    assert shipped and (MODELS.parent / shipped.group(1)).is_file(), "the Makefile's CHECKPOINT is not shipped"
    card = (MODELS / "README.md").read_text()
    assert card.startswith(f"# Model card: {Path(shipped.group(1)).name}\n")
    table = card[card.index("test split, 10000 images"):].split("\n\n")[0]
    last_exit = [float(row.split("|")[2]) for row in table.splitlines() if re.match(r"^\| \d+ \|", row)][-1]
    assert last_exit >= 90.26, f"the shipped model's last exit is {last_exit}% on the test split"
