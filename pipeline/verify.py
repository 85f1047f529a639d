"""Every built engine checked against a reference on the machine at hand: ``make verify``.

    python -m pipeline.verify --engines engines/ranet --data DATA
    python -m pipeline.verify --engines engines/ranet --checkpoint models/ranet_cifar10.pt \\
        --images 256 --tolerance int8:agreement=97 --json reports/verify.json

For every backend and precision built in the folder that runs here, the stages run on ``--images``
validation images (a seeded subset), batch 1 as the runtime runs them, and each exit's logits are
compared with the reference's: the PyTorch model of ``--checkpoint`` where torch is installed,
else ONNX Runtime FP32. Per variant and stage: the largest and the mean absolute difference of the
logits and the top-1 agreement. Each precision has stated tolerances (:data:`TOLERANCES`, changed
with ``--tolerance``); the exit code is 1 when one is exceeded, 0 when all hold, 2 for a bad
request. The output (versions, device, power mode, the table) is meant to be pasted into a bug
report, as ``polygraphy run --trt --onnxrt`` output is.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.backends import REFERENCE_BACKEND, backend_module, package_versions
from pipeline.data.options import DataOptions, add_data_options
from pipeline.device import check_threads
from pipeline.errors import PipelineError, cli_main
from pipeline.files import check_output, write_output
from pipeline.manifest import Manifest, load_manifest, sha256_file, variant_key
from pipeline.names import PRECISIONS

REFERENCE_FALLBACK = (REFERENCE_BACKEND, "fp32")  # the reference without a PyTorch model: the registry's


@dataclass(frozen=True)
class Tolerance:
    """The most a variant's logits may differ from the reference's at any exit."""

    max_abs: float  # largest |difference| of one logit
    mean_abs: float  # mean |difference| over images and classes
    agreement: float  # least top-1 agreement, %


# FP32 engines reorder sums (and TensorRT may run TF32); FP16 rounds every activation to 11 bits;
# INT8 quantises them to 8. The figures the shipped model meets are in the README.
TOLERANCES = {"fp32": Tolerance(1e-2, 1e-3, 99.0), "fp16": Tolerance(0.25, 0.05, 98.0),
              "int8": Tolerance(6.0, 0.3, 95.0)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="anytime verify", description=__doc__.split("\n")[0])
    ap.add_argument("--engines", type=Path, required=True, help="a built model folder, e.g. engines/ranet")
    add_data_options(ap)
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="the engines' checkpoint: the PyTorch model becomes the reference (where torch is installed)")
    ap.add_argument("--images", type=int, default=256, help="validation images to run (a seeded subset)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--tolerance", action="append", default=[], metavar="PRECISION:METRIC=VALUE",
                    help="change one tolerance, e.g. int8:agreement=95 or fp16:max_abs=0.5 (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    return ap


def parse_tolerances(items: list[str]) -> dict[str, Tolerance]:
    """:data:`TOLERANCES` with each ``PRECISION:METRIC=VALUE`` applied; a PipelineError for a malformed one."""
    out = dict(TOLERANCES)
    metrics = list(Tolerance.__dataclass_fields__)
    for item in items:
        head, _, value = item.partition("=")
        precision, _, metric = head.partition(":")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if precision not in PRECISIONS or metric not in metrics or not np.isfinite(number) or number < 0:
            raise PipelineError(f"--tolerance must be PRECISION:METRIC=VALUE with PRECISION one of "
                                f"{', '.join(PRECISIONS)}, METRIC one of {', '.join(metrics)} and VALUE a number "
                                f">= 0; got {item!r}")
        out[precision] = replace(out[precision], **{metric: number})
    return out


def compare(logits: np.ndarray, ref: np.ndarray) -> list[dict[str, float]]:
    """(N, K, C) against (N, K, C): per exit, the max and mean |difference| and the top-1 agreement in %."""
    diff = np.abs(logits.astype(np.float64) - ref.astype(np.float64))  # (N, K, C)
    agree = (logits.argmax(-1) == ref.argmax(-1)).mean(0) * 100.0  # (K,)
    return [{"max_abs": float(diff[:, k].max()), "mean_abs": float(diff[:, k].mean()), "agreement": float(agree[k])}
            for k in range(ref.shape[1])]


def exceeded(stats: dict[str, float], tol: Tolerance) -> list[str]:
    """What in ``stats`` is outside ``tol``, in words."""
    out = [f"{m.replace('_', ' ')} difference {stats[m]:.3g} > {getattr(tol, m):.3g}" for m in ("max_abs", "mean_abs")
           if not stats[m] <= getattr(tol, m)]  # NaN is outside every tolerance
    if stats["agreement"] < tol.agreement:
        out.append(f"top-1 agreement {stats['agreement']:.2f}% < {tol.agreement:.2f}%")
    return out


def torch_logits(checkpoint: Path, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, K, C) float32 logits of every exit of the checkpoint's PyTorch model."""
    import torch

    from pipeline.models.loading import load_model

    model, _ = load_model(checkpoint)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            out.append(torch.stack(model(torch.from_numpy(images[i:i + batch])), dim=1).float().numpy())  # (B, K, C)
    return np.concatenate(out)


def variants_here(manifest: Manifest, folder: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The built (backend, precision) pairs that run here, and notes on those that do not."""
    from pipeline.backends import BACKENDS, backend_module, why_unusable

    built = {(e.backend, e.precision) for e in manifest.engines}
    notes, runnable = [], []
    for backend in BACKENDS:
        reason = why_unusable(manifest, backend)
        if reason:
            notes.append(f"{backend_module(backend).TITLE} engines in {folder} not checked: {reason}")
        elif reason is None:
            have = [p for p in PRECISIONS if (backend, p) in built
                    and len(manifest.files(backend=backend, precision=p, engines=True)) == manifest.num_exits]
            runnable += [(backend, p) for p in have]
    return runnable, notes


def versions() -> dict[str, str | None]:
    """This package's, Python's, numpy's, every backend's packages' and torch's versions (None: not installed)."""
    from pipeline import package_version

    return {"anytime-pipeline": package_version("anytime-pipeline"), "python": platform.python_version(),
            "numpy": np.__version__, **package_versions(), "torch": package_version("torch")}


def fallback_title() -> str:
    """The reference without a PyTorch model, in words (e.g. "ONNX Runtime FP32")."""
    backend, precision = REFERENCE_FALLBACK
    return f"{backend_module(backend).TITLE} {precision.upper()}"


def render(report: dict[str, Any]) -> str:
    """The report as text: a header, a Markdown table, notes and the verdict."""
    v = report["versions"]
    lines = [f"verify {report['engines']}: {report['images']} validation images, reference {report['reference']}",
             "versions: " + ", ".join(f"{k} {val or 'not installed'}" for k, val in v.items()),
             f"device: {report['device']}", f"power mode: {report['power_mode']}", "",
             "| variant | exit | max abs diff | mean abs diff | top-1 agreement | tolerance (max / mean / agreement) | "
             "result |", "|---|---|---|---|---|---|---|"]
    for key, entry in report["variants"].items():
        tol = entry["tolerance"]
        for k, s in enumerate(entry["exits"], start=1):
            verdict = "; ".join(s["exceeded"]) or "ok"
            lines.append(f"| {key} | {k} | {s['max_abs']:.3g} | {s['mean_abs']:.3g} | {s['agreement']:.2f}% | "
                         f"{tol['max_abs']:.3g} / {tol['mean_abs']:.3g} / {tol['agreement']:.1f}% | {verdict} |")
    lines += [""] + [f"note: {n}" for n in report["notes"]]
    failed = [f"{key} exit {k}" for key, e in report["variants"].items()
              for k, s in enumerate(e["exits"], start=1) if s["exceeded"]]
    lines.append(f"result: {'FAIL: outside tolerance at ' + ', '.join(failed) if failed else 'PASS'}")
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tolerances = parse_tolerances(args.tolerance)
    if args.images < 1:
        raise PipelineError(f"--images must be at least 1, got {args.images}")
    check_threads(args.threads)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise PipelineError(f"--checkpoint {args.checkpoint} does not exist; pass the checkpoint the engines were "
                            f"built from, or drop --checkpoint to compare with {fallback_title()}")
    inputs = [("--engines", args.engines), ("--data", Path(args.data) if args.data else None),
              ("--checkpoint", args.checkpoint)]
    if args.json is not None:
        check_output(args.json, "--json", inputs)
    from pipeline.backends import exit_logits, load_chain
    from pipeline.data.splits import split_images
    from pipeline.backends.facts import describe_device, device_facts
    from pipeline.profiling.torch_baseline import torch_available

    folder = args.engines
    manifest = load_manifest(folder, verify=True)
    runnable, notes = variants_here(manifest, folder)
    if args.checkpoint is not None and sha256_file(args.checkpoint) != manifest.model.get("checkpoint_sha256"):
        raise PipelineError(f"{args.checkpoint} is not the checkpoint the engines in {folder} were built from; "
                            "pass that one to --checkpoint, or drop --checkpoint")
    use_torch = args.checkpoint is not None and torch_available()
    if args.checkpoint is not None and not use_torch:
        notes.append(f"torch is not installed here: the reference is {fallback_title()}, not the PyTorch model")
    if not use_torch and REFERENCE_FALLBACK not in runnable:
        raise PipelineError(f"{folder} has no {variant_key(*REFERENCE_FALLBACK)} engines to compare with; rebuild "
                            "with `make engines`, or pass --checkpoint where torch is installed")
    data = DataOptions.from_args(args)
    images, _ = split_images(manifest, data.source, "validation", data.cache_dir, limit=args.images)
    facts = device_facts(sorted({b for b, _ in runnable}), args.threads)
    jetson = facts.get("jetson") or {}
    report: dict[str, Any] = {
        "engines": str(folder), "images": int(len(images)), "versions": versions(), "device": describe_device(facts),
        "power_mode": jetson.get("power_mode", "not a Jetson") + (f"; {', '.join(facts['warnings'])}"
                                                                    if facts["warnings"] else ""),
        "reference": "pytorch/fp32" if use_torch else variant_key(*REFERENCE_FALLBACK), "notes": notes,
        "variants": {}}
    results: dict[tuple[str, str], np.ndarray] = {}
    for backend, precision in runnable:
        with load_chain(manifest, folder, backend, precision, args.threads) as chain:
            results[(backend, precision)] = exit_logits(chain, images)  # (N, K, C)
    ref = torch_logits(args.checkpoint, images) if use_torch else results.pop(REFERENCE_FALLBACK)
    for (backend, precision), logits in results.items():
        tol = tolerances[precision]
        exits = [{**s, "exceeded": exceeded(s, tol)} for s in compare(logits, ref)]
        report["variants"][variant_key(backend, precision)] = {"tolerance": asdict(tol), "exits": exits}
    if not report["variants"]:
        raise PipelineError(f"nothing to compare in {folder}: only the reference runs here ({'; '.join(notes)})")
    text = render(report)
    print(text)
    if args.json is not None:
        write_output(args.json, json.dumps(report, indent=1) + "\n", "--json", inputs)
    return 1 if text.rsplit("\n", 1)[-1].startswith("result: FAIL") else 0


if __name__ == "__main__":
    sys.exit(main())
