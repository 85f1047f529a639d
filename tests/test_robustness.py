"""The robustness table: per-exit accuracy under corruptions, and the exit rule's accuracy and mean exit."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.robustness import ExitRule, format_robustness, row


def test_a_row_counts_accuracy_per_exit_and_the_mean_exit():
    # 4 images, 2 exits, 2 classes. Exit 1 is sure about images 0 and 1 only.
    probs = np.array([[[0.9, 0.1], [0.8, 0.2]],
                      [[0.2, 0.8], [0.3, 0.7]],
                      [[0.6, 0.4], [0.1, 0.9]],
                      [[0.55, 0.45], [0.6, 0.4]]])
    labels = np.array([0, 1, 1, 0])
    rule = ExitRule(np.array([0.75, 0.0]), "confidence", "last", "test")
    r = row("blur", 2, probs, labels, rule)
    assert r["accuracy"] == pytest.approx([75.0, 100.0])
    assert r["mean_exit"] == pytest.approx(1.5)  # two images leave at exit 1, two at exit 2
    assert r["cascade_accuracy"] == pytest.approx(100.0)
    text = format_robustness([r])
    assert "| blur | 2 | 75.00 | 100.00 | 100.00 | 1.50 |" in text


def test_without_a_rule_the_row_has_accuracy_only():
    probs = np.array([[[0.9, 0.1]], [[0.2, 0.8]]])
    r = row("clean", 0, probs, np.array([0, 0]), None)
    assert r == {"corruption": "clean", "severity": 0, "accuracy": [50.0]}
    assert "| clean | - | 50.00 |" in format_robustness([r])


def test_the_table_over_a_tiny_model_has_a_row_per_corruption_and_severity():
    torch = pytest.importorskip("torch")
    from pipeline.models import create_model
    from pipeline.robustness import robustness_table

    torch.manual_seed(0)
    model = create_model("msdnet_cifar", n_blocks=2, step=1, base=1, n_channels=4, growth_rate=2, num_classes=3)
    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    rows = robustness_table(model, frames, labels, ["blur", "fog"], [1, 3])
    assert [(r["corruption"], r["severity"]) for r in rows] == [("clean", 0), ("blur", 1), ("blur", 3),
                                                              ("fog", 1), ("fog", 3)]
    assert all(len(r["accuracy"]) == 2 for r in rows)
