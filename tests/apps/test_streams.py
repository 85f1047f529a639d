"""`anytime streams` end to end on the tiny built model: two generated clips, one log per stream."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.apps.streams import main, parse_stream
from pipeline.errors import PipelineError
from tests.helpers import tiny_build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return tiny_build(tmp_path_factory)


def _clip(path, frames: int, seed: int) -> None:
    from pipeline.video.clip import write_video

    rng = np.random.default_rng(seed)
    write_video((rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(frames)), path)


def test_two_clips_each_get_their_own_log_and_summary(built, tmp_path, capsys):
    _clip(tmp_path / "a.avi", 6, 1)
    _clip(tmp_path / "b.avi", 4, 2)
    labels = tmp_path / "a_labels.txt"
    labels.write_text("\n".join(["c3"] * 6) + "\n")
    code = main(["--engines", str(built.folder), "--fps", "30", "--frame-by-frame",
                 "--stream", f"source={tmp_path / 'a.avi'},labels={labels},log={tmp_path / 'a.jsonl'}",
                 "--stream", f"source={tmp_path / 'b.avi'},log={tmp_path / 'b.jsonl'},budget-ms=50"])
    assert code == 0
    a = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in a] == list(range(6)) and [r["frame"] for r in b] == list(range(4))
    assert a[0]["budget_ms"] == pytest.approx(33.333, abs=1e-3) and b[0]["budget_ms"] == 50.0
    assert all(r["true_label"] == 3 for r in a) and all(r["true_label"] is None for r in b)
    out = capsys.readouterr().out
    assert "[stream 1]" in out and "[stream 2]" in out and "(6 frames)" in out and "(4 frames)" in out


def test_stream_specs_and_mistakes(built, tmp_path):
    assert parse_stream("source=rtsp://h/s?a=1,b=2,log=x.jsonl") == {"source": "rtsp://h/s?a=1,b=2", "log": "x.jsonl"}
    with pytest.raises(PipelineError, match="has no source="):
        parse_stream("log=x.jsonl")
    with pytest.raises(PipelineError, match="expected key=value pairs"):
        parse_stream("clip.avi")
    _clip(tmp_path / "a.avi", 2, 1)
    with pytest.raises(SystemExit) as exc:
        main(["--engines", str(built.folder), "--stream", f"source={tmp_path / 'a.avi'},log={tmp_path / 'x.jsonl'}",
              "--stream", f"source={tmp_path / 'a.avi'},log={tmp_path / 'x.jsonl'}"])
    assert exc.value.code == 2


def test_one_streams_output_may_not_be_anothers_source(built, tmp_path):
    _clip(tmp_path / "a.avi", 2, 1)
    _clip(tmp_path / "b.avi", 2, 2)
    with pytest.raises(SystemExit) as exc:
        main(["--engines", str(built.folder), "--stream", f"source={tmp_path / 'a.avi'}",
              "--stream", f"source={tmp_path / 'b.avi'},output={tmp_path / 'a.avi'}"])
    assert exc.value.code == 2 and (tmp_path / "a.avi").stat().st_size > 0


def test_one_streams_log_may_not_be_anothers_labels(built, tmp_path, capsys):
    _clip(tmp_path / "a.avi", 2, 1)
    _clip(tmp_path / "b.avi", 2, 2)
    labels = tmp_path / "labels.txt"
    labels.write_text("c1\nc2\n")
    with pytest.raises(SystemExit) as exc:
        main(["--engines", str(built.folder), "--stream", f"source={tmp_path / 'a.avi'},log={labels}",
              "--stream", f"source={tmp_path / 'b.avi'},labels={labels}"])
    assert exc.value.code == 2 and labels.read_text() == "c1\nc2\n"
    assert "is the same file as --labels of stream 2" in capsys.readouterr().err
