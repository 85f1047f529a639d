"""The cascade of static networks: members' weights kept, the frame carried on, the refusals, the checkpoint the
factory command writes, and its engines of every precision against PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pipeline.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.models import create_model  # noqa: E402
from pipeline.models.static_cascade import build  # noqa: E402
from tests.helpers import CLASSES  # noqa: E402

MEMBER = "pipeline.models.teacher:build"
SPEC = "pipeline.models.static_cascade:build"
SPLIT = {"seed": 0, "size": 20, "source": "generated"}


def member(path: Path, width: int, seed: int, split: dict | None = None, classes: list[str] | None = None,
           **kw: object) -> Path:
    """A one-exit network of ``width`` with seeded random weights and BatchNorm statistics, saved to ``path``."""
    torch.manual_seed(seed)
    model = create_model(MEMBER, num_classes=len(classes or CLASSES), stem=4, widths=(width, width), **kw)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if "running" in name:
                t.uniform_(0.5, 1.5)
    save_checkpoint(path, model, MEMBER, list(classes or CLASSES), split or SPLIT)
    return path


@pytest.fixture
def members(tmp_path: Path) -> list[Path]:
    return [member(tmp_path / "s.pt", 6, 0), member(tmp_path / "m.pt", 10, 1), member(tmp_path / "l.pt", 14, 2)]


def test_each_exit_is_its_member_and_each_stage_carries_the_frame_on(members):
    from pipeline.models.loading import load_model

    net = build(",".join(map(str, members))).eval()
    x = torch.randn(2, 3, 32, 32)
    logits, frame = net.stages[0](x)
    assert torch.equal(frame, x)
    logits2, frame2 = net.stages[1](frame)
    (logits3,) = net.stages[2](frame2)
    for got, path in zip((logits, logits2, logits3), members):
        alone, _ = load_model(path)
        assert torch.allclose(got, alone.stages[0].stage(x)[0], atol=1e-6)
    assert net.classes == CLASSES and net.origin["members"][0]["file"] == str(members[0])


def test_the_factory_command_writes_a_checkpoint_with_the_members_split_and_origin(members, tmp_path):
    from pipeline.models.factory import main as factory_main
    from pipeline.models.loading import load_model

    out = tmp_path / "cascade.pt"
    opt = "members=" + ",".join(map(str, members[:2]))
    assert factory_main(["--model-factory", SPEC, "--model-opt", opt, "--out", str(out)]) == 0
    ckpt = read_checkpoint(out)
    assert ckpt["split"] == SPLIT and ckpt["classes"] == CLASSES
    assert [m["file"] for m in ckpt["origin"]["members"]] == [str(p) for p in members[:2]]
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    alone = [load_model(p)[0].eval()(frames)[0] for p in members[:2]]
    for p in members:  # the checkpoint holds what it needs: it loads where the members are gone
        p.unlink()
    model, ckpt = load_model(out)  # this package's factory: no --model-factory needed
    assert ckpt["config"]["kwargs"]["layouts"][1] == {"num_classes": len(CLASSES), "stem": 4, "widths": [10, 10]}
    outs = model(frames)
    assert model.num_exits == 2 and all(torch.allclose(o, a, atol=1e-6) for o, a in zip(outs, alone))


def test_the_factory_command_refuses_to_write_over_a_member(members, capsys):
    from pipeline.models.factory import main as factory_main

    before = members[1].read_bytes()
    with pytest.raises(SystemExit) as stop:
        factory_main(["--model-factory", SPEC, "--model-opt", "members=" + ",".join(map(str, members[:2])),
                      "--out", str(members[1])])
    assert stop.value.code != 0 and members[1].read_bytes() == before
    assert "a checkpoint the model is made from" in capsys.readouterr().err


def test_a_member_of_one_block_given_as_a_number_is_kept(members, tmp_path):
    one = member(tmp_path / "one.pt", 8, 4)  # widths=(8, 8); and one saved with widths=8, as --model-opt gives it
    torch.manual_seed(5)
    model = create_model(MEMBER, num_classes=len(CLASSES), stem=4, widths=8)
    save_checkpoint(tmp_path / "int.pt", model, MEMBER, CLASSES, SPLIT)
    net = build([str(one), str(tmp_path / "int.pt")])
    assert net.rebuild_kwargs["layouts"][1]["widths"] == [8]


def test_bad_members_are_refused_with_the_file_that_differs(members, tmp_path):
    with pytest.raises(PipelineError, match="at least two checkpoints"):
        build(str(members[0]))
    with pytest.raises(PipelineError, match="not found|no such|does not exist"):
        build(f"{members[0]},{tmp_path / 'missing.pt'}")
    other = member(tmp_path / "o.pt", 8, 3, split={**SPLIT, "seed": 1})
    with pytest.raises(PipelineError, match=r"o\.pt differ in their validation split"):
        build([str(members[0]), str(other)])
    elsewhere = member(tmp_path / "e.pt", 8, 3, split={**SPLIT, "source": "other images"})
    with pytest.raises(PipelineError, match=r"e\.pt differ in their validation split.*source"):
        build([str(members[0]), str(elsewhere)])
    labelled = member(tmp_path / "a.pt", 8, 3, split={**SPLIT, "labels_sha256": "0123"})
    assert build([str(members[0]), str(labelled)]).split["labels_sha256"] == "0123"  # an older member names none
    relabelled = member(tmp_path / "r.pt", 8, 3, split={**SPLIT, "labels_sha256": "4567"})
    with pytest.raises(PipelineError, match=r"r\.pt differ in their validation split.*labels_sha256"):
        build([str(labelled), str(relabelled)])
    with pytest.raises(PipelineError, match=r"a\.pt and .*r\.pt differ in their validation split"):
        build([str(members[0]), str(labelled), str(relabelled)])  # each agrees with the first, not with each other
    named = member(tmp_path / "n.pt", 8, 3, classes=[c.upper() for c in CLASSES])
    with pytest.raises(PipelineError, match="differ in their classes"):
        build([str(members[0]), str(named)])
    ranet = tmp_path / "ranet.pt"
    save_checkpoint(ranet, create_model("pipeline.models.ranet:build", coarse=(4, 6, 8), fine=(4, 6, 8, 10), deep=()),
                    "pipeline.models.ranet:build", CLASSES, SPLIT)
    with pytest.raises(PipelineError, match="a member is a one-exit network"):
        build([str(members[0]), str(ranet)])


def test_its_engines_of_every_precision_agree_with_pytorch(members, tmp_path, capsys):
    """Built with `make engines`' command and checked with `make verify`'s, every exit."""
    pytest.importorskip("onnxsim")
    from pipeline import build as build_cli
    from pipeline import verify
    from pipeline.models.factory import main as factory_main
    from tests.helpers import _write_images

    data = tmp_path / "data"
    _write_images(data, {"train": 5, "test": 1})
    ckpt = tmp_path / "cascade.pt"
    assert factory_main(["--model-factory", SPEC, "--model-opt", "members=" + ",".join(map(str, members)),
                         "--out", str(ckpt)]) == 0
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache")]
    assert build_cli.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "engines"), "--name", "cascade",
                           "--backend", "onnxruntime", "--calib-images", "8", "--calib-dir", str(tmp_path / "calib"),
                           "--skip-accuracy", *common]) == 0
    # Random members give near-tied logits whose top-1 any rounding flips: INT8 is held to the logit tolerances.
    code = verify.main(["--engines", str(tmp_path / "engines" / "cascade"), "--checkpoint", str(ckpt), "--images", "16",
                        "--tolerance", "int8:agreement=0", *common])
    out = capsys.readouterr().out
    assert code == 0, out
    for precision in ("fp32", "fp16", "int8"):
        assert all(f"onnxruntime/{precision} | {k} |" in out for k in range(1, 4)), out


def test_a_cascade_recorded_with_its_member_paths_is_refused_naming_the_options(members, tmp_path):
    """A checkpoint whose config holds what the factory no longer records (here the member paths, as the first
    cascades did) is refused with the options that differ, not with classes and preprocessing that agree."""
    from pipeline.models.factory import main as factory_main
    from pipeline.models.loading import load_model

    out = tmp_path / "cascade.pt"
    assert factory_main(["--model-factory", SPEC, "--model-opt", "members=" + ",".join(map(str, members[:2])),
                         "--out", str(out)]) == 0
    payload = torch.load(out, weights_only=False)
    payload["config"]["kwargs"] = {"members": tuple(map(str, members[:2]))}
    torch.save(payload, out)
    with pytest.raises(PipelineError, match=r"now makes a model with options \{'layouts'.*recorded \{'members'"):
        load_model(out)
