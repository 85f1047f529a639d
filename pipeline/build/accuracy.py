"""Per-exit accuracy of every built variant, frame by frame through its chain exactly as the runtime runs it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipeline.backends import StageChain, exit_logits, load_chain
from pipeline.build.engines import drop_variant
from pipeline.build.artifacts import log
from pipeline.errors import PipelineError
from pipeline.manifest import Manifest, variant_key
from pipeline.metrics import accuracy_per_exit


def chain_accuracy(chain: StageChain, images: np.ndarray, labels: np.ndarray) -> list[float]:
    """Top-1 accuracy (%) of every exit of ``chain`` on (N, H, W, 3) uint8 ``images``."""
    with chain:
        return [round(a, 4) for a in accuracy_per_exit(exit_logits(chain, images), labels)]


def measure_accuracy(manifest: Manifest, tmp: Path, threads: int,
                     splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Fill ``manifest.accuracy[split][variant]``; a variant that cannot run is moved to ``unsupported``."""
    for backend, precision in sorted({(e.backend, e.precision) for e in manifest.engines}):
        key = variant_key(backend, precision)
        t0 = time.time()
        try:
            for split, (images, labels) in splits.items():
                acc = chain_accuracy(load_chain(manifest, tmp, backend, precision, threads), images, labels)
                manifest.accuracy.setdefault(split, {})[key] = acc
        except PipelineError as exc:
            drop_variant(manifest, tmp, backend, precision, f"built but does not run: {exc}")
            continue
        shown = "; ".join(f"{s} " + " ".join(f"{a:.2f}" for a in manifest.accuracy[s][key]) for s in splits)
        log(f"accuracy {key} per exit (%): {shown} ({time.time() - t0:.1f} s)")
