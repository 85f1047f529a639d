"""What a run leaves behind: one JSON line per frame, and a summary at the end.

The log is written line by line, each line whole, so a run that is killed or meets a full disk
still leaves every frame it finished, and no half line. The summary is computed from the same
records, so :meth:`RunSummary.from_log` gives the same numbers from a log file later.

Record fields: time (unix s), frame (source index), file (image sources), class, label,
confidence, exit, num_exits, stage_ms (per stage run), cascade_ms, frame_ms (the whole frame on
our side: capture, conversion, cascade, overlay, writing; waiting for a slower camera or for the
pace is not included), budget_ms, cascade_budget_ms (what the cascade was given once the rest of
the frame's cost was set aside), met (frame_ms <= budget_ms; null without a budget), stopped_by,
dropped (so far), true_label and correct (when labels are known, else null). With the temporal
cascade (``pipeline.temporal``) also: reused (no stage ran: the last answer again), why (why it
was reused or ran: "unchanged", "age", "doubtful", "changed", "cut", "first frame"), stages (how many ran),
change (grey levels to the last frame classified), age (frames since the answer's own frame),
shown and shown_confidence (the smoothed answer the overlay draws). The summary adds the reuse
rate and the flips (frames whose answer differs from the frame before; of the shown answer too).
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pipeline.errors import PipelineError, write_failure
from pipeline.temporal.cascade import FrameResult, TemporalResult, answer_of
from pipeline.video.outputs import check_output


def frame_record(index: int, result: FrameResult, *, frame_ms: float, budget_ms: float | None = None,
                 cascade_budget_ms: float | None = None, dropped: int = 0, true_label: int | None = None,
                 name: str | None = None, now: float | None = None) -> dict[str, Any]:
    """One frame's log record, from the plain or the temporal cascade's result."""
    answer = answer_of(result)
    rec: dict[str, Any] = {
        "time": round(time.time() if now is None else now, 3),
        "frame": index,
    }
    if name is not None:
        rec["file"] = name
    rec.update({
        "class": answer.class_name,
        "label": int(answer.label),
        "confidence": round(float(answer.confidence), 4),
        "exit": int(answer.exit),
        "num_exits": int(answer.num_exits),
        "stage_ms": [round(float(ms), 3) for ms in result.stage_ms],
        "cascade_ms": round(float(result.total_ms), 3),
        "frame_ms": round(frame_ms, 3),
        "budget_ms": None if budget_ms is None else round(budget_ms, 3),
        "cascade_budget_ms": None if cascade_budget_ms is None else round(cascade_budget_ms, 3),
        "met": None if budget_ms is None else bool(frame_ms <= budget_ms),
        "stopped_by": result.stopped_by,
        "dropped": int(dropped),
        "true_label": true_label,
        "correct": None if true_label is None else bool(int(answer.label) == true_label),
    })
    if isinstance(result, TemporalResult):  # the temporal cascade's account of the frame
        change = result.change
        rec.update({"reused": result.reused, "why": result.why, "stages": result.stages,
                    "change": None if change is None else round(float(change), 3), "age": int(result.age),
                    "shown": result.shown_class, "shown_confidence": round(float(result.shown_confidence), 4)})
    return rec


class FrameLog:
    """Writes records as JSON lines to ``path``, each line written whole before the next.

    The file is unbuffered: every line reaches the operating system in one write, so a killed
    run leaves every finished frame. A write that fails part-way (a full disk, a file size
    limit) is cut back to the last whole line and raised as a PipelineError that names the
    cause. ``open_file`` opens the file for binary writing (tests pass a failing double). The file
    is opened at the first record: a run that gives no frame (an empty source) leaves an earlier log
    at ``path`` as it was.
    """

    def __init__(self, path: str | Path, open_file: Callable[[Path], BinaryIO] | None = None):
        self.path = Path(path)
        check_output(self.path, "the log")
        self._open_file = open_file or _open_unbuffered
        self._file: BinaryIO | None = None
        self._size = 0  # bytes of whole lines on disk
        self.lines = 0

    def _opened(self) -> BinaryIO:
        if self._file is None:
            check_output(self.path, "the log")  # the path may have changed since the start
            try:
                self._file = self._open_file(self.path)
            except OSError as exc:
                raise write_failure(exc, "the log", self.path) from exc
        return self._file

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        file = self._opened()
        data = memoryview(line)
        try:
            while data:
                n = file.write(data)
                if not n:  # no progress and no error: treat it as the full disk it nearly always is
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                data = data[n:]
        except OSError as exc:
            try:
                file.truncate(self._size)  # drop the part of the line that made it
            except OSError:
                pass
            raise write_failure(exc, "the log", self.path) from exc
        self._size += len(line)  # the whole encoded line
        self.lines += 1

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()

    def __enter__(self) -> FrameLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_unbuffered(path: Path) -> BinaryIO:
    return open(path, "wb", buffering=0)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "mean": None, "max": None}
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3),
            "mean": round(float(arr.mean()), 3), "max": round(float(arr.max()), 3)}


class RunSummary:
    """Accumulates frame records; :meth:`finish` gives the run's numbers, :func:`format_summary` the text."""

    def __init__(self, num_exits: int, budget_ms: float | None = None, source: str = ""):
        self.num_exits, self.budget_ms, self.source = num_exits, budget_ms, source
        self.exits = [0] * num_exits
        self.frame_ms: list[float] = []
        self.cascade_ms: list[float] = []
        self.misses = 0
        self.labelled = self.correct = 0
        self.dropped = 0
        self.reused = 0
        self.temporal = False  # whether the records came from the temporal cascade
        self.flips = self.shown_flips = 0
        self._last: tuple[str, str] | None = None  # (class, shown class) of the frame before

    @property
    def frames(self) -> int:
        return len(self.frame_ms)

    def add(self, rec: dict[str, Any]) -> None:
        self.temporal = self.temporal or "reused" in rec
        if rec.get("reused"):
            self.reused += 1
        else:
            self.exits[rec["exit"] - 1] += 1
        shown = rec.get("shown", rec["class"])
        if self._last is not None:
            self.flips += rec["class"] != self._last[0]
            self.shown_flips += shown != self._last[1]
        self._last = (rec["class"], shown)
        self.frame_ms.append(rec["frame_ms"])
        self.cascade_ms.append(rec["cascade_ms"])
        self.misses += rec["met"] is False
        if rec.get("true_label") is not None:
            self.labelled += 1
            self.correct += bool(rec["correct"])
        self.dropped = max(self.dropped, rec["dropped"])

    def finish(self, wall_s: float | None = None, dropped: int | None = None,
               stopped: str = "end of source") -> dict[str, Any]:
        """The summary as a dict; ``wall_s`` from the first read to the last frame's end, for FPS."""
        n = self.frames
        dropped = self.dropped if dropped is None else dropped
        return {
            "source": self.source,
            "frames": n,
            "wall_s": None if wall_s is None else round(wall_s, 3),
            "fps": round(n / wall_s, 2) if wall_s and n else None,
            "exits": {k + 1: c for k, c in enumerate(self.exits)},
            "temporal": self.temporal,
            "reused": self.reused,
            "reuse_rate": round(self.reused / n, 4) if n else None,
            "flips": self.flips,
            "shown_flips": self.shown_flips,
            "budget_ms": self.budget_ms,
            "deadline_misses": self.misses if self.budget_ms is not None else None,
            "frame_ms": _percentiles(self.frame_ms),
            "cascade_ms": _percentiles(self.cascade_ms),
            "dropped": dropped,
            "labelled": self.labelled,
            "accuracy": round(100.0 * self.correct / self.labelled, 2) if self.labelled else None,
            "stopped": stopped,
        }

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], source: str = "") -> RunSummary:
        records = list(records)
        if not records:
            raise PipelineError("no frame records to summarise")
        summary = cls(records[0]["num_exits"], records[0]["budget_ms"], source)
        for rec in records:
            summary.add(rec)
        return summary

    @classmethod
    def from_log(cls, path: str | Path) -> RunSummary:
        with open(path, encoding="utf-8") as f:
            return cls.from_records((json.loads(line) for line in f if line.strip()), source=str(path))


def format_summary(s: dict[str, Any]) -> str:
    """The summary as the few lines printed at the end of a run."""
    n = s["frames"]
    head = f"{s['source']}: " if s["source"] else ""
    rate = f" in {s['wall_s']:.2f} s ({s['fps']:.1f} FPS)" if s["fps"] else ""
    lines = [f"{head}{n} frames{rate}; stopped: {s['stopped']}"]
    if n:
        lines.append("exits: " + "  ".join(f"{k}: {c} ({100 * c / n:.1f}%)" for k, c in s["exits"].items())
                     + (f"  reused: {s['reused']} ({100 * s['reuse_rate']:.1f}%)" if s["temporal"] else ""))
    if s["budget_ms"] is None:
        lines.append("budget: none (each frame ran until the exit policy stopped it)")
    else:
        miss = s["deadline_misses"]
        share = f" ({100 * miss / n:.1f}%)" if n else ""
        lines.append(f"budget {s['budget_ms']:.1f} ms per frame: {miss} missed{share}")
    if n:
        f, c = s["frame_ms"], s["cascade_ms"]
        lines.append(f"frame ms p50 {f['p50']:.2f} p99 {f['p99']:.2f} max {f['max']:.2f} | "
                     f"cascade ms p50 {c['p50']:.2f} p99 {c['p99']:.2f}")
    if n and s["temporal"]:
        lines.append(f"temporal: {100 * s['reuse_rate']:.1f}% of frames reused, cascade ms per frame mean "
                     f"{s['cascade_ms']['mean']:.3f} p99 {s['cascade_ms']['p99']:.3f}; answer flips {s['flips']}, "
                     f"shown {s['shown_flips']}")
    lines.append(f"dropped frames: {s['dropped']}")
    if s["accuracy"] is not None:
        correct = round(s["accuracy"] * s["labelled"] / 100)
        lines.append(f"accuracy: {s['accuracy']:.1f}% ({correct}/{s['labelled']} labelled frames)")
    return "\n".join(lines)
