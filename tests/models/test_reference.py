"""Reference checkpoints (MSDNet-PyTorch): the tensor layout, a round trip, the preprocessing, the refusals.

The fixtures in ``data/`` list the reference's tensor names and shapes (DataParallel prefix included)
for its default CIFAR-10 configuration and its ImageNet configuration; the state dicts are made from them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pipeline.checkpoint import read_checkpoint
from pipeline.models.loading import load_model  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.models import create_model  # noqa: E402
from pipeline.models.reference import CONFIGURATIONS, convert_state_dict, main  # noqa: E402
from pipeline.models.reference_layout import inferred_options, our_key, strip_prefix  # noqa: E402

DATA = Path(__file__).parent / "data"


def fixture_shapes(name: str) -> dict[str, tuple[int, ...]]:
    raw = json.loads((DATA / f"msdnet_pytorch_{name}.json").read_text())
    return {k: tuple(s) for k, s in raw["tensors"]}


def state_from(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict:
    """Distinct random values per tensor, so a swapped mapping of equal shapes shows."""
    gen = torch.Generator().manual_seed(seed)
    def make(name: str, shape: tuple[int, ...]):
        if name.endswith("num_batches_tracked"):
            return torch.randint(0, 1000, shape, generator=gen)
        t = torch.randn(shape, generator=gen)
        return t.abs() + 0.5 if name.endswith("running_var") else t

    return {k: make(k, s) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def cifar_state() -> dict:
    return state_from(fixture_shapes("cifar10"))


def save_reference(path: Path, state: dict) -> Path:
    """A file laid out as the reference's main.py saves one."""
    torch.save({"epoch": 299, "arch": "msdnet", "state_dict": state, "best_prec1": 93.1,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.0001, "momentum": 0.9}]}}, path)
    return path


def test_the_default_cifar_configurations_hold_the_same_562_shapes():
    ref = fixture_shapes("cifar10")
    ours = create_model("msdnet_cifar").state_dict()
    assert len(ref) == len(ours) == 562
    assert Counter(ref.values()) == Counter(tuple(t.shape) for t in ours.values())


@pytest.mark.parametrize("name, model", [("cifar10", "msdnet_cifar"), ("imagenet", "msdnet_imagenet")])
def test_every_reference_tensor_maps_to_one_of_ours_with_its_shape(name, model):
    names, prefixed = strip_prefix(list(fixture_shapes(name)))
    shapes = dict(zip(names, fixture_shapes(name).values()))
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        ours = {k: tuple(t.shape) for k, t in create_model(model).state_dict().items()}
    mapped = {n: our_key(n) for n in names}
    assert prefixed and None not in mapped.values()
    assert sorted(mapped.values()) == sorted(ours)  # one to one, nothing left over
    assert all(ours[mapped[n]] == shapes[n] for n in names)


def test_the_shapes_tell_the_configuration():
    names, _ = strip_prefix(list(fixture_shapes("imagenet")))
    inferred = inferred_options(dict(zip(names, fixture_shapes("imagenet").values())))
    assert inferred == {"n_blocks": 5, "num_classes": 1000, "stem": "imagenet", "stem_bias": True, "n_channels": 32,
                        "gr_factor": (1, 2, 4, 4), "base": 4, "stepmode": "even", "step": 4, "bottleneck": True,
                        "growth_rate": 16}


def test_round_trip_keeps_every_value(cifar_state):
    model, facts = convert_state_dict(cifar_state, "cifar10")
    assert facts["tensors"] == 562 and facts["data_parallel_prefix"]
    ours = model.state_dict()
    for name, tensor in cifar_state.items():
        assert torch.equal(ours[our_key(name.removeprefix("module."))], tensor)


def test_the_converted_model_chains_and_preprocesses_as_the_reference(cifar_state):
    model, _ = convert_state_dict(cifar_state, "cifar10")
    frames = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)  # BGR, as OpenCV gives
    with torch.no_grad():
        whole = model(frames)
        carried, chained = (frames,), []
        for stage in model.stages:
            out = stage(*carried)
            chained.append(out[0])
            carried = out[1:]
        normalised = model.stages[0].preprocess(frames)
    assert len(whole) == 5 and all(torch.equal(a, b) for a, b in zip(whole, chained))
    p = CONFIGURATIONS["cifar10"].preprocess
    rgb = frames.flip(-1).permute(0, 3, 1, 2).float() / 255  # what the reference's ToTensor gives
    expected = (rgb - torch.tensor(p.mean).view(1, 3, 1, 1)) / torch.tensor(p.std).view(1, 3, 1, 1)
    assert p.mean == (0.4914, 0.4824, 0.4467)  # the reference's statistics, not this package's CIFAR-10 ones
    assert torch.allclose(normalised, expected, atol=1e-5)


def test_the_command_writes_a_checkpoint_that_records_its_origin(tmp_path, cifar_state, capsys):
    src = save_reference(tmp_path / "model_best.pth.tar", cifar_state)
    out = tmp_path / "converted.pt"
    assert main(["--checkpoint", str(src), "--config", "cifar10", "--out", str(out)]) == 0
    assert "converted 562 tensors" in capsys.readouterr().out
    ckpt = read_checkpoint(out)
    assert ckpt["origin"]["implementation"] == "MSDNet-PyTorch" and ckpt["origin"]["epoch"] == 299
    assert ckpt["origin"]["best_prec1"] == pytest.approx(93.1) and len(ckpt["origin"]["sha256"]) == 64
    assert ckpt["classes"][0] == "airplane" and ckpt["preprocess"]["std"] == [0.2471, 0.2435, 0.2616]
    model, _ = load_model(out)
    assert torch.equal(model.state_dict()["stages.4.classifier.linear.weight"],
                       cifar_state["module.classifier.4.linear.weight"])


def test_imagenet_needs_class_names_and_keeps_the_resize_and_crop():
    from pipeline.models.reference import configuration_config, read_classes

    with pytest.raises(PipelineError, match="pass --classes"):
        read_classes(None, "imagenet", 1000)
    p = configuration_config("imagenet").preprocess
    assert (p.height, p.width, p.resize_shorter) == (224, 224, 256)


def test_another_configuration_names_the_first_tensor_and_the_options(tmp_path, cifar_state, capsys):
    src = save_reference(tmp_path / "ref.pth.tar", cifar_state)
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(src), "--config", "cifar100", "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "classifier.0.linear.weight has shape (10, 128)" in err and "(100, 128)" in err
    assert "num_classes=10" in err and "--config cifar10 fits it" in err
    assert not (tmp_path / "x.pt").exists()


def test_fewer_blocks_than_the_checkpoint_is_explained(cifar_state):
    with pytest.raises(PipelineError, match=r"tensors the cifar10 configuration lacks.*n_blocks=5"):
        convert_state_dict(cifar_state, "cifar10", {"n_blocks": 4})


def test_a_truncated_checkpoint_is_refused(tmp_path, cifar_state, capsys):
    src = save_reference(tmp_path / "ref.pth.tar", cifar_state)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit) as exc:
        main(["--checkpoint", str(src), "--config", "cifar10", "--out", str(tmp_path / "x.pt")])
    assert exc.value.code == 2 and "truncated" in capsys.readouterr().err


def test_malformed_checkpoints_are_named(tmp_path):
    from pipeline.models.reference import read_reference

    noise = tmp_path / "noise.pth.tar"
    noise.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(PipelineError, match="could not be read .*truncated or not a PyTorch checkpoint") as exc:
        read_reference(noise)
    assert "Python objects" not in str(exc.value) and "weights_only" not in str(exc.value)
    torch.save({0: torch.zeros(1), 1: torch.zeros(1)}, tmp_path / "numbered.pth.tar")
    with pytest.raises(PipelineError, match="a dict of tensors by name"):
        read_reference(tmp_path / "numbered.pth.tar")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": torch.zeros(3), "best_prec1": torch.tensor(9.5)},
               tmp_path / "meta.pth.tar")
    assert read_reference(tmp_path / "meta.pth.tar")[1] == {"best_prec1": 9.5}
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": _RunsCode()}, tmp_path / "code.pth.tar")
    with pytest.raises(PipelineError, match=r"names the Python object \S*system.*would run code") as exc:
        read_reference(tmp_path / "code.pth.tar")
    assert "weights_only" not in str(exc.value)


class _RunsCode:
    """Pickles as a call of os.system: what a file must never make the converter run."""

    def __reduce__(self):
        import os

        return os.system, ("true",)


def test_a_state_dict_missing_a_tensor_names_it(cifar_state):
    partial = dict(cifar_state)
    del partial["module.blocks.2.0.layers.1.conv_down.net.3.weight"]
    with pytest.raises(PipelineError, match=r"no tensor for stages\.2\.block\.0\.units\.1\.down\.3\.weight"):
        convert_state_dict(partial, "cifar10")


def test_pickled_objects_are_not_loaded_and_the_input_is_never_overwritten(tmp_path, cifar_state):
    import argparse

    from pipeline.models.reference import convert_file

    src = tmp_path / "ref.pth.tar"
    torch.save({"state_dict": cifar_state, "args": argparse.Namespace(data="cifar10")}, src)
    with pytest.raises(PipelineError, match=r"it names the Python object argparse\.Namespace.*would run code") as exc:
        convert_file(src, tmp_path / "x.pt", "cifar10")
    assert "weights_only" not in str(exc.value)  # torch's advice to load it unsafely is not passed on
    before = src.read_bytes()
    with pytest.raises(PipelineError, match="is the reference checkpoint itself"):
        convert_file(src, src, "cifar10")
    assert src.read_bytes() == before


def test_a_reference_checkpoint_given_to_the_build_points_at_the_converter(tmp_path, cifar_state, capsys):
    from pipeline.build.cli import main as build

    src = save_reference(tmp_path / "ref.pth.tar", cifar_state)
    before = src.read_bytes()
    with pytest.raises(SystemExit) as exc:
        build(["--checkpoint", str(src), "--out", str(tmp_path / "engines"), "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "anytime convert --checkpoint" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and src.read_bytes() == before
