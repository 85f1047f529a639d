"""The profiler's Markdown report and plot."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.backends.facts import device_facts
from pipeline.metrics import accuracy_per_exit
from pipeline.profiling.curves import anytime_curve, budgeted_points
from pipeline.profiling.report import format_markdown, plot_report
from pipeline.profiling.timing import LatencyProfile
from tests.helpers import PNG
from tests.profiling.conftest import synthetic_probs


def synthetic_report() -> dict:
    probs, labels = synthetic_probs()
    prof = LatencyProfile("onnxruntime/fp32", np.array([[1.0, 0.5, 0.25]] * 5), "perf_counter", 1, 2)
    costs = prof.cumulative_p50()
    acc = accuracy_per_exit(probs, labels)
    variant = {**prof.to_json(), "accuracy": acc, "answer_accuracy": acc, "anytime": anytime_curve(acc, costs),
               "budgeted": budgeted_points(probs, labels, costs),
               "default_policy": {"accuracy": 80.0, "cost_ms": 1.2, "exit_fractions": [0.5, 0.3, 0.2],
                                  "thresholds": []}}
    return {"model": "tiny", "split": "validation", "images": 200, "calibration_images": 200, "runs": 5, "warmup": 2,
            "threads": 1, "device": device_facts(), "notes": ["a note"],
            "variants": {"onnxruntime/fp32": dict(variant, aggregate="mean", answer_accuracy=[50.0, 60.0, 70.0]),
                         "pytorch-eager/fp32": dict(variant, default_policy=None)}}


def test_markdown_has_one_table_per_variant():
    md = format_markdown(synthetic_report())
    assert md.count("| stage | mean (ms) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | cumulative p50 to exit (ms) "
                    "| exit's own accuracy (%) | cascade's answer at exit (%) |") == 2
    assert "## onnxruntime/fp32" in md and "## pytorch-eager/fp32" in md and "note: a note" in md
    acc = synthetic_report()["variants"]["onnxruntime/fp32"]["accuracy"]
    assert f"| 3 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 1.750 | {acc[2]:.2f} | 70.00 |" in md  # the mean's answer
    assert f"| 3 | 0.250 | 0.250 | 0.250 | 0.250 | 0.250 | 1.750 | {acc[2]:.2f} | {acc[2]:.2f} |" in md  # exit alone
    assert md.count("mean softmax of exits 1..k") == 1


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_report(synthetic_report(), tmp_path / "latency.png")
    assert path.read_bytes()[:8] == PNG
