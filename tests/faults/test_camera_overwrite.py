"""An output that is an input is refused before anything is opened, however the path is spelt; and
every input is read, every option checked, before any output is opened."""

from __future__ import annotations

import json
import os

import cv2
import pytest

from tests.faults.conftest import PLAN, one_error, run_app, snapshot
from tests.video.fakes import colour_frame


def refused(capsys, argv, match):
    code = run_app(argv)
    err = one_error(capsys.readouterr().err)
    assert code == 2 and match in err, err
    return err


def test_output_or_log_that_is_the_source_video(engines, clip, tmp_path, capsys, monkeypatch):
    video, labels = clip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    os.symlink(video, tmp_path / "link.avi")
    os.link(video, tmp_path / "hard.avi")
    before = snapshot(tmp_path)
    base = ["--engines", engines, "--headless"]
    for source, output in [("clip.avi", "clip.avi"), (str(video), "sub/../clip.avi"), ("clip.avi", "link.avi"),
                           ("link.avi", str(video)), ("clip.avi", "hard.avi")]:
        err = refused(capsys, base + ["--source", source, "--output", output], "is the same file as --source")
        assert f"--output {output}" in err and "Choose another --output path" in err
        err = refused(capsys, base + ["--source", source, "--log", output], "is the same file as --source")
    assert snapshot(tmp_path) == before  # the clip, its links and the labels untouched; nothing new


def test_log_that_is_an_image_of_a_folder_or_glob_source(engines, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, (label, exit) in enumerate(PLAN[:3]):
        cv2.imwrite(str(folder / f"f{i}.png"), colour_frame(label, exit, (20, 30)))
    os.symlink(folder / "f1.png", tmp_path / "alias.png")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    base = ["--engines", engines, "--headless"]
    refused(capsys, base + ["--source", "frames", "--log", "frames/f0.png"],
            "is the same file as --source frames/f0.png")
    refused(capsys, base + ["--source", str(folder / "*.png"), "--log", "alias.png"],
            f"is the same file as --source {folder / 'f1.png'}")
    refused(capsys, base + ["--source", "frames/f2.png", "--log", "./frames/../frames/f2.png"], "is the same file as")
    assert snapshot(tmp_path) == before


def test_log_that_is_the_labels_file_is_refused_before_it_is_emptied(engines, clip, tmp_path, capsys):
    video, labels = clip
    before = labels.read_bytes()
    for argv in (["--log", labels, "--labels", labels], ["--log", tmp_path / "." / labels.name, "--labels", labels]):
        refused(capsys, ["--engines", engines, "--source", video, "--headless", *argv], "is the same file as --labels")
        assert labels.read_bytes() == before


def test_output_and_log_that_are_one_file_or_the_manifest(engines, clip, tmp_path, capsys):
    video, _ = clip
    base = ["--engines", engines, "--source", video, "--headless"]
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "a.avi", tmp_path / "sub" / "dangling.avi")  # a link to an output not made yet
    for log in (tmp_path / "sub" / ".." / "a.avi", tmp_path / "sub" / "dangling.avi"):
        refused(capsys, base + ["--output", tmp_path / "a.avi", "--log", log], "are the same file")
    assert not (tmp_path / "a.avi").exists()
    manifest = engines / "manifest.json"
    refused(capsys, base + ["--log", manifest], "is the same file as the manifest")
    assert manifest.read_text() == "{}"


def test_every_input_and_option_is_checked_before_an_output_opens(engines, clip, tmp_path, capsys):
    video, _ = clip
    log, out = tmp_path / "old.jsonl", tmp_path / "old.avi"
    log.write_text('{"frame": 0}\n')  # a previous run's outputs, which a refused run must leave alone
    out.write_bytes(b"previous video")
    bad_labels = tmp_path / "bad.json"
    bad_labels.write_text('["purple"]')
    not_json = tmp_path / "broken.json"
    not_json.write_text("{oops")
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a1.png"), colour_frame(0, 1))
    (images / "a2.png").write_text("not an image")  # an image the run would stop at after writing frame 1
    before = snapshot(tmp_path)
    base = ["--engines", engines, "--headless", "--log", log, "--output", out]
    cases = [
        (["--source", video, "--labels", not_json], "not valid JSON"),
        (["--source", video, "--labels", bad_labels], "label 'purple' is neither"),
        (["--source", video, "--labels", tmp_path / "none.json"], "not found"),
        (["--source", tmp_path / "missing.avi"], "is not a camera, stream, existing file"),
        (["--source", video, "--reconnects", "-1"], "--reconnects should be 0 or more"),
        (["--source", images], f"source image {images / 'a2.png'} is not an image OpenCV can decode"),
    ]
    for argv, match in cases:
        refused(capsys, base + argv, match)
        assert snapshot(tmp_path) == before, argv
    assert json.loads(log.read_text()) == {"frame": 0}


def test_an_output_elsewhere_is_still_written(engines, clip, tmp_path, capsys):
    """The checks refuse only what they should: a new output beside the inputs is fine."""
    video, labels = clip
    code = run_app(["--engines", engines, "--source", video, "--headless", "--labels", labels,
                    "--output", tmp_path / "clip.annotated.avi", "--log", tmp_path / "labels.jsonl"])
    assert code == 0 and len((tmp_path / "labels.jsonl").read_text().splitlines()) == len(PLAN)
    assert "accuracy: 100.0% (12/12 labelled frames)" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--output", "--log"])
def test_a_missing_output_path_is_not_an_input(engines, clip, tmp_path, capsys, option):
    video, _ = clip
    target = tmp_path / ("new.avi" if option == "--output" else "new.jsonl")
    assert run_app(["--engines", engines, "--source", video, "--headless", option, target, "--max-frames", 2]) == 0
    assert target.is_file()


def test_log_onto_a_file_of_the_model_folder_is_refused(engines, clip, tmp_path, capsys):
    video, _ = clip
    engine = engines / "stage1.fp32.onnx"
    engine.write_bytes(b"engine bytes")
    before = snapshot(engines)
    for option in ("--log", "--output"):
        target = engine if option == "--log" else engines / "run.avi"
        refused(capsys, ["--engines", engines, "--source", video, "--headless", option, target],
                "inside the built model folder")
    assert snapshot(engines) == before and not (engines / "run.avi").exists()


def test_a_log_onto_a_fifo_is_refused_instead_of_hanging(engines, clip, tmp_path, capsys):
    video, _ = clip
    os.mkfifo(tmp_path / "pipe")
    refused(capsys, ["--engines", engines, "--source", video, "--headless", "--log", tmp_path / "pipe"],
            "a FIFO (named pipe), not a regular file")


def test_an_empty_source_leaves_an_earlier_log_as_it_was(engines, tmp_path, capsys):
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 30, (32, 24))  # no frame written
    writer.release()
    log = tmp_path / "frames.jsonl"
    log.write_text('{"frame": 0}\n')
    run_app(["--engines", engines, "--source", empty, "--headless", "--log", log])
    out = capsys.readouterr().out
    assert log.read_text() == '{"frame": 0}\n'
    assert f"frame log: none written (no frame); {log} left as it was" in out and "(0 frames)" not in out


def test_a_second_run_writing_the_same_output_is_refused(engines, clip, tmp_path, capsys):
    from pipeline.video.outputs import lock_outputs

    video, _ = clip
    log, output = tmp_path / "frames.jsonl", tmp_path / "run.avi"
    log.write_text("the first run's\n")
    with lock_outputs({"--log": log, "--output": output}):  # the first run, still writing
        for option, path in (("--log", log), ("--output", output)):
            refused(capsys, ["--engines", engines, "--source", video, "--headless", option, path],
                    f"another run is writing {option} {path} (process {os.getpid()})")
    assert log.read_text() == "the first run's\n" and not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
