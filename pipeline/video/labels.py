"""True labels for accuracy on a clip: the ``--labels`` file read, matched to classes, looked up per frame.

Reading is split in two so that the file is read and parsed before the app opens any output (an
output could be the same file) and before the model loads: :func:`read_labels` gives the raw
entries, :meth:`LabelFile.resolve` matches them to the model's classes once they are known. The
table counts what it matched, so the end of a run can say how many frames had a label.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pipeline.errors import PipelineError
from pipeline.video.capture import Frame

KEY_FORMS = "image file names, parent/name, stems or frame indices"


@dataclass(frozen=True)
class LabelFile:
    """The raw entries of a labels file: (where, key or None, value) in file order; CSV keeps rows."""

    path: Path
    entries: tuple[tuple[str, str | None, str], ...]
    csv: bool  # a CSV's first row may be a header, and an empty CSV is refused once classes are known

    def resolve(self, classes: Sequence[str]) -> LabelTable:
        """Match every entry to a class index; a PipelineError names the first entry that matches none."""
        by_key: dict[str, int] = {}
        per_frame: list[int] = []
        for i, (where, key, value) in enumerate(self.entries):
            try:
                label = _label_value(value, classes, where)
            except PipelineError:
                if self.csv and i == 0:  # a header such as "file,label"
                    continue
                raise
            if key is None:
                per_frame.append(label)
            else:
                by_key[key] = label
        if self.csv and not by_key and not per_frame:
            raise PipelineError(f"labels file {self.path} holds no labels")
        return LabelTable(by_key, per_frame, self.path)


class LabelTable:
    """True labels by image file (name, parent/name or stem) or by frame index."""

    def __init__(self, by_key: dict[str, int], per_frame: list[int], path: Path | None = None):
        self.by_key, self.per_frame, self.path = by_key, per_frame, path
        self.matched_keys: set[str] = set()

    def lookup(self, frame: Frame) -> int | None:
        keys: list[str] = []
        if frame.name is not None:
            p = Path(frame.name)
            keys = [frame.name, f"{p.parent.name}/{p.name}", p.name, p.stem]
        for key in keys + [str(frame.index)]:
            if key in self.by_key:
                self.matched_keys.add(key)
                return self.by_key[key]
        return self.per_frame[frame.index] if frame.index < len(self.per_frame) else None

    def coverage_warning(self, frames: int, labelled: int, source_ended: bool) -> str | None:
        """A warning when the labels and the ``frames`` run do not pair up, saying how many had one."""
        where = f"--labels {self.path}" if self.path else "the labels"
        done = f"{labelled} of {frames} frames were labelled"
        if not self.by_key and not self.per_frame:
            return f"{where}: {done}; the file holds no labels" if frames else None
        if self.by_key:
            unused = len(self.by_key) - len(self.matched_keys)
            if labelled < frames:
                return (f"{where}: {done}; {len(self.matched_keys)} of its {len(self.by_key)} keys matched a frame "
                        f"(keys are {KEY_FORMS})")
            if unused and source_ended:
                return f"{where}: {done}; {unused} of its {len(self.by_key)} keys matched no frame"
            return None
        n = len(self.per_frame)
        if labelled < frames:
            return f"{where}: {done}; the file has {n} labels, one per frame in order, for {frames} frames"
        if n > frames and source_ended:
            return f"{where}: {done}; the file has {n} labels, more than the {frames} frames of the source"
        return None


def _label_value(value: str, classes: Sequence[str], where: str) -> int:
    if value in classes:
        return list(classes).index(value)
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(classes):
        return int(value)
    raise PipelineError(f"{where}: label {value!r} is neither a class name nor an index below {len(classes)}; "
                        f"classes are {', '.join(classes[:10])}{' ...' if len(classes) > 10 else ''}")


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise PipelineError(f"labels file {path} is a folder; expected a JSON or CSV file")
    if not path.is_file():
        raise PipelineError(f"labels file {path} not found; expected JSON or CSV of file->label, "
                            "or one label per frame")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"cannot read labels file {path}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write, is dropped
    except UnicodeDecodeError as exc:
        raise PipelineError(f"labels file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                            f"{exc.start}); save it as UTF-8") from None


def read_labels(path: str | Path) -> LabelFile:
    """Read ``--labels``: JSON (a list, one label per frame, or {file or frame index: label}) or
    CSV/text (one label per line, or ``file,label`` rows; a header row is skipped)."""
    path = Path(path)
    text = _read_text(path)
    if path.suffix.lower() == ".json":
        try:
            data: Any = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting past what Python parses
            raise PipelineError(f"labels file {path} is not valid JSON: {exc}") from None
        if isinstance(data, list):
            return LabelFile(path, tuple((f"{path} item {i}", None, str(v).strip()) for i, v in enumerate(data)),
                             csv=False)
        if isinstance(data, dict):
            return LabelFile(path, tuple((f"{path} key {k!r}", str(k), str(v).strip()) for k, v in data.items()),
                             csv=False)
        raise PipelineError(f"labels file {path} should hold a JSON list or object; found {type(data).__name__}")
    lines = list(csv.reader(text.splitlines()))
    blank = [n for n, r in enumerate(lines, 1) if not (r and r[0].strip())]
    rows = [r for r in lines if r and r[0].strip() and not r[0].lstrip().startswith("#")]
    last = max((n for n, r in enumerate(lines, 1) if r and r[0].strip()), default=0)
    inner = [n for n in blank if n < last]
    if inner and any(len(r) == 1 for r in rows):  # one label a line: a line is a frame, a skipped one shifts the rest
        raise PipelineError(f"labels file {path} has a blank line (line {inner[0]}) among its one-label-a-line "
                            "labels: every line is the next frame's label, so the labels after it would land on the "
                            "wrong frames; remove the blank line or write that frame's label")
    entries = []
    for i, row in enumerate(rows):
        cells = [c.strip() for c in row]
        where = f"{path} row {i + 1}"
        entries.append((where, None, cells[0]) if len(cells) == 1 else (where, cells[0], cells[1]))
    return LabelFile(path, tuple(entries), csv=True)


def load_labels(path: str | Path, classes: Sequence[str]) -> LabelTable:
    """:func:`read_labels` then :meth:`LabelFile.resolve`, for callers that know the classes already."""
    return read_labels(path).resolve(classes)
