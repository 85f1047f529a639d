"""Distillation from a trained teacher (--teacher): the loss, a run end to end, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pipeline.checkpoint import read_checkpoint  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.training import cli as train  # noqa: E402
from pipeline.training.loss import multi_exit_loss  # noqa: E402
from tests.training.conftest import TINY_OPTS, make_imagefolder, run  # noqa: E402

TEACHER = ["--model-factory", "pipeline.models.teacher:build", "--model-opt", "num_classes=2",
           "--model-opt", "stem=4", "--model-opt", "widths=8,8"]


def train_teacher(tmp_path: Path, out: Path, *extra: str) -> int:
    data = tmp_path / "data"
    if not data.exists():
        make_imagefolder(data)
    return train.main(["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                       "--batch-size", "16", "--val-size", "16", "--lr", "0.05", "--threads", "1", "--no-progress",
                       "--epochs", "1", *TEACHER, *extra])


def test_every_exit_mixes_its_cross_entropy_with_the_teachers_targets():
    torch.manual_seed(0)
    logits = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    y = torch.tensor([0, 1, 2, 0])
    ce = sum(torch.nn.functional.cross_entropy(z, y) for z in logits)
    # A teacher that says what an exit says adds nothing to it: KL is zero.
    same = multi_exit_loss([logits[0]], y, distill=0.5, temperature=2.0, teacher_logits=logits[0])
    expected = 0.5 * torch.nn.functional.cross_entropy(logits[0], y)
    assert float(same.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    teacher = torch.randn(4, 3)
    loss = multi_exit_loss(logits, y, distill=0.5, temperature=2.0, teacher_logits=teacher)
    soft = torch.softmax(teacher / 2.0, dim=1)
    kd = sum(4.0 * torch.nn.functional.kl_div(torch.log_softmax(z / 2.0, dim=1), soft, reduction="batchmean")
             for z in logits)
    assert float(loss.detach()) == pytest.approx(float((0.5 * ce + 0.5 * kd).detach()), rel=1e-5)
    loss.backward()
    # The last exit learns from the teacher too (self-distillation leaves it to the labels).
    own = multi_exit_loss([z.detach().requires_grad_() for z in logits], y, distill=0.5, temperature=2.0)
    assert float(own.detach()) != pytest.approx(float(loss.detach()))
    assert logits[-1].grad is not None and float(logits[-1].grad.abs().sum()) > 0


def test_a_student_trains_from_a_teacher_and_resumes_with_it(tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    assert train_teacher(tmp_path, teacher) == 0
    out = tmp_path / "student.pt"
    assert run(tmp_path, out, "--epochs", "2", "--max-steps", "3", "--teacher", str(teacher), "--distill", "0.5") == 0
    assert f"teacher {teacher}: pipeline.models.teacher:build, validation accuracy" in capsys.readouterr().out
    state = read_checkpoint(out)["train_state"]
    assert state["args"]["teacher"] == str(teacher) and state["step"] == 3
    assert run(tmp_path, out, "--epochs", "2", "--resume", "--teacher", str(teacher), "--distill", "0.5") == 0
    assert read_checkpoint(out)["train_state"]["epoch"] == 2
    with pytest.raises(SystemExit) as exc:  # the same run without its teacher is another run
        run(tmp_path, out, "--epochs", "3", "--resume", "--distill", "0.5")
    assert exc.value.code == 2 and f"--teacher {teacher} (now )" in capsys.readouterr().err


def test_a_teacher_that_saw_the_students_validation_images_is_refused(tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    assert train_teacher(tmp_path, teacher, "--val-size", "8", "--seed", "3") == 0
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, tmp_path / "s.pt", "--epochs", "1", "--teacher", str(teacher), "--distill", "0.5")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "has seen images this run validates on" in err and "Traceback" not in err
    assert not (tmp_path / "s.pt").exists()


@pytest.mark.parametrize("extra, message", [
    (["--teacher", "nowhere.pt", "--distill", "0.5"], "--teacher nowhere.pt does not exist"),
    (["--teacher", "t.pt"], "--teacher needs --distill A > 0"),
])
def test_a_missing_teacher_or_weight_is_refused(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, tmp_path / "s.pt", "--epochs", "1", *extra)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


def test_a_teacher_of_another_class_count_is_refused(tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model

    assert train_teacher(tmp_path, teacher) == 0
    ckpt = read_checkpoint(teacher)
    wide = create_model("pipeline.models.teacher:build", num_classes=3, stem=4, widths=(8, 8))
    other = tmp_path / "three.pt"
    save_checkpoint(other, wide, ckpt["model"], ["a", "b", "c"], ckpt["split"])
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, tmp_path / "s.pt", "--epochs", "1", "--teacher", str(other), "--distill", "0.5")
    assert exc.value.code == 2 and "has 3 classes, the training data 2" in capsys.readouterr().err


def test_a_teacher_made_by_a_users_factory_is_refused(tmp_path, capsys):
    """Rebuilding it would import and run the user's code, which --teacher asks no consent for."""
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model

    spec = "examples/two_exit_cnn.py:build"
    other = tmp_path / "user.pt"
    save_checkpoint(other, create_model(spec, num_classes=2), spec, ["a", "b"], {"seed": 0, "size": 16, "source": "x"})
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, tmp_path / "s.pt", "--epochs", "1", "--teacher", str(other), "--distill", "0.5")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"made by --model-factory {spec}" in err and "Traceback" not in err


def test_the_teachers_split_is_compared_by_its_labels_not_by_the_data_path(tmp_path, capsys):
    from pipeline.training.teacher import check_teacher_split

    teacher = tmp_path / "teacher.pt"
    assert train_teacher(tmp_path, teacher) == 0
    split = read_checkpoint(teacher)["split"]
    assert len(split["labels_sha256"]) == 16
    # The same data by another path: the student's run is accepted.
    link = tmp_path / "same-data"
    link.symlink_to(tmp_path / "data")
    assert train.main(["--data", str(link), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "s.pt"),
                       "--batch-size", "16", "--val-size", "16", "--lr", "0.05", "--threads", "1", "--no-progress",
                       "--epochs", "1", "--max-steps", "1", "--teacher", str(teacher), "--distill", "0.5", *TINY_OPTS]) == 0
    # Other labels under the same path string are refused; a record without fingerprints falls back to the path.
    other = dict(split, labels_sha256="0" * 16)
    with pytest.raises(PipelineError, match="has seen images this run validates on"):
        check_teacher_split(teacher, other, split)
    legacy = {k: v for k, v in split.items() if k != "labels_sha256"}
    check_teacher_split(teacher, legacy, split)
    with pytest.raises(PipelineError, match=r"source elsewhere"):
        check_teacher_split(teacher, dict(legacy, source="elsewhere"), split)
