"""Export@Scale: any Avro topic of the catalog to CSV, XLSX, Parquet or PDF, streamed.

Records are read with ``assign()`` from the beginning to the end of every partition (no
consumer group), filtered by event time (``ts``, µs) and symbol, and written as they come:
memory stays flat whatever the size (CSV row by row; Parquet in row groups of
``ROW_GROUP`` rows through pyarrow; XLSX through ``spark/export/xlsx.py``, sheet XML
streamed row by row, a new sheet past Excel's 1,048,576 rows). Every record read is accounted for:
read = exported + skipped, with the reason of each skip (``undecodable``,
``before_from``, ``after_to``, ``other_symbol``).

PDF (a desk review, not the rows): a summary table (rows, time span, per symbol counts, every
numeric column's min/mean/max) and charts per symbol of what the topic says: mid and spread
of ticks, prob_up and the side of signals, equity and drawdown of positions, fill prices and
fees, else its first numeric fields. Series are decimated as they come (``PdfOut``: at most
``CHART_POINTS`` points each, every other one dropped when full), so memory stays flat too.

Time columns (Avro ``timestamp-micros``) are written as UTC timestamps (ISO-8601 text in
CSV, dates in XLSX, ``timestamp[us, UTC]`` in Parquet); maps and arrays as JSON text.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spark import schemas
from spark.errors import SerializationError, SparkError
from spark.topics import TopicSpec

OUTPUTS = ("csv", "xlsx", "parquet", "pdf")
CHART_POINTS = 1_000  # points kept per chart series
CHART_SYMBOLS = 6  # symbols charted (the ones with most rows); all counted in the table
ROW_GROUP = 65_536
XLSX_ROWS = 1_048_576 - 1  # data rows per sheet; the first row is the header
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# librdkafka prefetches up to 100,000 messages or 64 MB per partition by default: 573 MB
# of RSS for a 1M-record export. A few MB keep the reader ahead of the writer.
READER = {
    "queued.min.messages": 10_000,  # per partition; the default (100,000) is what filled RSS
    "queued.max.messages.kbytes": 4096,
    "fetch.max.bytes": 4 * 1024 * 1024,
    "max.partition.fetch.bytes": 1024 * 1024,
}


@dataclass
class ExportResult:
    path: str
    read: int = 0
    exported: int = 0
    skipped: Counter = field(default_factory=Counter)
    bytes: int = 0
    seconds: float = 0.0
    sheets: int = 0

    @property
    def accounted(self) -> bool:
        return self.exported + sum(self.skipped.values()) == self.read

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "read": self.read,
            "exported": self.exported,
            "skipped": dict(self.skipped),
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.read / self.seconds) if self.seconds else None,
            "sheets": self.sheets,
        }


def columns_of(spec: TopicSpec) -> list[tuple[str, str]]:
    """(field name, kind) of a topic's contract: kind is time, int, float, bool, text or json."""
    if spec.is_raw or spec.is_json:
        raise SparkError(
            f"{spec.name} holds {'raw bytes' if spec.is_raw else 'JSON state'}, not an Avro "
            "contract; `spark consume` shows it"
        )
    out = []
    for f in schemas.load_current(spec.value)["fields"]:
        t = f["type"]
        branches = [b for b in (t if isinstance(t, list) else [t]) if b != "null"]
        b = branches[0] if len(branches) == 1 else None
        if isinstance(b, dict) and b.get("logicalType") == "timestamp-micros":
            kind = "time"
        elif b in ("int", "long"):
            kind = "int"
        elif b in ("float", "double"):
            kind = "float"
        elif b == "boolean":
            kind = "bool"
        elif b in ("string", "enum") or (isinstance(b, dict) and b.get("type") == "enum"):
            kind = "text"
        else:
            kind = "json"
        out.append((f["name"], kind))
    return out


def parse_time(text: str) -> int:
    """ISO-8601 (naive = UTC) or epoch milliseconds to µs; SparkError if neither."""
    from spark.ticks.readers import parse_ts

    try:
        return parse_ts(text)
    except ValueError:
        raise SparkError(
            f"not a time: {text!r} (ISO-8601 like 2014-05-01T09:00, or epoch ms)"
        ) from None


def export_topic(
    spec: TopicSpec,
    output: Path,
    *,
    start_us: int | None = None,
    end_us: int | None = None,
    symbols: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
    records: Iterator | None = None,
    on_progress: Callable[[ExportResult], None] | None = None,
) -> ExportResult:
    """Write ``spec``'s records to ``output`` (format by extension); the accounting."""
    from spark.consume import messages
    from spark.ticks.producer import default_serde

    fmt = output.suffix.lower().lstrip(".")
    if fmt not in OUTPUTS:
        raise SparkError(f"{output.name}: export formats are {', '.join(OUTPUTS)} (by extension)")
    columns = columns_of(spec)
    if fields:
        known = dict(columns)
        unknown = [f for f in fields if f not in known]
        if unknown:
            raise SparkError(
                f"{spec.value} has no field {unknown[0]!r}; its fields: {', '.join(known)}"
            )
        columns = [(f, known[f]) for f in fields]
    names = {name for name, _ in columns_of(spec)}
    wanted = {s.upper() for s in symbols}
    serde = default_serde()
    result = ExportResult(str(output))
    started = time.monotonic()
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pdf":
        writer = PdfOut(output, columns, spec)
    else:
        writer = {"csv": CsvOut, "xlsx": XlsxOut, "parquet": ParquetOut}[fmt](output, columns)
    try:
        source = records if records is not None else messages(spec, from_beginning=True, **READER)
        for msg in source:
            result.read += 1
            try:
                record = serde.decode(msg.value(), spec.value)
            except SerializationError:
                result.skipped["undecodable"] += 1
                continue
            ts = record.get("ts") if "ts" in names else None
            if start_us is not None and ts is not None and ts < start_us:
                result.skipped["before_from"] += 1
            elif end_us is not None and ts is not None and ts >= end_us:
                result.skipped["after_to"] += 1
            elif wanted and str(record.get("symbol", "")).upper() not in wanted:
                result.skipped["other_symbol"] += 1
            else:
                writer.write([record.get(name) for name, _ in columns])
                result.exported += 1
            if on_progress is not None and result.read % 10_000 == 0:
                on_progress(result)
        if fmt == "pdf":
            writer.accounting = result
        result.sheets = writer.close()
    except BaseException:
        writer.abort()
        raise
    result.seconds = time.monotonic() - started
    result.bytes = output.stat().st_size
    return result


def _time(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


class CsvOut:
    def __init__(self, path: Path, columns: list[tuple[str, str]]) -> None:
        self.path, self.columns = path, columns
        self.fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
        self.out = csv.writer(self.fh)
        self.out.writerow([name for name, _ in columns])
        self.convert = [self._converter(kind) for _, kind in columns]

    @staticmethod
    def _converter(kind: str):
        if kind == "time":
            return lambda v: "" if v is None else _time(v).isoformat(timespec="microseconds")
        if kind == "json":
            return lambda v: "" if v is None else json.dumps(v)
        return lambda v: "" if v is None else v

    def write(self, row: list) -> None:
        self.out.writerow([c(v) for c, v in zip(self.convert, row, strict=True)])

    def close(self) -> int:
        self.fh.close()
        return 0

    def abort(self) -> None:
        self.fh.close()


class XlsxOut:
    """Rows to XLSX through ``StreamingXlsx`` (spark/export/xlsx.py), a new sheet every
    ``XLSX_ROWS`` rows."""

    def __init__(self, path: Path, columns: list[tuple[str, str]]) -> None:
        from spark.export.xlsx import StreamingXlsx

        self.book = StreamingXlsx(path, [n for n, _ in columns], [k for _, k in columns])
        self.sheets, self.row = 0, XLSX_ROWS

    def write(self, row: list) -> None:
        if self.row >= XLSX_ROWS:
            self.sheets += 1
            self.book.new_sheet(f"rows {self.sheets}")
            self.row = 0
        self.row += 1
        self.book.write(row)

    def close(self) -> int:
        if not self.sheets:
            self.sheets = 1
            self.book.new_sheet("rows 1")
        return self.book.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the export failed already; keep its error
            self.book.abort()


class ParquetOut:
    def __init__(self, path: Path, columns: list[tuple[str, str]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        types = {
            "time": pa.timestamp("us", tz="UTC"),
            "int": pa.int64(),
            "float": pa.float64(),
            "bool": pa.bool_(),
            "text": pa.string(),
            "json": pa.string(),
        }
        self.kinds = [kind for _, kind in columns]
        self.schema = pa.schema([(name, types[kind]) for name, kind in columns])
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.buffer: list[list] = [[] for _ in columns]

    def write(self, row: list) -> None:
        for c, (kind, v) in enumerate(zip(self.kinds, row, strict=True)):
            self.buffer[c].append(json.dumps(v) if kind == "json" and v is not None else v)
        if len(self.buffer[0]) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.buffer[0]:
            arrays = [
                self.pa.array(values, type=self.schema.field(c).type)
                for c, values in enumerate(self.buffer)
            ]
            self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))
            self.buffer = [[] for _ in self.buffer]

    def close(self) -> int:
        self._flush()
        self.writer.close()
        return 0

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the export failed already; keep its error
            self.writer.close()


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM on Linux (``ru_maxrss`` would
    count the parent's memory too when the process was forked from a big one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # macOS: bytes


class Series:
    """A (time, value) series in constant memory: past ``limit`` points every other one is
    dropped and only every ``stride``-th point is kept from then on."""

    __slots__ = ("limit", "stride", "seen", "points")

    def __init__(self, limit: int | None = None) -> None:
        self.limit, self.stride, self.seen = limit or CHART_POINTS, 1, 0
        self.points: list[tuple[float, float]] = []

    def add(self, t: float, v: float) -> None:
        if self.seen % self.stride == 0 and v == v:
            self.points.append((t, v))
            if len(self.points) >= self.limit:
                self.points = self.points[::2]
                self.stride *= 2
        self.seen += 1


class PdfOut:
    """A PDF of a topic: summary table and charts, in constant memory (module docstring)."""

    def __init__(self, path: Path, columns: list[tuple[str, str]], spec: TopicSpec) -> None:
        self.path, self.spec = path, spec
        self.names = [name for name, _ in columns]
        self.numeric = [n for n, kind in columns if kind in ("int", "float") and n != "ts"]
        self.stats = {n: [0, 0.0, math.inf, -math.inf] for n in self.numeric}  # n, sum, lo, hi
        self.rows: Counter = Counter()  # per symbol
        self.sides: Counter = Counter()  # signals: per side
        self.first = self.last = None
        self.series: dict[tuple[str, str], Series] = {}
        self.equity: dict[str, float] = {}  # positions: each symbol's last equity
        self.total_equity, self.peak = 0.0, 0.0
        self.fees = 0.0
        self.accounting: ExportResult | None = None

    def _add(self, chart: str, symbol: str, t: float, v) -> None:
        if v is None:
            return
        key = (chart, symbol)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = Series()
        series.add(t, float(v))

    def write(self, row: list) -> None:
        r = dict(zip(self.names, row, strict=True))
        symbol = str(r.get("symbol") or "(all)")
        self.rows[symbol] += 1
        for n in self.numeric:
            v = r.get(n)
            if isinstance(v, int | float) and v == v and not isinstance(v, bool):
                st = self.stats[n]
                st[0] += 1
                st[1] += v
                st[2], st[3] = min(st[2], v), max(st[3], v)
        ts = r.get("ts")
        if not isinstance(ts, int):
            return
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)
        t = ts / 3.6e9  # hours since the epoch; shifted to the first hour when drawn
        bid, ask, last = r.get("bid"), r.get("ask"), r.get("last")
        if "prob_up" in r and "side" in r:  # signals
            self.sides[r["side"]] += 1
            self._add("prob_up", symbol, t, r["prob_up"])
            self._add("side (BUY +1, SELL -1, FLAT 0)", symbol, t, _SIDE.get(r["side"]))
        elif "realized_pnl" in r and "unrealized_pnl" in r:  # positions
            equity = (r["realized_pnl"] or 0.0) + (r["unrealized_pnl"] or 0.0)
            self.total_equity += equity - self.equity.get(symbol, 0.0)
            self.equity[symbol] = equity
            self.peak = max(self.peak, self.total_equity)
            self._add("equity", "all symbols", t, self.total_equity)
            self._add("drawdown", "all symbols", t, self.peak - self.total_equity)
            self._add("equity", symbol, t, equity)
        elif "fee" in r and "price" in r:  # fills
            self.fees += r["fee"] or 0.0
            self._add("fill price", symbol, t, r["price"])
            self._add("fees, cumulative", "all symbols", t, self.fees)
        elif bid is not None and ask is not None and bid > 0 and ask > 0:  # quotes
            mid = (bid + ask) / 2
            self._add("mid", symbol, t, mid)
            self._add("spread, bp", symbol, t, (ask - bid) / mid * 1e4)
        elif last is not None:
            self._add("trade price", symbol, t, last)
        elif "prob_up" in r:  # predictions
            self._add("prob_up", symbol, t, r["prob_up"])
        else:
            for n in self.numeric[:2]:
                self._add(n, symbol, t, r.get(n))

    def close(self) -> int:
        from spark.research import charts

        blocks: list = ["Summary"]
        acc = self.accounting
        span = (
            f"{_time(self.first).isoformat(timespec='seconds')} .. "
            f"{_time(self.last).isoformat(timespec='seconds')}"
            if self.first is not None
            else "no event times"
        )
        summary = [["figure", "value"], ["topic", self.spec.name], ["event time", span]]
        if acc is not None:
            summary += [["records read", f"{acc.read:,}"], ["exported", f"{acc.exported:,}"]]
            summary += [[f"skipped: {k}", f"{v:,}"] for k, v in sorted(acc.skipped.items())]
        summary += [[f"rows: {s}", f"{n:,}"] for s, n in self.rows.most_common(20)]
        if len(self.rows) > 20:
            summary.append(
                [
                    "rows: other symbols",
                    f"{sum(self.rows.values()) - sum(n for _, n in self.rows.most_common(20)):,}",
                ]
            )
        summary += [[f"signals: {side}", f"{n:,}"] for side, n in sorted(self.sides.items())]
        if self.equity:
            summary.append(["equity at the end (all symbols)", f"{self.total_equity:,.2f}"])
            summary.append(["max drawdown", f"{self._max_drawdown():,.2f}"])
        if self.fees:
            summary.append(["fees", f"{self.fees:,.2f}"])
        blocks.append(charts.table(summary))
        if self.numeric:
            rows = [["field", "values", "min", "mean", "max"]]
            for n in self.numeric:
                count, total, lo, hi = self.stats[n]
                if count:
                    rows.append([n, f"{count:,}", f"{lo:.6g}", f"{total / count:.6g}", f"{hi:.6g}"])
            blocks += ["Numeric fields", charts.table(rows)]
        charted = {s for s, _ in self.rows.most_common(CHART_SYMBOLS)} | {"all symbols"}
        start = (self.first or 0) / 3.6e9
        for (chart, symbol), series in sorted(self.series.items()):
            if symbol not in charted or len(series.points) < 2:
                continue
            points = [(t - start, v) for t, v in series.points]
            blocks.append(
                charts.line_chart(f"{symbol}: {chart} (x: hours from the first record)", points)
            )
        charts.write_pdf(self.path, f"Spark export: {self.spec.name}", blocks)
        return 0

    def _max_drawdown(self) -> float:
        series = self.series.get(("drawdown", "all symbols"))
        return max((v for _, v in series.points), default=0.0) if series else 0.0

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


_SIDE = {"BUY": 1.0, "SELL": -1.0, "FLAT": 0.0}
