"""Small PDF pages of bar charts and tables (reportlab) for research reports."""

from __future__ import annotations

from pathlib import Path


def bar_chart(title: str, labels: list[str], values: list[float | None], target=None):
    """A reportlab Drawing: one bar per label (None/NaN drawn as 0), ``target`` as a red
    line across."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing, Line, String
    from reportlab.lib import colors

    drawing = Drawing(480, 150)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 50, 30, 410, 100
    shown = [0.0 if v is None or v != v else float(v) for v in values]
    chart.data = [shown or [0.0]]
    chart.categoryAxis.categoryNames = labels or [""]
    chart.categoryAxis.labels.fontSize = 5
    chart.categoryAxis.labels.angle = 30 if len(labels) > 12 else 0
    chart.valueAxis.labels.fontSize = 6
    low = min([*shown, 0.0])
    high = max([*shown, target if target is not None else 0.0, 1e-9])
    chart.valueAxis.valueMin, chart.valueAxis.valueMax = low, high * 1.1
    chart.bars[0].fillColor = colors.steelblue
    drawing.add(chart)
    if target is not None:
        y = chart.y + (target - low) / (chart.valueAxis.valueMax - low) * chart.height
        drawing.add(Line(chart.x, y, chart.x + chart.width, y, strokeColor=colors.red))
    drawing.add(String(50, 138, title, fontSize=8))
    return drawing


def line_chart(title: str, points: list[tuple[float, float]]):
    """A reportlab Drawing: one line through ``points`` (x, y)."""
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    drawing = Drawing(480, 150)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 50, 25, 410, 105
    plot.data = [points]
    plot.lines[0].strokeColor = colors.steelblue
    plot.lines[0].strokeWidth = 0.6
    plot.xValueAxis.labels.fontSize = 6
    plot.yValueAxis.labels.fontSize = 6
    ys = [y for _, y in points]
    if max(ys) == min(ys):  # a flat line still needs a range
        plot.yValueAxis.valueMin, plot.yValueAxis.valueMax = min(ys) - 1, max(ys) + 1
    drawing.add(plot)
    drawing.add(String(50, 138, title, fontSize=8))
    return drawing


def table(rows: list[list[str]]):
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    t = Table(rows, repeatRows=1)
    t.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 6),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ]
        )
    )
    return t


def write_pdf(path: Path, title: str, blocks: list) -> None:
    """A PDF of ``title`` then ``blocks``: strings (a heading, or a paragraph when they start
    with a space), drawings and tables, in order."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    story = [Paragraph(title, styles["Title"])]
    for block in blocks:
        if isinstance(block, str):
            style = styles["Normal"] if block.startswith(" ") else styles["h3"]
            story.append(Paragraph(block.strip(), style))
        else:
            story += [block, Spacer(1, 6)]
    SimpleDocTemplate(str(path), pagesize=A4, title=title).build(story)
