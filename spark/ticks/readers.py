"""Readers of recorded tick files. Each yields one :class:`Row` per input line.

Formats
-------
``lean-quote``  QuantConnect LEAN quote ticks, zip or plain, no header.
                3 columns ``time_ms,bid,ask`` (FX; prices as decimals), or
                8 columns ``time_ms,bid,bid_size,ask,ask_size,exchange,condition,suspicious``
                (US equities; prices in 1/10,000 $; a row carries one side, the
                other side's price and size are 0 and the last one is carried forward).
``lean-trade``  LEAN equity trade ticks: ``time_ms,price,size,exchange,sale_condition,suspicious``.
``lean``        Either, told by the file name (``*_trade.*``: trades, else quotes), so a
                stock's quote and trade files merge into one stream.
``csv``         Spark's generic CSV: ``ts,symbol,bid,ask[,bid_size,ask_size,last,last_size]``,
                an optional header line starting with ``ts``, ``ts`` as ISO-8601
                (naive = UTC) or epoch milliseconds, empty fields = missing.
``binance``     Binance websocket market-stream JSON, one message per line (plain or gzip),
                spot or USD-M futures: combined-stream envelopes ``{"stream", "data"}`` or
                bare payloads, each line optionally prefixed by the receive time in
                nanoseconds (``1714521600123456789 {...}``, separated by spaces, a tab,
                a comma, ``;`` or ``|``; µs, ms and fractional seconds are told apart
                by size). ``bookTicker`` becomes a quote with sizes, ``trade`` and
                ``aggTrade`` a trade (last, last_size); ``depthUpdate``, partial depth
                and every other kind are *skipped* rows, counted by kind. Event time:
                the exchange's ``E`` (else ``T``), else the receive stamp, else (a spot
                bookTicker, which carries no time, captured without stamps) the time
                of the line before it in the file. The symbol is the payload's.

LEAN times are milliseconds (possibly fractional) since midnight of the date
in the file name (``YYYYMMDD_...``), in the zone of the file's market (LEAN's
market-hours database, session 34): a path through a LEAN market folder says it
(``.../oanda/...`` and ``.../crypto/...``: UTC; ``.../fxcm/...``: a fixed UTC-05:00);
otherwise 3-column quote files are FX in UTC-05:00 and the rest US equities in
America/New_York. ``tz`` overrides the zone. Prices of 8-column quotes and of trades are
in 1/10,000 $ (US equities) unless the path runs through a security-type folder whose
files store actual prices (``SECURITY_TYPES``: future, crypto, ...). A zip holds one CSV;
a zip of several (a LEAN futures or options day, one CSV per contract) is refused with
what to do.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from spark.errors import SparkError
from spark.ticks.model import InvalidTick, Tick, validate

FORMATS = ("csv", "lean", "lean-quote", "lean-trade", "binance")
FX_ZONE = dt.timezone(dt.timedelta(hours=-5))
EQUITY_ZONE = "America/New_York"
# LEAN market folders whose data time zone is known (LEAN's market-hours database); the
# first found in a file's path decides (session 34: OANDA's quotes were read 5 h late)
MARKET_ZONES = {"oanda": dt.UTC, "fxcm": FX_ZONE}
EQUITY_PRICE_SCALE = 10_000.0  # US equity files: prices in 1/10,000 $
# LEAN security-type folders, the top of a file's LEAN path (type/market/resolution/ticker),
# and whether their files store actual prices (LEAN's data format docs and the files: a COMEX
# gold future trades at 1313.8) rather than US equity 1/10,000 $; crypto data is in UTC
SECURITY_TYPES = {
    "equity": False,
    "option": False,
    "future": True,
    "futureoption": True,
    "crypto": True,
    "cfd": True,
    "forex": True,
}
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{8})(?!\d)")


@dataclass(slots=True)
class Row:
    """One input line: a valid tick, or the reason it is not one.

    ``ts`` orders rows for merging; a rejected row keeps the time of the
    last good row of its file so it stays in place.
    """

    ts: int
    tick: Tick | None
    reason: str | None
    detail: str
    raw: bytes
    origin: str
    nbytes: int
    key: bytes | None = None
    skipped: str | None = None  # a line that is no tick by design (its kind), not an error


class LineSource:
    """Lines of a plain, gzip or zip (first member) file, counting bytes for progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.member: str | None = None
        try:
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    members = [i for i in zf.infolist() if not i.is_dir()]
                    if not members:
                        raise SparkError(f"{path}: the zip archive is empty")
                    if len(members) > 1:
                        names = ", ".join(i.filename for i in members[:3])
                        raise SparkError(
                            f"{path} holds {len(members)} files ({names}, ...): Spark reads "
                            "a zip of one CSV, as LEAN's quote and trade files are; a LEAN "
                            "futures or options day holds one per contract: unzip the one "
                            "you want and pass that file (--symbol names it)"
                        )
                    self.member = members[0].filename
                    self.size = members[0].file_size
            else:
                self.size = path.stat().st_size
        except OSError as exc:
            raise SparkError(f"cannot read {path}: {exc.strerror or exc}") from None

    def lines(self) -> Iterator[bytes]:
        try:
            if self.member is not None:
                with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as fh:
                    yield from fh
            elif self.path.suffix == ".gz":
                with gzip.open(self.path, "rb") as fh:
                    yield from fh
            else:
                with open(self.path, "rb") as fh:
                    yield from fh
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise SparkError(f"cannot read {self.path}: {exc}") from None


def file_date(path: Path, member: str | None) -> dt.date:
    for name in (path.name, member or ""):
        match = _DATE_IN_NAME.search(name)
        if match:
            try:
                return dt.datetime.strptime(match.group(1), "%Y%m%d").date()
            except ValueError:
                continue
    raise SparkError(f"cannot tell the date of {path}: LEAN files are named YYYYMMDD_...")


def lean_symbol(path: Path, member: str | None) -> str:
    """LEAN keeps one symbol per folder (``.../eurusd/20140501_quote.zip``)."""
    name = path.parent.name
    if not name or name in (".", "/"):
        raise SparkError(f"cannot tell the symbol of {path}: pass --symbol")
    return name.upper()


def _midnight_us(date: dt.date, zone: dt.tzinfo) -> int:
    midnight = dt.datetime.combine(date, dt.time(0), tzinfo=zone)
    return int(midnight.timestamp()) * 1_000_000


def session_bounds_us(
    date: dt.date, zone: dt.tzinfo, hours: tuple[float, float]
) -> tuple[int, int]:
    """[start, end) in µs since the epoch of local ``hours`` (e.g. (9.5, 16.0)) on ``date``."""
    midnight = _midnight_us(date, zone)
    return round(midnight + hours[0] * 3.6e9), round(midnight + hours[1] * 3.6e9)


def _lean_folders(path: Path) -> tuple[dt.tzinfo | None, bool | None]:
    """(the zone of the file's LEAN market folder, whether its security type stores actual
    prices), each None when the path does not say: folders read upwards from the file, up to
    the nearest security-type folder (a folder above it, ``/home/crypto/equity/...``, is not
    the file's)."""
    zone = None
    for part in reversed(path.parts[:-1]):
        name = part.lower()
        if zone is None:
            zone = MARKET_ZONES.get(name)
        if name in SECURITY_TYPES:
            if zone is None and name == "crypto":
                zone = dt.UTC
            return zone, SECURITY_TYPES[name]
    return zone, None


def market_zone(path: Path) -> dt.tzinfo | None:
    """The zone of the file's LEAN market folder, if its path says (``_lean_folders``)."""
    return _lean_folders(path)[0]


def quote_zone(path: Path, columns: int) -> dt.tzinfo:
    """The zone of a LEAN quote file of ``columns`` columns at ``path`` (module docstring):
    its market folder's, else 3 columns FX (UTC-05:00), else US equities (New York)."""
    zone = market_zone(path)
    if zone is not None:
        return zone
    return FX_ZONE if columns == 3 else ZoneInfo(EQUITY_ZONE)


def price_scale(path: Path) -> float:
    """What a LEAN file's prices are divided by: 1 under a security-type folder that stores
    actual prices (``SECURITY_TYPES``), else ``EQUITY_PRICE_SCALE`` (US equities)."""
    return 1.0 if _lean_folders(path)[1] else EQUITY_PRICE_SCALE


def file_zone(path: Path, tz: str | None, columns: int | None = None) -> dt.tzinfo:
    """The zone a LEAN file's times are read in: ``tz`` if given, else its market folder's;
    else, for a quote file of ``columns`` columns, ``quote_zone``'s rule, for trades
    (``columns`` None) US equities (New York)."""
    if tz:
        return ZoneInfo(tz)
    if columns is not None:
        return quote_zone(path, columns)
    return market_zone(path) or ZoneInfo(EQUITY_ZONE)


def lean_zone(path: Path) -> dt.tzinfo:
    """The zone a LEAN quote file's times are in, as ``read_lean_quote`` decides it."""
    for line in LineSource(path).lines():
        return quote_zone(path, len(_fields(line)))
    return quote_zone(path, 0)


def _fields(line: bytes) -> list[str]:
    return line.decode("utf-8").strip().split(",")


def _num(text: str) -> float:
    return float(text)


class _RowMaker:
    """Shared bookkeeping: line numbers, last good time, Row construction."""

    def __init__(self, path: Path, symbol: str | None = None) -> None:
        self.path = path
        self.lineno = 0
        self.last_ts = 0
        self.key = symbol.encode() if symbol else None

    def good(self, tick: Tick, line: bytes) -> Row:
        try:
            validate(tick)
        except InvalidTick as exc:
            return self.bad(exc.reason, exc.detail, line)
        self.last_ts = tick.ts
        return Row(tick.ts, tick, None, "", line, f"{self.path}:{self.lineno}", len(line))

    def bad(self, reason: str, detail: str, line: bytes, key: bytes | None = None) -> Row:
        origin = f"{self.path}:{self.lineno}"
        return Row(self.last_ts, None, reason, detail, line, origin, len(line), key or self.key)

    def skip(self, kind: str, line: bytes) -> Row:
        origin = f"{self.path}:{self.lineno}"
        return Row(self.last_ts, None, None, "", line, origin, len(line), self.key, kind)


def read_lean_quote(path: Path, symbol: str | None = None, tz: str | None = None) -> Iterator[Row]:
    src = LineSource(path)
    date = file_date(path, src.member)
    symbol = symbol or lean_symbol(path, src.member)
    source = f"replay:{path.name}"
    rows = _RowMaker(path, symbol)
    base_us: int | None = None
    bid = ask = bid_size = ask_size = None
    scale = price_scale(path)
    for line in src.lines():
        rows.lineno += 1
        if not line.strip():
            yield rows.bad("unparsable", "empty line", line)
            continue
        try:
            cols = _fields(line)
            if base_us is None:
                zone = file_zone(path, tz, len(cols))
                base_us = _midnight_us(date, zone)
            ts = base_us + round(_num(cols[0]) * 1000)
            if len(cols) == 3:
                tick = Tick(
                    symbol, ts, bid=_num(cols[1]), ask=_num(cols[2]), venue=None, source=source
                )
            elif len(cols) == 8:
                if cols[7].strip() not in ("0", ""):
                    yield rows.bad(
                        "suspicious", "the vendor flagged this quote as suspicious", line
                    )
                    continue
                row_bid, row_ask = _num(cols[1]), _num(cols[3])
                if row_bid == 0 and row_ask == 0:
                    yield rows.bad("no_price", "quote row with neither bid nor ask", line)
                    continue
                if row_bid != 0:
                    bid, bid_size = row_bid / scale, _num(cols[2])
                if row_ask != 0:
                    ask, ask_size = row_ask / scale, _num(cols[4])
                tick = Tick(
                    symbol, ts, bid, ask, bid_size, ask_size, venue=cols[5] or None, source=source
                )
            else:
                yield rows.bad("unparsable", f"{len(cols)} columns; LEAN quotes have 3 or 8", line)
                continue
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            yield rows.bad("unparsable", f"{exc}", line)
            continue
        yield rows.good(tick, line)


def read_lean_trade(path: Path, symbol: str | None = None, tz: str | None = None) -> Iterator[Row]:
    src = LineSource(path)
    date = file_date(path, src.member)
    symbol = symbol or lean_symbol(path, src.member)
    source = f"replay:{path.name}"
    zone = file_zone(path, tz)
    base_us = _midnight_us(date, zone)
    scale = price_scale(path)
    rows = _RowMaker(path, symbol)
    for line in src.lines():
        rows.lineno += 1
        try:
            cols = _fields(line)
            if len(cols) != 6:
                yield rows.bad("unparsable", f"{len(cols)} columns; LEAN trades have 6", line)
                continue
            if cols[5].strip() not in ("0", ""):
                yield rows.bad("suspicious", "the vendor flagged this trade as suspicious", line)
                continue
            ts = base_us + round(_num(cols[0]) * 1000)
            tick = Tick(
                symbol,
                ts,
                last=_num(cols[1]) / scale,
                last_size=_num(cols[2]),
                venue=cols[3] or None,
                source=source,
            )
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            yield rows.bad("unparsable", f"{exc}", line)
            continue
        yield rows.good(tick, line)


CSV_COLUMNS = ("ts", "symbol", "bid", "ask", "bid_size", "ask_size", "last", "last_size")


def parse_ts(text: str) -> int:
    """Epoch milliseconds or ISO-8601 (naive = UTC) to epoch microseconds.

    >>> parse_ts("1398920400000"), parse_ts("2014-05-01T05:00:00Z")
    (1398920400000000, 1398920400000000)
    """
    text = text.strip()
    try:
        return round(float(text) * 1000)
    except ValueError:
        pass
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    delta = stamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return delta // dt.timedelta(microseconds=1)


def read_csv(path: Path, symbol: str | None = None, tz: str | None = None) -> Iterator[Row]:
    src = LineSource(path)
    source = f"replay:{path.name}"
    rows = _RowMaker(path, symbol)
    for line in src.lines():
        rows.lineno += 1
        try:
            cols = next(csv.reader(io.StringIO(line.decode("utf-8"))), [])
            if rows.lineno == 1 and cols and cols[0].strip().lower() == "ts":
                yield rows.bad("header", "header line", line)
                continue
            if not 4 <= len(cols) <= 8:
                yield rows.bad("unparsable", f"{len(cols)} columns; expected 4 to 8", line)
                continue
            values = dict(zip(CSV_COLUMNS, (c.strip() for c in cols), strict=False))
            nums = {
                k: (float(v) if v else None) for k, v in values.items() if k not in ("ts", "symbol")
            }
            tick = Tick(
                symbol or values["symbol"].upper(), parse_ts(values["ts"]), source=source, **nums
            )
        except (ValueError, UnicodeDecodeError, OverflowError) as exc:
            yield rows.bad("unparsable", f"{exc}", line)
            continue
        yield rows.good(tick, line)


_RECEIVE_STAMP = re.compile(rb"^\s*(\d{1,20}(?:\.\d+)?)\s*[\s,;|]\s*(?=[{\[])")


def _stamp_us(text: bytes) -> int:
    """A receive stamp in µs: nanoseconds as the format says, or, told apart by size, µs,
    ms or (with a fraction) seconds, as other capture tools write them.

    >>> [_stamp_us(s) for s in (b"1769224700012345678", b"1769224700012345",
    ...                         b"1769224700012", b"1769224700.0123")]
    [1769224700012345, 1769224700012345, 1769224700012000, 1769224700012300]
    """
    if b"." in text:
        return round(float(text) * 1_000_000)
    value = int(text)
    if value >= 10**17:
        return value // 1000  # ns
    if value >= 10**14:
        return value  # µs
    if value >= 10**11:
        return value * 1000  # ms
    return value * 1_000_000  # s


_BOOK_TICKER_KEYS = frozenset("sbBaA")


def _binance_kind(data: dict, stream: str | None) -> str:
    """The message kind: its ``e``, else what the payload's keys or stream name say."""
    kind = data.get("e")
    if isinstance(kind, str):
        return kind
    if data.keys() >= _BOOK_TICKER_KEYS:
        return "bookTicker"  # spot bookTicker carries no "e"
    if "lastUpdateId" in data:
        return "depth"  # spot partial book depth
    if stream and "@" in stream:
        return stream.split("@", 1)[1]
    if "result" in data and "id" in data:
        return "response"  # the answer to a SUBSCRIBE
    return "unknown"


def _binance_price(data: dict, key: str) -> float:
    value = data.get(key)
    if value is None:
        raise ValueError(f"no {key!r} field")
    return float(value)


def read_binance(path: Path, symbol: str | None = None, tz: str | None = None) -> Iterator[Row]:
    src = LineSource(path)
    source = f"replay:{path.name}"
    rows = _RowMaker(path, symbol)
    last_time: int | None = None  # event time of the last line that had one
    for line in src.lines():
        rows.lineno += 1
        if not line.strip():
            yield rows.bad("unparsable", "empty line", line)
            continue
        received_us = None
        body = line
        stamp = _RECEIVE_STAMP.match(line)
        if stamp:
            received_us = _stamp_us(stamp.group(1))
            body = line[stamp.end() :]
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            yield rows.bad("unparsable", f"not JSON: {exc}", line)
            continue
        stream = None
        if isinstance(message, dict) and isinstance(message.get("data"), dict | list):
            stream, message = message.get("stream"), message["data"]
        if not isinstance(message, dict):  # e.g. the all-market arrays (!ticker@arr)
            yield rows.skip(stream if isinstance(stream, str) else "array", line)
            continue
        kind = _binance_kind(message, stream)
        try:
            exchange_ms = message.get("E", message.get("T"))
            line_time = int(exchange_ms) * 1000 if exchange_ms is not None else received_us
        except (ValueError, TypeError, OverflowError):
            line_time = None
        if kind not in ("bookTicker", "trade", "aggTrade"):
            last_time = line_time if line_time is not None else last_time
            yield rows.skip(kind, line)
            continue
        name = symbol or str(message.get("s") or "").upper()
        key = name.encode() if name else None
        try:
            if exchange_ms is not None and line_time is None:
                raise ValueError(f"event time {exchange_ms!r} is not an integer")
            # spot bookTicker carries no time: captured without stamps, it came after the
            # line before it
            ts = line_time if line_time is not None else last_time
            if ts is None:
                yield rows.bad(
                    "no_timestamp",
                    f"{kind} without E or T, no receive stamp and no earlier time in the "
                    "file; record the receive time in ns before each line",
                    line,
                    key,
                )
                continue
            last_time = ts
            if not name:
                yield rows.bad("unparsable", f"{kind} without a symbol (s)", line)
                continue
            if kind == "bookTicker":
                tick = Tick(
                    name,
                    ts,
                    bid=_binance_price(message, "b"),
                    ask=_binance_price(message, "a"),
                    bid_size=_binance_price(message, "B"),
                    ask_size=_binance_price(message, "A"),
                    venue="binance",
                    source=source,
                )
            else:
                tick = Tick(
                    name,
                    ts,
                    last=_binance_price(message, "p"),
                    last_size=_binance_price(message, "q"),
                    venue="binance",
                    source=source,
                )
        except (ValueError, TypeError, OverflowError) as exc:
            yield rows.bad("unparsable", f"{kind}: {exc}", line, key)
            continue
        yield rows.good(tick, line)


READERS = {
    "csv": read_csv,
    "lean-quote": read_lean_quote,
    "lean-trade": read_lean_trade,
    "binance": read_binance,
}


def file_format(path: Path, fmt: str) -> str:
    """The format of one file: ``lean`` is ``lean-trade`` for a LEAN trade file (its name has
    ``_trade``, as ``20131007_trade.zip``) and ``lean-quote`` otherwise; others as given."""
    if fmt != "lean":
        return fmt
    return "lean-trade" if "_trade" in Path(path).name.lower() else "lean-quote"


def read(path: Path, fmt: str, symbol: str | None = None, tz: str | None = None) -> Iterator[Row]:
    """Rows of ``path`` in format ``fmt``; SparkError for unknown formats or unreadable files."""
    fmt = file_format(path, fmt)
    if fmt not in READERS:
        raise SparkError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.exists():
        raise SparkError(f"no such file: {path}")
    if path.is_dir():
        raise SparkError(f"{path} is a folder; pass the files in it (e.g. {path}/*.zip)")
    return READERS[fmt](path, symbol, tz)


def input_size(path: Path) -> int:
    """Bytes the reader will go through (uncompressed), for progress bars."""
    return LineSource(path).size
