"""The ``anytime`` command line: the listing, each subcommand's own help under its new name, an unknown
name refused in one line, a real run through the dispatcher, the old scripts still working, and the
Makefile going through it. In process (``pipeline.cli.main``) wherever a subprocess is not the point."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import BENCHMARKS, COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
EVERY = [[name] for name, command in COMMANDS.items() if not command.group] + [["bench", name] for name in BENCHMARKS]


def run(argv, capsys):
    """(exit code, stdout, stderr) of ``anytime *argv`` in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"]])
def test_the_listing_names_every_command_on_one_line(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 0 and err == ""
    assert out.startswith("usage: anytime [--version] <command>")
    for name, command in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(command.summary)}$", out, re.M), name
    assert "bench" in out and all(name in out for name in BENCHMARKS)


def test_the_bench_listing_names_every_benchmark(capsys):
    code, out, _ = run(["bench"], capsys)
    assert code == 0 and out.startswith("usage: anytime bench <command>")
    for name, command in BENCHMARKS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(command.summary)}$", out, re.M), name


@pytest.mark.parametrize("argv", EVERY, ids=" ".join)
def test_each_subcommand_shows_its_own_help_under_its_new_name(argv, capsys):
    try:
        code, out, err = run([*argv, "--help"], capsys)
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "cv2"):
            pytest.skip(f"{exc.name} is not installed")
        raise
    assert code == 0, err
    assert out.startswith(f"usage: anytime {' '.join(argv)} ") and "--help" in out


@pytest.mark.parametrize("argv, name", [(["engnes"], "'engnes'"), (["bench", "nope"], "'nope'"),
                                        (["--nope"], "'--nope'")])
def test_an_unknown_command_is_one_line_and_exit_2(argv, name, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and name in err


def test_the_version(capsys):
    from pipeline import __version__

    assert run(["--version"], capsys) == (0, f"anytime {__version__}\n", "")


def test_a_near_miss_is_named(capsys):
    assert "did you mean 'engines'" in run(["engnes"], capsys)[2]


def test_a_subcommand_keeps_its_exit_code_for_a_bad_option(capsys):
    code, _, err = run(["camera", "--engines", "x"], capsys)
    assert code == 2 and "usage: anytime camera" in err and "--source" in err


def test_a_real_run_through_the_dispatcher(capsys):
    pytest.importorskip("torch")
    code, out, _ = run(["flops", "--model", "msdnet_cifar"], capsys)
    assert code == 0
    assert out.startswith("| exit | cumulative MFLOPs") and len(re.findall(r"^\| \d \|", out, re.M)) == 5


def test_the_backend_choices_are_the_registry(capsys):
    from pipeline.apps.camera import build_parser
    from pipeline.backends import BACKENDS
    from pipeline.benchmarks.video_benchmark import build_parser as video_parser

    def choices(parser):
        return next(a.choices for a in parser._actions if a.dest == "backend")

    assert list(choices(build_parser())) == ["auto", *BACKENDS]
    assert list(choices(video_parser())) == list(BACKENDS)


def test_importing_and_listing_load_no_heavy_package():
    code = ("import sys, pipeline.cli; pipeline.cli.dispatch('anytime', pipeline.cli.COMMANDS, []); "
            "print(sorted(m for m in ('torch', 'cv2', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("script, prog", [("apps/camera.py", "anytime camera"),
                                          ("benchmarks/cascade_benchmarks.py", "anytime bench cascade")])
def test_the_old_scripts_still_run(script, prog, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {prog} ")


def test_the_console_script_is_declared():
    assert '\nanytime = "pipeline.cli:main"\n' in (ROOT / "pyproject.toml").read_text()


def test_the_makefile_runs_every_command_through_anytime():
    lines = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t$(PY) ")]
    tools = ("$(PY) -m pip ", "$(PY) -m mypy", "$(PY) -m pytest")
    commands = [line for line in lines if not line.startswith(tools)]
    assert len(commands) >= 15
    for line in commands:
        match = re.match(r"\$\(PY\) -m pipeline\.cli (\S+)(?: (\S+))?", line)
        assert match, line
        name, sub = match.groups()
        assert name in COMMANDS and (name != "bench" or sub in BENCHMARKS), line
