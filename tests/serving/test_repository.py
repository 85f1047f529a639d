"""The model repository, without a server: what is written, Triton's schema on every configuration, the checks."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.errors import PipelineError
from pipeline.manifest import FileEntry, load_manifest, write_manifest
from pipeline.serving.configs import config_tensors, parse_config
from pipeline.serving.repository import RepoOptions, write_repository
from pipeline.serving.serve import check_repository
from pipeline.serving.serve import main as serve_main

pytest.importorskip("tritonclient", reason="Triton's configuration schema ships with tritonclient (the triton extra)")


def configs(folder):
    return {p.parent.name: parse_config(p.read_text(), str(p)) for p in sorted(folder.glob("*/config.pbtxt"))}


def test_python_stage_models_follow_the_schema_and_the_manifest(repo, manifest):
    found = configs(repo)
    assert set(found) == {f"stage{k}" for k in range(1, manifest.num_exits + 1)} | {"cascade"}
    for spec in manifest.stages:
        config = found[f"stage{spec.index}"]
        assert config.backend == "python" and config.max_batch_size == 64 and config.HasField("dynamic_batching")
        assert config.dynamic_batching.default_queue_policy.allow_timeout_override
        assert [(t.name, t.dtype, list(t.dims)) for t in config_tensors(config, "input")] == [
            (t.name, t.dtype, t.shape[1:]) for t in spec.inputs]
        assert [t.name for t in config_tensors(config, "output")] == [t.name for t in spec.outputs]
        assert (repo / f"stage{spec.index}" / "1" / "model.onnx").is_file()
        assert (repo / f"stage{spec.index}" / "1" / "model.py").is_file()
    cascade = found["cascade"]
    assert [t.name for t in cascade.input] == ["frame", "budget_ms"] and cascade.input[1].optional
    spec = json.loads((repo / "cascade" / "1" / "cascade.json").read_text())
    assert len(spec["score_thresholds"]) == manifest.num_exits and spec["stages"][0]["model"] == "stage1"
    assert check_repository(repo)["variant"] == "onnxruntime/fp32"


def test_tensorrt_plans_become_tensorrt_models_that_follow_the_schema(tiny, tmp_path, manifest):
    folder = tiny.copy(tmp_path)
    m = load_manifest(folder)
    (folder / "tensorrt").mkdir()
    for k in range(1, m.num_exits + 1):  # fake plans: the repository copies them, nothing reads them here
        rel = f"tensorrt/stage{k}.fp16.plan"
        (folder / rel).write_bytes(b"not a real plan %d" % k)
        m.engines.append(FileEntry.of(folder, rel, k, "fp16", backend="tensorrt"))
    write_manifest(folder, m)
    out = tmp_path / "repo"
    rec = write_repository(folder, out, RepoOptions(precision="fp16", plan_max_batch=4))
    assert rec["kind"] == "tensorrt" and rec["variant"] == "tensorrt/fp16"
    found = configs(out)
    for spec in manifest.stages:
        config = found[f"stage{spec.index}"]
        assert config.platform == "tensorrt_plan" and config.max_batch_size == 4
        gpu = parse_config("instance_group [ { kind: KIND_GPU } ]").instance_group[0].kind
        assert config.instance_group[0].kind == gpu
        assert [(t.name, t.dtype, list(t.dims)) for t in config_tensors(config, "input")] == [
            (t.name, t.dtype, t.shape[1:]) for t in spec.inputs]
        assert [(t.name, t.dtype, list(t.dims)) for t in config_tensors(config, "output")] == [
            (t.name, t.dtype, t.shape[1:]) for t in spec.outputs]
        assert (out / f"stage{spec.index}" / "1" / "model.plan").read_bytes() == b"not a real plan %d" % spec.index
        assert not (out / f"stage{spec.index}" / "1" / "model.py").exists()
    assert check_repository(out)["kind"] == "tensorrt"
    with pytest.raises(PipelineError, match="no TensorRT plans of fp32"):
        write_repository(folder, tmp_path / "other", RepoOptions(precision="fp32", kind="tensorrt"))


def test_a_field_the_schema_does_not_know_is_refused_with_the_file_named():
    with pytest.raises(PipelineError, match=r"x/config.pbtxt does not follow .*max_batch"):
        parse_config('name: "x"\nmax_batch: 3\n', "x/config.pbtxt")


def test_the_repository_replaces_its_own_folder_and_refuses_anything_else(tiny, tmp_path):
    out = tmp_path / "repo"
    write_repository(tiny.folder, out)
    (out / "stale").mkdir()
    write_repository(tiny.folder, out)  # written again: whole, the old one gone
    assert not (out / "stale").exists() and (out / "repository.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(PipelineError, match="not a model repository written by"):
        write_repository(tiny.folder, foreign)
    assert (foreign / "notes.txt").read_text() == "keep"
    model = tiny.copy(tmp_path / "model")
    with pytest.raises(PipelineError, match="lies inside the built model folder"):
        write_repository(model, model / "triton" / "repo")
    assert not (model / "triton").exists()


@pytest.mark.parametrize("change, told", [(dict(max_batch=3_000_000_000), "--max-batch should be 1 to 65536"),
                                          (dict(instances=1_000_000), "--instances should be 1 to 64"),
                                          (dict(queue_delay_us=10**23), "--queue-delay-us should be 0 to 10000000")])
def test_options_triton_would_refuse_are_refused_first(change, told):
    with pytest.raises(PipelineError, match=told):
        RepoOptions(**change).check()


@pytest.fixture
def damaged(repo, tmp_path):
    out = tmp_path / "repo"
    shutil.copytree(repo, out)
    return out


def test_a_missing_stage_is_one_line_naming_it(damaged, capsys):
    shutil.rmtree(damaged / "stage2")
    with pytest.raises(PipelineError, match=r"lacks stage2 \(stage 2 of"):
        check_repository(damaged)
    with pytest.raises(SystemExit) as exc:
        serve_main(["--repo", str(damaged)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "stage2" in err and "Traceback" not in err


def test_a_wrong_shape_is_one_line_naming_the_stage(damaged, manifest):
    config = damaged / "stage2" / "config.pbtxt"
    first = manifest.stages[1].inputs[0]
    dims = ", ".join(str(d) for d in first.shape[1:])
    wrong = ", ".join(str(d) for d in [first.shape[1], *(2 * int(d) for d in first.shape[2:])])
    config.write_text(config.read_text().replace(f"dims: [ {dims} ]", f"dims: [ {wrong} ]", 1))
    with pytest.raises(PipelineError, match=rf"stage2 has input {first.name} \[.*but stage 1 writes") as exc:
        check_repository(damaged)
    assert "\n" not in str(exc.value)


def test_a_stage_graph_that_differs_from_its_configuration_is_named(damaged, manifest):
    shutil.copyfile(damaged / "stage3" / "1" / "model.onnx", damaged / "stage2" / "1" / "model.onnx")
    with pytest.raises(PipelineError, match=r"stage2: its configuration says .* its graph model.onnx has"):
        check_repository(damaged)


def test_not_a_repository(tmp_path):
    with pytest.raises(PipelineError, match="is not a model repository written by"):
        check_repository(tmp_path)
    (tmp_path / "repository.json").write_text("[" * 100_000 + "]" * 100_000)  # nesting past Python's parser
    with pytest.raises(PipelineError, match="is not a model repository written by"):
        check_repository(tmp_path)


def test_int8_stage_models_run_the_graphs_of_the_int8_chain_built_here(tiny, manifest):
    """Where the build found a stage's float graph faster here, the served INT8 stage model runs it too: the
    thresholds and latency the repository takes were measured on that chain."""
    import copy

    from pipeline.backends.onnxruntime.faster import float_candidate_name
    from pipeline.serving.repository import choose_variant

    m = copy.deepcopy(manifest)
    opts = RepoOptions(precision="int8")
    kind, graphs = choose_variant(m, tiny.folder, opts)
    assert kind == "python" and all(g.name.endswith(".int8.u8.onnx") for g in graphs)
    stage2 = m.files(backend="onnxruntime", precision="int8", engines=True)[1]  # as the build puts it in place
    m.engines[m.engines.index(stage2)] = FileEntry(2, "int8", float_candidate_name(2), "0" * 64, "onnxruntime", "u8")
    _, graphs = choose_variant(m, tiny.folder, opts)
    assert [g.name for g in graphs] == ["stage1.int8.u8.onnx", "stage2.fp32.onnx", "stage3.int8.u8.onnx"]
    assert [g.name for g in choose_variant(m, tiny.folder, RepoOptions(precision="fp32"))[1]] == [
        f"stage{k}.fp32.onnx" for k in (1, 2, 3)]
    m.device.cpu = "another CPU"  # written elsewhere: that CPU's chain runs the portable INT8 graphs
    assert all(g.name.endswith(".int8.u8.onnx") for g in choose_variant(m, tiny.folder, opts)[1])
