"""The architecture comparison on tiny data: two tiny rows trained through the training command with a tiny
teacher, built, profiled together and judged by their budgeted curves; a finished row is not trained again."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxsim")

from pipeline.benchmarks import architectures  # noqa: E402
from tests.training.conftest import TINY_OPTS, make_imagefolder  # noqa: E402

TINY_RANET = ["--model-factory", "pipeline.models.ranet:build", "--model-opt", "coarse=4,6,8",
              "--model-opt", "fine=4,6,8,10", "--model-opt", "deep=12", "--model-opt", "num_classes=2"]


@pytest.fixture
def tiny_rows(monkeypatch):
    monkeypatch.setattr(architectures, "ROWS", {"msd": ["--model", "msdnet_cifar", *TINY_OPTS], "ranet": TINY_RANET})
    monkeypatch.setattr(architectures, "RECIPE", ["--batch-size", "16", "--lr", "0.05", "--val-size", "16",
                                                  "--distill", "0.5"])
    monkeypatch.setattr(architectures, "SPEED", ["--threads", "1", "--no-progress"])


def teacher(tmp_path, data):
    from pipeline.training import cli

    out = tmp_path / "teacher.pt"
    assert cli.main(["--model-factory", "pipeline.models.teacher:build", "--model-opt", "stem=4",
                     "--model-opt", "widths=8", "--model-opt", "num_classes=2", "--data", str(data), "--out", str(out),
                     "--epochs", "1", "--batch-size", "16", "--val-size", "16", "--threads", "1", "--no-progress"]) == 0
    return out


def test_two_rows_are_trained_built_and_judged_side_by_side(tmp_path, tiny_rows, capsys):
    data = make_imagefolder(tmp_path / "data")
    argv = ["--data", str(data), "--out", str(tmp_path / "arch"), "--epochs", "1", "--teacher",
            str(teacher(tmp_path, data)), "--runs", "10", "--warmup", "2", "--json", str(tmp_path / "a.json")]
    assert architectures.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("$ ") == 2 and "| msd | 3 |" in out and "| ranet | 4 |" in out
    rows = json.loads((tmp_path / "a.json").read_text())
    assert [r["row"] for r in rows] == ["msd", "ranet"]
    for r in rows:
        assert len(r["stage_ms"]) == r["exits"] == len(r["val_accuracy"]) and r["full_ms"] > 0
        assert 0 < r["stage1_latency_share"] <= 1 and 0 < r["stage1_flops_share"] < 1
        assert r["matched"]["speedup"] >= 1 and r["matched"]["accuracy"] >= r["val_accuracy"][-1] - 0.3
        # the sweep's matched point is one the hindsight search starts from; knowing the labels bounds both
        assert r["limits"]["perfect_rule"] >= r["limits"]["hindsight"] >= r["matched"]["speedup"] - 1e-9
    assert architectures.main(argv) == 0  # finished rows: judged again, not trained again
    assert "$ " not in capsys.readouterr().out


def test_unknown_rows_and_a_missing_teacher_are_refused(tmp_path, capsys):
    for extra, match in ((["--only", "nope"], "unknown row nope"), (["--teacher", str(tmp_path / "t.pt")],
                                                                     "make teacher")):
        with pytest.raises(SystemExit, match="2"):
            architectures.main(["--data", str(tmp_path), "--out", str(tmp_path / "a"), *extra])
        assert match in capsys.readouterr().err
