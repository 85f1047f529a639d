"""Reports (`verify`, `evaluate`, the benchmarks' --json, --card) never land on what the command reads:
each is refused in one line before any work, exit 2, with every input byte-identical afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.faults.conftest import one_error, run_command, snapshot


@pytest.fixture
def inputs(tiny, tmp_path):
    """A private copy of the tiny model, its checkpoint and a data archive; a snapshot of all of them."""
    folder = tiny.copy(tmp_path)
    checkpoint = tmp_path / "model.pt"
    shutil.copy(tiny.checkpoint, checkpoint)
    archive = tmp_path / "data.tar.gz"
    archive.write_bytes(b"not really an archive, never read")
    return folder, checkpoint, archive


def refused(capsys, main, argv, told: str, root: Path) -> None:
    before = snapshot(root)
    assert run_command(main, argv) == 2
    assert told in one_error(capsys.readouterr().err)
    assert snapshot(root) == before


def test_verify_json_onto_the_manifest_an_artifact_the_data_or_a_device(inputs, tmp_path, capsys):
    from pipeline.verify import main

    folder, _, archive = inputs
    base = ["--engines", folder, "--data", archive]
    for target, told in ((folder / "manifest.json", "inside the built model folder"),
                         (next(folder.glob("onnx/*.onnx")), "inside the built model folder"),
                         (archive, "it is --data")):
        refused(capsys, main, [*base, "--json", target], told, tmp_path)
    refused(capsys, main, [*base, "--json", "/dev/full"], "a device, not a regular file", tmp_path)
    assert Path("/dev/full").is_char_device()


def test_evaluate_json_or_card_onto_the_checkpoint(inputs, tmp_path, capsys):
    from pipeline.evaluate import main

    _, checkpoint, archive = inputs
    for option in ("--json", "--card"):
        refused(capsys, main, ["--checkpoint", checkpoint, "--data", archive, option, checkpoint],
                "it is --checkpoint", tmp_path)


def test_benchmark_json_onto_the_manifest_or_a_folder(inputs, tmp_path, capsys):
    from pipeline.benchmarks import cascade_benchmarks, static_anchors, video_benchmark

    folder, checkpoint, archive = inputs
    manifest = folder / "manifest.json"
    refused(capsys, cascade_benchmarks.main, ["--engines", folder, "--data", archive, "--json", manifest],
            "inside the built model folder", tmp_path)
    refused(capsys, video_benchmark.main, ["--engines", folder, "--data", archive, "--json", manifest],
            "inside the built model folder", tmp_path)
    static = shutil.copytree(folder, tmp_path / "static")
    refused(capsys, static_anchors.main, ["--engines", folder, "--static", static, "--data", archive, "--json",
                                          static / "manifest.json"], "inside the built model folder", tmp_path)
    refused(capsys, cascade_benchmarks.main, ["--engines", folder, "--data", archive, "--json", tmp_path],
            "it is a folder", tmp_path)


def test_architectures_json_onto_the_teacher(inputs, tmp_path, capsys):
    from pipeline.benchmarks.architectures import main

    _, checkpoint, archive = inputs
    refused(capsys, main, ["--data", archive, "--teacher", checkpoint, "--json", checkpoint, "--out",
                           tmp_path / "runs"], "it is --teacher", tmp_path)


def test_seeds_numpy_would_refuse_are_one_line_before_any_work(inputs, tmp_path, capsys):
    from pipeline.apps.temporal_calibrate import main as temporal
    from pipeline.benchmarks.video_benchmark import main as video
    from pipeline.video.clip import main as clip

    folder, _, archive = inputs
    refused(capsys, temporal, ["--engines", folder, "--data", archive, "--seed", "-1"], "--seed must be", tmp_path)
    refused(capsys, video, ["--engines", folder, "--data", archive, "--seed", "-1", "--json", tmp_path / "v.json"],
            "--seed must be", tmp_path)
    refused(capsys, clip, ["--data", archive, "--seed", "-1", "--out", tmp_path / "clip"], "--seed must be", tmp_path)


def test_numbers_out_of_range_are_one_line_before_any_work(inputs, tmp_path, capsys):
    """Values argparse takes as numbers but the work cannot: nan and inf frame rates (on which the video
    writer never returns), negative threads and seeds, a negative validation size; the temporal
    calibration's before it renders and runs its clips."""
    from pipeline.apps.temporal_calibrate import main as temporal
    from pipeline.benchmarks.streams import main as streams
    from pipeline.evaluate import main as evaluate
    from pipeline.models.factory import main as factory
    from pipeline.video.clip import main as clip

    folder, checkpoint, archive = inputs
    for fps in ("inf", "nan", "0.5"):
        refused(capsys, clip, ["--data", archive, "--fps", fps, "--out", tmp_path / "clip"],
                "--fps should be a number of frames per second from 1 to 1000", tmp_path)
    refused(capsys, clip, ["--data", archive, "--width", "100000", "--out", tmp_path / "clip"],
            "--width and --height should be 8 to 4096 pixels", tmp_path)
    bench = ["--engines", folder, "--data", archive, "--json", tmp_path / "s.json"]
    for option, value in (("--fps", "nan"), ("--fps", "inf"), ("--seconds", "inf"), ("--budget-ms", "nan")):
        refused(capsys, streams, [*bench, option, value], f"{option} should be a positive number", tmp_path)
    base = ["--checkpoint", checkpoint, "--data", archive]
    refused(capsys, evaluate, [*base, "--threads", "-1"], "--threads must be at least 0", tmp_path)
    refused(capsys, evaluate, [*base, "--corruption-seed", "-1"], "--corruption-seed must be", tmp_path)
    refused(capsys, factory, ["--model", "msdnet_cifar", "--val-size", "-5", "--out", tmp_path / "f.pt"],
            "--val-size must be at least 1", tmp_path)
    calibrate = ["--engines", folder, "--data", archive]
    refused(capsys, temporal, [*calibrate, "--tolerance", "nan"], "--tolerance must be 0 or more", tmp_path)
    refused(capsys, temporal, [*calibrate, "--confidence", "1"], "--confidence must be between 0 and 1", tmp_path)
    refused(capsys, temporal, [*calibrate, "--max-age-frames", "0"], "--max-age-frames should be 1 or more", tmp_path)
