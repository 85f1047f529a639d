"""The latency profiler's library: timing (``timing``), the PyTorch baseline (``torch_baseline``), the
accuracy-versus-latency curves (``curves``), the manifest's tables (``tables``) and the reports
(``report``). numpy only at import; torch, onnxruntime, tensorrt and matplotlib where used.
"""

from __future__ import annotations

from pipeline.profiling.timing import LatencyProfile, chain_exit_probs, latency_stats, profile_chain, profile_chains

__all__ = ["LatencyProfile", "chain_exit_probs", "latency_stats", "profile_chain", "profile_chains"]
