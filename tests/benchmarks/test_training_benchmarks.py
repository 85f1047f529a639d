"""The training benchmarks: the throughput comparison on a tiny model, the ablation runner's table."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from pipeline.benchmarks.train_throughput import Setup  # noqa: E402
from pipeline.benchmarks.train_throughput import main as throughput_main  # noqa: E402
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


def test_the_ablation_table_reads_finished_rows_only(tmp_path, capsys, monkeypatch):
    from pipeline.benchmarks.training_ablations import main as ablation_main
    from tests.training.conftest import run

    monkeypatch.setenv("ANYTIME_CACHE", str(tmp_path / "cache"))

    out = tmp_path / "abl"
    out.mkdir()
    run(tmp_path, out / "base-s0.pt", "--epochs", "2")
    run(tmp_path, out / "ema-s0.pt", "--epochs", "2", "--max-steps", "1")  # unfinished: left out
    assert ablation_main(["--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "2",
                          "--only", "base,ema", "--report-only"]) == 0
    text = capsys.readouterr().out
    assert "| (base) |" in text and "--ema" not in text.split("base:")[1].split("\n", 1)[1]
    assert " ± " in text
    assert "cascade at exit 2's cost" in text
    kept = json.loads((out / "base-s0.exitrule.json").read_text())
    assert set(kept["figures"]) == {"cascade_at_exit2_cost", "cost_share", "exit1_confidence", "corrupted_exit1",
                                    "corrupted_last"}
    assert "corrupted, exit 1 / last" in text and 0 <= kept["figures"]["corrupted_last"] <= 100
    kept["figures"]["exit1_confidence"] = 12.345  # a kept figure is read back, not computed again
    (out / "base-s0.exitrule.json").write_text(json.dumps(kept))
    assert ablation_main(["--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "2",
                          "--only", "base", "--report-only"]) == 0
    assert "| 12.3 |" in capsys.readouterr().out
    del kept["figures"]["corrupted_exit1"]  # kept before the corruption column existed: computed again
    (out / "base-s0.exitrule.json").write_text(json.dumps(kept))
    assert ablation_main(["--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "2",
                          "--only", "base", "--report-only"]) == 0
    assert "| 12.3 |" not in capsys.readouterr().out
    assert "corrupted_exit1" in json.loads((out / "base-s0.exitrule.json").read_text())["figures"]


def test_the_exit_rule_check_reads_the_confidence():
    import numpy as np

    from pipeline.training.evaluation import exit_rule_check

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    sure = np.full((400, 2, 3), 0.01)
    sure[np.arange(400), 0, labels] = 0.98  # exit 1 right and sure on every image
    sure[np.arange(400), 1, labels] = 0.98
    figures = exit_rule_check(sure, labels, [1.0, 2.0])
    assert figures["cascade_at_exit2_cost"] == 100.0 and figures["exit1_confidence"] == pytest.approx(98.0)
    doubtful = sure.copy()
    doubtful[:, 0] = 1 / 3 + 1e-3 * rng.random((400, 3))  # exit 1 guesses, unsure; exit 2 still knows
    assert exit_rule_check(doubtful, labels, [1.0, 2.0])["exit1_confidence"] < 40.0
    assert exit_rule_check(doubtful, labels, [1.0, 2.0])["cascade_at_exit2_cost"] > 90.0


def test_a_teacher_row_names_the_runners_teacher():
    import argparse
    from pathlib import Path

    from pipeline.benchmarks.training_ablations import row_command

    args = argparse.Namespace(out=Path("abl"), data="d", epochs=3, limit=10, seed=1, extra="", teacher="t/x.pt")
    cmd = row_command("teacher0.5", args)
    assert cmd[-4:] == ["--teacher", "t/x.pt", "--distill", "0.5"] and "{teacher}" not in cmd
