"""Damaged checkpoints given to the build: weights that do not fit their config, a missing ``split`` or
``classes``. One line saying what does not match, exit 2, nothing written."""

from __future__ import annotations

import pytest

from tests.faults.conftest import build_argv, one_error, run_command

torch = pytest.importorskip("torch")
pytest.importorskip("onnxsim")


def damaged(tiny, tmp_path, change) -> list[str]:
    """Build arguments for a copy of the tiny checkpoint changed by ``change(ckpt)``."""
    ckpt = torch.load(tiny.checkpoint, weights_only=True)
    change(ckpt)
    path = tmp_path / "damaged.pt"
    torch.save(ckpt, path)
    argv = build_argv(tiny, tmp_path / "out", tmp_path / "calib")
    argv[argv.index("--checkpoint") + 1] = path
    return argv


def refused(capsys, argv) -> str:
    from pipeline.build import main

    assert run_command(main, argv) == 2
    return one_error(capsys.readouterr().err)


def test_weights_that_do_not_fit_the_config(tiny, tmp_path, capsys):
    def wider(ckpt):
        ckpt["config"]["n_channels"] = 12  # the weights were trained with 8

    err = refused(capsys, damaged(tiny, tmp_path, wider))
    assert "weights do not fit its config" in err and "in the file but" in err and "more tensors" in err
    assert "size mismatch" not in err and len(err) < 400
    assert not (tmp_path / "out" / "msdnet_cifar").exists()


def test_a_config_that_makes_no_model(tiny, tmp_path, capsys):
    def unknown_key(ckpt):
        ckpt["config"]["no_such_option"] = 1

    assert "its config does not make a model" in refused(capsys, damaged(tiny, tmp_path, unknown_key))


@pytest.mark.parametrize("key, what", [("split", "how the validation split was drawn"), ("classes", "the class names")])
def test_a_checkpoint_missing_split_or_classes(tiny, tmp_path, capsys, key, what):
    err = refused(capsys, damaged(tiny, tmp_path, lambda ckpt: ckpt.pop(key)))
    assert f"should record {what} under {key!r} (it lacks it)" in err


def test_a_split_that_is_not_a_record(tiny, tmp_path, capsys):
    def as_text(ckpt):
        ckpt["split"] = "seed 0"

    assert "under 'split' (found str)" in refused(capsys, damaged(tiny, tmp_path, as_text))


def test_fewer_class_names_than_outputs_is_refused_at_build_time(tiny, tmp_path, capsys):
    err = refused(capsys, damaged(tiny, tmp_path, lambda ckpt: ckpt["classes"].pop()))
    assert "names 9 classes for 10 outputs" in err
    assert not (tmp_path / "out" / "msdnet_cifar").exists()


@pytest.mark.parametrize("field, value, told", [
    ("n_blocks", 10**9, "n_blocks must be whole numbers from 1 to 64"),
    ("num_classes", -1, "num_classes must be whole numbers from 1 to 100000"),
    ("growth_rate", 10**7, "growth_rate must be whole numbers from 1 to 1024"),
    ("height", 0, "the input height must be a whole number of pixels from 1 to 8192"),
])
def test_absurd_sizes_are_refused_before_anything_is_allocated(tiny, tmp_path, capsys, field, value, told):
    def absurd(ckpt):
        config = ckpt["config"]["preprocess"] if field == "height" else ckpt["config"]
        config[field] = value

    assert told in refused(capsys, damaged(tiny, tmp_path, absurd))
    assert not (tmp_path / "out" / "msdnet_cifar").exists()
