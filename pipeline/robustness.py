"""Accuracy on camera-like corruptions for every exit, and where the exit rule sends the corrupted images.

For each corruption and severity (``pipeline.data.corruptions``) of a labelled split: the top-1
accuracy of every exit of the PyTorch model, and, with exit thresholds from a built model's
manifest, the cascade's accuracy and its mean exit (1-based). Harder images should take later
exits: a mean exit that does not rise under a corruption is a rule that is over-confident there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.data.corruptions import check_corruptions, corrupt
from pipeline.errors import PipelineError


@dataclass(frozen=True)
class ExitRule:
    """The thresholds a cascade uses, as a manifest stores them for one backend and precision."""

    thresholds: np.ndarray  # (K,) criterion units
    criterion: str
    aggregate: str
    source: str  # "<folder> <backend>/<precision> policy <name>"

    @classmethod
    def from_manifest(cls, folder: str | Path, precision: str = "fp32", policy: str = "default",
                      backend: str | None = None) -> "ExitRule":
        from pipeline.backends import REFERENCE_BACKEND
        from pipeline.manifest import load_manifest, variant_key
        from pipeline.thresholds import policy_thresholds

        backend = backend or REFERENCE_BACKEND

        manifest = load_manifest(folder)
        key = variant_key(backend, precision)
        table = manifest.thresholds.get(key)
        if not table:
            known = ", ".join(sorted(manifest.thresholds)) or "none"
            raise PipelineError(f"{folder} has no exit thresholds for {key} (calibrated: {known}); "
                                "run `make profile` first, or leave out --engines")
        return cls(policy_thresholds(table.to_dict(), policy), table.criterion, table.aggregate,
                   f"{folder} {key} policy {policy}")


def exit_probs(model: Any, frames: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """(N, K, C) softmax of every exit of ``model`` for (N, H, W, 3) uint8 ``frames`` (PyTorch, eval mode)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            logits = model(torch.from_numpy(np.ascontiguousarray(frames[i:i + batch_size])))
            out.append(torch.stack([torch.softmax(z.float(), dim=1) for z in logits], dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(model.stages), 0), np.float32)


def row(name: str, severity: int, probs: np.ndarray, labels: np.ndarray, rule: ExitRule | None) -> dict[str, Any]:
    """One table row: accuracy per exit (%), and the cascade's accuracy and mean exit under ``rule``."""
    from pipeline.thresholds import aggregate_exits, simulate

    acc = (100.0 * (probs.argmax(-1) == labels[:, None]).mean(axis=0)).tolist()  # (K,)
    out: dict[str, Any] = {"corruption": name, "severity": severity, "accuracy": acc}
    if rule is not None:
        k = probs.shape[1]
        sim = simulate(aggregate_exits(probs, rule.aggregate), labels, rule.thresholds, np.arange(1, k + 1),
                       rule.criterion)
        out["cascade_accuracy"] = sim.accuracy
        out["mean_exit"] = sim.mean_cost  # costs 1..K: the mean cost is the mean exit
    return out


def robustness_table(model: Any, frames: np.ndarray, labels: np.ndarray, corruptions: Sequence[str],
                     severities: Sequence[int], seed: int = 0, rule: ExitRule | None = None) -> list[dict[str, Any]]:
    """The clean row, then one row per corruption and severity."""
    check_corruptions(list(corruptions), list(severities))
    rows = [row("clean", 0, exit_probs(model, frames), labels, rule)]
    for name in corruptions:
        for s in severities:
            rows.append(row(name, s, exit_probs(model, corrupt(frames, name, s, seed)), labels, rule))
    return rows


def format_robustness(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the model card."""
    k = len(rows[0]["accuracy"])
    cascade = "cascade_accuracy" in rows[0]
    head = "| corruption | severity | " + " | ".join(f"exit {i + 1}" for i in range(k)) + " |"
    if cascade:
        head += " cascade | mean exit |"
    lines = [head, "|" + "---|" * (2 + k + (2 if cascade else 0))]
    for r in rows:
        cells = [r["corruption"], str(r["severity"] or "-")] + [f"{a:.2f}" for a in r["accuracy"]]
        if cascade:
            cells += [f"{r['cascade_accuracy']:.2f}", f"{r['mean_exit']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
