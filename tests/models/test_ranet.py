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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny network built with `make engines`' command for ONNX Runtime: (engines, checkpoint, data options)."""
    pytest.importorskip("onnxsim")
    from pipeline import build as build_cli
    from pipeline.checkpoint import save_checkpoint
    from tests.helpers import CLASSES, _write_images

    tmp_path = tmp_path_factory.mktemp("ranet")
    data = tmp_path / "data"
    _write_images(data, {"train": 5, "test": 1})
    torch.manual_seed(0)
    model = create_model(SPEC, **TINY).eval()
    ckpt = tmp_path / "ranet.pt"
    save_checkpoint(ckpt, model, SPEC, CLASSES, {"seed": 0, "size": 20, "source": "generated"})
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache")]
    assert build_cli.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "engines"), "--backend", "onnxruntime",
                           "--calib-images", "8", "--calib-dir", str(tmp_path / "calib"), *common]) == 0
    return tmp_path / "engines" / "ranet", ckpt, common


def test_its_engines_of_every_precision_agree_with_pytorch(built, capsys):
    """Built with `make engines`' command and checked with `make verify`'s: FP32 to float precision, FP16 and
    INT8 within the verifier's tolerances, every exit."""
    from pipeline import verify

    folder, ckpt, common = built
    # An untrained network's exits give near-tied logits whose top-1 any rounding flips (INT8's on a CPU without
    # VNNI flipped most): INT8 is held to the logit tolerances here, its agreement to `make verify` on a trained model.
    code = verify.main(["--engines", str(folder), "--checkpoint", str(ckpt), "--images", "16",
                        "--tolerance", "int8:agreement=0", *common])
    out = capsys.readouterr().out
    assert code == 0, out
    for precision in ("fp32", "fp16", "int8"):
        assert all(f"onnxruntime/{precision} | {k} |" in out for k in range(1, 5)), out
    assert out.rstrip().endswith("result: PASS")


def test_the_batched_cascade_narrows_its_carried_maps_to_the_plain_cascades_answers(built):
    """Stage 2 reads three carried maps (the frame among them): a batch narrowed between stages still gives each
    frame the answer, exit and probabilities the one-frame cascade gives it."""
    import numpy as np

    from pipeline.backends import load_chain
    from pipeline.manifest import load_manifest
    from pipeline.runtime.batched import BatchedCascade
    from pipeline.runtime.cascade import Cascade
    from pipeline.runtime.deadline import LatencyPredictor
    from pipeline.thresholds import softmax

    folder = built[0]
    manifest = load_manifest(folder)
    frames = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    with load_chain(manifest, folder, "onnxruntime", "fp32") as chain:
        conf = softmax(np.stack(chain.run_all(frames), axis=1).astype(np.float64), axis=-1).max(-1)  # (N, 4)
    thresholds = [float(np.median(conf[:, k])) for k in range(3)] + [float("inf")]  # about half leave at each

    def cascade() -> Cascade:
        return Cascade(load_chain(manifest, folder, "onnxruntime", "fp32"), manifest.classes, thresholds,
                       LatencyPredictor(4), frame_size=manifest.input.size)

    plain, batched = cascade(), BatchedCascade(cascade())
    try:
        one = [(plain.classify(f), plain.answer_probs().copy()) for f in frames]
        got = batched.classify_batch(list(frames))
    finally:
        plain.close()
        batched.cascade.close()
    assert len({r.exit for r, _ in one}) >= 3  # the batch is narrowed more than once
    for i, (g, (r, probs)) in enumerate(zip(got, one)):
        assert (g.label, g.exit) == (r.label, r.exit)
        assert np.abs(batched.probs[i] - probs).max() < 1e-5
