"""A spec of stage graphs names files inside its own folder only: `..`, an absolute path or a symbolic link
leading out of it is refused in one line, as is a classes file that is not UTF-8."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.build.onnx_spec import read_spec
from pipeline.errors import PipelineError

STAGES = [{"graph": "stage1.onnx", "logits": "exit1", "carried": ["features"]},
          {"graph": "stage2.onnx", "logits": "exit2"}]


def spec(folder: Path, **changes) -> Path:
    raw = {"name": "bugs", "classes": ["a", "b", "c"], "stages": STAGES,
           "input": {"height": 8, "width": 8, "colour_order": "RGB", "layout": "NCHW",
                     "normalisation": {"mean": [0.5] * 3, "std": [0.25] * 3}}}
    raw.update(changes)
    path = folder / "spec.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.fixture
def folder(tmp_path):
    inside = tmp_path / "model"
    inside.mkdir()
    for name in ("stage1.onnx", "stage2.onnx"):
        (inside / name).write_bytes(b"graph")
        (tmp_path / name).write_bytes(b"outside")
    (inside / "link.onnx").symlink_to(tmp_path / "stage1.onnx")
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    return inside


def test_the_spec_reads_its_own_files(folder):
    assert [s.graph.name for s in read_spec(spec(folder)).stages] == ["stage1.onnx", "stage2.onnx"]


@pytest.mark.parametrize("graph", ["../stage1.onnx", "ABSOLUTE", "link.onnx"])
def test_a_graph_outside_the_folder_is_refused(folder, graph):
    graph = str(folder.parent / "stage1.onnx") if graph == "ABSOLUTE" else graph
    with pytest.raises(PipelineError, match="is not a file inside the spec's folder"):
        read_spec(spec(folder, stages=[{**STAGES[0], "graph": graph}, STAGES[1]]))


def test_a_classes_file_outside_the_folder_or_not_utf8(folder):
    with pytest.raises(PipelineError, match="classes file ../classes.txt is not a file inside"):
        read_spec(spec(folder, classes="../classes.txt"))
    (folder / "classes.txt").write_bytes(b"a\n\xff\xfe\nc\n")
    with pytest.raises(PipelineError, match="is not UTF-8 text"):
        read_spec(spec(folder, classes="classes.txt"))
