"""A fleet run's outcomes, one per frame shown, and their summary: throughput, latency, deadlines, exits, accuracy.

Every frame a camera shows ends one way: answered within its deadline ("in budget"), answered
after it ("late"), or not answered ("no answer": the request timed out at the deadline or the
server dropped it from its queue, "timeout"; the client predicted it would come back late and
did not send it, "not sent"; the server was unreachable or answered an error; or the camera was
still busy with an earlier frame when this one's deadline passed, "skipped"). A deadline miss is
a late frame or one without an answer. Latency counts from the frame's arrival (its tick), so
waiting behind a slow frame counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

IN_BUDGET, LATE, NO_ANSWER = "in budget", "late", "no answer"


@dataclass
class Outcome:
    camera: int
    index: int  # the frame's tick
    status: str  # IN_BUDGET, LATE or NO_ANSWER
    latency_ms: float | None  # arrival to answer; None without one
    truth: int = -1  # the frame's label, -1 where unknown
    label: int = -1
    exit: int = 0
    why: str = ""  # without an answer: "timeout", "not sent", "unreachable", "error", "skipped"


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def summarize(outcomes: Sequence[Outcome], seconds: float, cameras: int, fps: float, budget_ms: float | None,
              num_exits: int) -> dict[str, Any]:
    """The run's figures (JSON-ready)."""
    answered = [o for o in outcomes if o.status != NO_ANSWER]
    lat = [o.latency_ms for o in answered if o.latency_ms is not None]
    labelled = [o for o in outcomes if o.truth >= 0]
    labelled_answered = [o for o in labelled if o.status != NO_ANSWER]
    status = Counter(o.status for o in outcomes)
    why = Counter(o.why for o in outcomes if o.status == NO_ANSWER)
    exits = Counter(o.exit for o in answered)
    n = len(outcomes)
    return {
        "cameras": cameras, "fps": fps, "seconds": seconds, "budget_ms": budget_ms, "frames": n,
        "in_budget": status[IN_BUDGET], "late": status[LATE], "no_answer": status[NO_ANSWER],
        "no_answer_why": dict(sorted(why.items())),
        "deadline_misses": status[LATE] + status[NO_ANSWER],
        "miss_rate": (status[LATE] + status[NO_ANSWER]) / n if n else None,
        "answers_per_s": len(answered) / seconds if seconds > 0 else None,
        "in_budget_per_s": status[IN_BUDGET] / seconds if seconds > 0 else None,
        "offered_per_s": cameras * fps,
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat) if lat else None,
        "exits": {str(k): exits.get(k, 0) for k in range(1, num_exits + 1)},
        "mean_exit": float(np.mean([o.exit for o in answered])) if answered else None,
        "accuracy_answered": (100.0 * sum(o.label == o.truth for o in labelled_answered) / len(labelled_answered)
                              if labelled_answered else None),
        "accuracy_all": (100.0 * sum(o.status != NO_ANSWER and o.label == o.truth for o in labelled) / len(labelled)
                         if labelled else None),
    }


def _f(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def format_summary(s: dict[str, Any], title: str = "") -> str:
    """A few lines a person reads at the end of a run."""
    hist = " ".join(f"{k}:{v}" for k, v in s["exits"].items())
    why = ", ".join(f"{k} {v}" for k, v in s["no_answer_why"].items())
    lines = [
        (f"{title}: " if title else "") + f"{s['cameras']} camera(s) at {s['fps']:g} fps for {s['seconds']:.1f} s, "
        f"budget {_f(s['budget_ms'])} ms per frame: {s['frames']} frames",
        f"throughput {_f(s['answers_per_s'])} answers/s ({_f(s['in_budget_per_s'])} in budget) of "
        f"{s['offered_per_s']:.0f} frames/s offered",
        f"latency p50 {_f(s['p50_ms'], '.2f')} ms, p99 {_f(s['p99_ms'], '.2f')} ms, max {_f(s['max_ms'], '.2f')} ms "
        "(arrival to answer)",
        f"deadline misses {s['deadline_misses']} "
        f"({_f(100 * s['miss_rate'] if s['miss_rate'] is not None else None)}%): "
        f"{s['late']} late, {s['no_answer']} no answer in budget" + (f" ({why})" if why else ""),
        f"exits {hist} (mean {_f(s['mean_exit'], '.2f')})",
    ]
    if s["accuracy_answered"] is not None:
        lines.append(f"accuracy {s['accuracy_answered']:.2f}% of answered frames, {s['accuracy_all']:.2f}% of all "
                     "(no answer counted wrong)")
    return "\n".join(lines) + "\n"
