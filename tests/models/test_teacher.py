"""The teacher network: the stage contract, its shapes and its refusals."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipeline.errors import PipelineError  # noqa: E402
from pipeline.models import create_model  # noqa: E402
from pipeline.models.teacher import build  # noqa: E402

SPEC = "pipeline.models.teacher:build"


def test_the_teacher_is_a_one_stage_model_of_the_contract():
    model = create_model(SPEC, stem=4, widths=(8, 8))
    assert model.num_exits == 1 and model.cfg.factory == SPEC and model.cfg.num_classes == 10
    frames = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    (logits,) = model.eval()(frames)
    assert logits.shape == (3, 10)


def test_each_block_halves_the_resolution_and_the_classifier_takes_the_last_width():
    net = build(num_classes=3, stem=4, widths=(8, 16, 12)).stages[0]
    assert net.features(torch.zeros(2, 3, 32, 32)).shape == (2, 12, 4, 4)
    assert net.classifier.weight.shape == (3, 12)


def test_one_width_given_as_a_number_is_one_block():
    net = build(stem=4, widths=8).stages[0]
    assert net.features(torch.zeros(1, 3, 32, 32)).shape == (1, 8, 16, 16)


@pytest.mark.parametrize("kw", [dict(num_classes=1), dict(stem=0), dict(widths=()), dict(widths=(8, 0))])
def test_bad_options_are_refused(kw):
    with pytest.raises(PipelineError, match="teacher: need"):
        build(**kw)


def test_the_compiled_bf16_step_gives_finite_gradients_close_to_eager():
    """The compiled bfloat16 backward of a global max taken with Tensor.amax was NaN; the pool module's is not."""
    # A seeded batch of 64: with 8 frames, which of two near-equal inputs a max-pool picks in bfloat16 moved
    # the cosine below the bound on some compiles; 64 frames average that out.
    frames = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    grads = {}
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        model = create_model(SPEC, stem=4, widths=(8, 8)).train()
        net = torch.compile(model) if mode == "compiled" else model
        with torch.autocast("cpu", dtype=torch.bfloat16):
            (logits,) = net(frames)
        logits.float().logsumexp(dim=1).sum().backward()
        grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert bool(torch.isfinite(grads["compiled"]).all())
    # bfloat16 rounding moves single entries (a max-pool can pick another of two near-equal inputs); the
    # direction of the whole gradient is what a step follows.
    cosine = torch.nn.functional.cosine_similarity(grads["compiled"], grads["eager"], dim=0)
    assert float(cosine) > 0.95, float(cosine)


def test_a_teacher_checkpoint_loads_without_naming_its_factory(tmp_path):
    """The teacher is this package's own code, so loading it (evaluate, --teacher) needs no --model-factory."""
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models.loading import load_model

    model = create_model(SPEC, num_classes=2, stem=4, widths=(8,))
    path = tmp_path / "t.pt"
    save_checkpoint(path, model, SPEC, ["a", "b"], {"seed": 0, "size": 4, "source": "x"})
    loaded, ckpt = load_model(path)
    assert ckpt["model"] == SPEC and loaded.num_exits == 1
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
