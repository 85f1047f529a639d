"""The exit rule and the starting latency of a served variant, read from the manifest as ``Cascade.from_folder`` does.

The client-driven cascade and the ``cascade`` BLS model apply the same rule: the manifest's
thresholds of the variant the server runs (``onnxruntime/<precision>`` for stage models running
ONNX Runtime, ``tensorrt/<precision>`` for plans), under a named policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.manifest import Manifest
from pipeline.thresholds import (DEFAULT_POLICY, LAST_EXIT_POLICY, check_aggregate, check_criterion, policy_thresholds,
                                 to_scores)


@dataclass(frozen=True)
class ExitRule:
    """Thresholds in criterion units (None: every frame to the last exit unless the deadline stops it)."""

    thresholds: tuple[float, ...] | None
    criterion: str
    aggregate: str
    note: str = ""  # what the user should know (no thresholds calibrated)

    def score_thresholds(self, num_exits: int) -> list[float]:
        """The rule as ``score >= s_k`` (confidence, or minus the entropy); the last exit always answers."""
        if self.thresholds is None:
            return [math.inf] * (num_exits - 1) + [-math.inf]
        return [float(s) for s in to_scores(list(self.thresholds), self.criterion)]


def exit_rule(manifest: Manifest, variant: str, policy: str = DEFAULT_POLICY) -> ExitRule:
    """The manifest's rule for ``variant`` ("<backend>/<precision>") under ``policy``."""
    table = manifest.thresholds.get(variant)
    if table is None:
        if policy not in (DEFAULT_POLICY, LAST_EXIT_POLICY):
            known = ", ".join(sorted(manifest.thresholds)) or "none"
            raise PipelineError(f"policy {policy!r} needs thresholds for {variant}, which the manifest lacks "
                                f"(calibrated variants: {known}); use policy 'default' or run the latency profiler")
        return ExitRule(None, "confidence", "last", f"no exit thresholds for {variant} in the manifest: every frame "
                        "runs to the last exit unless the deadline stops it (run the latency profiler)")
    chosen = policy_thresholds(table.to_dict(), policy).tolist()
    if len(chosen) != manifest.num_exits:
        raise PipelineError(f"policy {policy!r} for {variant} has {len(chosen)} thresholds, the model has "
                            f"{manifest.num_exits} exits; re-run the latency profiler")
    return ExitRule(tuple(float(t) for t in chosen), check_criterion(table.criterion), check_aggregate(table.aggregate))


def start_latency(manifest: Manifest, variant: str) -> tuple[list[float | None], list[float | None]]:
    """Per stage, the measured (p50, p99) ms of ``variant`` in the manifest; None where not measured."""
    table = manifest.latency.get(variant)
    rows = table.stages if table is not None else []
    if len(rows) != manifest.num_exits:
        return [None] * manifest.num_exits, [None] * manifest.num_exits
    p50 = [float(r["p50_ms"]) if "p50_ms" in r else None for r in rows]
    p99 = [float(r["p99_ms"]) if "p99_ms" in r else None for r in rows]
    return p50, p99
