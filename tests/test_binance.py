"""`--format binance`: Binance websocket JSON lines, spot and USD-M futures, enveloped or bare,
receive-stamped or not, plain or gzip; every line accounted for (tests/data/binance/README.md
says where the lines come from)."""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from spark.cli import cli
from spark.ticks.columns import read_batch
from spark.ticks.readers import read

DATA = Path(__file__).resolve().parent / "data" / "binance"
SPOT = DATA / "spot-combined.jsonl"
USDM = DATA / "usdm-stamped.jsonl"
BUNDLED_DAY = Path(__file__).resolve().parent.parent / "spark/data/fxcm/eurusd/20140501_quote.zip"


def test_spot_combined_stream_lines_become_ticks_skips_and_dead_letters():
    rows = list(read(SPOT, "binance"))
    assert len(rows) == 12
    ticks = [r.tick for r in rows if r.tick]
    skipped = Counter(r.skipped for r in rows if r.skipped)
    rejected = Counter(r.reason for r in rows if r.reason)
    assert skipped == {"depthUpdate": 1, "depth": 1, "kline": 1, "response": 1}
    assert rejected == {"crossed_book": 1, "unparsable": 1}
    assert len(ticks) + sum(skipped.values()) + sum(rejected.values()) == len(rows)

    first_trade, first_quote, *_ = ticks
    assert (first_trade.symbol, first_trade.ts) == ("BTCUSDT", 1_769_224_657_584_000)  # E, in µs
    assert (first_trade.last, first_trade.last_size, first_trade.bid) == (89879.78, 0.00068, None)
    # a spot bookTicker carries no time; without receive stamps it takes the line before's
    assert first_quote.ts == first_trade.ts
    assert (first_quote.bid, first_quote.bid_size, first_quote.ask, first_quote.ask_size) == (
        89879.78,
        4.93986,
        89879.79,
        2.11027,
    )
    assert {t.venue for t in ticks} == {"binance"}
    # the quote after the depth update takes the depth update's event time
    second_quote = [t for t in ticks if t.bid is not None][1]
    assert second_quote.ts == 1_769_224_658_150_000
    assert [t.ts for t in ticks] == sorted(t.ts for t in ticks)


def test_usdm_bare_payloads_with_receive_stamps_plain_and_gzip(tmp_path):
    gz = tmp_path / "usdm.jsonl.gz"
    gz.write_bytes(gzip.compress(USDM.read_bytes()))
    for path in (USDM, gz):
        rows = list(read(path, "binance"))
        ticks = [r.tick for r in rows if r.tick]
        assert Counter(r.skipped for r in rows if r.skipped) == {
            "depthUpdate": 1,
            "markPriceUpdate": 1,
        }
        assert len(ticks) == 4 and {t.symbol for t in ticks} == {"ETHUSDT"}
        quote = ticks[0]
        assert quote.ts == 1_769_224_700_010_000  # the exchange's E, not the receive stamp
        assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (
            2950.31,
            2950.32,
            31.21,
            40.66,
        )
        assert ticks[1].last == 2950.32 and ticks[1].last_size == 0.1
        assert ticks[-1].ts == 1_769_224_700_060_000  # no E or T: the receive stamp, ns -> µs


def test_a_bookticker_with_no_time_at_all_is_dead_lettered_with_what_to_do(tmp_path):
    path = tmp_path / "quotes.jsonl"
    path.write_text('{"u":1,"s":"BTCUSDT","b":"1.0","B":"1","a":"1.1","A":"1"}\n')
    (row,) = read(path, "binance")
    assert row.reason == "no_timestamp" and "receive time in ns" in row.detail
    assert row.key == b"BTCUSDT"


def binance_capture_of(ticks, path: Path) -> None:
    """The ticks as a USD-M futures bookTicker capture (combined-stream envelopes, gzip)."""
    with gzip.open(path, "wt") as out:
        for n, t in enumerate(ticks):
            data = {
                "e": "bookTicker",
                "u": n,
                "E": t.ts // 1000,
                "T": t.ts // 1000,
                "s": t.symbol,
                "b": repr(t.bid),
                "B": repr(t.bid_size or 0.0),
                "a": repr(t.ask),
                "A": repr(t.ask_size or 0.0),
            }
            out.write(json.dumps({"stream": f"{t.symbol.lower()}@bookTicker", "data": data}))
            out.write("\n")


def test_the_same_real_quotes_read_from_lean_and_from_binance_lines_are_the_same_ticks(tmp_path):
    """A real day's quotes written as Binance lines read back as the same ticks (times at
    Binance's millisecond resolution)."""
    ticks = [r.tick for r in itertools.islice(read(BUNDLED_DAY, "lean-quote"), 5000) if r.tick]
    capture = tmp_path / "eurusd.jsonl.gz"
    binance_capture_of(ticks, capture)
    batch, rejected = read_batch([capture], "binance")
    assert not rejected
    assert len(batch) == len(ticks)
    assert batch.ts.tolist() == [t.ts // 1000 * 1000 for t in ticks]
    assert batch.bid.tolist() == [t.bid for t in ticks]
    assert batch.ask.tolist() == [t.ask for t in ticks]


@pytest.mark.broker
def test_replay_accounts_for_every_line(broker, tmp_path):
    out = CliRunner().invoke(
        cli, ["ticks", "replay", str(SPOT), str(USDM), "--format", "binance", "--json"]
    )
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["rows"] == 18
    assert summary["produced"] == 10
    assert summary["dead_lettered"] == 2  # the torn line and the crossed book
    assert summary["skipped"] == 6
    assert summary["skipped_kinds"] == {
        "depthUpdate": 2,
        "depth": 1,
        "kline": 1,
        "response": 1,
        "markPriceUpdate": 1,
    }
    assert summary["rows"] == summary["produced"] + summary["dead_lettered"] + summary["skipped"]
    plain = CliRunner().invoke(cli, ["ticks", "replay", str(USDM), "--format", "binance"])
    assert "2 skipped (depthUpdate 1, markPriceUpdate 1)" in plain.output


def test_backtest_reads_binance_lines(tmp_path):
    ticks = [r.tick for r in itertools.islice(read(BUNDLED_DAY, "lean-quote"), 3000) if r.tick]
    capture = tmp_path / "eurusd.jsonl.gz"
    binance_capture_of(ticks, capture)
    out = CliRunner().invoke(
        cli, ["backtest", "run", "--data", str(capture), "--format", "binance", "--json"]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["ticks"] == len(ticks)
