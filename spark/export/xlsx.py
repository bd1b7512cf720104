"""A streaming XLSX writer for topic exports: sheet XML written row by row into the zip.

Why not XlsxWriter (used up to session 10): in its constant-memory mode every cell is a
method call that checks the dimensions, builds a cell reference, formats one XML element
and writes it to a temporary file, which is then copied into the zip at close. That cost
~45 µs per 4-column row here: 1M ticks took 60-80 s, the target is 60 s (docs/export.md).
This writer formats one row as one string from per-column templates and streams it,
compressed, straight into the zip entry of the sheet: no temporary file, no per-cell call.

The workbook is the one XlsxWriter writes, part for part (content types, relationships,
workbook, styles with one date format, inline strings, error cells for NaN (#NUM!) and
±inf (#DIV/0!), booleans, ``xml:space="preserve"``, ``_xHHHH_`` for control characters),
minus the theme and document properties, which are optional in the format.
``tests/test_export_topic.py`` writes the same rows through XlsxWriter and through this
writer and compares every cell as openpyxl reads it back.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

EXCEL_EPOCH_DAYS = 25_569  # 1970-01-01 as an Excel serial day (from 1899-12-30)
MAX_TEXT = 32_767  # characters in one Excel cell; longer text is cut, as XlsxWriter does
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
FLUSH_ROWS = 4_096  # rows joined and written to the zip at a time

_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")
_SPECIAL = re.compile("[&<>\x00-\x08\x0b-\x1f]|_x[0-9A-Fa-f]{4}_")


def column_name(c: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    name = ""
    c += 1
    while c:
        c, rem = divmod(c - 1, 26)
        name = chr(65 + rem) + name
    return name


def text_xml(text: str) -> str:
    """An inline-string cell's ``<is>`` body: XML-escaped, control characters as
    ``_xHHHH_`` (and a literal ``_xHHHH_`` protected), spaces kept at the ends."""
    text = text[:MAX_TEXT]
    if _SPECIAL.search(text):
        text = re.sub(r"_x([0-9A-Fa-f]{4})_", r"_x005F_x\1_", text)
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = _CONTROL.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
    if text[:1].isspace() or text[-1:].isspace():
        return f'<is><t xml:space="preserve">{text}</t></is>'
    return f"<is><t>{text}</t></is>"


class StreamingXlsx:
    """Rows of typed columns to an .xlsx, one sheet after another, in constant memory.

    ``kinds`` per column: ``time`` (µs since the epoch → a date cell), ``int``, ``float``,
    ``bool``, ``text``, ``json`` (any value → its JSON text). ``None`` leaves a cell empty.
    """

    def __init__(self, path: Path, names: list[str], kinds: list[str], *, level: int = 6):
        self.names, self.kinds = names, kinds
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level)
        self.sheet_names: list[str] = []
        self.body = None
        self.buffer: list[str] = []
        self.row = 0
        self._texts: dict[str, str] = {}  # repeated strings (symbols) escaped once
        self.cells = [self._cell(column_name(c), kind) for c, kind in enumerate(kinds)]

    # -- sheets ---------------------------------------------------------------------------
    def new_sheet(self, name: str) -> None:
        self._end_sheet()
        self.sheet_names.append(name)
        self.body = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _end_sheet
        self.row = 1

    def _end_sheet(self) -> None:
        """The sheet into the zip: its head names its dimension (readers such as
        openpyxl's read-only mode size a sheet by it), which is known only now, so the
        rows wait in a temporary file, uncompressed, as XlsxWriter's rows did."""
        if self.body is None:
            return
        self._flush()
        n = len(self.sheet_names)
        cols = "".join(
            f'<col min="{c + 1}" max="{c + 1}" width="24.7109375" customWidth="1"/>'
            for c, kind in enumerate(self.kinds)
            if kind == "time"
        )
        tab = ' tabSelected="1"' if n == 1 else ""
        head = (
            f'{_HEAD}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
            f'<dimension ref="A1:{column_name(len(self.kinds) - 1)}{self.row}"/>'
            f'<sheetViews><sheetView{tab} workbookViewId="0"/></sheetViews>'
            f'<sheetFormatPr defaultRowHeight="15"/>{f"<cols>{cols}</cols>" if cols else ""}'
            '<sheetData><row r="1">'
            + "".join(
                f'<c r="{column_name(c)}1" t="inlineStr">{text_xml(name)}</c>'
                for c, name in enumerate(self.names)
            )
            + "</row>"
        )
        tail = (
            '</sheetData><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" '
            'header="0.3" footer="0.3"/></worksheet>'
        )
        with self.zip.open(f"xl/worksheets/sheet{n}.xml", "w", force_zip64=True) as out:
            out.write(head.encode())
            self.body.seek(0)
            shutil.copyfileobj(self.body, out, 1 << 20)
            out.write(tail.encode())
        self.body.close()
        self.body = None

    # -- rows -----------------------------------------------------------------------------
    def write(self, values: list) -> None:
        self.row += 1
        r = str(self.row)
        parts = [f'<row r="{r}">']
        for cell, v in zip(self.cells, values, strict=True):
            if v is not None:
                parts.append(cell(r, v))
        parts.append("</row>")
        self.buffer.append("".join(parts))
        if len(self.buffer) >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.buffer:
            self.body.write("".join(self.buffer).encode())
            self.buffer = []

    def _cell(self, col: str, kind: str):
        isfinite, texts = math.isfinite, self._texts

        def number(r: str, v) -> str:
            if isinstance(v, bool):
                return boolean(r, v)
            if isinstance(v, float) and not isfinite(v):  # error cells, as XlsxWriter's
                if v != v:
                    return f'<c r="{col}{r}" t="e"><f>#NUM!</f><v>#NUM!</v></c>'
                sign = "" if v > 0 else "-"
                return f'<c r="{col}{r}" t="e"><f>{sign}1/0</f><v>#DIV/0!</v></c>'
            return f'<c r="{col}{r}"><v>{v!r}</v></c>'

        def time(r: str, v: int) -> str:  # Excel's serial day number (1900 system)
            return f'<c r="{col}{r}" s="1"><v>{EXCEL_EPOCH_DAYS + v / 86_400e6!r}</v></c>'

        def boolean(r: str, v) -> str:
            return f'<c r="{col}{r}" t="b"><v>{1 if v else 0}</v></c>'

        def text(r: str, v) -> str:
            v = str(v)
            body = texts.get(v)
            if body is None:
                body = text_xml(v)
                if len(texts) < 10_000:
                    texts[v] = body
            return f'<c r="{col}{r}" t="inlineStr">{body}</c>'

        def json_text(r: str, v) -> str:
            return f'<c r="{col}{r}" t="inlineStr">{text_xml(json.dumps(v))}</c>'

        by_kind = {"time": time, "int": number, "float": number, "bool": boolean}
        return (by_kind | {"text": text, "json": json_text}).get(kind, json_text)

    # -- the workbook ---------------------------------------------------------------------
    def close(self) -> int:
        """End the last sheet and write the workbook's parts; the number of sheets."""
        self._end_sheet()
        n = len(self.sheet_names)
        sheets = range(1, n + 1)
        self.zip.writestr(
            "[Content_Types].xml",
            f'{_HEAD}<Types xmlns="{_PKG}/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
                f'ContentType="{_CT}.worksheet+xml"/>'
                for i in sheets
            )
            + "</Types>",
        )
        self.zip.writestr(
            "_rels/.rels",
            f'{_HEAD}<Relationships xmlns="{_PKG}/relationships"><Relationship Id="rId1" '
            f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        self.zip.writestr(
            "xl/_rels/workbook.xml.rels",
            f'{_HEAD}<Relationships xmlns="{_PKG}/relationships">'
            + "".join(
                f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" '
                f'Target="worksheets/sheet{i}.xml"/>'
                for i in sheets
            )
            + f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
            "</Relationships>",
        )
        self.zip.writestr(
            "xl/workbook.xml",
            f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><bookViews><workbookView/>'
            "</bookViews><sheets>"
            + "".join(
                f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>'
                for i, name in zip(sheets, self.sheet_names, strict=True)
            )
            + '</sheets><calcPr calcId="124519" fullCalcOnLoad="1"/></workbook>',
        )
        self.zip.writestr(
            "xl/styles.xml",
            f'{_HEAD}<styleSheet xmlns="{_MAIN}"><numFmts count="1"><numFmt numFmtId="164" '
            f'formatCode="{DATE_FORMAT}"/></numFmts><fonts count="1"><font><sz val="11"/>'
            '<name val="Calibri"/><family val="2"/></font></fonts><fills count="2"><fill>'
            '<patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
            '</fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/>'
            '</border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" '
            'borderId="0"/></cellStyleXfs><cellXfs count="2"><xf numFmtId="0" fontId="0" '
            'fillId="0" borderId="0" xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" '
            'borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs><cellStyles count="1">'
            '<cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>',
        )
        self.zip.close()
        return n

    def abort(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
        self.zip.close()
