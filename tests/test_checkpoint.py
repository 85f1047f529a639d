"""A resumable checkpoint's state cut into files of bounded size: each part checked by its sha256, read back whole,
an older single-file state still resumed, a part kept aside by an interrupted save taken back, stale parts removed."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")

from pipeline import checkpoint  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from tests.training.conftest import run  # noqa: E402

PART = 1_000_000  # the tiny run's state is about 2.7 MB: three parts


@pytest.fixture
def parted(tmp_path, monkeypatch) -> Path:
    """A tiny run stopped after 2 of its 4 steps, its resume state saved in parts of at most PART bytes."""
    monkeypatch.setattr(checkpoint, "STATE_PART_BYTES", PART)
    out = tmp_path / "m.pt"
    assert run(tmp_path, out, "--epochs", "1", "--max-steps", "2") == 0
    return out


def names(out: Path) -> list[str]:
    return [f.name for f in checkpoint.state_files_on_disk(out)]


@pytest.mark.parametrize("name, part", [("m.state.pt", (False, 1)), ("m.state.part2.pt", (False, 2)),
                                        ("m.state.previous.pt", (True, 1)), ("m.state.previous.part12.pt", (True, 12)),
                                        ("m.pt", None), ("mm.state.pt", None), ("m.state.part.pt", None),
                                        ("m.state.part1.pt", None), ("m.state.part0.pt", None), ("m.state.part02.pt", None),
                                        ("m.state.pt.tmp", None), ("m.state.partx.pt", None)])
def test_the_files_of_a_resume_state_are_told_by_name(name, part):
    assert checkpoint.state_part_of(Path("/r/m.pt"), name) == part
    ckpt = Path("/r/m.ckpt")  # the state takes the checkpoint's suffix
    assert checkpoint.state_part_of(ckpt, name.replace(".pt", ".ckpt")) == part and not checkpoint.state_part_of(ckpt, name)


def test_a_state_larger_than_a_part_is_cut_into_files_that_each_fit_and_resumes_whole(parted, tmp_path):
    files = checkpoint.resume_state_files(parted)
    assert [f.name for f in files] == ["m.state.pt", "m.state.part2.pt", "m.state.part3.pt"] == names(parted)
    assert all(f.stat().st_size <= PART for f in files) and checkpoint.resume_state_matches(parted)
    state = checkpoint.read_checkpoint(parted, resume=True)["train_state"]
    assert "optimizer" in state and "resume_files" not in state
    assert "resume_files" not in checkpoint.read_checkpoint(parted)["train_state"]  # deploying reads it alone
    straight = tmp_path / "straight.pt"
    assert run(tmp_path, straight, "--epochs", "1") == 0
    assert run(tmp_path, parted, "--epochs", "1", "--resume") == 0
    a, b = checkpoint.read_checkpoint(straight), checkpoint.read_checkpoint(parted)
    for key, value in a["state_dict"].items():  # stopped, read back from three files and resumed: the same run
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-5), key


@pytest.mark.parametrize("damage", ["missing", "changed"])
def test_a_part_missing_or_changed_is_named_and_nothing_resumes(parted, damage):
    second = parted.with_name("m.state.part2.pt")
    if damage == "missing":
        second.unlink()
    else:
        second.write_bytes(second.read_bytes()[:-1] + b"\0")
    assert not checkpoint.resume_state_matches(parted)
    with pytest.raises(PipelineError, match="resumes from .*m.state.part2.pt, which is missing or is not the file"):
        checkpoint.read_checkpoint(parted, resume=True)


def test_a_state_saved_as_one_file_by_an_older_run_resumes_and_is_saved_in_parts(parted, tmp_path, monkeypatch):
    """The record of a single ``x.state.pt`` (``resume_file``) still reads; the next save cuts it."""
    import hashlib
    import io

    old = tmp_path / "old.pt"
    ckpt = torch.load(parted, weights_only=True)
    side = checkpoint.read_checkpoint(parted, resume=True)["train_state"]
    buffer = io.BytesIO()
    torch.save({k: side[k] for k in checkpoint.RESUME_KEYS if k in side}, buffer)
    old.with_name("old.state.pt").write_bytes(buffer.getvalue())
    ckpt["train_state"].pop("resume_files")
    ckpt["train_state"]["resume_file"] = {"name": "old.state.pt", "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
    torch.save(ckpt, old)
    assert checkpoint.resume_state_matches(old) and names(old) == ["old.state.pt"]
    assert run(tmp_path, old, "--epochs", "1", "--resume", "--max-steps", "3") == 0
    assert names(old) == ["old.state.pt", "old.state.part2.pt", "old.state.part3.pt"]
    assert checkpoint.resume_state_matches(old)


def test_a_smaller_state_leaves_no_stale_part_and_overwrite_removes_every_part(parted, tmp_path, monkeypatch):
    stale = parted.with_name("m.state.part7.pt")
    stale.write_bytes(b"a part of an older, larger state")
    assert run(tmp_path, parted, "--epochs", "1", "--resume", "--max-steps", "3") == 0
    assert names(parted) == ["m.state.pt", "m.state.part2.pt", "m.state.part3.pt"]
    parted.with_name("m.state.previous.part2.pt").write_bytes(b"left aside by a killed save")
    monkeypatch.setattr(checkpoint, "STATE_PART_BYTES", 10 * PART)  # one file from now on
    assert run(tmp_path, parted, "--epochs", "1", "--overwrite", "--max-steps", "2") == 0
    assert names(parted) == ["m.state.pt"] and checkpoint.resume_state_matches(parted)


def test_a_run_killed_while_its_old_parts_are_moved_aside_resumes(parted, tmp_path, monkeypatch):
    import os

    real, moves = os.replace, []

    def killed_at_the_second_move(src, dst):
        moves.append(dst)
        if len(moves) == 2:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", killed_at_the_second_move)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        run(tmp_path, parted, "--epochs", "1", "--resume", "--max-steps", "3")
    monkeypatch.setattr(checkpoint.os, "replace", real)
    assert names(parted) == ["m.state.part2.pt", "m.state.part3.pt", "m.state.previous.pt"]  # part 1 aside
    assert checkpoint.read_checkpoint(parted, resume=True)["train_state"]["step"] == 2
    assert names(parted) == ["m.state.pt", "m.state.part2.pt", "m.state.part3.pt"]  # the pair made whole
    assert run(tmp_path, parted, "--epochs", "1", "--resume") == 0


def test_a_version_that_reads_one_state_file_reads_a_one_part_state_and_refuses_a_state_in_parts(parted, tmp_path,
                                                                                                  monkeypatch):
    from pipeline.files import sha256_file

    one = tmp_path / "one.pt"
    monkeypatch.setattr(checkpoint, "STATE_PART_BYTES", 10 * PART)
    assert run(tmp_path, one, "--epochs", "1", "--max-steps", "2") == 0
    for out in (one, parted):
        record = torch.load(out, weights_only=True)["train_state"]["resume_file"]
        matches = record["name"] == "m.state.pt" if out == parted else record["name"] == "one.state.pt"
        assert matches and (sha256_file(out.with_name(record["name"])) == record["sha256"]) is (out == one)


@pytest.mark.parametrize("record", [[], ["x"], [{"name": "m.state.pt"}], "m.state.pt"])
def test_a_damaged_record_of_the_state_files_is_refused(parted, record):
    ckpt = torch.load(parted, weights_only=True)
    ckpt["train_state"]["resume_files"] = record
    torch.save(ckpt, parted)
    with pytest.raises(PipelineError, match="records its resume state's files in a form"):
        checkpoint.read_checkpoint(parted, resume=True)


def test_a_run_renamed_with_its_files_resumes_under_its_new_name(parted, tmp_path):
    import shutil

    moved = tmp_path / "moved"
    moved.mkdir()
    for f in [parted, *checkpoint.resume_state_files(parted)]:
        shutil.copy(f, moved / f.name.replace("m.", "n.", 1))
    assert checkpoint.resume_state_matches(moved / "n.pt")
    assert run(tmp_path, moved / "n.pt", "--epochs", "1", "--resume") == 0
