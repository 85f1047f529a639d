"""A run stopped inside an epoch (by --max-steps, SIGTERM or Ctrl-C) resumes that epoch where it stopped (same steps, same weights as a run never
stopped); a teacher retrained in place is refused on resume; a loss that becomes NaN or infinite stops the run
with one line, writing no NaN checkpoint."""

from __future__ import annotations

import os
import signal

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


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_after_the_step_in_flight_and_resume_repeats_it(tmp_path, monkeypatch, capsys, sig):
    from pipeline.training import loop

    straight, stopped = tmp_path / "a.pt", tmp_path / "b.pt"
    assert run(tmp_path, straight, "--epochs", "2") == 0
    real_step, calls, handler = loop.train_step, [], signal.getsignal(sig)

    def step_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # the second step of epoch 2: the signal arrives while a step is in flight
            os.kill(os.getpid(), sig)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step_then_signal)
    capsys.readouterr()
    assert run(tmp_path, stopped, "--epochs", "2") == 128 + sig
    out, err = capsys.readouterr()
    assert f"stopped on {signal.Signals(sig).name} after step 6 (2 of epoch 2's 4)" in out
    assert f"stopped: {signal.Signals(sig).name}" in err
    state = read_checkpoint(stopped)["train_state"]
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 2, 6)
    assert signal.getsignal(sig) is handler and len(calls) == 6  # handler given back, no step after the signal
    monkeypatch.setattr(loop, "train_step", real_step)
    assert run(tmp_path, stopped, "--epochs", "2", "--resume") == 0
    a, b = read_checkpoint(straight), read_checkpoint(stopped)
    assert b["train_state"]["step"] == a["train_state"]["step"] == 8
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


def test_a_second_process_training_into_the_same_out_is_refused(tmp_path, capsys):
    from pipeline.files import hold_lock
    from pipeline.training.cli import run_lock_path

    out = tmp_path / "m.pt"
    assert run(tmp_path, out, "--epochs", "1", "--max-steps", "1") == 0
    before = out.read_bytes()
    with hold_lock(run_lock_path(out), "held", "a training run"):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            run(tmp_path, out, "--epochs", "1", "--resume")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"--out {out} is being trained by another process (a training run, process " \
        f"{os.getpid()})" in err
    assert out.read_bytes() == before and not run_lock_path(out).exists()


def test_resuming_a_finished_run_does_nothing_even_while_another_process_holds_its_lock(tmp_path, capsys):
    from pipeline.files import hold_lock
    from pipeline.training.cli import run_lock_path

    out = tmp_path / "m.pt"
    assert run(tmp_path, out, "--epochs", "1") == 0
    before = out.read_bytes()
    capsys.readouterr()
    with hold_lock(run_lock_path(out), "held", "a training run"):  # e.g. another target checking the teacher
        assert run(tmp_path, out, "--epochs", "1", "--resume") == 0
    printed = capsys.readouterr().out
    assert f"checkpoint {out} already has its 1 epoch (step 4); nothing to train" in printed
    assert "training " not in printed and out.read_bytes() == before
    with pytest.raises(SystemExit):  # more epochs than it has: another run, said by the full path
        run(tmp_path, out, "--epochs", "2", "--resume")
    assert "was trained with --epochs 1 (now 2)" in capsys.readouterr().err
