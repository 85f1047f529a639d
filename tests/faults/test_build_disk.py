"""A build and the profiler meeting a full disk (a file size limit in a child process, which fails writes
with EFBIG as a full disk fails them with ENOSPC): one ``error:`` line naming the cause and the file,
exit 2, no temporary left, the previous build and the manifest untouched."""

from __future__ import annotations

import errno

import pytest

from pipeline.errors import cli_main
from tests.faults.conftest import CommandChild, build_argv, one_error, snapshot, temporaries

# Room for the tiny model's small files, not for its ONNX graphs or manifest.
LIMIT = 600


def test_a_storage_error_is_one_line_and_exit_2(capsys):
    @cli_main
    def full(argv=None):
        raise OSError(errno.ENOSPC, "No space left on device", "/x/engines/manifest.json")

    with pytest.raises(SystemExit) as exc:
        full()
    assert exc.value.code == 2
    err = one_error(capsys.readouterr().err)
    assert err == ("error: no space left on device writing the file /x/engines/manifest.json; "
                   "free some space or write it elsewhere")


def test_other_os_errors_keep_their_traceback():
    @cli_main
    def broken(argv=None):
        raise OSError(errno.EBADF, "Bad file descriptor")

    with pytest.raises(OSError):
        broken()


def test_a_rebuild_on_a_full_disk_leaves_the_previous_build(tiny, tmp_path):
    """Compile-only (no torch in the child): the engines' files do not fit."""
    folder = tiny.copy(tmp_path)
    out = folder.parent
    before = snapshot(out)
    child = CommandChild("build", build_argv(tiny, out, tmp_path / "calib", "--compile-only", "--force"), "none",
                         tmp_path, fsize=LIMIT)
    status, stdout, stderr = child.finish(120)
    assert status == 2, stderr
    err = one_error(stderr)
    assert err.startswith("error: file too large writing the file ") and f"at most {LIMIT} bytes" in err, err
    assert str(out) in err  # the file is named, inside the output folder
    assert temporaries(out) == [] and snapshot(out) == before


def test_an_export_on_a_full_disk_writes_nothing(tiny, tmp_path):
    """A first build (torch exports in the child): the ONNX graphs do not fit."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxsim")
    out, calib = tmp_path / "engines", tmp_path / "calib"
    child = CommandChild("build", build_argv(tiny, out, calib, "--precisions", "fp32,int8"), "none", tmp_path,
                         fsize=LIMIT)
    status, stdout, stderr = child.finish(180)
    assert status == 2, stderr
    assert one_error(stderr).startswith("error: file too large writing ")
    assert temporaries(out, calib) == [] and not out.exists()  # not even the folder it made for --out


def test_the_profiler_on_a_full_disk_leaves_the_manifest(tiny, tmp_path):
    folder = tiny.copy(tmp_path)
    before = snapshot(folder)
    reports = tmp_path / "reports"
    argv = ["--engines", folder, "--data", tiny.data, "--cache-dir", tiny.cache, "--out", reports,
            "--runs", "20", "--warmup", "2", "--precisions", "fp32"]
    child = CommandChild("profile", argv, "none", tmp_path, fsize=LIMIT)
    status, stdout, stderr = child.finish(120)
    assert status == 2, stderr
    assert one_error(stderr).startswith("error: file too large writing ")
    assert snapshot(folder) == before and temporaries(folder, reports) == []
