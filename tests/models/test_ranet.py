"""The resolution-adaptive multi-exit network: the stage contract, its shapes, its refusals, and its engines
of every precision against PyTorch."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pipeline.errors import PipelineError  # noqa: E402
from pipeline.models import create_model  # noqa: E402
from pipeline.models.ranet import build  # noqa: E402

SPEC = "pipeline.models.ranet:build"
TINY = dict(coarse=(4, 6, 8), fine=(4, 6, 8, 10), deep=(12,))


def test_stage_1_sees_the_half_resolution_frame_and_carries_the_frame_on():
    net = build(num_classes=3, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    logits, frame, c4, c8 = net.stages[0](x)
    assert logits.shape == (2, 3) and torch.equal(frame, x)
    assert c4.shape == (2, 6, 8, 8) and c8.shape == (2, 8, 4, 4)  # 16x16 in: halved twice
    logits2, f4, c8_again = net.stages[1](frame, c4, c8)
    assert f4.shape == (2, 8 + 6, 8, 8) and torch.equal(c8_again, c8)  # fine 8x8 maps joined with the coarse ones
    logits3, f8 = net.stages[2](f4, c8)
    assert f8.shape == (2, 10 + 8, 4, 4)
    (logits4,) = net.stages[3](f8)
    assert logits4.shape == (2, 3)


def test_stage_1_costs_a_small_share_of_the_default_network():
    from pipeline.models.flops import exit_costs

    costs = exit_costs(create_model(SPEC))
    flops = [c["flops"] for c in costs]
    assert len(flops) == 4 and flops == sorted(flops)
    assert flops[0] / flops[-1] < 0.1, flops


@pytest.mark.parametrize("deep", [(), (12, 12)])
def test_the_number_of_exits_follows_the_deep_stages_and_the_chain_equals_forward(deep):
    model = create_model(SPEC, coarse=TINY["coarse"], fine=TINY["fine"], deep=deep).eval()
    assert model.num_exits == 3 + len(deep)
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    from pipeline.models.factory import check_stage_contract

    check_stage_contract(build(coarse=TINY["coarse"], fine=TINY["fine"], deep=deep))  # the chain equals forward
    outs = model(frames)
    assert len(outs) == model.num_exits and all(o.shape == (2, 10) for o in outs)


@pytest.mark.parametrize("kw, match", [
    (dict(num_classes=1), "num_classes"), (dict(coarse=(4, 6)), "coarse needs 3 widths"),
    (dict(fine=(4, 0, 8, 8)), "fine needs 4 widths"), (dict(deep=(10**9,)), "deep needs widths between 1 and"),
])
def test_bad_options_are_refused_before_anything_is_allocated(kw, match):
    with pytest.raises(PipelineError, match=match):
        build(**kw)


def test_its_engines_of_every_precision_agree_with_pytorch(tmp_path, capsys):
    """Built with `make engines`' command and checked with `make verify`'s: FP32 to float precision, FP16 and
    INT8 within the verifier's tolerances, every exit."""
    pytest.importorskip("onnxsim")
    from pipeline import build as build_cli
    from pipeline import verify
    from pipeline.checkpoint import save_checkpoint
    from tests.helpers import CLASSES, _write_images

    data = tmp_path / "data"
    _write_images(data, {"train": 5, "test": 1})
    torch.manual_seed(0)
    model = create_model(SPEC, **TINY).eval()
    ckpt = tmp_path / "ranet.pt"
    save_checkpoint(ckpt, model, SPEC, CLASSES, {"seed": 0, "size": 20, "source": "generated"})
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache")]
    assert build_cli.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "engines"), "--backend", "onnxruntime",
                           "--calib-images", "8", "--calib-dir", str(tmp_path / "calib"), *common]) == 0
    folder = tmp_path / "engines" / "ranet"
    # An untrained network's exits give near-tied logits whose top-1 any rounding flips (INT8's on a CPU without
    # VNNI flipped most): INT8 is held to the logit tolerances here, its agreement to `make verify` on a trained model.
    code = verify.main(["--engines", str(folder), "--checkpoint", str(ckpt), "--images", "16",
                        "--tolerance", "int8:agreement=0", *common])
    out = capsys.readouterr().out
    assert code == 0, out
    for precision in ("fp32", "fp16", "int8"):
        assert all(f"onnxruntime/{precision} | {k} |" in out for k in range(1, 5)), out
    assert out.rstrip().endswith("result: PASS")
