"""The manifest's latency and thresholds tables from a profile, and their merge into the manifest.

Only the manifest is rewritten (atomically): engines and artifacts are untouched, so their sha256
still hold; a folder rebuilt while profiling is refused.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from pipeline.errors import PipelineError
from pipeline.manifest import LatencyTable, Manifest, ThresholdTable, load_manifest, write_manifest
from pipeline.profiling.timing import LatencyProfile


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def latency_table(profile: LatencyProfile, device: dict[str, Any], providers: Sequence[str],
                  measured_at: str, batches: dict[int, LatencyProfile] | None = None) -> LatencyTable:
    """What the deadline rule's predictor starts from: per-stage statistics of the profile's wall times, and of
    each batch size's profile (``batches``, b > 1) for the batched cascade."""
    return LatencyTable(profile.stages(), profile.cumulative_p50(), profile.runs, profile.threads, profile.clock,
                        device, measured_at, list(providers),
                        batches={str(b): p.stages() for b, p in sorted((batches or {}).items()) if b > 1})


def threshold_table(table: dict[str, Any], providers: Sequence[str]) -> ThresholdTable:
    """A calibrated ``thresholds_table`` with the execution providers it was measured under."""
    return ThresholdTable.from_dict({**table, "providers": list(providers)})


def update_manifest(folder: Path, before: Manifest, latency: dict[str, LatencyTable],
                    thresholds: dict[str, ThresholdTable]) -> Path:
    """Merge the new tables into the manifest as it is now and write it atomically; files untouched."""
    current = load_manifest(folder, verify=False)

    def files(m: Manifest) -> list[tuple[str, str]]:
        return sorted((f.path, f.sha256) for f in m.artifacts + m.engines)

    if files(current) != files(before):
        raise PipelineError(f"the engines in {folder} changed while profiling (rebuilt?); run the profiler again")
    current.latency.update(latency)
    current.thresholds.update(thresholds)
    return write_manifest(folder, current)
