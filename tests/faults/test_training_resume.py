"""A run stopped inside an epoch resumes that epoch where it stopped (same steps, same weights as a run never
stopped); a teacher retrained in place is refused on resume; a loss that becomes NaN or infinite stops the run
with one line, writing no NaN checkpoint."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipeline.checkpoint import read_checkpoint  # noqa: E402
from tests.training.conftest import run  # noqa: E402


def test_a_partial_epoch_is_finished_on_resume_not_counted_as_done(tmp_path):
    straight, resumed = tmp_path / "a.pt", tmp_path / "b.pt"
    assert run(tmp_path, straight, "--epochs", "1") == 0
    total = read_checkpoint(straight)["train_state"]["step"]  # one epoch of 4 steps
    assert run(tmp_path, resumed, "--epochs", "1", "--max-steps", "3") == 0  # stopped inside it
    state = read_checkpoint(resumed)["train_state"]
    assert (state["epoch"], state["epoch_step"], state["step"]) == (0, 3, 3)
    assert run(tmp_path, resumed, "--epochs", "1", "--resume") == 0
    a, b = read_checkpoint(straight), read_checkpoint(resumed)
    assert b["train_state"]["step"] == total == 4 and b["train_state"]["epoch"] == 1
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-5), key


def test_a_teacher_retrained_in_place_is_refused_on_resume(tmp_path, capsys):
    from tests.training.test_teacher import train_teacher

    teacher, out = tmp_path / "teacher.pt", tmp_path / "s.pt"
    assert train_teacher(tmp_path, teacher) == 0
    assert run(tmp_path, out, "--epochs", "2", "--max-steps", "1", "--teacher", str(teacher), "--distill", "0.5") == 0
    before = out.read_bytes()
    with teacher.open("ab") as f:  # another teacher at the same path
        f.write(b"retrained")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "2", "--resume", "--teacher", str(teacher), "--distill", "0.5")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"the teacher {teacher} changed since {out} started" in err
    assert out.read_bytes() == before


def test_a_loss_that_becomes_nan_stops_the_run_without_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.pt"
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "1", "--lr", "1e30", "--momentum", "0")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "the training loss became" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob("m.state*"))
