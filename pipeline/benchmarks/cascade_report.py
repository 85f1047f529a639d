"""The cascade benchmarks' figures as the Markdown table the README quotes."""

from __future__ import annotations

from typing import Any

from pipeline.benchmarks.cascade_runs import DEADLINE_SLACK_MS, MATCH_POINTS
from pipeline.thresholds import AGGREGATE_NAMES
from pipeline.thresholds.limits import times_text


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}%"


def limits_line(b1: dict[str, Any]) -> str:
    """What bounds benchmark 1 (pipeline.thresholds.limits), one limit lifted at a time; n/a where unmet."""
    lim = b1["limits"]
    fractions = lim["hindsight_exit_fractions"]
    exits = "" if fractions is None else ", exits " + " / ".join(f"{f:.0%}" for f in fractions)
    return (f"What bounds benchmark 1 on these test frames, at the profile's p50 stage costs, within {MATCH_POINTS} "
            f"points of this precision's last exit ({_pct(lim['last_exit_accuracy'])}): stage 1 alone "
            f"{times_text(lim['first_stage'])}; a rule that knew the labels {times_text(lim['perfect_rule'])}; the best "
            f"thresholds of this exit rule found in hindsight {times_text(lim['hindsight'])} "
            f"({_pct(lim['hindsight_accuracy'])}{exits}); "
            + (f"a gate learnt on validation from the exits' softmax outputs, its thresholds in hindsight "
               f"{times_text(lim['learned_gate'])} ({_pct(lim['learned_gate_accuracy'])}); "
               if "learned_gate" in lim else "")
            + f"thresholds from validation (measured above, mean wall times) {b1['ratio_mean']:.2f}x.")


def format_table(results: dict[str, Any]) -> str:
    """The four figures as one Markdown table, then benchmark 3 per stage."""
    b1, b2, b3, b4 = (results[k] for k in ("cascade_vs_full", "ort_vs_torch", "int8_vs_fp32", "deadline"))
    rows = [f"| 1 | cascade vs full network, {b1['variant']}, thresholds from validation, answers: "
            f"{AGGREGATE_NAMES[b1['aggregate']]} | "
            f"**{b1['ratio_mean']:.2f}x** lower mean latency per frame | cascade {b1['cascade_mean_ms']:.3f} ms, "
            f"{_pct(b1['cascade_accuracy'])}; full network {b1['full_mean_ms']:.3f} ms, {_pct(b1['full_accuracy'])}; "
            + (f"FP32 full network {b1['fp32_full_mean_ms']:.3f} ms ({b1['ratio_mean_vs_fp32_full']:.2f}x the "
               "cascade); " if b1.get("fp32_full_mean_ms") is not None else "") +
            f"last exit FP32 {_pct(b1['fp32_last_exit_accuracy'])}; matched (<= {MATCH_POINTS} points below): "
            f"{'n/a' if b1['matched'] is None else 'yes' if b1['matched'] else 'NO'}; exits "
            + " / ".join(f"{f:.0%}" for f in b1["exit_fractions"]) + " |"]
    if "skipped" in b2:
        rows.append(f"| 2 | ONNX Runtime vs PyTorch eager, full network, batch 1 | not measured | {b2['skipped']} |")
    else:
        rows.append(f"| 2 | ONNX Runtime vs PyTorch eager, full network, batch 1 | **{b2['ratio_p50']:.2f}x** (p50), "
                    f"{b2['ratio_mean']:.2f}x (mean) | ONNX Runtime p50 {b2['onnxruntime']['p50_ms']:.3f} ms, mean "
                    f"{b2['onnxruntime']['mean_ms']:.3f} ms; PyTorch p50 {b2['pytorch_eager']['p50_ms']:.3f} ms, mean "
                    f"{b2['pytorch_eager']['mean_ms']:.3f} ms; {b2['threads']} thread(s) |")
    if "skipped" in b3:
        rows.append(f"| 3 | INT8 vs FP32 per stage, ONNX Runtime | not measured | {b3['skipped']} |")
    else:
        rows.append("| 3 | INT8 vs FP32 per stage, ONNX Runtime | " +
                    ", ".join(f"{s['ratio_p50']:.2f}x" for s in b3["stages"]) + " (p50, stage 1..K); accuracy "
                    + ", ".join(f"{s['accuracy_diff']:+.2f}" for s in b3["stages"]) +
                    f" points | full network {b3['full_ratio_p50']:.2f}x (p50) |")
    rows.append(f"| 4 | deadline adherence, {b4['variant']}, budget {b4['budget_ms']:.3f} ms (half the full p50) | "
                f"**{b4['within_budget_plus_1ms']:.1%}** within budget + {DEADLINE_SLACK_MS:g} ms; accuracy "
                f"{_pct(b4['accuracy'])} | {b4['within_budget']:.1%} within the budget itself; p99 {b4['p99_ms']:.3f} "
                f"ms, max {b4['max_ms']:.3f} ms; exits " + " / ".join(f"{f:.0%}" for f in b4["exit_fractions"]) + " |")
    lines = [f"Device: {results['device_line']}", f"Test frames: {b1['frames']}; validation frames for the "
             f"thresholds: {b1['calibration_frames']}; {results['runs']} timed runs per latency profile.", "",
             "| # | benchmark | figure | details |", "|---|---|---|---|", *rows, "", limits_line(b1)]
    if "skipped" not in b3:
        lines += ["", "| stage | FP32 p50 (ms) | INT8 p50 (ms) | ratio | FP32 acc. (%) | INT8 acc. (%) "
                  "| diff (points) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {s['stage']} | {s['fp32_p50_ms']:.3f} | {s['int8_p50_ms']:.3f} | {s['ratio_p50']:.2f}x | "
                  f"{s['fp32_accuracy']:.2f} | {s['int8_accuracy']:.2f} | {s['accuracy_diff']:+.2f} |"
                  for s in b3["stages"]]
    return "\n".join(lines) + "\n"
