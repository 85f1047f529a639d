"""The model: registry, stage chaining equals the whole network, costs per exit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipeline.errors import PipelineError  # noqa: E402
from pipeline.models import create_model, list_models, model_config, parse_overrides  # noqa: E402
from pipeline.models.flops import exit_costs  # noqa: E402


def chain(model, frames):
    outs, carried = [], (frames,)
    for stage in model.stages:
        out = stage(*carried)
        outs.append(out[0])
        carried = out[1:]
    return outs


def reference_forward(model, frames):
    """The un-split network, written as the reference does: all blocks, one classifier after each."""
    x = model.stages[0].preprocess(frames)
    outs = []
    for stage in model.stages:
        for layer in stage.block:
            x = layer(x)
        outs.append(stage.classifier(x[-1]))
    return outs


@pytest.mark.parametrize("name,kw,size", [
    ("msdnet_cifar", {}, 32),
    ("msdnet_cifar", {"stepmode": "lin_grow", "n_blocks": 4, "step": 1}, 32),
    ("msdnet_imagenet", {"n_blocks": 2, "step": 2, "base": 2, "n_channels": 8, "growth_rate": 4}, 224),
])
def test_stage_chain_equals_whole_model(name, kw, size):
    torch.manual_seed(0)
    model = create_model(name, **kw).eval()
    frames = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    with torch.no_grad():
        whole, split, ref = model(frames), chain(model, frames), reference_forward(model, frames)
    assert len(whole) == len(split) == model.num_exits == model.cfg.n_blocks
    for a, b, c in zip(whole, split, ref):
        assert a.shape == (2, model.cfg.num_classes)
        assert (a - b).abs().max() < 1e-6
        assert (a - c).abs().max() < 1e-6


def test_paper_cifar_config_size():
    """The paper's CIFAR MSDNet (5 exits, step 2, base 4): about 95 MFLOPs and 1.9 M parameters."""
    rows = exit_costs(create_model("msdnet_cifar"))
    assert len(rows) == 5
    assert 90e6 < rows[-1]["flops"] < 100e6
    assert 1.8e6 < rows[-1]["params"] < 2.0e6
    assert all(a["flops"] < b["flops"] for a, b in zip(rows, rows[1:]))


def test_pruning_drops_finest_scale_in_later_stages(tiny_model):
    frames = torch.zeros(1, 32, 32, 3, dtype=torch.uint8)
    with torch.no_grad():
        first = tiny_model.stages[0](frames)
        last = chain(tiny_model, frames)
    assert [t.shape[-1] for t in first[1:]] == [32, 16, 8]  # three scales carried after stage 1
    assert len(last) == 3


def test_registry_rejects_unknown_names_and_options():
    assert {"msdnet_cifar", "msdnet_imagenet"} <= set(list_models())
    with pytest.raises(PipelineError, match="known models: msdnet_cifar"):
        create_model("resnet")
    with pytest.raises(PipelineError, match="bad option"):
        model_config("msdnet_cifar", depth=3)
    with pytest.raises(PipelineError, match="stepmode"):
        model_config("msdnet_cifar", stepmode="odd")
    for reduction in ("abc", float("nan"), -0.5, 1.5, True):
        with pytest.raises(PipelineError, match="reduction must be a number from 0"):
            model_config("msdnet_cifar", reduction=reduction)
    with pytest.raises(PipelineError, match="leaves no channel"):
        create_model("msdnet_cifar", reduction=0.001)
    with pytest.raises(PipelineError, match="n_channels must be one whole number"):
        model_config("msdnet_cifar", **parse_overrides(["n_channels=16,16"]))
    with pytest.raises(PipelineError, match="preprocess is set by the model"):
        model_config("msdnet_cifar", preprocess="foo")
    with pytest.raises(PipelineError, match="bottleneck must be true or false"):
        model_config("msdnet_cifar", bottleneck="False")
    assert model_config("msdnet_cifar", **parse_overrides(["bottleneck=False", "stem_bias=true"])).bottleneck is False
    assert model_config("msdnet_cifar", **parse_overrides(["gr_factor=1", "bn_factor=1"])).gr_factor == (1,)
    with pytest.raises(PipelineError, match="gr_factor must be a list of whole numbers, got 1.5"):
        model_config("msdnet_cifar", gr_factor=1.5)
    # Saved before the check: 0/1, or text (which built the network as true), load as the network was built.
    saved = model_config("msdnet_cifar").to_dict()
    from pipeline.models.msdnet import MSDNetConfig

    assert MSDNetConfig.from_dict({**saved, "bottleneck": 0}).bottleneck is False
    assert MSDNetConfig.from_dict({**saved, "bottleneck": "false", "stem_bias": 1}).bottleneck is True


def test_preprocess_matches_manual_normalisation(tiny_model):
    frames = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8)
    cfg = tiny_model.cfg.preprocess
    rgb = frames.flip(-1).permute(0, 3, 1, 2).float() / 255
    want = (rgb - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    got = tiny_model.stages[0].preprocess(frames)
    assert (got - want).abs().max() < 1e-5
