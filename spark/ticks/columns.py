"""Recorded tick files read straight into columns: what backtests and evaluations step on.

``read_batch(paths, fmt)`` returns the ticks ``spark.ticks.replay.valid_ticks`` would yield
(same rows rejected, same merge by event time, same per-symbol time order) as one
TickBatch, with the count of rejected rows per reason. LEAN files are parsed by pyarrow's
CSV reader and checked with numpy (~20x the row reader); anything unusual about a file
(a line that does not parse, rows out of time order, the generic CSV format) makes it
go through the row reader instead, so the result never depends on which path read it.
A test compares the two on every bundled file.
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from spark.errors import SparkError
from spark.pipeline.batch import PRICES, TickBatch
from spark.ticks.model import MAX_TS_US, SYMBOL
from spark.ticks.readers import (
    LineSource,
    _midnight_us,
    file_date,
    file_format,
    file_zone,
    lean_symbol,
    price_scale,
    read,
)
from spark.ticks.replay import valid_ticks


class _Irregular(Exception):
    """The file needs the row reader."""


def _raw_bytes(path: Path) -> bytes:
    src = LineSource(path)
    try:
        if src.member is not None:
            with zipfile.ZipFile(path) as zf:
                return zf.read(src.member)
        if path.suffix == ".gz":
            import gzip

            return gzip.decompress(path.read_bytes())
        return path.read_bytes()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise SparkError(f"cannot read {path}: {exc}") from None


def _table(data: bytes, columns: int):
    import pyarrow as pa
    from pyarrow import csv

    names = [f"c{i}" for i in range(columns)]
    text = {5, 6, 7} if columns == 8 else ({3, 4, 5} if columns == 6 else set())
    types = {n: (pa.string() if i in text else pa.float64()) for i, n in enumerate(names)}
    try:
        return csv.read_csv(
            io.BytesIO(data),
            read_options=csv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=csv.ParseOptions(),
            convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _Irregular(str(exc)) from None


def _lean_file(path: Path, fmt: str, symbol: str | None, tz: str | None) -> dict:
    """Columns of one LEAN file: every row's ts, prices, and its rejection reason or ''."""
    data = _raw_bytes(path)
    first = (data[: data.find(b"\n")] if b"\n" in data else data).rstrip(b"\r")
    columns = first.count(b",") + 1
    if (fmt, columns) not in (("lean-quote", 3), ("lean-quote", 8), ("lean-trade", 6)):
        raise _Irregular(f"{columns} columns")
    if b"\n\n" in data or b"\n\r\n" in data or data.startswith((b"\n", b"\r")):
        raise _Irregular("empty lines")  # the row reader names each one
    table = _table(data, columns)
    if any(table.column(i).null_count for i in range(columns)):
        raise _Irregular("empty fields")
    col = lambda i: table.column(i).to_numpy()  # noqa: E731
    date = file_date(path, LineSource(path).member)
    symbol = symbol or lean_symbol(path, LineSource(path).member)
    scale = price_scale(path)
    zone = file_zone(path, tz, None if fmt == "lean-trade" else columns)
    n = table.num_rows
    ts = _midnight_us(date, zone) + np.rint(col(0) * 1000).astype(np.int64)
    prices = {name: np.full(n, np.nan) for name in PRICES}
    reason = np.full(n, "", dtype=object)
    if columns == 3:
        prices["bid"], prices["ask"] = col(1), col(2)
    elif columns == 8:
        suspicious = ~np.isin(np.char.strip(col(7).astype(str)), ("0", ""))
        raw_bid, raw_ask = col(1), col(3)
        no_price = (raw_bid == 0) & (raw_ask == 0)
        reason[no_price] = "no_price"
        reason[suspicious] = "suspicious"
        used = ~suspicious & ~no_price  # rows that move the carried-forward book
        for side, raw, size in (("bid", raw_bid, col(2)), ("ask", raw_ask, col(4))):
            quoted = used & (raw != 0)
            carried = np.maximum.accumulate(np.where(quoted, np.arange(n), -1))
            known = carried >= 0
            where = np.maximum(carried, 0)
            prices[side] = np.where(known, raw[where] / scale, np.nan)
            prices[f"{side}_size"] = np.where(known, size[where], np.nan)
    else:
        suspicious = ~np.isin(np.char.strip(col(5).astype(str)), ("0", ""))
        reason[suspicious] = "suspicious"
        prices["last"], prices["last_size"] = col(1) / scale, col(2)
    _validate(symbol, ts, prices, reason)
    return {"symbol": symbol, "ts": ts, "prices": prices, "reason": reason}


def _validate(symbol: str, ts, prices, reason) -> None:
    """``spark.ticks.model.validate`` on columns; the first failing rule names the reason."""
    if not SYMBOL.match(symbol):
        reason[reason == ""] = "bad_symbol"
        return
    checks = [("bad_timestamp", (ts <= 0) | (ts >= MAX_TS_US))]
    sides = ("bid", "ask", "last")
    checks.append(("no_price", np.all([np.isnan(prices[s]) for s in sides], axis=0)))
    for s in sides:
        present = ~np.isnan(prices[s])
        checks.append(("non_finite_price", present & ~np.isfinite(prices[s])))
        checks.append(("non_positive_price", present & (prices[s] <= 0)))
    for s in ("bid_size", "ask_size", "last_size"):
        present = ~np.isnan(prices[s])
        checks.append(("bad_size", present & ~(np.isfinite(prices[s]) & (prices[s] >= 0))))
    checks.append(("crossed_book", prices["bid"] > prices["ask"]))
    for name, failed in checks:  # in validate's order: the first rule that fails names it
        reason[(reason == "") & failed] = name


def read_batch(
    paths: list[Path], fmt: str, symbol: str | None = None, tz: str | None = None
) -> tuple[TickBatch, Counter]:
    """(the valid ticks of ``paths`` merged by event time, rejected rows per reason)."""
    files = []
    try:
        for path in paths:
            path = Path(path)
            kind = file_format(path, fmt)
            if kind not in ("lean-quote", "lean-trade"):
                raise _Irregular(f"{fmt} is read row by row")
            read(path, kind, symbol, tz)  # the row reader's checks of the path and format
            files.append(_lean_file(path, kind, symbol, tz))
        return _merge(files)
    except _Irregular:
        return _by_rows(paths, fmt, symbol, tz)


def _merge(files: list[dict]) -> tuple[TickBatch, Counter]:
    """Rows of every file merged by event time as ``heapq.merge`` does (ties: earlier file
    first), a rejected row placed at the time of its file's last good row; then, per
    symbol, ticks going back in time dropped (``valid_ticks``)."""
    rejected: Counter = Counter()
    keys, parts = [], []
    for order, f in enumerate(files):
        good = f["reason"] == ""
        rejected.update(f["reason"][~good].tolist())
        if np.any(np.diff(f["ts"][good]) < 0):  # heapq.merge is a sort only of sorted files
            raise _Irregular("rows out of time order")
        idx = np.flatnonzero(good)
        keys.append(np.stack([f["ts"][idx], np.full(len(idx), order)]))
        parts.append((f, idx))
    if not parts:
        return TickBatch.empty(), rejected
    ts_all = np.concatenate([k[0] for k in keys])
    order = np.argsort(ts_all, kind="stable")  # files in order, each in time order: stable
    symbols = sorted({f["symbol"] for f, _ in parts})
    code = np.concatenate(
        [np.full(len(idx), symbols.index(f["symbol"]), np.int32) for f, idx in parts]
    )[order]
    ts = ts_all[order]
    prices = {
        name: np.concatenate([f["prices"][name][idx] for f, idx in parts])[order] for name in PRICES
    }
    keep = np.ones(len(ts), np.bool_)
    for c in range(len(symbols)):  # a tick older than its symbol's latest one is dropped
        mine = np.flatnonzero(code == c)
        before = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], ts[mine][:-1]]))
        keep[mine] = ts[mine] >= before
    rejected["out_of_order"] += int((~keep).sum())
    if rejected["out_of_order"] == 0:
        del rejected["out_of_order"]
    batch = TickBatch.from_columns(
        symbols, code[keep], ts[keep], {n: v[keep] for n, v in prices.items()}
    )
    return batch, rejected


def _by_rows(paths, fmt, symbol, tz) -> tuple[TickBatch, Counter]:
    rejected: Counter = Counter()

    def count(row) -> None:
        # lines that are no tick by design (e.g. Binance depth updates) are counted by kind
        rejected[row.reason or (f"skipped:{row.skipped}" if row.skipped else "good")] += 1

    kept = list(valid_ticks([Path(p) for p in paths], fmt, symbol, tz, on_row=count))
    good = rejected.pop("good", 0)
    if good > len(kept):
        rejected["out_of_order"] += good - len(kept)
    return TickBatch.from_ticks(kept), rejected
