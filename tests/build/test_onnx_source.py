"""`make engines` from stage graphs made elsewhere plus a spec file: checked, adapted, built, and refused
with the stage and tensor named where the graphs and the spec disagree."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxsim")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from pipeline.build import main  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.manifest import load_manifest  # noqa: E402

CLASSES = ["ant", "bee", "wasp"]
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
RNG = np.random.default_rng(0)


def _conv_head(prefix: str, x: str, c_in: int, c_out: int, stride: int, logits: str, feats: str) -> tuple[list, list]:
    """Conv-ReLU to ``feats``, then global pool, flatten and a linear layer to ``logits``."""
    w = numpy_helper.from_array(RNG.normal(0, 0.3, (c_out, c_in, 3, 3)).astype(np.float32), f"{prefix}_w")
    fc = numpy_helper.from_array(RNG.normal(0, 0.3, (c_out, len(CLASSES))).astype(np.float32), f"{prefix}_fc")
    nodes = [helper.make_node("Conv", [x, w.name], [f"{prefix}_c"], pads=[1, 1, 1, 1], strides=[stride, stride]),
             helper.make_node("Relu", [f"{prefix}_c"], [feats]),
             helper.make_node("GlobalAveragePool", [feats], [f"{prefix}_p"]),
             helper.make_node("Flatten", [f"{prefix}_p"], [f"{prefix}_f"]),
             helper.make_node("MatMul", [f"{prefix}_f", fc.name], [logits])]
    return nodes, [w, fc]


def write_graphs(folder: Path, c_in2: int = 4) -> None:
    """stage1.onnx: image (N, 3, 8, 8) float RGB normalised -> exit1, features, debug; stage2.onnx: features -> exit2."""
    folder.mkdir(parents=True, exist_ok=True)
    nodes, inits = _conv_head("a", "image", 3, 4, 2, "exit1", "features")
    nodes.append(helper.make_node("Identity", ["features"], ["debug"]))
    g1 = helper.make_graph(nodes, "one", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 8, 8])],
                           [helper.make_tensor_value_info("exit1", TensorProto.FLOAT, ["n", 3]),
                            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 4, 4, 4]),
                            helper.make_tensor_value_info("debug", TensorProto.FLOAT, ["n", 4, 4, 4])], inits)
    nodes, inits = _conv_head("b", "features", c_in2, 4, 1, "exit2", "b_feats")
    g2 = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                                                        ["n", c_in2, 4, 4])],
                           [helper.make_tensor_value_info("exit2", TensorProto.FLOAT, ["n", 3])], inits)
    for g, name in ((g1, "stage1.onnx"), (g2, "stage2.onnx")):
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(folder / name))


def write_spec(folder: Path, **changes) -> Path:
    spec = {"name": "bugs", "classes": CLASSES,
            "input": {"height": 8, "width": 8, "colour_order": "RGB", "layout": "NCHW",
                      "normalisation": {"mean": MEAN, "std": STD}},
            "stages": [{"graph": "stage1.onnx", "logits": "exit1", "carried": ["features"]},
                       {"graph": "stage2.onnx", "logits": "exit2"}], "validation_size": 6}
    spec.update(changes)
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-source")
    for split, n in (("train", 10), ("test", 2)):
        for c in CLASSES:
            (root / "data" / split / c).mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(root / "data" / split / c / f"{i}.png"), RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write_graphs(root / "graphs")
    spec = write_spec(root / "graphs")
    args = ["--onnx-spec", str(spec), "--data", str(root / "data"), "--out", str(root / "engines"), "--backend",
            "onnxruntime", "--calib-images", "8", "--calib-dir", str(root / "calib"), "--cache-dir", str(root / "cache")]
    assert main(args) == 0
    return root, args


def run_by_name(paths, feeds):
    import onnxruntime as ort

    logits = []
    for path in paths:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})
        logits.append(outs[0])
        feeds = dict(zip([o.name for o in sess.get_outputs()][1:], outs[1:]))
    return logits


def test_the_graphs_become_stages_that_take_the_frame(built):
    root, _ = built
    m = load_manifest(root / "engines" / "bugs")
    assert m.classes == CLASSES and m.input.shape == ["N", 8, 8, 3] and m.input.colour_order == "BGR"
    assert [o.name for o in m.stages[0].outputs] == ["logits_1", "stage1_map0"]  # "debug" is dropped
    assert [i.name for i in m.stages[1].inputs] == ["stage1_map0"] and m.stages[1].flops > m.stages[0].flops > 0
    assert {e.precision for e in m.engines} == {"fp32", "fp16", "int8"} and m.model["split"]["size"] == 6
    assert set(m.accuracy["validation"]) == {"onnxruntime/fp32", "onnxruntime/fp16", "onnxruntime/int8"}
    frames = RNG.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)  # BGR, as the camera gives
    ours = run_by_name([root / "engines" / "bugs" / "onnx" / f"stage{k}.fp32.onnx" for k in (1, 2)],
                       {"frame": frames})
    rgb = frames[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255  # what the graphs were made for
    image = (rgb - np.array(MEAN, np.float32).reshape(1, 3, 1, 1)) / np.array(STD, np.float32).reshape(1, 3, 1, 1)
    theirs = run_by_name([root / "graphs" / "stage1.onnx", root / "graphs" / "stage2.onnx"], {"image": image})
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_rerun_is_up_to_date(built, capsys):
    _, args = built
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out


def _refused(tmp_path, built, capsys, match, c_in2=4, **changes):
    root, args = built
    write_graphs(tmp_path / "g", c_in2)
    spec = write_spec(tmp_path / "g", **changes)
    out = tmp_path / "engines"
    with pytest.raises(SystemExit) as exc:
        main(["--onnx-spec", str(spec), *args[2:4], "--out", str(out), *args[6:]])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and match in err, err
    assert not (out / "bugs").exists()


def test_a_spec_naming_a_tensor_the_graphs_lack(tmp_path, built, capsys):
    stages = [{"graph": "stage1.onnx", "logits": "exit1", "carried": ["feature"]},
              {"graph": "stage2.onnx", "logits": "exit2"}]
    _refused(tmp_path, built, capsys, "names 'feature' for stage 1, but stage 1's graph stage1.onnx has no such "
             "output; its outputs: exit1, features, debug", stages=stages)


def test_a_carried_tensor_without_a_consumer(tmp_path, built, capsys):
    stages = [{"graph": "stage1.onnx", "logits": "exit1", "carried": ["features", "debug"]},
              {"graph": "stage2.onnx", "logits": "exit2"}]
    _refused(tmp_path, built, capsys, "stage 1 carries 'debug', but no input of stage 2's graph", stages=stages)


def test_shapes_that_do_not_chain(tmp_path, built, capsys):
    _refused(tmp_path, built, capsys, "stage 1 carries 'features' ['n', 4, 4, 4], stage 2's graph stage2.onnx takes "
             "it as ['n', 8, 4, 4]", c_in2=8)


def test_logits_that_are_not_one_per_class(tmp_path, built, capsys):
    _refused(tmp_path, built, capsys, "stage 1's logits have shape (2, 3), expected (2, 4)", classes=CLASSES + ["fly"])


def test_spec_mistakes_are_named(tmp_path):
    from pipeline.build.onnx_spec import read_spec

    with pytest.raises(PipelineError, match="does not exist"):
        read_spec(Path("no/such/spec.json"))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # nesting past what Python's parser takes
    with pytest.raises(PipelineError, match="not valid JSON"):
        read_spec(deep)


def test_an_unknown_key_and_a_last_stage_that_carries(tmp_path, built, capsys):
    _refused(tmp_path, built, capsys, "unknown key 'clases'", clases=CLASSES)
    stages = [{"graph": "stage1.onnx", "logits": "exit1", "carried": ["features"]},
              {"graph": "stage2.onnx", "logits": "exit2", "carried": ["b_feats"]}]
    _refused(tmp_path / "2", built, capsys, "the last stage 2 carries 'b_feats', which no stage takes", stages=stages)
