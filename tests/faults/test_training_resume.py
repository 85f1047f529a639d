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


@pytest.mark.parametrize("parts, killed_at", [(1, "b.pt"), (3, "b.pt"), (3, "b.state.part2.pt")])
def test_a_run_killed_between_the_writes_of_a_save_still_resumes_and_repeats_the_straight_run(tmp_path, monkeypatch,
                                                                                              parts, killed_at):
    """Killed before the checkpoint naming the new state is written, or between two parts of that state."""
    from pathlib import Path

    from pipeline import checkpoint

    monkeypatch.setattr(checkpoint, "STATE_PART_BYTES", 3_000_000 // parts)  # the tiny run's state: about 2.7 MB
    straight, out = tmp_path / "a.pt", tmp_path / "b.pt"
    assert run(tmp_path, straight, "--epochs", "1") == 0
    assert run(tmp_path, out, "--epochs", "1", "--max-steps", "2") == 0
    assert len(checkpoint.resume_state_files(out)) == parts
    real = checkpoint.atomic_write

    def killed_before_the_checkpoint(path, *args, **kwargs):
        if Path(path) == tmp_path / killed_at:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", killed_before_the_checkpoint)
    for attempt in (1, 2):  # killed at the same point twice: the second run starts from the kept-aside state
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            run(tmp_path, out, "--epochs", "1", "--resume", "--max-steps", "3")
        assert len(checkpoint.state_files_on_disk(out, previous=True)) == parts  # the pair's own state, kept aside
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    assert read_checkpoint(out, resume=True)["train_state"]["step"] == 2
    assert run(tmp_path, out, "--epochs", "1", "--resume") == 0
    assert not checkpoint.state_files_on_disk(out, previous=True)
    a, b = read_checkpoint(straight), read_checkpoint(out)
    assert b["train_state"]["step"] == a["train_state"]["step"] == 4
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-5), key


def test_a_finished_run_of_another_model_at_the_path_is_not_taken_for_done(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert run(tmp_path, out, "--epochs", "1") == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "1", "--resume", "--model-opt", "growth_rate=6")
    assert exc.value.code == 2 and "nothing to train" not in capsys.readouterr().out


@pytest.mark.parametrize("again", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_during_the_save_does_not_cut_it_short(tmp_path, monkeypatch, capsys, again):
    from pipeline import checkpoint
    from pipeline.training import loop

    out = tmp_path / "m.pt"
    real_step, real_save, steps = loop.train_step, checkpoint.save_checkpoint, []

    def step_then_signal(*args, **kwargs):
        steps.append(1)
        if len(steps) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    def save_signalled_again(*args, **kwargs):
        os.kill(os.getpid(), again)  # e.g. `timeout` signalling make and then its group, or a second Ctrl-C
        return real_save(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step_then_signal)
    monkeypatch.setattr(checkpoint, "save_checkpoint", save_signalled_again)
    assert run(tmp_path, out, "--epochs", "1") == 143
    state = read_checkpoint(out, resume=True)["train_state"]
    assert (state["epoch"], state["epoch_step"], state["step"]) == (0, 2, 2)


def test_a_signal_after_the_last_step_leaves_a_finished_run_that_exits_0(tmp_path, monkeypatch):
    from pipeline.training import loop

    out = tmp_path / "m.pt"
    real_eval = loop.exit_accuracy

    def evaluate_then_signal(*args, **kwargs):  # the signal arrives while the last epoch is evaluated
        os.kill(os.getpid(), signal.SIGTERM)
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(loop, "exit_accuracy", evaluate_then_signal)
    assert run(tmp_path, out, "--epochs", "1") == 0
    assert read_checkpoint(out)["train_state"]["epoch"] == 1


def test_the_history_of_an_epoch_stopped_and_resumed_covers_all_its_steps(tmp_path):
    straight, stopped = tmp_path / "a.pt", tmp_path / "b.pt"
    assert run(tmp_path, straight, "--epochs", "1") == 0
    assert run(tmp_path, stopped, "--epochs", "1", "--max-steps", "3") == 0
    assert run(tmp_path, stopped, "--epochs", "1", "--resume") == 0
    a, b = (read_checkpoint(p)["train_state"]["history"][0] for p in (straight, stopped))
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert b["train_acc"] == pytest.approx(a["train_acc"])  # over the epoch's 4 steps, not the resumed one


def test_an_overwriting_run_killed_at_its_first_save_is_never_resumed_as_the_old_run(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from pipeline import checkpoint

    out = tmp_path / "m.pt"
    assert run(tmp_path, out, "--epochs", "1", "--max-steps", "2") == 0
    real = checkpoint.atomic_write

    def killed_before_the_checkpoint(path, *args, **kwargs):
        if Path(path) == out:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", killed_before_the_checkpoint)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        run(tmp_path, out, "--epochs", "1", "--overwrite", "--max-steps", "1", "--seed", "1")
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "1", "--resume")
    assert exc.value.code == 2 and "restore the checkpoint and its state together" in capsys.readouterr().err
