"""The profiler's report as Markdown (one table per variant) and as a plot of both curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.backends.facts import describe_device
from pipeline.files import atomic_write, atomic_write_text
from pipeline.profiling.torch_baseline import TORCH_EAGER
from pipeline.thresholds import AGGREGATE_NAMES


def format_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: device, settings, and one table per variant."""
    lines = [f"# Latency profile: {report['model']}", "",
             f"- device: {describe_device(report['device'])}",
             f"- {report['runs']} timed runs of the full chain after {report['warmup']} warm-up runs, batch 1, "
             f"{report['threads']} intra-op thread(s)",
             f"- accuracy on the {report['split']} split ({report['images']} images); thresholds calibrated on the "
             f"validation split ({report['calibration_images']} images)"]
    lines += [f"- note: {n}" for n in report.get("notes", [])]
    lines += [f"- **warning**: {w}" for w in report["device"].get("warnings", [])]
    for key, v in report["variants"].items():
        lines += ["", f"## {key}", "", f"clock: {v['clock']}", "",
                  "| stage | mean (ms) | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | cumulative p50 to exit (ms) "
                  "| exit's own accuracy (%) | cascade's answer at exit (%) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for k, (s, cum, acc, ans) in enumerate(zip(v["stages"], v["cumulative_p50_ms"], v["accuracy"],
                                                   v["answer_accuracy"]), start=1):
            lines.append(f"| {k} | {s['mean_ms']:.3f} | {s['p50_ms']:.3f} | {s['p90_ms']:.3f} | {s['p99_ms']:.3f} "
                         f"| {s['max_ms']:.3f} | {cum:.3f} | {acc:.2f} | {ans:.2f} |")
        if v.get("aggregate") == "mean":
            lines += ["", "The cascade's answer at exit k is the mean softmax of exits 1..k."]
        choice = v.get("aggregate_chosen_from")
        if choice:
            lines += ["", "Chosen on validation (`--aggregate auto`), the default thresholds' mean cost and accuracy: "
                      + "; ".join(f"{AGGREGATE_NAMES[a]} "
                                  f"{c['expected_cost_ms']:.3f} ms, {c['expected_accuracy']:.2f}%"
                                  for a, c in choice.items()) + "."]
        default = v.get("default_policy")
        if default:
            lines += ["", f"Cascade, default thresholds (from validation): {default['accuracy']:.2f}% at a mean "
                          f"{default['cost_ms']:.3f} ms per frame on the {report['split']} split; the full network: "
                          f"{v['accuracy'][-1]:.2f}% at {v['cumulative_p50_ms'][-1]:.3f} ms (p50)."]
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Anytime and budgeted curves of every variant, side by side, as a PNG (matplotlib's Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax_any, ax_bud = fig.subplots(1, 2)
    for key, v in report["variants"].items():
        style = "--" if key.startswith(TORCH_EAGER) else "-"
        xs = [p["latency_ms"] for p in v["anytime"]]
        line, = ax_any.plot(xs, [p["accuracy"] for p in v["anytime"]], style, marker="o", label=key)
        for p in v["anytime"]:
            ax_any.annotate(str(p["exit"]), (p["latency_ms"], p["accuracy"]), textcoords="offset points",
                            xytext=(3, 3), fontsize=7)
        if v.get("budgeted"):
            pts = sorted(v["budgeted"], key=lambda p: p["cost_ms"])
            ax_bud.plot([p["cost_ms"] for p in pts], [p["accuracy"] for p in pts], style, marker=".",
                        color=line.get_color(), label=key)
    split = report["split"]
    ax_any.set(title=f"anytime: accuracy of the answer at exit k ({split})",
               xlabel="cumulative p50 latency to exit (ms)",
               ylabel="top-1 accuracy (%)")
    ax_bud.set(title=f"budgeted: thresholds from validation ({split})", xlabel="mean latency per frame (ms)",
               ylabel="top-1 accuracy (%)")
    for ax in (ax_any, ax_bud):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png"))  # whole or not at all, like every output
    return path


def write_reports(report: dict[str, Any], out: Path, plot: bool = True) -> list[Path]:
    """``latency.json``, ``latency.md`` and (with ``plot``) ``latency.png`` under ``out``, each written whole."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "latency.json", out / "latency.md"]
    atomic_write_text(written[0], json.dumps(report, indent=2) + "\n")
    atomic_write_text(written[1], format_markdown(report))
    if plot:
        written.append(plot_report(report, out / "latency.png"))
    return written
