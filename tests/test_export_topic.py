"""`spark export topic`: any Avro topic to CSV, XLSX or Parquet, streamed, every record
accounted for (read = exported + skipped, with reasons)."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from spark.cli import cli
from spark.export import topic as export
from spark.kafka import clients
from spark.ticks import TickProducer
from spark.ticks.producer import default_serde
from spark.topics import catalog
from tests.test_streams import EURUSD, ticks_of


def pdf_text(pdf: bytes) -> bytes:
    """The text drawn on a reportlab PDF's pages (its streams are ASCII85 + Flate)."""
    import base64
    import re
    import zlib

    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            out.append(zlib.decompress(base64.a85decode(m.group(1).strip(), adobe=True)))
        except ValueError:
            out.append(m.group(1))
    return b"\n".join(out)


class Msg:
    """What the exporter needs of a Kafka message."""

    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


def tick_messages(ticks) -> list[Msg]:
    serde, name = default_serde(), catalog()["ticks"].name
    return [Msg(serde.encode(name, "Tick", t.to_record())) for t in ticks]


def test_every_format_holds_every_record_with_its_values(tmp_path):
    ticks = ticks_of(EURUSD, 2000)
    msgs = tick_messages(ticks) + [Msg(b"not avro")]
    spec = catalog()["ticks"]
    start, end = ticks[100].ts, ticks[1900].ts
    for name in ("t.csv", "t.xlsx", "t.parquet"):
        result = export.export_topic(
            spec, tmp_path / name, start_us=start, end_us=end, records=iter(msgs)
        )
        assert result.read == 2001 and result.accounted
        assert result.skipped["undecodable"] == 1
        assert result.skipped["before_from"] == sum(t.ts < start for t in ticks)
        assert result.skipped["after_to"] == sum(t.ts >= end for t in ticks)
    kept = [t for t in ticks if start <= t.ts < end]
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.num_rows == len(kept)
    assert table.column("bid").to_pylist() == [t.bid for t in kept]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    stamps = table.column("ts").cast("int64").to_pylist()
    assert stamps == [t.ts for t in kept]
    with open(tmp_path / "t.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:4] == ["symbol", "ts", "bid", "ask"] and len(rows) == len(kept) + 1
    assert float(rows[1][2]) == kept[0].bid and rows[1][1].startswith("2014-05-01T")
    book = load_workbook(tmp_path / "t.xlsx", read_only=True)
    sheet = book.worksheets[0]
    assert sheet.max_row == len(kept) + 1
    first = next(sheet.iter_rows(min_row=2, max_row=2, values_only=True))
    assert first[0] == kept[0].symbol and first[2] == kept[0].bid
    # event time as a date cell: Excel's serial day, read back as the tick's time (to 1 ms)
    epoch = datetime.datetime(1970, 1, 1)
    assert isinstance(first[1], datetime.datetime)
    assert abs((first[1] - epoch).total_seconds() * 1e6 - kept[0].ts) < 1000


def test_xlsx_starts_a_new_sheet_past_the_row_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "XLSX_ROWS", 700)
    ticks = ticks_of(EURUSD, 1500)
    result = export.export_topic(
        catalog()["ticks"], tmp_path / "t.xlsx", records=iter(tick_messages(ticks))
    )
    assert result.sheets == 3 and result.exported == 1500
    book = load_workbook(tmp_path / "t.xlsx", read_only=True)
    assert [ws.max_row for ws in book.worksheets] == [701, 701, 101]


def test_bad_requests_say_what_to_do(tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["export", "topic", "ticks_dlq", "-o", str(tmp_path / "d.csv")])
    assert out.exit_code == 1 and "raw bytes" in out.output and "Traceback" not in out.output
    out = runner.invoke(cli, ["export", "topic", "ticks", "-o", str(tmp_path / "d.doc")])
    assert out.exit_code == 1 and "csv, xlsx, parquet, pdf" in out.output
    out = runner.invoke(
        cli, ["export", "topic", "ticks", "-o", str(tmp_path / "d.csv"), "--fields", "bid,nope"]
    )
    assert out.exit_code == 1 and "no field 'nope'" in out.output
    out = runner.invoke(
        cli, ["export", "topic", "ticks", "-o", str(tmp_path / "d.csv"), "--from", "yesterday"]
    )
    assert out.exit_code == 1 and "not a time" in out.output


@pytest.mark.broker
def test_export_a_topic_from_the_broker(broker, tmp_path):
    ticks = ticks_of(EURUSD, 1500)
    with TickProducer(source="export-test") as feed:
        for t in ticks:
            feed.send(t)
    producer = clients.producer()
    producer.produce(catalog()["ticks"].name, b"\x00\x00\x00\x00\x07garbage", b"EURUSD")
    producer.flush(10)
    output = tmp_path / "ticks.parquet"
    out = CliRunner().invoke(
        cli,
        ["export", "topic", "ticks", "-o", str(output), "--symbol", "eurusd",
         "--fields", "ts,symbol,bid,ask", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["read"] == 1501 and summary["exported"] == 1500
    assert summary["skipped"] == {"undecodable": 1}
    assert summary["peak_rss_mb"] > 0 and summary["bytes"] == Path(output).stat().st_size
    table = pq.read_table(output)
    assert table.column_names == ["ts", "symbol", "bid", "ask"]
    assert sorted(table.column("bid").to_pylist()) == sorted(t.bid for t in ticks)
    # --progress: a bar over the records on the topic, on stderr, full at the end
    out = CliRunner().invoke(
        cli, ["export", "topic", "ticks", "-o", str(tmp_path / "t.csv"), "--progress"]
    )
    assert out.exit_code == 0, out.output
    bar = out.output.split("ticks -> ")[0]
    assert "export" in bar and "100%" in bar and "1,501 read, 1,500 exported" in bar, bar


def test_a_pdf_has_the_summary_and_the_charts_in_flat_memory(tmp_path, monkeypatch):
    """Ticks: mid and spread per symbol; positions: equity and drawdown over all symbols, as
    recomputed here from the records; series decimated to at most CHART_POINTS points."""
    monkeypatch.setattr(export, "CHART_POINTS", 64)
    ticks = ticks_of(EURUSD, 3000)
    msgs = tick_messages(ticks) + [Msg(b"not avro")]
    out = tmp_path / "ticks.pdf"
    result = export.export_topic(catalog()["ticks"], out, records=iter(msgs))
    assert result.read == 3001 and result.exported == 3000 and result.accounted
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF")
    pdf = pdf_text(pdf)
    for text in (b"EURUSD: mid", b"EURUSD: spread, bp", b"skipped: undecodable", b"3,000"):
        assert text in pdf, text

    serde, name = default_serde(), catalog()["positions"].name
    marks = [(s, i, ((i * 37) % 11 - 5) * 10.0) for i in range(400) for s in ("A", "B")]
    records = [
        {"symbol": s, "quantity": 1.0, "avg_price": 1.0, "realized_pnl": pnl,
         "unrealized_pnl": 1.0, "ts": ticks[0].ts + i * 1_000_000}
        for s, i, pnl in marks
    ]  # fmt: skip
    writer = export.PdfOut(tmp_path / "p.pdf", export.columns_of(catalog()["positions"]), None)
    last, peak, worst, total = {}, 0.0, 0.0, 0.0
    for r in records:
        writer.write([r.get(n) for n in writer.names])
        last[r["symbol"]] = r["realized_pnl"] + r["unrealized_pnl"]
        total = sum(last.values())
        peak = max(peak, total)
        worst = max(worst, peak - total)
    assert writer.total_equity == pytest.approx(total)
    assert all(len(s.points) < 64 for s in writer.series.values())
    assert writer._max_drawdown() <= worst and writer._max_drawdown() > 0
    msgs = [Msg(serde.encode(name, "Position", r)) for r in records]
    result = export.export_topic(catalog()["positions"], tmp_path / "p.pdf", records=iter(msgs))
    pdf = pdf_text((tmp_path / "p.pdf").read_bytes())
    assert result.exported == 800
    for text in (b"all symbols: equity", b"all symbols: drawdown", b"max drawdown"):
        assert text in pdf, text


def test_streaming_xlsx_reads_back_as_xlsxwriter_writes_the_same_rows(tmp_path):
    """The streaming sheet writer against XlsxWriter (a writer nobody here wrote), cell for
    cell as openpyxl reads both back: escapes, control characters, a literal ``_xHHHH_``,
    kept spaces, text past Excel's cell limit, NaN/inf as error cells, booleans, dates, JSON."""
    import math

    import xlsxwriter

    from spark.export.xlsx import EXCEL_EPOCH_DAYS, StreamingXlsx

    names = ["symbol", "ts", "n", "x", "ok", "extra"]
    kinds = ["text", "time", "int", "float", "bool", "json"]
    rows = [
        ["EUR<&>USD", 1_398_934_800_123_000, 7, 1.37285, True, {"a": 1}],
        [" lead", 0, -(2**40), float("nan"), False, [1, "x"]],
        ["trail \x01\x1f ctl", 1_700_000_000_000_001, 0, float("inf"), None, None],
        ["_x0041_ literal", None, 2**53 + 1, -float("inf"), True, "s"],
        ["é ü 漢 🙂", 86_400_000_000, None, 1e-7, None, {"k": [None, 2.5]}],
        ["x" * 40_000, 5, 1, -0.0, False, {}],
        [None, None, None, None, None, None],
    ]
    ours = StreamingXlsx(tmp_path / "ours.xlsx", names, kinds)
    ours.new_sheet("rows 1")
    for row in rows:
        ours.write(row)
    assert ours.close() == 1

    book = xlsxwriter.Workbook(str(tmp_path / "ref.xlsx"), {"nan_inf_to_errors": True})
    dates = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"})
    sheet = book.add_worksheet("rows 1")
    sheet.write_row(0, 0, names)
    for r, row in enumerate(rows, start=1):
        for c, (kind, v) in enumerate(zip(kinds, row, strict=True)):
            if v is None:
                continue
            if kind == "time":
                sheet.write_number(r, c, EXCEL_EPOCH_DAYS + v / 86_400e6, dates)
            elif kind == "json":
                sheet.write_string(r, c, json.dumps(v))
            elif kind == "text":
                sheet.write_string(r, c, v)
            elif kind == "bool":
                sheet.write_boolean(r, c, v)
            else:
                sheet.write_number(r, c, v)
    book.close()

    def cells(path):
        ws = load_workbook(path).worksheets[0]
        return [[(c.value, c.number_format, c.data_type) for c in row] for row in ws.iter_rows()]

    got, want = cells(tmp_path / "ours.xlsx"), cells(tmp_path / "ref.xlsx")
    assert len(got) == len(want) == len(rows)  # the header, not the empty last row
    for r, (a, b) in enumerate(zip(got, want, strict=True)):
        for c, (x, y) in enumerate(zip(a, b, strict=True)):
            if r == 4 and c == 0:  # see below
                continue
            same = x == y or (
                type(x[0]) in (int, float) and math.isclose(x[0], y[0], rel_tol=1e-15)
            )  # XlsxWriter prints 16 significant digits, this writer every digit
            assert same, (r, names[c], x, y)
    assert got[1][1][0].microsecond == 123_000
    # a literal "_x0041_" would read as "A" in Excel (ECMA-376 ST_Xstring); XlsxWriter writes
    # it as is, this writer escapes its underscore (openpyxl shows the escape verbatim)
    import zipfile

    xml = zipfile.ZipFile(tmp_path / "ours.xlsx").read("xl/worksheets/sheet1.xml").decode()
    assert "<t>_x005F_x0041_ literal</t>" in xml and "<t>trail _x0001__x001F_ ctl</t>" in xml
    assert len(got[6][0][0]) == 32_767 and got[2][3][0] == "=#NUM!"
