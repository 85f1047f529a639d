"""The training benchmarks: the throughput comparison on a tiny model, the ablation runner's table."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from benchmarks.train_throughput import Setup  # noqa: E402
from benchmarks.train_throughput import main as throughput_main  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402

TINY = ["--model-opt", "n_blocks=2", "--model-opt", "step=1", "--model-opt", "base=1",
        "--model-opt", "n_channels=4", "--model-opt", "growth_rate=2"]


def test_setups_parse_and_bad_ones_are_refused():
    assert Setup.parse("fast=batch=128,bf16,compile") == Setup("fast", 128, bf16=True, compile=True)
    for bad, message in (("nobody", "should look like"), ("x=batch=0", "unknown item"), ("x=turbo", "unknown item")):
        with pytest.raises(PipelineError, match=message):
            Setup.parse(bad)


def test_two_setups_are_timed_side_by_side(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert throughput_main(["--setup", "a=batch=4", "--setup", "b=batch=8,channels_last", "--rounds", "2",
                            "--steps", "1", "--threads", "1", "--json", str(out), *TINY]) == 0
    res = json.loads(out.read_text())
    assert [s["name"] for s in res["setups"]] == ["a", "b"]
    assert res["setups"][0]["ratio"] == 1.0 and res["setups"][1]["images_per_second"] > 0
    assert "| b | 8 |" in capsys.readouterr().out


def test_the_ablation_table_reads_finished_rows_only(tmp_path, capsys):
    from benchmarks.training_ablations import main as ablation_main
    from tests.training.conftest import run

    out = tmp_path / "abl"
    out.mkdir()
    run(tmp_path, out / "base-s0.pt", "--epochs", "2")
    run(tmp_path, out / "ema-s0.pt", "--epochs", "2", "--max-steps", "1")  # unfinished: left out
    assert ablation_main(["--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "2",
                          "--only", "base,ema", "--report-only"]) == 0
    text = capsys.readouterr().out
    assert "| (base) |" in text and "--ema" not in text.split("base:")[1].split("\n", 1)[1]
    assert " ± " in text
