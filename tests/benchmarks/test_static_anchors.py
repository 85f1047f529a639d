"""Benchmark 6 on the tiny built model against two tiny static networks built by the same command: the table,
the JSON, a static network the curve cannot reach, and clear refusals of missing or foreign folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.benchmarks.static_anchors import MATCH_POINTS, main
from tests.helpers import CLASSES, tiny_build

TEACHER = "pipeline.models.teacher:build"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def build_static(built, root: Path, name: str, widths: tuple[int, ...], classes=CLASSES, split_size=20) -> Path:
    """A random-weight one-exit network through `make engines`' command (FP32 only)."""
    torch = pytest.importorskip("torch")
    from pipeline import build
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model

    torch.manual_seed(1)
    model = create_model(TEACHER, num_classes=len(classes), stem=4, widths=widths).eval()
    ckpt = root / f"{name}.pt"
    save_checkpoint(ckpt, model, TEACHER, list(classes), {"seed": 0, "size": split_size, "source": "generated"})
    assert build.main(["--checkpoint", str(ckpt), "--data", str(built.data), "--cache-dir", str(built.cache),
                       "--out", str(root / "engines"), "--name", name, "--precisions", "fp32",
                       "--backend", "onnxruntime", "--skip-accuracy"]) == 0
    return root / "engines" / name


@pytest.fixture(scope="module")
def statics(built, tmp_path_factory):
    root = tmp_path_factory.mktemp("statics")
    return [build_static(built, root, "static_a", (8,)), build_static(built, root, "static_b", (8, 16))]


def args(built, *extra):
    return ["--engines", str(built.folder), "--data", str(built.data), "--cache-dir", str(built.cache),
            "--frames", "12", "--runs", "10", "--warmup", "2", *extra]


def test_the_table_has_a_row_per_static_network(built, statics, tmp_path, capsys):
    out = tmp_path / "anchors.json"
    assert main(args(built, "--static", str(statics[0]), "--static", str(statics[1]), "--json", str(out))) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Benchmark 6: msdnet_cifar (onnxruntime/fp32, 1 thread(s), 12 test frames")
    assert "| static_a |" in printed and "| static_b |" in printed
    report = json.loads(out.read_text())
    assert [r["static"] for r in report["rows"]] == ["static_a", "static_b"]
    assert len(report["stage_costs_ms"]) == 3 and report["curve"] and report["calibration_frames"] == 20
    for row in report["rows"]:
        assert row["static_p50_ms"] > 0 and row["flops"] > 0
        if row["reached"]:  # chosen on validation: its validation accuracy reaches the static network's
            assert row["cascade_val_accuracy"] >= row["static_val_accuracy"] and row["ratio_mean"] > 0
            assert row["static_test_accuracy_timed"] == pytest.approx(row["static_test_accuracy"])
            assert row["matched"] == (row["cascade_test_accuracy"] >= row["static_test_accuracy"] - MATCH_POINTS)
            assert f"{row['ratio_mean']:.2f}x" in printed
        else:
            assert "not reached" in printed


def test_a_static_network_above_the_curve_is_not_reached(built, statics, monkeypatch, capsys):
    # A static network whose validation accuracy no point reaches: make every curve point 0% on validation.
    import pipeline.thresholds as thresholds

    curve = thresholds.budgeted_curve
    monkeypatch.setattr(thresholds, "budgeted_curve", lambda *a, **k: [p.__class__(p.q, -1.0, p.cost, p.thresholds,
                                                                                   p.exit_fractions)
                                                                        for p in curve(*a, **k)])
    assert main(args(built, "--static", str(statics[0]))) == 0
    printed = capsys.readouterr().out
    assert "| static_a |" in printed and "not reached (best on validation -1.00%" in printed


def test_a_missing_static_model_is_refused_before_any_work(built, tmp_path, capsys):
    with pytest.raises(SystemExit, match="2"):
        main(args(built, "--static", str(tmp_path / "nothing")))
    err = capsys.readouterr().err
    assert f"no built model at {tmp_path / 'nothing'}" in err and "make anchors" in err and "Traceback" not in err


def test_a_static_network_of_other_classes_or_split_is_refused(built, tmp_path, capsys):
    other = build_static(built, tmp_path, "other", (8,), split_size=21)
    with pytest.raises(SystemExit, match="2"):
        main(args(built, "--static", str(other)))
    err = capsys.readouterr().err
    assert "another validation split than the cascade's model (size 21 against 20)" in err
    renamed = build_static(built, tmp_path, "renamed", (8,), classes=[*CLASSES[1:], CLASSES[0]])
    with pytest.raises(SystemExit, match="2"):
        main(args(built, "--static", str(renamed)))
    assert "classifies other classes than the cascade: the same" in capsys.readouterr().err


def test_a_multi_exit_model_or_the_cascade_itself_is_no_static_network(built, tmp_path, capsys):
    """Not even the cascade's own folder by another spelling, which would compare the model with itself."""
    (tmp_path / "link").symlink_to(built.folder)
    for static, told in ((tmp_path / "link", "not be the --engines folder"),
                         (built.folder / ".." / built.folder.name, "not be the --engines folder")):
        with pytest.raises(SystemExit, match="2"):
            main(args(built, "--static", str(static)))
        assert told in capsys.readouterr().err
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built.folder, copy)
    with pytest.raises(SystemExit, match="2"):
        main(args(built, "--static", str(copy)))
    assert f"{copy} is a model of 3 exits; a static network answers at one" in capsys.readouterr().err


@pytest.mark.parametrize("extra, match", [(["--runs", "0"], "--runs must be at least 1"),
                                          (["--frames", "-1"], "--frames must be 0 or more")])
def test_bad_numbers_are_one_line_errors(built, statics, capsys, extra, match):
    with pytest.raises(SystemExit, match="2"):
        main(args(built, "--static", str(statics[0]), *extra))
    assert match in capsys.readouterr().err
