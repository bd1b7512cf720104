"""Tick files on the command line, the same way everywhere: several after one flag, the flag
repeated, glob patterns (quoted, so the shell leaves them to us); the old forms still work."""

from __future__ import annotations

import itertools
import json

import click
import pytest
from click.testing import CliRunner

from spark.cli import cli
from spark.cli.common import paths_option
from spark.ticks.readers import read
from tests.test_binance import BUNDLED_DAY, binance_capture_of


@click.command()
@paths_option("--data", "paths", "files")
@paths_option("--then", "then_paths", "more files", required=False)
@click.option("--format", "fmt", default="x")
def show(paths, then_paths, fmt):
    click.echo(json.dumps([[str(p) for p in paths], [str(p) for p in then_paths], fmt]))


def parsed(*args: str):
    out = CliRunner().invoke(show, list(args))
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_values_run_to_the_next_option():
    assert parsed("--data", "a", "b", "--then", "c", "--format", "y") == [["a", "b"], ["c"], "y"]
    assert parsed("--data", "a", "--data", "b") == [["a", "b"], [], "x"]
    assert parsed("--format", "y", "--data", "a", "b") == [["a", "b"], [], "y"]


def test_globs_expand_sorted_and_a_pattern_matching_nothing_says_so(tmp_path):
    for name in ("b.zip", "a.zip", "c.csv"):
        (tmp_path / name).write_text("")
    assert parsed("--data", str(tmp_path / "*.zip"))[0] == [
        str(tmp_path / "a.zip"),
        str(tmp_path / "b.zip"),
    ]
    out = CliRunner().invoke(show, ["--data", str(tmp_path / "*.parquet")])
    assert out.exit_code == 2
    assert "no file matches" in out.output and "Traceback" not in out.output


@pytest.fixture
def two_captures(tmp_path):
    rows = (r.tick for r in read(BUNDLED_DAY, "lean-quote") if r.tick)
    ticks = list(itertools.islice(rows, 2000))
    folder = tmp_path / "captures"
    folder.mkdir()
    binance_capture_of(ticks[:1000], folder / "part1.jsonl.gz")
    binance_capture_of(ticks[1000:], folder / "part2.jsonl.gz")
    return folder


def test_every_form_reads_the_same_files(two_captures):
    a, b = two_captures / "part1.jsonl.gz", two_captures / "part2.jsonl.gz"
    forms = [
        ["--data", str(a), str(b)],
        ["--data", str(a), "--data", str(b)],
        ["--data", str(two_captures / "*.jsonl.gz")],
    ]
    for form in forms:
        out = CliRunner().invoke(
            cli, ["backtest", "run", *form, "--format", "binance", "--limit", "5000", "--json"]
        )
        assert out.exit_code == 0, (form, out.output)
        assert json.loads(out.output)["ticks"] == 2000, form


@pytest.mark.broker
def test_replay_takes_arguments_data_and_globs(broker, two_captures):
    a = two_captures / "part1.jsonl.gz"
    for form in (
        [str(a)],  # the old form
        ["--data", str(a)],
        [str(two_captures / "part1.*")],
    ):
        out = CliRunner().invoke(cli, ["ticks", "replay", *form, "--format", "binance", "--json"])
        assert out.exit_code == 0, (form, out.output)
        assert json.loads(out.output)["rows"] == 1000, form
    out = CliRunner().invoke(cli, ["ticks", "replay", "--format", "binance"])
    assert out.exit_code == 2 and "give the tick files" in out.output
