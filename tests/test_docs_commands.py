"""Every command the README and docs/ show is one a user can paste: each `anytime ...` line parses with that
command's own parser (nothing is run), and each `make` target they name exists."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from pipeline.cli import BENCHMARKS, COMMANDS, Command

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


class Parsed(Exception):
    """Raised in place of running a command once its arguments parsed."""


def code_lines(text: str) -> list[str]:
    """The lines of fenced code blocks, with backslash continuations joined and comments cut."""
    out, inside, pending = [], False, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        line = pending + line.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        out.append(line)
    return out


def documented(prefix: str) -> list[tuple[str, str]]:
    """(page, command line) of every code line that starts with ``prefix`` (a ``$ `` prompt allowed)."""
    found = []
    for page in PAGES:
        for line in code_lines(page.read_text()):
            line = line.removeprefix("$ ")
            if line.startswith(prefix):
                found.append((page.name, shlex.split(line, comments=True)))
    return found


def resolve(argv: list[str]) -> tuple[Command, list[str]]:
    """The command an `anytime` argv names, and the arguments it is given."""
    commands, rest = COMMANDS, argv[1:]
    while True:
        command = commands[rest[0]]
        rest = rest[1:]
        if not command.group:
            return command, rest
        commands = command.group


ANYTIME = documented("anytime ")


def test_the_docs_show_commands():
    assert len(ANYTIME) >= 20 and {"engines", "camera", "train", "profile"} <= {argv[1] for _, argv in ANYTIME}


@pytest.mark.parametrize("page, argv", ANYTIME, ids=[f"{p}:{' '.join(a)[:60]}" for p, a in ANYTIME])
def test_each_documented_command_parses(page, argv, monkeypatch, capsys):
    import importlib

    command, args = resolve(argv)
    if "--help" in args:
        return  # shown to print the options: nothing to check but that the command exists
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):  # the command's own parser, then stop
        real(self, args, namespace)
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        pytest.skip(f"{exc.name} is not installed")
    try:
        module.main(args)
    except Parsed:
        return
    except SystemExit as exc:
        pytest.fail(f"{page}: `{' '.join(argv)}` does not parse: {capsys.readouterr().err.strip()} (exit {exc.code})")
    pytest.fail(f"{page}: `{' '.join(argv)}` ran without parsing its arguments")


def test_each_documented_make_target_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.M))
    named = {argv[1] for _, argv in documented("make ") if len(argv) > 1 and "=" not in argv[1]}
    assert named and sorted(named - targets) == []


def test_every_benchmark_is_documented():
    text = "\n".join(page.read_text() for page in PAGES)
    assert [name for name in BENCHMARKS if f"bench {name}" not in text] == []
