"""A user's --model-factory that cannot be imported, raises, has a syntax error or declares impossible input
sizes is one error line, exit 2, with nothing written."""

from __future__ import annotations

import pytest

from tests.faults.conftest import one_error, run_command

pytest.importorskip("torch")

BAD = {
    "raises": "def build():\n    raise ValueError('no such width')\n",
    "syntax": "def build(:\n    pass\n",
    "sizes": ("import torch.nn as nn\nclass Net(nn.Module):\n    preprocess = {'height': 0, 'width': 32, "
              "'mean': [0.5] * 3, 'std': [0.2] * 3}\n    stages = nn.ModuleList([nn.Conv2d(3, 3, 1)])\n"
              "def build():\n    return Net()\n"),
}


@pytest.mark.parametrize("kind, told", [("raises", "raised ValueError: no such width"),
                                        ("syntax", "failed (SyntaxError"),
                                        ("sizes", "the input height must be a whole number of pixels from 1")])
def test_a_broken_factory_is_one_line(tmp_path, capsys, kind, told):
    from pipeline.models.factory import main

    (tmp_path / f"{kind}.py").write_text(BAD[kind])
    assert run_command(main, ["--model-factory", f"{tmp_path / kind}.py:build", "--classes", "a", "--out",
                              tmp_path / "out.pt"]) == 2
    assert told in one_error(capsys.readouterr().err)
    assert not (tmp_path / "out.pt").exists()


def test_a_module_name_with_a_path_is_refused(tmp_path, capsys):
    from pipeline.models.factory import main

    assert run_command(main, ["--model-factory", "../x:y", "--out", tmp_path / "out.pt"]) == 2
    assert "'../x' is not a module name" in one_error(capsys.readouterr().err)


def test_a_converter_out_that_is_a_folder_or_under_a_file(tmp_path, capsys):
    from pipeline.models.factory import main

    (tmp_path / "file").write_text("keep")
    for out, told in ((tmp_path, "it is a folder"), (tmp_path / "file" / "m.pt", "is a file, not a folder")):
        assert run_command(main, ["--model", "msdnet_cifar", "--out", out]) == 2
        assert told in one_error(capsys.readouterr().err)
    assert (tmp_path / "file").read_text() == "keep"
