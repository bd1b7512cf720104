import datetime as dt
import math
import zipfile

import pytest

from spark.errors import SparkError
from spark.ticks.model import InvalidTick, Tick, validate
from spark.ticks.readers import parse_ts, read

T0 = 1_398_920_401_787_000


@pytest.mark.parametrize(
    "tick,reason",
    [
        (Tick("eurusd", T0, bid=1.0, ask=1.1), "bad_symbol"),
        (Tick("EURUSD", 0, bid=1.0, ask=1.1), "bad_timestamp"),
        (Tick("EURUSD", T0 * 1000, bid=1.0, ask=1.1), "bad_timestamp"),
        (Tick("EURUSD", T0), "no_price"),
        (Tick("EURUSD", T0, bid=-1.0, ask=1.1), "non_positive_price"),
        (Tick("EURUSD", T0, bid=0.0, ask=1.1), "non_positive_price"),
        (Tick("EURUSD", T0, bid=math.nan, ask=1.1), "non_finite_price"),
        (Tick("EURUSD", T0, bid=1.2, ask=1.1), "crossed_book"),
        (Tick("EURUSD", T0, bid=1.0, ask=1.1, bid_size=-5), "bad_size"),
    ],
)
def test_invalid_ticks_have_reasons(tick, reason):
    with pytest.raises(InvalidTick) as err:
        validate(tick)
    assert err.value.reason == reason


def test_valid_shapes():
    validate(Tick("EURUSD", T0, bid=1.1, ask=1.1))  # locked, not crossed
    validate(Tick("IBM", T0, bid=182.1))  # one-sided quote
    validate(Tick("SPY", T0, last=167.41, last_size=100))  # trade
    assert Tick("SPY", T0, last=2.0).mid == 2.0
    assert Tick("X", T0, bid=1.0, ask=3.0).mid == 2.0


def test_fx_quotes_from_real_data(shared_data):
    rows = read(shared_data / "fxcm/eurusd/20140501_quote.zip", "lean-quote")
    first = next(rows)
    # 1787 ms after midnight at UTC-05:00 on 2014-05-01
    assert first.tick.ts == parse_ts("2014-05-01T05:00:01.787Z")
    assert (first.tick.symbol, first.tick.bid, first.tick.ask) == ("EURUSD", 1.38727, 1.38729)
    counted = {"ok": 1, "bad": 0}
    last = first.tick.ts
    for row in rows:
        if row.tick:
            assert row.tick.ts >= last
            last = row.tick.ts
            counted["ok"] += 1
        else:
            assert row.reason == "crossed_book"
            counted["bad"] += 1
    assert counted["ok"] + counted["bad"] == 51_053  # every line becomes a row


def test_equity_quotes_carry_the_other_side_forward(shared_data):
    rows = read(shared_data / "equity/bac/20131007_quote.zip", "lean-quote")
    first, second, third = next(rows), next(rows), next(rows)
    # 04:00:00.151 New York (EDT, UTC-4) on 2013-10-07; prices in 1/10,000 $
    assert first.tick.ts == parse_ts("2013-10-07T08:00:00.151Z")
    assert (first.tick.bid, first.tick.ask, first.tick.ask_size) == (None, 14.02, 500.0)
    assert (second.tick.bid, second.tick.ask) == (13.84, 14.02)
    assert (third.tick.bid, third.tick.ask, third.tick.venue) == (13.84, 13.95, "P")


def test_suspicious_rows_are_rejected(shared_data):
    reasons = [
        r.reason
        for r in read(shared_data / "equity/ibm/20131007_quote.zip", "lean-quote")
        if r.reason
    ]
    assert reasons.count("suspicious") == 1


def test_equity_trades(shared_data):
    first = next(read(shared_data / "equity/spy/20131007_trade.zip", "lean-trade"))
    assert (first.tick.symbol, first.tick.last, first.tick.last_size, first.tick.bid) == (
        "SPY",
        167.41,
        100.0,
        None,
    )


def test_generic_csv(tmp_path):
    path = tmp_path / "ticks.csv"
    path.write_text(
        "ts,symbol,bid,ask,bid_size,ask_size,last,last_size\n"
        "2014-05-01T05:00:01.787Z,eurusd,1.38727,1.38729\n"
        "1398920402000,EURUSD,1.3872,1.3873,1000000,2000000,,\n"
        "2014-05-01T05:00:03,GBPUSD,,,,,1.69,5\n"
        "not-a-time,EURUSD,1,2\n"
        "1398920404000,EURUSD,1.5,1.4\n"
        "1398920405000,EURUSD\n"
    )
    rows = list(read(path, "csv"))
    assert [r.reason for r in rows] == [
        "header",
        None,
        None,
        None,
        "unparsable",
        "crossed_book",
        "unparsable",
    ]
    assert rows[1].tick.ts == parse_ts("1398920401787") and rows[1].tick.symbol == "EURUSD"
    assert (rows[2].tick.bid_size, rows[2].tick.last) == (1_000_000.0, None)
    assert (rows[3].tick.last, rows[3].tick.ts) == (1.69, 1_398_920_403_000_000)
    assert [r.origin.rsplit(":", 1)[1] for r in rows] == ["1", "2", "3", "4", "5", "6", "7"]


def test_lean_plain_csv_and_tz_override(tmp_path):
    folder = tmp_path / "eurusd"
    folder.mkdir()
    path = folder / "20140501_quote.csv"
    path.write_text("0,1.1,1.2\n")
    assert next(read(path, "lean-quote")).tick.ts == parse_ts("2014-05-01T05:00:00Z")
    assert next(read(path, "lean-quote", tz="UTC")).tick.ts == parse_ts("2014-05-01T00:00:00Z")
    assert next(read(path, "lean-quote", symbol="FOO")).tick.symbol == "FOO"


def first_read(tmp_path, folders, name, text, fmt, field):
    """``field`` of the first tick of file ``name`` holding ``text`` under ``folders``, as
    both readers (row by row and columnar) read it: they must agree."""
    from spark.ticks.columns import read_batch

    path = tmp_path.joinpath(*folders, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    value = getattr(next(read(path, fmt)).tick, field)
    assert getattr(read_batch([path], fmt)[0], field)[0] == value
    return value


def test_lean_times_in_the_zone_of_the_market_folder(tmp_path):
    # LEAN's market-hours database: OANDA and crypto data in UTC, FXCM in UTC-05:00; a path
    # without a market folder keeps the column rule (3 columns: FX, UTC-05:00)
    quotes = "40.1868,1300.335,1300.799\n61000,1300.4,1300.9\n"

    def first_ts(*folders):
        return first_read(tmp_path, folders, "20140501_quote.csv", quotes, "lean-quote", "ts")

    utc = parse_ts("2014-05-01T00:00:00Z") + 40_187
    assert first_ts("cfd", "oanda", "tick", "xauusd") == utc
    assert first_ts("forex", "OANDA", "tick", "eurusd") == utc
    assert first_ts("crypto", "coinbase", "tick", "btcusd") == utc
    assert first_ts("forex", "fxcm", "tick", "eurusd") == utc + 5 * 3_600_000_000
    assert first_ts("mine", "eurusd") == utc + 5 * 3_600_000_000


def test_lean_prices_scaled_only_for_us_equities(tmp_path):
    # US equity files hold 1/10,000 $; LEAN's futures (and crypto, forex, cfd) files hold
    # actual prices: a COMEX gold contract trades at 1313.8, not 0.13138
    trades = "34200000,1313.8,1,usa,,0\n34200100,1313.9,2,usa,,0\n"

    def last_price(*folders):
        return first_read(tmp_path, folders, "20131007_trade.csv", trades, "lean-trade", "last")

    assert last_price("future", "comex", "tick", "gc") == 1313.8
    assert last_price("equity", "usa", "tick", "spy") == pytest.approx(0.13138)
    assert last_price("spy") == pytest.approx(0.13138)  # no folder: US equities, as before
    # the nearest security-type folder is the file's: not one further up the path
    assert last_price("crypto", "equity", "usa", "tick", "spy") == pytest.approx(0.13138)
    ts = first_read(tmp_path, ("crypto", "equity", "usa", "tick", "spy"), "20131007_trade.csv",
                    trades, "lean-trade", "ts")  # fmt: skip
    assert ts == parse_ts("2013-10-07T13:30:00Z")  # 09:30 New York, not UTC


def test_a_zip_of_several_files_is_refused_with_what_to_do(tmp_path):
    # a LEAN futures day: one CSV per contract; reading the first alone would score the
    # expiring contract's few ticks and say nothing
    path = tmp_path / "gc" / "20131007_trade.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("20131007_gc_tick_trade_201310.csv", "4933381,1313.8,1,usa,,0\n")
        zf.writestr("20131007_gc_tick_trade_201312.csv", "4933382,1313.9,2,usa,,0\n")
    with pytest.raises(SparkError, match="holds 2 files .*unzip the one you want"):
        list(read(path, "lean-trade"))


def test_fractional_milliseconds(tmp_path):
    path = tmp_path / "x" / "20140501_quote.csv"
    path.parent.mkdir()
    path.write_text("40.1868,1.1,1.2\n")
    ts = next(read(path, "lean-quote", tz="UTC")).tick.ts
    assert ts == parse_ts("2014-05-01T00:00:00Z") + 40_187


def test_unreadable_inputs_are_clear_errors(tmp_path):
    with pytest.raises(SparkError, match="no such file"):
        read(tmp_path / "missing.zip", "lean-quote")
    with pytest.raises(SparkError, match="is a folder"):
        read(tmp_path, "csv")
    with pytest.raises(SparkError, match="unknown format"):
        read(tmp_path / "x.csv", "parquet")
    nodate = tmp_path / "eurusd" / "quotes.csv"
    nodate.parent.mkdir()
    nodate.write_text("1,1.1,1.2\n")
    with pytest.raises(SparkError, match="YYYYMMDD"):
        next(read(nodate, "lean-quote"))
    empty = tmp_path / "eurusd" / "20140501_quote.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(SparkError, match="empty"):
        next(read(empty, "lean-quote"))


def test_parse_ts_naive_iso_is_utc():
    assert parse_ts("2014-05-01 05:00:00") == int(
        dt.datetime(2014, 5, 1, 5, tzinfo=dt.UTC).timestamp() * 1_000_000
    )


def test_lean_format_merges_a_stocks_quotes_and_trades(shared_data):
    """``--format lean`` tells quote from trade files by name, so both merge in one run:
    the same ticks as each file read in its own format, merged by time (quotes first on a
    tie, as the files are given); the columnar and the row readers agree."""
    import json

    import numpy as np
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.pipeline import TickBatch
    from spark.ticks.columns import read_batch
    from spark.ticks.replay import valid_ticks

    day = shared_data / "equity/ibm"
    quote, trade = day / "20131009_quote.zip", day / "20131009_trade.zip"
    both, rejected = read_batch([quote, trade], "lean")
    quotes, trades = read_batch([quote], "lean-quote")[0], read_batch([trade], "lean-trade")[0]
    joined = TickBatch.concat([quotes, trades])
    order = np.argsort(joined.ts, kind="stable")
    assert len(both) == len(quotes) + len(trades) and len(trades) > 10_000
    for name in ("ts", "bid", "ask", "bid_size", "last", "last_size"):
        assert np.array_equal(getattr(both, name), getattr(joined, name)[order], equal_nan=True)
    rows = list(valid_ticks([quote, trade], "lean"))
    assert [t.ts for t in rows] == both.ts.tolist()
    assert sum(t.last is not None for t in rows) == len(trades)

    out = CliRunner().invoke(
        cli,
        ["model", "eval", "--data", str(quote), str(trade), "--format", "lean", "--model",
         "logreg", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["ticks"] == len(both)
