"""Backtest reports as files quants open: JSON, CSV (the fills), XLSX (summary, fills, equity
curve) and PDF (summary, equity chart, first fills). Pure: a report dict in, a file out.

The report dict is what ``spark.jobs.backtest.run_request`` builds: the summary
figures, ``params``, ``data``, ``equity_curve`` [(hour start µs, equity)] and
``trades`` (PaperFill records). Large outputs stream: the CSV is written row
by row and the XLSX in openpyxl's write-only mode, so a day of fills does not
build a workbook in memory; the PDF lists at most ``PDF_TRADES`` fills.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from spark.errors import SparkError

FORMATS = ("json", "csv", "xlsx", "pdf")
TRADE_COLUMNS = (
    "ts", "order_id", "symbol", "side", "quantity", "price", "fee", "latency_ms", "liquidity",
)  # fmt: skip
SUMMARY_KEYS = (
    "ticks", "symbols", "signals", "suppressed", "orders", "fills", "rejected", "no_change",
    "pnl", "realized_pnl", "unrealized_pnl", "fees", "spread_cost", "gross_pnl",
    "traded_notional", "edge_bp", "break_even_edge_bp", "max_drawdown", "sharpe", "hours",
    "auc", "precision_at_20", "labels", "taker_fills", "maker_fills", "unfilled",
    "passive_cost_bp",
)  # fmt: skip
PDF_TRADES = 200


def format_of(path: Path) -> str:
    """The report format a file name asks for (by extension); ValueError if none."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path.name}: report formats are {', '.join(FORMATS)} (by extension)")
    return fmt


def iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, UTC).isoformat(timespec="milliseconds")


def write_report(report: dict, path: Path, fmt: str | None = None, exclusive: bool = False) -> Path:
    """Write ``report`` to ``path`` in ``fmt`` (default: from the extension).

    ``exclusive`` (reports a worker writes for requests from a topic): the file must not
    exist yet and is never reached through a symbolic link (``O_EXCL | O_NOFOLLOW``), so
    a request cannot overwrite another job's report or write where a link points."""
    fmt = fmt or format_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        fd = create_new(path)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        {"json": _json, "csv": _csv, "xlsx": _xlsx, "pdf": _pdf}[fmt](report, fh)
    return path


def create_new(path: Path) -> int:
    """A file descriptor of ``path``, which must not exist yet and is never reached through
    a symbolic link (``O_EXCL | O_NOFOLLOW``): what a worker writes for a request."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise SparkError(f"{path.name} exists already: job ids must be unique") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SparkError(
                f"{path.name} is a symbolic link; nothing is written through links"
            ) from None
        raise


def _json(report: dict, fh: BinaryIO) -> None:
    fh.write((json.dumps(report, default=str) + "\n").encode())


def _trade_row(trade: dict) -> list:
    return [iso(trade["ts"]), *(trade[c] for c in TRADE_COLUMNS[1:])]


def _csv(report: dict, fh: BinaryIO) -> None:
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(TRADE_COLUMNS)
    for trade in report["trades"]:
        writer.writerow(_trade_row(trade))
    text.flush()
    text.detach()  # the caller closes the file


def _summary_rows(report: dict) -> list[tuple[str, object]]:
    rows = [(k, report.get(k)) for k in SUMMARY_KEYS]
    rows += [(f"rejected: {k}", v) for k, v in sorted(report.get("rejections", {}).items())]
    # which cost and fill models ran (docs/costs.md)
    rows += [(f"model: {k}", json.dumps(v)) for k, v in report.get("cost_models", {}).items()]
    rows += [(f"param: {k}", json.dumps(v)) for k, v in sorted(report.get("params", {}).items())]
    data = report.get("data") or {}
    rows += [("data", ", ".join(Path(p).name for p in data.get("data", [])))]
    return rows


def _xlsx(report: dict, fh: BinaryIO) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    summary = book.create_sheet("Summary")
    summary.append(["figure", "value"])
    for key, value in _summary_rows(report):
        summary.append([key, None if value != value else value])  # NaN as an empty cell
    fills = book.create_sheet("Fills")
    fills.append(list(TRADE_COLUMNS))
    for trade in report["trades"]:
        fills.append(_trade_row(trade))
    equity = book.create_sheet("Equity")
    equity.append(["hour (UTC)", "equity"])
    for ts, value in report["equity_curve"]:
        equity.append([iso(ts), value])
    book.save(fh)


def _pdf(report: dict, fh: BinaryIO) -> None:
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    story = [Paragraph("Spark backtest report", styles["Title"])]

    def cell(value) -> str:
        if isinstance(value, float):
            return "n/a" if value != value else f"{value:,.4f}"
        return str(value)

    table = Table([["figure", "value"], *[[k, cell(v)] for k, v in _summary_rows(report)]])
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ]
        )
    )
    story += [table, Spacer(1, 12)]
    curve = report["equity_curve"]
    if len(curve) >= 2:
        story.append(Paragraph("Equity at the end of each hour (quote currency)", styles["h3"]))
        drawing = Drawing(460, 180)
        plot = LinePlot()
        plot.x, plot.y, plot.width, plot.height = 40, 20, 400, 150
        start = curve[0][0]
        plot.data = [[((ts - start) / 3.6e9, value) for ts, value in curve]]
        plot.lines[0].strokeColor = colors.darkblue
        drawing.add(plot)
        story += [drawing, Spacer(1, 12)]
    trades = report["trades"]
    story.append(
        Paragraph(
            f"Fills ({len(trades):,}; the first {min(len(trades), PDF_TRADES)})", styles["h3"]
        )
    )
    rows = [list(TRADE_COLUMNS)] + [[cell(v) for v in _trade_row(t)] for t in trades[:PDF_TRADES]]
    fills = Table(rows, repeatRows=1)
    fills.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), 6)]))
    story.append(fills)
    SimpleDocTemplate(fh, pagesize=A4, title="Spark backtest report").build(story)
