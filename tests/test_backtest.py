"""Backtests: the live code over recorded ticks, figures that add up, clear parameter errors."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from spark.backtest.engine import (
    BacktestParams,
    InvalidParams,
    run_backtest,
    shared_runs,
    sharpe_ratio,
)
from spark.execution.paper import Position
from spark.ticks.replay import valid_ticks

DATA = Path(__file__).resolve().parent.parent / "spark/data"


def bundled_fx(n: int):
    path = DATA / "fxcm/eurusd/20140501_quote.zip"
    return list(itertools.islice(valid_ticks([path], "lean-quote"), n))


@pytest.fixture(scope="module")
def fx():
    return bundled_fx(6000)


def test_figures_add_up_on_real_ticks(fx):
    result = run_backtest(fx, BacktestParams(band=0.05, min_edge=0.0, gate=False))
    assert result.ticks == len(fx) and result.symbols == 1
    # every order filled, or (passive) was cancelled unfilled or still rests as the data ends
    assert result.signals > 0 and result.orders > 0 and result.working <= 1
    assert result.fills + result.unfilled + result.working == result.orders
    # every signal became an order, a rejection, no order (target held), or waits for a quote
    assert result.orders + result.rejected + result.no_change + result.pending == result.signals
    assert result.pnl == pytest.approx(result.realized_pnl + result.unrealized_pnl)
    assert result.fees == pytest.approx(sum(t["fee"] for t in result.trades))
    assert result.fees > 0 and result.max_drawdown >= 0
    # realized PnL is exactly what the fills imply: replay them through a fresh position book
    position = Position()
    for t in result.trades:
        position.apply(t["quantity"] * (1 if t["side"] == "BUY" else -1), t["price"], t["fee"])
    assert position.realized == pytest.approx(result.realized_pnl)
    assert 0 < result.auc < 1 and result.labels > 0
    # the equity curve is hourly and ends where the PnL is (up to the last quote's mark)
    assert result.hours == len(result.equity_curve) >= 1


def test_same_ticks_same_result(fx):
    a = run_backtest(fx[:3000], BacktestParams(band=0.05, min_edge=0.0))
    b = run_backtest(fx[:3000], BacktestParams(band=0.05, min_edge=0.0))
    assert a.metrics() | {"seconds": 0} == b.metrics() | {"seconds": 0}
    assert a.trades == b.trades


def test_parameters_change_the_outcome(fx):
    no_drawdown_limit = {"max_daily_drawdown": 1e12}  # else fees change which orders pass
    cheap = run_backtest(
        fx[:3000],
        BacktestParams(band=0.05, min_edge=0.0, gate=False, fee_bp=0.0, limits=no_drawdown_limit),
    )
    dear = run_backtest(
        fx[:3000],
        BacktestParams(band=0.05, min_edge=0.0, gate=False, fee_bp=2.0, limits=no_drawdown_limit),
    )
    assert cheap.orders == dear.orders and cheap.fees == 0 < dear.fees
    assert dear.realized_pnl == pytest.approx(cheap.realized_pnl - dear.fees)
    tight = run_backtest(
        fx[:3000],
        BacktestParams(band=0.05, min_edge=0.0, gate=False, limits={"max_orders_per_minute": 1}),
    )
    assert tight.rejections.get("max_orders_per_minute", 0) > 0


def test_parameters_are_checked_with_clear_messages():
    assert BacktestParams.from_dict({}) == BacktestParams()
    with pytest.raises(InvalidParams, match=r"unknown parameters \['bandwidth'\]"):
        BacktestParams.from_dict({"bandwidth": 0.1})
    with pytest.raises(InvalidParams, match="model must be one of"):
        BacktestParams.from_dict({"model": "gpt"})
    with pytest.raises(InvalidParams, match="band must be between"):
        BacktestParams.from_dict({"band": 0.7})
    with pytest.raises(InvalidParams, match="fee_bp must be a number"):
        BacktestParams.from_dict({"fee_bp": "low"})
    with pytest.raises(InvalidParams, match="unknown limit"):
        BacktestParams.from_dict({"limits": {"max_leverage": 3}})
    with pytest.raises(InvalidParams, match="JSON object"):
        BacktestParams.from_dict([1, 2])


def test_sharpe_ratio():
    assert math.isnan(sharpe_ratio([0.0, 1.0]))
    assert math.isnan(sharpe_ratio([0.0, 1.0, 2.0, 3.0]))  # no variance
    up = sharpe_ratio([0.0, 1.0, 3.0, 4.0, 6.0])
    assert up > 0 and sharpe_ratio([0.0, -1.0, -3.0, -4.0, -6.0]) == pytest.approx(-up)


def test_a_sweep_ranks_every_combination_by_the_objective(fx):
    from spark.jobs.optimizer import run_sweep

    path = str(DATA / "fxcm/eurusd/20140501_quote.zip")
    params = {
        "data": [path],
        "limit": 3000,
        "gate": False,
        "min_edge": 0.0,  # the band policy: it trades
        "grid": {"band": [0.05, 0.15], "fee_bp": [0.0, 1.0], "horizon_s": [1.0, 5.0]},
        "objective": "pnl",
    }
    out = run_sweep(params, restrict=False)
    assert len(out["ranking"]) == 8 and out["metrics"]["combinations"] == 8
    pnls = [row["objective"] for row in out["ranking"]]
    assert pnls == sorted(pnls, reverse=True)
    # two model runs (one per horizon), four policies each; each row is exactly a backtest
    # of its combination, figure for figure
    combos = [BacktestParams.from_dict(row["params"]) for row in out["ranking"]]
    assert sorted(len(g) for g in shared_runs(combos)) == [4, 4]
    assert len({row["metrics"]["pnl"] for row in out["ranking"]}) == 8
    for row in out["ranking"]:
        alone = run_backtest(fx[:3000], BacktestParams.from_dict(row["params"])).metrics()
        del alone["seconds"]
        assert {k: row["metrics"][k] for k in alone} == pytest.approx(alone, nan_ok=True, abs=0)
    assert out["best"]["params"]["fee_bp"] == 0.0  # same orders, no fees: never worse


def test_sweep_parameters_are_checked():
    from spark.jobs.optimizer import check_sweep

    path = str(DATA / "fxcm/eurusd/20140501_quote.zip")
    with pytest.raises(InvalidParams, match="grid"):
        check_sweep({"data": [path]}, restrict=False)
    with pytest.raises(InvalidParams, match="over the limit"):
        check_sweep({"data": [path], "grid": {"band": [0.1] * 9, "fee_bp": [0.0] * 9}},
                    restrict=False)  # fmt: skip
    with pytest.raises(InvalidParams, match="cannot be swept"):
        check_sweep({"data": [path], "grid": {"limit": [1, 2]}}, restrict=False)
    with pytest.raises(InvalidParams, match="band must be between"):
        check_sweep({"data": [path], "grid": {"band": [0.1, 0.9]}}, restrict=False)
    with pytest.raises(InvalidParams, match="objective must be one of"):
        check_sweep({"data": [path], "grid": {"band": [0.1]}, "objective": "luck"},
                    restrict=False)  # fmt: skip


@pytest.mark.parametrize("mode", ["rolling", "anchored"])
def test_walk_forward_chooses_on_train_windows_and_scores_the_next(mode):
    """Each fold's choice is the best of its train window alone, its out-of-sample figure
    a backtest of that choice on the next window alone; nothing of a test window is read to
    choose; the same request gives the same result."""
    from spark.jobs.optimizer import run_sweep
    from spark.ticks.columns import read_batch

    path = DATA / "fxcm/eurusd/20140501_quote.zip"
    grid = {"band": [0.05, 0.15, 0.25], "fee_bp": [0.0, 0.5]}
    params = {
        "data": [str(path)], "limit": 12_000, "gate": False, "model": "logreg",
        "min_edge": 0.0, "limits": {"max_daily_drawdown": 1e9}, "grid": grid,
        "walk_forward": {"folds": 3, "mode": mode, "train_folds": 2},
    }  # fmt: skip

    from tests.helpers import timeless

    out = run_sweep(params, restrict=False)
    assert timeless(out) == timeless(run_sweep(params, restrict=False))
    walk = out["walk"]
    assert len(walk["windows"]) == 3 and out["metrics"]["folds"] == 3
    batch = read_batch([path], "lean-quote", None, None)[0].take(0, 12_000)
    base = {"gate": False, "model": "logreg", "min_edge": 0.0}
    base["limits"] = {"max_daily_drawdown": 1e9}
    cuts = [0, 2400, 4800, 7200, 9600, 12_000]
    for f, row in enumerate(walk["windows"]):
        lo, hi = (0 if mode == "anchored" else cuts[f]), cuts[f + 2]
        test = batch.take(cuts[f + 2], cuts[f + 3])
        assert row["train"][2] == hi - lo and row["test"][2] == len(test)
        assert row["train"][1] < row["test"][0]  # the choice never saw the test window
        train_pnl = {
            (b, fee): run_backtest(
                batch.take(lo, hi), BacktestParams.from_dict(base | {"band": b, "fee_bp": fee})
            ).pnl
            for b, fee in itertools.product(*grid.values())
        }
        best = max(train_pnl.values())
        assert row["in_sample"] == pytest.approx(best)
        assert train_pnl[(row["params"]["band"], row["params"]["fee_bp"])] == best
        alone = run_backtest(test, BacktestParams.from_dict(row["params"]))
        assert row["out_of_sample"] == pytest.approx(alone.pnl)
        assert 1 <= row["oos_rank"] <= 6
    assert out["metrics"]["oos_pnl"] == pytest.approx(
        sum(r["out_of_sample"] for r in walk["windows"])
    )


def test_a_window_parameter_runs_one_share_of_the_ticks():
    """``window: [a, b, m]`` (how a fanned-out walk-forward names a child's ticks) runs the
    ticks from cut a to cut b of m equal windows, as the in-process walk-forward cuts them,
    and reports which ticks those were; bad windows are refused with what is allowed."""
    from spark.errors import SparkError
    from spark.jobs.backtest import run_request
    from spark.jobs.optimizer import check_sweep, unique_windows
    from spark.ticks.columns import read_batch

    path = DATA / "fxcm/eurusd/20140501_quote.zip"
    base = {"gate": False, "model": "logreg", "min_edge": 0.0, "band": 0.05}
    out = run_request({"data": [str(path)], "limit": 12_000, "window": [2, 4, 5]} | base,
                      restrict=False)  # fmt: skip
    batch = read_batch([path], "lean-quote", None, None)[0].take(0, 12_000)
    alone = run_backtest(batch.take(4800, 9600), BacktestParams.from_dict(base))
    metrics = out["metrics"]
    assert metrics["window_ticks"] == 4800 == metrics["ticks"]
    assert metrics["window_first_ts"] == batch.ts[4800]
    assert metrics["window_last_ts"] == batch.ts[9599]
    assert metrics["pnl"] == pytest.approx(alone.pnl) and metrics["fills"] == alone.fills
    for window in ([3, 3, 5], [0, 6, 5], [1, 2], "0:1", [0, True, 2], [0, 1, 1001]):
        with pytest.raises(InvalidParams, match="window must be"):
            run_request({"data": [str(path)], "window": window} | base, restrict=False)
    with pytest.raises(SparkError, match="too few for 200 windows"):
        run_request({"data": [str(path)], "limit": 12_000, "window": [0, 1, 200]} | base,
                    restrict=False)  # fmt: skip
    with pytest.raises(InvalidParams, match="a sweep takes"):
        check_sweep({"data": [str(path)], "grid": {"band": [0.1]}, "window": [0, 1, 2]},
                    restrict=False)  # fmt: skip
    # rolling with one train window: each test window is the next fold's train window
    assert unique_windows({"folds": 3, "mode": "rolling", "train_folds": 1}) == [
        (0, 1), (1, 2), (2, 3), (3, 4)
    ]  # fmt: skip
    assert unique_windows({"folds": 2, "mode": "anchored", "train_folds": 2}) == [
        (0, 2), (2, 3), (0, 3), (3, 4)
    ]  # fmt: skip


def test_walk_forward_is_checked_and_printed():
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.jobs.optimizer import check_sweep

    path = str(DATA / "fxcm/eurusd/20140501_quote.zip")
    for walk, says in [
        ({"folds": 0}, "folds must be a whole number"),
        ({"folds": 2, "mode": "sideways"}, "mode must be one of rolling, anchored"),
        ({"fold": 2}, "unknown"),
        ([2], "must be an object"),
    ]:
        with pytest.raises(InvalidParams, match=says):
            check_sweep({"data": [path], "grid": {"band": [0.1]}, "walk_forward": walk},
                        restrict=False)  # fmt: skip
    result = CliRunner().invoke(
        cli,
        ["optimize", "run", "--data", path, "--limit", "4000", "--no-gate", "--grid",
         "band=0.05,0.2", "--walk-forward", "2", "--anchored", "--min-edge", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "walk-forward, anchored, 2 test windows, pnl" in result.output
    assert "out of sample: PnL" in result.output and "in sample" in result.output


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx", "pdf"])
def test_reports_in_every_format_carry_the_figures_and_fills(tmp_path, fmt):
    import csv
    import json

    from spark.jobs.backtest import run_request
    from spark.settings import DEFAULT_MODEL

    path = tmp_path / f"report.{fmt}"
    params = {"data": [str(DATA / "fxcm/eurusd/20140501_quote.zip")], "limit": 3000,
              "band": 0.05, "min_edge": 0.0, "gate": False}  # fmt: skip
    out = run_request(params, path, restrict=False)
    fills = int(out["metrics"]["fills"])
    assert fills > 0 and out["artifact_uri"] == path.resolve().as_uri()
    if fmt == "json":
        body = json.loads(path.read_text())
        assert len(body["trades"]) == fills and body["pnl"] == pytest.approx(out["metrics"]["pnl"])
    elif fmt == "csv":
        rows = list(csv.DictReader(path.open()))
        assert len(rows) == fills and rows[0]["symbol"] == "EURUSD"
        assert sum(float(r["fee"]) for r in rows) == pytest.approx(out["metrics"]["fees"])
    elif fmt == "xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True)
        assert book.sheetnames == ["Summary", "Fills", "Equity"]
        # an empty cell (NaN: e.g. no passive cost under the band policy) ends its row
        rows = book["Summary"].iter_rows(min_row=2, values_only=True)
        summary = {r[0]: (r[1] if len(r) > 1 else None) for r in rows}
        assert summary["pnl"] == pytest.approx(out["metrics"]["pnl"])
        assert "passive_cost_bp" in summary and summary["passive_cost_bp"] is None
        # the cost split and the policy that ran are in the report
        assert summary["gross_pnl"] - summary["fees"] - summary["spread_cost"] == pytest.approx(
            summary["pnl"]
        )
        assert summary["param: min_edge"] == "0.0"
        assert summary["param: model"] == f'"{DEFAULT_MODEL}"'
        assert sum(1 for _ in book["Fills"].iter_rows(min_row=2)) == fills
    else:
        body = path.read_bytes()
        assert body.startswith(b"%PDF") and b"Spark backtest report" in body
        assert b"/Type /Page" in body


def test_reports_for_requests_never_overwrite_or_follow_links(tmp_path):
    """A worker writes a request's report with O_EXCL | O_NOFOLLOW: a job id used twice, or a
    link planted where the report goes, fails the job instead of writing elsewhere."""
    from spark.errors import SparkError
    from spark.export.reports import write_report

    report = {"trades": [], "equity_curve": [], "params": {}}
    path = write_report(report, tmp_path / "job-1.json", exclusive=True)
    with pytest.raises(SparkError, match="exists already"):
        write_report(report, path, exclusive=True)
    target = tmp_path / "elsewhere.json"
    target.write_text("keep me")
    (tmp_path / "job-2.json").symlink_to(target)
    with pytest.raises(SparkError, match="exists already|symbolic link"):
        write_report(report, tmp_path / "job-2.json", exclusive=True)
    assert target.read_text() == "keep me"
    write_report(report, path)  # the CLI, on the user's own path, may overwrite


def test_jobs_from_a_topic_are_capped_in_rows_the_cli_is_not(tmp_path, monkeypatch):
    """SPARK_JOB_MAX_ROWS: a backtest or sweep request over more valid ticks than the cap
    fails with the count and what to do; under ``limit`` it runs; the CLI is not capped.
    SPARK_JOB_MAX_BYTES: the same for the files' uncompressed bytes, before reading."""
    import json

    from spark.jobs.backtest import run_request
    from spark.jobs.runner import job_in_subprocess

    monkeypatch.setenv("SPARK_HOME", str(tmp_path))
    monkeypatch.setenv("SPARK_JOB_MAX_ROWS", "1000")
    data = [str(DATA / "fxcm/eurusd/20140501_quote.zip")]

    def job(kind, job_id, **params):
        body = {"data": data, "gate": False, "model": "logreg"} | params
        request = {"job_id": job_id, "kind": kind, "parent_job_id": None,
                   "params_json": json.dumps(body)}  # fmt: skip
        return job_in_subprocess(request)

    over = job("backtest", "b1")
    assert over["status"] == "failed", over
    assert "over this worker's cap of 1,000" in over["error"]
    assert "SPARK_JOB_MAX_ROWS" in over["error"]
    sweep = job("optimizer", "s1", grid={"band": [0.05, 0.1]}, fan_out=False)
    assert sweep["status"] == "failed" and "cap of 1,000" in sweep["error"], sweep
    under = job("backtest", "b2", limit=800)
    assert under["status"] == "ok", under
    assert under["metrics"]["ticks"] == 800
    local = run_request(
        {"data": data, "limit": 1500, "gate": False, "model": "logreg"}, restrict=False
    )
    assert local["metrics"]["ticks"] == 1500
    monkeypatch.setenv("SPARK_JOB_MAX_ROWS", "lots")
    bad = job("backtest", "b3", limit=800)
    assert bad["status"] == "failed" and "whole number" in bad["error"], bad
    # SPARK_JOB_MAX_BYTES: files over it are refused before they are read (`limit` does
    # not help: the whole file would be read first)
    monkeypatch.setenv("SPARK_JOB_MAX_ROWS", "0")
    monkeypatch.setenv("SPARK_JOB_MAX_BYTES", "100000")
    big = job("backtest", "b4", limit=800)
    assert big["status"] == "failed", big
    assert "over this worker's cap of 100,000" in big["error"]
    assert "SPARK_JOB_MAX_BYTES" in big["error"]
    sweep = job("optimizer", "s2", grid={"band": [0.05, 0.1]}, fan_out=False)
    assert sweep["status"] == "failed" and "SPARK_JOB_MAX_BYTES" in sweep["error"], sweep
    monkeypatch.setenv("SPARK_JOB_MAX_BYTES", "0")
    assert job("backtest", "b5", limit=800)["status"] == "ok"


def test_data_bytes_counts_what_the_reader_would_hold(tmp_path):
    """The byte cap's measure: a zip's member as declared, a gzip by decompressing (it
    stops soon past the cap: a huge or lying gzip is not inflated to the end), plain files
    by size."""
    import gzip
    import zipfile

    from spark.jobs.backtest import data_bytes

    zipped = DATA / "fxcm/eurusd/20140501_quote.zip"
    with zipfile.ZipFile(zipped) as zf:
        content = zf.read(zf.namelist()[0])
    gz, plain = tmp_path / "day.csv.gz", tmp_path / "day.csv"
    gz.write_bytes(gzip.compress(content * 20))
    plain.write_bytes(content)
    assert data_bytes([str(zipped)], 10**12) == len(content)
    assert data_bytes([str(plain)], 10**12) == len(content)
    assert data_bytes([str(gz)], 10**12) == 20 * len(content)
    assert len(content) < data_bytes([str(gz)], len(content)) <= len(content) + (1 << 20) + 1
    assert data_bytes([str(zipped), str(plain)], 10) > 10
