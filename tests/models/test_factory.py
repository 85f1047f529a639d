"""Your own multi-exit network through ``--model-factory``: the stage contract, checked stage by stage."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pipeline.checkpoint import save_checkpoint
from pipeline.models.loading import load_model  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.models import create_model, folder_name, model_config  # noqa: E402
from pipeline.models.factory import load_factory  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
F = "tests.models.factories"


def test_a_factory_model_takes_frames_and_chains_like_its_forward():
    model = create_model(f"{F}:good", classes=4)
    assert model.num_exits == 2 and model.cfg.num_classes == 4 and model.classes == ["k0", "k1", "k2", "k3"]
    frames = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8)  # (N, H, W, 3) BGR, the camera's frames
    with torch.no_grad():
        logits = model(frames)
        out1 = model.stages[0](frames)
        out2 = model.stages[1](*out1[1:])
    assert [tuple(t.shape) for t in logits] == [(3, 4), (3, 4)]
    assert torch.equal(out1[0], logits[0]) and torch.equal(out2[0], logits[1])
    assert model_config(f"{F}:good").preprocess.height == 16


def test_the_example_network_by_path_and_by_module():
    by_path = create_model(f"{ROOT}/examples/two_exit_cnn.py:build", num_classes=3)
    assert by_path.num_exits == 2 and by_path.cfg.kwargs == {"num_classes": 3}
    assert folder_name(f"{ROOT}/examples/two_exit_cnn.py:build") == folder_name("examples.two_exit_cnn:build") \
        == "two_exit_cnn"


@pytest.mark.parametrize("factory, match", [
    ("wrong_carry", r"stage 2 failed on stage1_map0 \(2, 4, 8, 8\)"),
    ("no_carry", r"stage 1 returns its logits only, so stage 2 gets nothing"),
    ("other_classes", r"stage 2's logits_2 has 5 classes, logits_1 has 3"),
    ("forward_differs", r"exit 2 of forward differs from the chained stages' logits_2 \(2, 3\)"),
    ("parameter_outside", r"parameter scale belongs to no stage"),
    ("batch_mixing", r"stage 2's logits_2 for a frame depends on the other frames"),
    ("no_preprocess", r"has no preprocess"),
])
def test_a_model_that_breaks_the_contract_is_refused_naming_stage_and_tensor(factory, match):
    with pytest.raises(PipelineError, match=match):
        create_model(f"{F}:{factory}")


@pytest.mark.parametrize("spec, match", [
    ("tests.models.factories", "should look like package.module:function"),
    ("tests.models.nowhere:build", "could not be imported"),
    ("tests.models.factories:missing", "has no function 'missing'"),
    ("no/such/file.py:build", "does not exist"),
])
def test_a_factory_that_cannot_be_found_is_named(spec, match):
    with pytest.raises(PipelineError, match=match):
        load_factory(spec)


def test_bad_factory_options_are_one_error():
    with pytest.raises(PipelineError, match="bad option"):
        create_model(f"{F}:good", colours=3)


def test_a_factory_checkpoint_runs_its_code_only_when_asked(tmp_path):
    model = create_model(f"{F}:good")
    path = tmp_path / "own.pt"
    save_checkpoint(path, model, f"{F}:good", ["a", "b", "c"], {"seed": 0, "size": 2, "source": "test"})
    with pytest.raises(PipelineError, match=f"pass --model-factory {F}:good to allow it"):
        load_model(path)
    again, ckpt = load_model(path, expect_model=f"{F}:good")
    assert ckpt["config"]["factory"] == f"{F}:good"
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
