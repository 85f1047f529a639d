"""Bad paths and options given to the build: one line naming the path and the problem, exit 2, before any
long work and with nothing written; and the data the build does (or does not) need."""

from __future__ import annotations

import os
import time

import pytest

from tests.faults.conftest import CommandChild, build_argv, one_error, run_command, snapshot, temporaries

pytest.importorskip("torch")
pytest.importorskip("onnxsim")


def refused(capsys, argv, match: str) -> str:
    from pipeline.build import main

    t0 = time.monotonic()
    assert run_command(main, argv) == 2
    err = one_error(capsys.readouterr().err)
    assert match in err, err
    assert time.monotonic() - t0 < 5  # checked before the export, calibration or data loading
    return err


def test_out_that_is_a_file_lies_under_one_or_has_too_long_a_name(tiny, tmp_path, capsys):
    calib = tmp_path / "calib"
    (tmp_path / "file").write_text("keep me")
    before = snapshot(tmp_path)
    err = refused(capsys, build_argv(tiny, tmp_path / "file", calib), "it is a file, not a folder")
    assert f"--out {tmp_path / 'file'}" in err
    refused(capsys, build_argv(tiny, tmp_path / "file" / "engines", calib), f"{tmp_path / 'file'} is a file")
    long = tmp_path / ("e" * 300)
    refused(capsys, build_argv(tiny, long, calib), "bytes long, more than the 255 this file system allows")
    refused(capsys, build_argv(tiny, tmp_path / "out", calib, "--name", "m" * 300), "choose a shorter name")
    assert snapshot(tmp_path) == before and not calib.exists()


def test_calib_dir_that_is_a_file(tiny, tmp_path, capsys):
    (tmp_path / "calib").write_text("not a folder")
    err = refused(capsys, build_argv(tiny, tmp_path / "out", tmp_path / "calib"), "it is a file, not a folder")
    assert f"--calib-dir {tmp_path / 'calib'}" in err
    assert not (tmp_path / "out").exists()
    # a calibration folder is needed only to calibrate INT8
    from pipeline.build import main

    assert run_command(main, build_argv(tiny, tmp_path / "out", tmp_path / "calib", "--precisions", "fp32",
                                        "--skip-accuracy")) == 0
    capsys.readouterr()


@pytest.mark.parametrize("name", ["../x", ".", "..", "a/b", ".hidden"])
def test_names_that_are_not_one_plain_folder(tiny, tmp_path, capsys, name):
    err = refused(capsys, build_argv(tiny, tmp_path / "out", tmp_path / "calib", "--name", name),
                  "--name must be a plain folder name under --out")
    assert repr(name) in err
    assert sorted(os.listdir(tmp_path)) == []


def test_negative_calibration_seed(tiny, tmp_path, capsys):
    refused(capsys, build_argv(tiny, tmp_path / "out", tmp_path / "calib", "--calib-seed", "-1"),
            "--calib-seed must be 0 or more, got -1")


def test_read_only_out_is_refused_before_the_work(tiny, tmp_path):
    out = tmp_path / "engines"
    out.mkdir()
    out.chmod(0o555)
    try:
        child = CommandChild("build", build_argv(tiny, out, tmp_path / "calib"), "none", tmp_path, obey_modes=True)
        status, stdout, stderr = child.finish(60)
    finally:
        out.chmod(0o755)
    assert status == 2 and stdout == "", stderr
    assert f"cannot write --out {out}: it is read-only for this user" in one_error(stderr)
    assert os.listdir(out) == [] and not (tmp_path / "calib").exists()


def test_skip_accuracy_needs_no_data_unless_int8_is_calibrated(tiny, tmp_path, capsys):
    from pipeline.build import main

    argv = build_argv(tiny, tmp_path / "out", tmp_path / "calib", "--skip-accuracy", "--precisions", "fp32,fp16")
    argv[argv.index("--data") + 1] = tmp_path / "nowhere"
    assert run_command(main, argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    argv[argv.index("--precisions") + 1] = "int8"
    refused(capsys, argv, "calibrating INT8 reads the training images")


def data_copy(tiny, dest, keep: int, rename: dict[str, str] | None = None):
    """The tiny data as hard links: ``keep`` images per class, class folders renamed as ``rename`` says."""
    for split in ("train", "test"):
        for c in sorted(os.listdir(tiny.data / split)):
            folder = dest / split / (rename or {}).get(c, c)
            folder.mkdir(parents=True)
            for name in sorted(os.listdir(tiny.data / split / c))[:keep]:
                os.link(tiny.data / split / c / name, folder / name)
    return dest


def test_data_whose_classes_differ_shows_the_difference(tiny, tmp_path, capsys):
    argv = build_argv(tiny, tmp_path / "out", tmp_path / "calib", "--precisions", "fp32")
    argv[argv.index("--data") + 1] = data_copy(tiny, tmp_path / "data", 5, {"c9": "c9-renamed"})
    refused(capsys, argv, "1 of the model's classes are not in the data ('c9'); 1 of the data's are not the "
            "model's ('c9-renamed')")
    assert temporaries(tmp_path) == [] and not (tmp_path / "out" / "msdnet_cifar").exists()


def test_data_smaller_than_the_recorded_validation_split(tiny, tmp_path, capsys):
    """The split's size comes from the checkpoint, which no build option sets: the message says what to do."""
    argv = build_argv(tiny, tmp_path / "out", tmp_path / "calib", "--precisions", "fp32")
    argv[argv.index("--data") + 1] = data_copy(tiny, tmp_path / "data", 1)
    err = refused(capsys, argv, "validation split was drawn as 20 of its training images, but this data has only 10")
    assert "smaller validation size" not in err and "pass the --data the model was trained on" in err
    assert temporaries(tmp_path) == [] and not (tmp_path / "out" / "msdnet_cifar").exists()
