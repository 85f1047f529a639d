"""``anytime bench triton``: its options are checked before a server starts, and a short run on the tiny model
writes a whole report (the one-frame costs and one row per camera count and mode)."""

from __future__ import annotations

import json
import time

import pytest

from pipeline.serving.bench import main as bench_main
from tests.serving.conftest import need_server


def bench_args(tiny, out, *extra: str) -> list[str]:
    return ["--engines", str(tiny.folder), "--data", str(tiny.data), "--cache-dir", str(tiny.cache),
            "--json", str(out), *extra]


@pytest.mark.parametrize("extra, says", [
    (["--cameras", "1,x"], "--cameras should be a comma list of whole numbers"),
    (["--cameras", "0"], "--cameras needs counts of 1 or more"),
    (["--modes", "local,teleport"], "--modes a comma list of local, batched, client, bls"),
    (["--seconds", "0"], "seconds"),
])
def test_bad_options_are_one_line_and_exit_2_before_any_server(tiny, tmp_path, capsys, extra, says):
    started = time.monotonic()
    with pytest.raises(SystemExit) as exc:
        bench_main(bench_args(tiny, tmp_path / "report.json", *extra))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and says in err and len(err.splitlines()) == 1, err
    assert time.monotonic() - started < 30 and not (tmp_path / "report.json").exists()  # refused before any server


def test_the_report_may_not_overwrite_an_input(tiny, capsys):
    manifest = tiny.folder / "manifest.json"
    before = manifest.read_bytes()
    with pytest.raises(SystemExit) as exc:
        bench_main(bench_args(tiny, manifest))
    assert exc.value.code == 2 and "--json" in capsys.readouterr().err
    assert manifest.read_bytes() == before


def test_a_short_run_writes_costs_and_a_row_per_count_and_mode(tiny, tmp_path, capsys):
    need_server()
    out = tmp_path / "report.json"
    code = bench_main(bench_args(tiny, out, "--cameras", "2", "--modes", "client,local", "--seconds", "0.5",
                                 "--fps", "10", "--budget-ms", "500", "--frames", "3"))
    assert code == 0
    report = json.loads(out.read_text())
    assert report["command"].startswith("anytime bench triton --engines ")
    assert [(r["cameras"], r["mode"]) for r in report["rows"]] == [(2, "client"), (2, "local")]
    for row in report["rows"]:
        assert row["frames"] > 0 and row["in_budget"] + row["late"] + row["no_answer"] == row["frames"], row
    assert report["costs"] and report["seconds"] > 0
    assert f"wrote {out}" in capsys.readouterr().out
