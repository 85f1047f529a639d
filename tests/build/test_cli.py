"""`make engines` end to end on the tiny model and generated ImageFolder data: contents, reruns, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxsim")

import pipeline.build.accuracy as build_accuracy  # noqa: E402
from pipeline.data.options import DataOptions  # noqa: E402
import pipeline.build.options as build_options  # noqa: E402
from pipeline.build import main  # noqa: E402
from pipeline.backends import unavailable_reason  # noqa: E402
from pipeline.manifest import MANIFEST_NAME, load_manifest, sha256_file, variant_key  # noqa: E402
from tests.conftest import TINY  # noqa: E402

CLASSES = ("cat", "dog", "frog")


def write_checkpoint(path: Path, model_name: str = "msdnet_cifar") -> Path:
    from pipeline.checkpoint import save_checkpoint
    from pipeline.models import create_model

    torch.manual_seed(0)
    model = create_model("msdnet_cifar", **TINY, num_classes=len(CLASSES))
    save_checkpoint(path, model, model_name, list(CLASSES), {"seed": 0, "size": 6, "source": "generated"})
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> SimpleNamespace:
    """Generated data (<root>/{train,test}/<class>/NN.png, 32x32), a tiny checkpoint, and one complete build."""
    root = tmp_path_factory.mktemp("project")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 8), ("test", 3)):
        for cls in CLASSES:
            folder = root / "data" / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                cv2.imwrite(str(folder / f"{i:02d}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    p = SimpleNamespace(root=root, ckpt=write_checkpoint(root / "tiny.pt"), data=root / "data", out=root / "engines",
                        calib=root / "calib", cache=root / "cache")
    p.args = lambda *extra, out=None: ["--checkpoint", str(p.ckpt), "--data", str(p.data), "--out", str(out or p.out),
                                       "--calib-dir", str(p.calib), "--cache-dir", str(p.cache),
                                       "--calib-images", "8", *extra]
    threads = torch.get_num_threads()
    assert main(p.args("--test-split")) == 0
    assert torch.get_num_threads() == threads  # the build's one-thread setting does not leak
    p.folder = p.out / "msdnet_cifar"
    return p


def fails(argv, capsys, match: str) -> str:
    """Run the CLI, expect exit 2 and an ``error: ...`` line without traceback matching ``match``."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert re.search(match, err), err
    return err


def test_manifest_describes_the_build(project):
    m = load_manifest(project.folder)  # verifies every file's sha256
    assert m.model["name"] == "msdnet_cifar" and m.model["checkpoint_sha256"] == sha256_file(project.ckpt)
    assert m.model["split"] == {"seed": 0, "size": 6, "source": "generated"}
    assert m.classes == list(CLASSES) and m.input.shape == ["N", 32, 32, 3] and m.input.dtype == "uint8"
    assert [s.index for s in m.stages] == [1, 2, 3]
    assert [s.inputs[0].name for s in m.stages] == ["frame", "stage1_map0", "stage2_map0"]
    assert all(a.flops < b.flops and a.params < b.params for a, b in zip(m.stages, m.stages[1:]))
    kinds = {(a.precision, a.flavour) for a in m.artifacts}
    assert kinds == {("fp32", ""), ("fp16", ""), ("int8", ""), ("int8", "u8")}
    assert all(len(m.files(precision=p, flavour=f)) == 3 for p, f in kinds)
    for precision in ("fp32", "fp16", "int8"):
        engines = m.files(backend="onnxruntime", precision=precision, engines=True)
        assert [e.stage for e in engines] == [1, 2, 3]
    assert {e.flavour for e in m.files(precision="int8", engines=True)} == {"u8"}  # the CPU's fast scheme
    for split in ("validation", "test"):
        for precision in ("fp32", "fp16", "int8"):
            acc = m.accuracy[split][variant_key("onnxruntime", precision)]
            assert len(acc) == 3 and all(0 <= a <= 100 for a in acc)
    assert {"torch", "onnx", "onnxsim", "onnxruntime"} <= set(m.tools)
    assert m.device.cpu and m.device.backends["onnxruntime"]["threads"] == 1
    assert m.calibration["method"] == "entropy" and m.calibration["images"] == 8
    assert m.latency == {} and m.thresholds == {}
    if unavailable_reason("tensorrt") is not None:
        assert not m.files(backend="tensorrt", engines=True)
    assert not list(project.out.glob(".*tmp*")), "no temp folder is left behind"


def test_rerun_with_nothing_changed_is_up_to_date(project, capsys):
    before = (project.folder / MANIFEST_NAME).read_bytes()
    t0 = time.time()
    assert main(project.args("--test-split")) == 0
    assert time.time() - t0 < 5
    assert "up to date" in capsys.readouterr().out
    assert (project.folder / MANIFEST_NAME).read_bytes() == before


def test_interrupted_rebuild_leaves_the_old_folder_intact(project, capsys, monkeypatch):
    before = {p: p.read_bytes() for p in project.folder.rglob("*") if p.is_file()}

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_accuracy, "measure_accuracy", interrupt)
    with pytest.raises(SystemExit) as info:
        main(project.args("--test-split", "--force"))
    assert info.value.code == 130
    assert "cache reused" in capsys.readouterr().out  # the calibration tensors came from calib/
    after = {p: p.read_bytes() for p in project.folder.rglob("*") if p.is_file()}
    assert after == before
    load_manifest(project.folder)
    assert [p.name for p in project.out.iterdir()] == ["msdnet_cifar"]


def test_without_torch_the_artifacts_are_compiled_without_export(project, tmp_path, monkeypatch, capsys):
    out = tmp_path / "engines"
    shutil.copytree(project.out, out)
    monkeypatch.setattr(build_options, "can_export", lambda: False)
    assert main(project.args(out=out)) == 0
    assert "no export here" in capsys.readouterr().out
    m, ref = load_manifest(out / "msdnet_cifar"), load_manifest(project.folder)
    assert [a.sha256 for a in m.artifacts] == [a.sha256 for a in ref.artifacts]
    assert m.accuracy["validation"] == ref.accuracy["validation"]
    assert main(project.args(out=out)) == 0
    assert "up to date" in capsys.readouterr().out


BLOCK_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnxsim", "onnxconverter_common"):
            raise ImportError(f"{name} is blocked: this is a device without torch")
sys.meta_path.insert(0, Block())
import pipeline.build.options as options
options.can_export = lambda: False  # find_spec would report the blocked packages as present
from pipeline.build import main
sys.exit(main(sys.argv[1:]))
"""


def test_compile_only_runs_where_torch_cannot_be_imported(project, tmp_path):
    out = tmp_path / "engines"
    shutil.copytree(project.out, out)
    argv = project.args("--skip-accuracy", out=out)
    i = argv.index("--checkpoint")
    del argv[i:i + 2]  # a device has no checkpoint either
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "no export here" in proc.stdout
    assert load_manifest(out / "msdnet_cifar").files(backend="onnxruntime", engines=True)


def test_option_errors_are_rejected_before_any_work(project, tmp_path, capsys, monkeypatch):
    out = tmp_path / "never"
    fails(project.args("--precisions", "fp32,int4", out=out), capsys, "--precisions must list some of fp32")
    fails(project.args("--backend", "openvino", out=out), capsys, "--backend must be one of auto")
    fails(project.args("--calib-images", "0", out=out), capsys, "--calib-images must be at least 1")
    fails(project.args("--calib-method", "mse", out=out), capsys, "--calib-method must be one of entropy")
    fails(project.args("--threads", "0", out=out), capsys, "--threads must be at least 1")
    if unavailable_reason("tensorrt") is not None:
        fails(project.args("--backend", "tensorrt", out=out), capsys, "TensorRT cannot run here")
    import pipeline.backends as backends

    monkeypatch.setattr(backends, "unavailable_reason", lambda name: None)
    monkeypatch.setattr(build_options, "buildable", lambda backend: {"fp32"})
    fails(project.args("--backend", "tensorrt", "--precisions", "fp32,fp16", out=out), capsys,
          "tensorrt cannot build fp16 on this device")
    fails(project.args("--backend", "tensorrt", "--dla-core", "0", "--precisions", "fp32,int8", out=out), capsys,
          "--dla-core builds FP16 plans only")
    # TensorRT's own options, checked by its backend module whichever backends the build targets
    fails(project.args("--backend", "onnxruntime", "--dla-core", "0", "--precisions", "fp16", out=out), capsys,
          "--dla-core needs a non-negative core number and the TensorRT backend")
    fails(project.args("--backend", "tensorrt", "--dla-core", "-1", "--precisions", "fp16", out=out), capsys,
          "--dla-core needs a non-negative core number and the TensorRT backend")
    fails(project.args("--backend", "onnxruntime", "--workspace-mb", "0", out=out), capsys,
          "--workspace-mb must be at least 1, got 0")
    assert not out.exists()


def test_bad_checkpoints(project, tmp_path, capsys):
    out = tmp_path / "never"
    args = project.args(out=out)
    i = args.index("--checkpoint") + 1
    fails(args[:i] + [str(tmp_path / "missing.pt")] + args[i + 1:], capsys, "missing.pt does not exist")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00not a checkpoint")
    fails(args[:i] + [str(tmp_path / "corrupt.pt")] + args[i + 1:], capsys, "could not be read")
    unknown = write_checkpoint(tmp_path / "unknown.pt", model_name="resnet_nope")
    fails(args[:i] + [str(unknown)] + args[i + 1:], capsys, "'resnet_nope', which this version does not know")
    fails(args + ["--model", "msdnet_imagenet"], capsys, "but 'msdnet_imagenet' was requested")
    assert not out.exists()  # not even the folder the failed build would have written into


def test_data_errors(project, tmp_path, capsys):
    out = tmp_path / "out"
    fails(project.args("--calib-images", "100", out=out), capsys, "100 calibration images requested.* only 18")
    args = project.args(out=out)
    args[args.index("--data") + 1] = str(tmp_path / "nowhere")
    fails(args, capsys, "nowhere does not exist")
    assert not out.exists() or not any(out.iterdir())


def test_compile_only_without_artifacts(project, tmp_path, capsys):
    fails(project.args("--compile-only", out=tmp_path / "empty"), capsys, "0 model folders")


def test_cli_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "pipeline.build", "--precisions", "int4"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --precisions") and "Traceback" not in proc.stderr


def test_auto_says_once_why_an_installed_backend_is_passed_over(monkeypatch, capsys):
    import pipeline.backends as backends

    reasons = {"onnxruntime": None, "tensorrt": "TensorRT cannot start CUDA: the NVIDIA driver is older than it"}
    monkeypatch.setattr(backends, "unavailable_reason", lambda name: reasons[name])
    assert build_options._backends(build_options.BuildOptions(checkpoint=None, out=Path("x"), data=DataOptions())) == ["onnxruntime"]
    out = capsys.readouterr().out
    assert out.count("note: TensorRT is installed but cannot run here: TensorRT cannot start CUDA") == 1
    assert "building for ONNX Runtime" in out
    reasons["tensorrt"] = "the tensorrt package is not installed"  # nothing to say where it is simply absent
    build_options._backends(build_options.BuildOptions(checkpoint=None, out=Path("x"), data=DataOptions()))
    assert capsys.readouterr().out == ""
