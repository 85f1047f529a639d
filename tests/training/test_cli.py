"""The training command line: the loss falls, checkpoints every epoch, --resume repeats an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from pipeline.training import cli as train  # noqa: E402
from pipeline.checkpoint import read_checkpoint
from pipeline.models.loading import load_model  # noqa: E402
from tests.training.conftest import TINY_OPTS, make_imagefolder, run  # noqa: E402

def test_loss_falls_and_checkpoint_loads(tmp_path):
    out = tmp_path / "m.pt"
    assert run(tmp_path, out, "--epochs", "3") == 0
    ckpt = read_checkpoint(out)
    hist = ckpt["train_state"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert ckpt["classes"] == ["blue", "red"]
    from pipeline.data.splits import labels_fingerprint

    labels = [0] * 40 + [1] * 40  # make_imagefolder: 40 images of each class, sorted by class
    assert ckpt["split"] == {"seed": 0, "size": 16, "source": str(tmp_path / "data"),
                             "labels_sha256": labels_fingerprint(labels)}
    assert ckpt["preprocess"]["colour_order"] == "BGR"
    model, _ = load_model(out)
    assert model.num_exits == 3


def test_resume_continues_from_the_same_step(tmp_path):
    straight, resumed = tmp_path / "a.pt", tmp_path / "b.pt"
    run(tmp_path, straight, "--epochs", "2")
    steps_per_epoch = read_checkpoint(straight)["train_state"]["history"][0]["step"]
    run(tmp_path, resumed, "--epochs", "2", "--max-steps", str(steps_per_epoch))  # "interrupted" after epoch 1
    assert read_checkpoint(resumed)["train_state"]["epoch"] == 1
    run(tmp_path, resumed, "--epochs", "2", "--resume")
    a, b = read_checkpoint(straight), read_checkpoint(resumed)
    assert b["train_state"]["step"] == a["train_state"]["step"] == 2 * steps_per_epoch
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-5), key


def test_resume_rejects_another_config(tmp_path, capsys):
    out = tmp_path / "m.pt"
    run(tmp_path, out, "--epochs", "1")
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "1", "--resume", "--model-opt", "growth_rate=6")
    assert exc.value.code == 2
    assert "does not match the requested config" in capsys.readouterr().err


@pytest.mark.parametrize("setup,message", [
    ("missing", "does not exist"),
    ("empty", "class"),
    ("corrupt-image", "001.png"),
])
def test_bad_data_gives_a_clear_error(tmp_path, capsys, setup, message):
    data = tmp_path / "bad"
    if setup != "missing":
        (data / "train").mkdir(parents=True)
    if setup == "corrupt-image":
        make_imagefolder(tmp_path / "good")
        data = tmp_path / "good"
        (data / "train" / "red" / "001.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit) as exc:
        train.main(["--data", str(data), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o.pt"),
                    "--epochs", "1", "--no-progress", *TINY_OPTS])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_resume_rejects_another_schedule(tmp_path, capsys):
    out = tmp_path / "m.pt"
    run(tmp_path, out, "--epochs", "2", "--max-steps", "1")
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "2", "--resume", "--distill", "0.5")
    assert exc.value.code == 2
    assert "--distill 0.0 (now 0.5)" in capsys.readouterr().err


def test_corrupt_checkpoint_is_refused(tmp_path, capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"\x00garbage")
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "1", "--resume")
    assert exc.value.code == 2
    assert "corrupt" in capsys.readouterr().err


def test_bad_options_are_rejected_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        train.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o.pt"), "--epochs", "0"])
    assert exc.value.code == 2
    assert "--epochs must be positive" in capsys.readouterr().err


def test_evaluate_reports_every_exit(tmp_path, capsys):
    from pipeline import evaluate

    out = tmp_path / "m.pt"
    run(tmp_path, out, "--epochs", "1")
    assert evaluate.main(["--checkpoint", str(out), "--data", str(tmp_path / "data"),
                          "--cache-dir", str(tmp_path / "cache"), "--split", "validation"]) == 0
    text = capsys.readouterr().out
    assert "validation split, 16 images" in text
    assert text.count("\n| ") == 4  # header + 3 exits
    card = tmp_path / "card.md"
    evaluate.main(["--checkpoint", str(out), "--data", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
                   "--card", str(card)])
    text = card.read_text()
    assert "1 of 1 epochs done" in text and "Reproduce the table: `anytime evaluate --checkpoint" in text
    table, files = text.split(evaluate.FILES_HEADING)
    assert table.count("\n| ") == 4
    from pipeline.files import sha256_file

    assert "| m.pt | `msdnet_cifar` | 1 |" in files and sha256_file(out) in files
    assert "| m.state.pt | resume state of m.pt | - |" in files


def test_torchrun_two_processes_share_the_epoch(tmp_path):
    """DistributedDataParallel through torchrun (gloo on the CPU): each rank takes half of every epoch."""
    import subprocess
    import sys

    make_imagefolder(tmp_path / "data")
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "pipeline.training", "--data", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
           "--out", str(out), "--epochs", "1", "--batch-size", "8", "--val-size", "16", "--threads", "1",
           "--no-progress", *TINY_OPTS]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "device cpu x2" in done.stdout
    assert read_checkpoint(out)["train_state"]["step"] == 64 // (8 * 2)  # 64 training images, 2 ranks


def test_limit_draws_from_every_class():
    from pipeline.training.data import subset

    labels = np.repeat(np.arange(10), 100)  # sorted by class, as ImageFolder data is
    picked = subset(np.arange(1000), 50, seed=0)
    assert len(picked) == 50 and len(set(picked.tolist())) == 50
    assert len(set(labels[picked].tolist())) >= 8
    assert (picked == subset(np.arange(1000), 50, seed=0)).all()


def test_evaluate_adds_the_corruption_table_to_the_card(tmp_path, capsys):
    from pipeline import evaluate

    out = tmp_path / "m.pt"
    run(tmp_path, out, "--epochs", "1")
    card = tmp_path / "card.md"
    assert evaluate.main(["--checkpoint", str(out), "--data", str(tmp_path / "data"),
                          "--cache-dir", str(tmp_path / "cache"), "--corruptions", "blur,fog", "--severities", "2",
                          "--card", str(card)]) == 0
    text = card.read_text()
    machine = read_checkpoint(out)["train_state"]["history"][0]["machine"]
    assert machine.endswith(("float32 steps", "bfloat16 steps")) and "threads" in machine
    assert f"over 1 epochs ({machine}: 1 epochs, " in text
    assert "corrupted copies of the validation split" in text
    assert "| blur | 2 |" in text and "| fog | 2 |" in text and "| clean | - |" in text


def test_evaluate_refuses_a_bad_corruption_before_loading(tmp_path, capsys):
    from pipeline import evaluate

    with pytest.raises(SystemExit) as exc:
        evaluate.main(["--checkpoint", str(tmp_path / "none.pt"), "--corruptions", "snow"])
    assert exc.value.code == 2
    assert "unknown corruption snow" in capsys.readouterr().err


def test_a_run_without_a_progress_bar_says_where_it_is_and_how_long_it_has_left(tmp_path, capsys, monkeypatch):
    from pipeline.training import loop

    monkeypatch.setattr(loop, "REPORT_EVERY_S", 0.0)  # a line after every step instead of every few minutes
    assert run(tmp_path, tmp_path / "m.pt", "--epochs", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    inside = [line for line in lines if line.startswith("epoch 1/2: step ")]
    assert [line.split(",")[0] for line in inside] == [f"epoch 1/2: step {i} of 4" for i in (1, 2, 3, 4)]
    assert all("images/s, loss " in line and "; the epoch ends in about " in line for line in inside)
    ends = [line for line in lines if line.startswith(("epoch 1/2 loss", "epoch 2/2 loss"))]
    assert len(ends) == 2 and "to epoch 2 at this pace)" in ends[0] and "at this pace" not in ends[1]


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (95, "95 s"), (720, "12 min"), (5399, "90 min"),
                                           (12240, "3.4 h")])
def test_time_left_reads_in_the_unit_that_suits_it(seconds, text):
    from pipeline.training.loop import remaining_text

    assert remaining_text(seconds) == text
