"""Per-stage latency and accuracy-versus-latency curves of every built variant; the manifest's tables.

    anytime profile --engines engines/ranet --data DATA [--backends onnxruntime] \
        [--precisions fp32,int8] [--runs 1000] [--warmup 100] [--split test] [--checkpoint CKPT] [--out reports] \
        [--batch-sizes 1,4,16]

Per variant: timed runs of the full chain on frames of ``--split``, per-exit accuracy, the anytime
and budgeted curves; with ``--checkpoint``, the PyTorch eager baseline; with ``--batch-sizes``, each
stage's time on that many frames at once (the batched cascade's, ``docs/streams.md``). Thresholds are calibrated
on the validation split only. Writes ``latency.json``, ``.md`` and ``.png`` under ``--out`` and the
profiled variants' latency and thresholds tables into the manifest (engines untouched).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.backends import BACKENDS
from pipeline.errors import PipelineError, cli_main
from pipeline.device import check_threads
from pipeline.files import check_output, check_output_folder, remove_dead_temps
from pipeline.data.options import DataOptions, add_data_options
from pipeline.manifest import LatencyTable, Manifest, ThresholdTable, load_manifest, sha256_file, variant_key
from pipeline.names import PRECISIONS
from pipeline.thresholds import add_calibration_options, check_calibration_options
from pipeline.stop import stop_at_once


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime profile", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    ap.add_argument("--backends", default="all",
                    help=f"all (every built one that runs here) or a comma list: {','.join(BACKENDS)}")
    ap.add_argument("--precisions", default="all", help="all (every built one) or a comma list: fp32,fp16,int8")
    ap.add_argument("--runs", type=int, default=1000, help="timed runs of the full chain per variant")
    ap.add_argument("--warmup", type=int, default=100, help="untimed runs first")
    ap.add_argument("--batch-sizes", default="1",
                    help="comma list of batch sizes to time each stage at, e.g. 1,4,16 (the batched cascade of "
                         "`anytime streams` reads them); batch 1 is always timed")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime (and PyTorch) intra-op threads")
    ap.add_argument("--split", default="validation", choices=["validation", "test"],
                    help="the split the curves are evaluated on (thresholds always come from validation)")
    add_data_options(ap)
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="the engines' checkpoint: adds a PyTorch eager baseline")
    ap.add_argument("--out", type=Path, default=Path("reports"), help="folder for latency.json, .md and .png")
    add_calibration_options(ap)
    return ap


@dataclass(frozen=True)
class ProfileOptions:
    """Everything a profile reads, checked once (:func:`check_options`) before anything is loaded."""

    engines: Path
    backends: str
    precisions: str
    runs: int
    warmup: int
    threads: int
    split: str
    data: DataOptions
    checkpoint: Path | None
    out: Path
    aggregate: str
    tolerance: float
    confidence: float
    batch_sizes: str = "1"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ProfileOptions:
        return cls(engines=args.engines, backends=args.backends, precisions=args.precisions, runs=args.runs,
                   warmup=args.warmup, threads=args.threads, split=args.split, data=DataOptions.from_args(args),
                   checkpoint=args.checkpoint, out=args.out, aggregate=args.aggregate, tolerance=args.tolerance,
                   confidence=args.confidence, batch_sizes=args.batch_sizes)


def check_options(args: ProfileOptions) -> None:
    """Reject bad numbers and impossible requests before anything is loaded."""
    if args.runs < 1:
        raise PipelineError(f"--runs must be at least 1, got {args.runs}")
    if args.warmup < 0:
        raise PipelineError(f"--warmup must be 0 or more, got {args.warmup}")
    check_threads(args.threads)
    check_calibration_options(args.tolerance, args.confidence)
    batch_sizes(args.batch_sizes)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise PipelineError(f"--checkpoint {args.checkpoint} does not exist; pass the checkpoint the engines were "
                            "built from, or drop --checkpoint to skip the PyTorch baseline")
    check_output_folder(args.out, "--out")
    for name in ("latency.json", "latency.md", "latency.png"):  # the reports: never over a model's or an input's file
        check_output(args.out / name, "--out's report",
                     [("--engines", args.engines), ("--checkpoint", args.checkpoint)])
    if args.engines.is_dir():  # its manifest is rewritten at the end: writable before the work, not after
        check_output_folder(args.engines, "the manifest's folder --engines")


MAX_PROFILED_BATCH = 1024  # frames a batch: past what a camera fleet batches, short of exhausting memory


def batch_sizes(value: str) -> list[int]:
    """``--batch-sizes`` as sorted distinct whole numbers of 1 or more (1 always included)."""
    try:
        sizes = {int(v) for v in value.split(",") if v.strip()}
    except ValueError:
        sizes = {0}
    if not sizes or min(sizes) < 1 or max(sizes) > MAX_PROFILED_BATCH:
        raise PipelineError(f"--batch-sizes must be a comma list of whole numbers from 1 to {MAX_PROFILED_BATCH}, "
                            f"e.g. 1,4,16; got {value!r}")
    return sorted(sizes | {1})


def _split_list(value: str, known: tuple[str, ...], option: str) -> list[str]:
    items = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise PipelineError(f"{option} must be 'all' or a comma list of {', '.join(known)}; got {value!r}")
    return items


def select_variants(manifest: Manifest, folder: Path, backends: str, precisions: str
                    ) -> tuple[list[tuple[str, str]], list[str]]:
    """The (backend, precision) pairs to profile, and notes on what was skipped and why."""
    from pipeline.backends import backend_module

    built = {(e.backend, e.precision) for e in manifest.engines}
    listing = ", ".join(sorted(variant_key(*v) for v in built)) or "none"
    explicit = backends != "all"
    chosen = _split_list(backends, BACKENDS, "--backends") if explicit else [b for b in BACKENDS if any(
        b == bb for bb, _ in built)]
    notes: list[str] = []
    runnable = []
    for backend in chosen:
        if not any(b == backend for b, _ in built):
            raise PipelineError(f"{folder} has no {backend} engines (built: {listing}); build them with "
                                "`make engines` or pick another --backends")
        module = backend_module(backend)
        reason = module.unavailable_reason()
        if reason is None:
            try:
                module.check_device(manifest, f"the {module.TITLE} engines in {folder}")
            except PipelineError as exc:
                reason = str(exc)
        if reason is not None:
            if explicit:
                raise PipelineError(f"cannot profile the {module.TITLE} engines here: {reason}")
            notes.append(f"{module.TITLE} engines skipped: {reason}")
            continue
        runnable.append(backend)
    variants = []
    for backend in runnable:
        have = [p for p in PRECISIONS if (backend, p) in built]
        if precisions == "all":
            variants += [(backend, p) for p in have]
            continue
        for p in _split_list(precisions, PRECISIONS, "--precisions"):
            if p not in have:
                why = [u["reason"] for u in manifest.unsupported
                       if (u.get("backend"), u.get("precision")) == (backend, p)]
                raise PipelineError(f"{folder} has no {variant_key(backend, p)} engines"
                                    f"{' (' + why[0] + ')' if why else ''}; built: {listing}. Pick one of those "
                                    "with --precisions, or rebuild with `make engines`")
            variants.append((backend, p))
    if not variants:
        raise PipelineError(f"nothing to profile in {folder} (built: {listing}; {'; '.join(notes) or 'no engines'})")
    return variants, notes


def _log(msg: str) -> None:
    print(msg, flush=True)


@cli_main
def main(argv: list[str] | None = None) -> int:
    """The profiler; SIGINT or SIGTERM stop it at once with every file whole or untouched (exit 130 or 143)."""
    args = ProfileOptions.from_args(build_parser().parse_args(argv))
    check_options(args)
    from pipeline.build.folder import model_lock

    # The build's lock: the manifest is read and rewritten under it.
    with stop_at_once(), model_lock(args.engines, "the latency profiler"):
        return profile(args)


def profile(args: ProfileOptions) -> int:
    from pipeline.backends import load_chain
    from pipeline.data.splits import split_images
    from pipeline.backends.facts import device_facts
    from pipeline.profiling import chain_exit_probs, profile_chain, torch_baseline
    from pipeline.profiling.timing import check_batch_sizes, profile_batches
    from pipeline.profiling.curves import variant_report
    from pipeline.profiling.report import write_reports
    from pipeline.profiling.tables import latency_table, now_utc, threshold_table, update_manifest

    folder = args.engines
    manifest = load_manifest(folder, verify=True)
    for written_to in (folder, args.out):
        if written_to.is_dir():
            remove_dead_temps(written_to)  # what a killed profiler left half-written
    variants, notes = select_variants(manifest, folder, args.backends, args.precisions)
    if args.checkpoint is not None and sha256_file(args.checkpoint) != manifest.model.get("checkpoint_sha256"):
        raise PipelineError(f"{args.checkpoint} is not the checkpoint the engines in {folder} were built from; "
                            "pass that one to --checkpoint, or drop --checkpoint")
    baseline = args.checkpoint is not None and torch_baseline.torch_available()
    if args.checkpoint is not None and not baseline:
        notes.append("torch is not installed here: no PyTorch eager baseline")
    plot = importlib.util.find_spec("matplotlib") is not None
    if not plot:
        notes.append("matplotlib is not installed: no latency.png (pip install matplotlib)")

    started = time.time()
    data = args.data
    val = split_images(manifest, data.source, "validation", data.cache_dir)
    test = split_images(manifest, data.source, "test", data.cache_dir) if args.split == "test" else None
    images = (test if test is not None else val)[0]
    frames = images[:args.runs + args.warmup]  # real frames for timing, cycled when fewer
    device = device_facts(sorted({b for b, _ in variants}), args.threads)
    for w in device["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    for n in notes:  # also in latency.md: what was skipped and why
        print(f"note: {n}", file=sys.stderr)
    _log(f"profiling {', '.join(variant_key(*v) for v in variants)} of {folder}: {args.runs} runs after "
         f"{args.warmup} warm-up, {args.threads} thread(s); accuracy on {args.split} ({len(images)} images)")

    report: dict[str, Any] = {
        "model": manifest.model.get("name", folder.name), "engines": str(folder), "split": args.split,
        "images": int(len(images)), "calibration_images": int(len(val[1])), "runs": args.runs,
        "warmup": args.warmup, "threads": args.threads, "device": device, "notes": notes, "variants": {}}
    measured_at = now_utc()
    sizes = batch_sizes(args.batch_sizes)
    latency: dict[str, LatencyTable] = {}
    thresholds: dict[str, ThresholdTable] = {}
    for backend, precision in variants:
        key = variant_key(backend, precision)
        t0 = time.time()
        with load_chain(manifest, folder, backend, precision, args.threads) as chain:
            check_batch_sizes(chain, sizes)  # before batch 1's timing, not after it
            profile = profile_chain(chain, frames, args.runs, args.warmup, args.threads)
            batches = profile_batches(chain, frames, sizes, args.runs, args.warmup, args.threads)
            val_probs = chain_exit_probs(chain, val[0])  # (N, K, C)
            test_set = (chain_exit_probs(chain, test[0]), test[1]) if test is not None else None
            providers = list(chain.providers)
        entry, table = variant_report(profile, (val_probs, val[1]), test_set, args.aggregate,
                                      tolerance=args.tolerance, confidence=args.confidence)
        report["variants"][key] = {"backend": backend, "precision": precision, **entry}
        latency[key] = latency_table(profile, device, providers, measured_at, batches)
        if batches:
            _log(f"{key}: per batch, stage p50 ms " + "; ".join(
                f"{b}: " + " ".join(f"{s['p50_ms']:.3f}" for s in p.stages()) for b, p in batches.items()))
        thresholds[key] = threshold_table(table, providers)
        _log(f"{key}: cumulative p50 " + " ".join(f"{ms:.3f}" for ms in entry["cumulative_p50_ms"]) +
             " ms; accuracy " + " ".join(f"{a:.2f}" for a in entry["accuracy"]) + f" % ({time.time() - t0:.1f} s)")

    if baseline and args.checkpoint is not None:
        from pipeline.models.loading import load_model

        t0 = time.time()
        model, _ = load_model(args.checkpoint)
        profile = torch_baseline.profile_torch(model, frames, args.runs, args.warmup, args.threads)
        val_probs = torch_baseline.torch_exit_probs(model, val[0])
        test_set = (torch_baseline.torch_exit_probs(model, test[0]), test[1]) if test is not None else None
        entry, _ = variant_report(profile, (val_probs, val[1]), test_set, args.aggregate,
                                  tolerance=args.tolerance, confidence=args.confidence)
        report["variants"][profile.key] = {"backend": profile.key.split("/")[0], "precision": "fp32", **entry}
        _log(f"{profile.key}: cumulative p50 " + " ".join(f"{ms:.3f}" for ms in entry["cumulative_p50_ms"]) +
             f" ms ({time.time() - t0:.1f} s)")

    written = write_reports(report, args.out, plot)
    path = update_manifest(folder, manifest, latency, thresholds)
    _log(f"wrote {', '.join(str(p) for p in written)}; updated {path} (latency and thresholds of "
         f"{', '.join(latency)}) in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
