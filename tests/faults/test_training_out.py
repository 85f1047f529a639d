"""Training's --out never replaces its data, its teacher, a dataset image or a finished run, and numbers that
would train a NaN model are refused: one line, exit 2, before torch is started, inputs byte-identical."""

from __future__ import annotations

import shutil

import pytest

from tests.faults.conftest import one_error, run_command, snapshot


@pytest.fixture
def files(tiny, tmp_path):
    data = shutil.copytree(tiny.data, tmp_path / "data")
    teacher = tmp_path / "teacher.pt"
    shutil.copy(tiny.checkpoint, teacher)
    finished = tmp_path / "finished.pt"
    shutil.copy(tiny.checkpoint, finished)
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"archive bytes")
    return data, teacher, finished, archive


def refused(capsys, argv, told, root):
    from pipeline.training.cli import main

    before = snapshot(root)
    assert run_command(main, argv) == 2
    assert told in one_error(capsys.readouterr().err)
    assert snapshot(root) == before and not list(root.rglob("*.state.*"))


def test_out_onto_an_input_is_refused(files, tmp_path, capsys):
    data, teacher, _, archive = files
    image = next(data.rglob("*.png"))
    teach = ["--teacher", teacher, "--distill", "0.5"]
    refused(capsys, ["--data", archive, "--out", archive], "it is --data", tmp_path)
    refused(capsys, ["--data", data, *teach, "--out", teacher], "it is --teacher", tmp_path)
    refused(capsys, ["--data", data, "--out", image], "inside --data", tmp_path)
    refused(capsys, ["--data", data, "--out", data / "new.pt"], "inside --data", tmp_path)


def test_out_onto_a_finished_run_needs_resume_or_overwrite(files, tmp_path, capsys):
    data, _, finished, _ = files
    refused(capsys, ["--data", data, "--out", finished], "pass --resume to continue its run, --overwrite", tmp_path)
    refused(capsys, ["--data", data, "--out", finished, "--resume", "--overwrite"], "pass one of them", tmp_path)


def test_out_that_is_a_folder_or_under_a_file(files, tmp_path, capsys):
    data, _, finished, _ = files
    refused(capsys, ["--data", data, "--out", tmp_path], "it is a folder", tmp_path)
    refused(capsys, ["--data", data, "--out", finished / "x.pt"], "is a file, not a folder", tmp_path)


@pytest.mark.parametrize("option,value", [("--lr", "nan"), ("--lr", "inf"), ("--momentum", "nan"),
                                          ("--weight-decay=-inf", ""), ("--seed=-1", "")])
def test_numbers_that_make_a_nan_model_are_refused(files, tmp_path, capsys, option, value):
    data = files[0]
    name = option.split("=")[0]
    told = "--seed must be" if name == "--seed" else f"{name} must be a finite number"
    refused(capsys, ["--data", data, "--out", tmp_path / "new.pt", option, *([value] if value else [])], told, tmp_path)


def test_an_input_named_as_outs_resume_state_is_refused_and_kept(files, tmp_path, capsys):
    """Saving --out replaces or removes the files of its resume state: a teacher of such a name would go."""
    from pipeline.training.cli import main

    data, teacher, _, _ = files
    named = tmp_path / "student.state.part2.pt"
    shutil.copy(teacher, named)
    before = snapshot(tmp_path)
    argv = ["--data", data, "--teacher", named, "--distill", "0.5", "--out", tmp_path / "student.pt"]
    assert run_command(main, argv) == 2
    assert "is named as a file of --out" in one_error(capsys.readouterr().err)
    assert snapshot(tmp_path) == before


def test_an_unknown_model_option_leaves_no_folder(files, tmp_path, capsys):
    from pipeline.training.cli import main

    data = files[0]
    out = tmp_path / "new" / "sub" / "x.pt"
    assert run_command(main, ["--data", data, "--model-opt", "nosuch=3", "--out", out]) == 2
    assert "nosuch" in one_error(capsys.readouterr().err) and not (tmp_path / "new").exists()
