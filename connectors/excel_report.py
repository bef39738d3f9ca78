"""Excel report workbooks: styled headers, frozen panes, filters, £ and date formats,
highlighted exception rows and a summary sheet with native charts (:func:`write_report`).

Text from outside that looks like a formula is written as text. Reading workbooks is
:mod:`connectors.excel`, which re-exports these names.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from connectors.rows import is_formula_like

__all__ = ["ChartSpec", "Column", "ColumnFormat", "Sheet", "Summary", "write_report"]

ColumnFormat = Literal["text", "money", "date", "datetime", "int", "decimal", "percent", "link"]

_NUMBER_FORMATS: dict[str, str] = {
    "money": '"£"#,##0.00;[Red]-"£"#,##0.00',
    "date": "dd/mm/yyyy",
    "datetime": "dd/mm/yyyy hh:mm",
    "int": "#,##0",
    "decimal": "#,##0.00##",
    "percent": 'General"%"',
}
_DEFAULT_WIDTHS = {"money": 14, "date": 12, "datetime": 17, "int": 10, "decimal": 12, "percent": 8}
_HEADER_FILL = "1F4E78"
_HIGHLIGHT_FILL = "F8CBAD"
_LINK_SCHEMES = ("http://", "https://", "mailto:", "file://")
_LONDON_TZ = "Europe/London"


@dataclass(frozen=True, slots=True)
class Column:
    """One report column: the row key it shows, its header text and how values are formatted.

    ``kind="percent"`` expects a percentage number (20 for 20 %); ``kind="link"`` expects a
    URL or file path, shown as a hyperlink.
    """

    key: str
    header: str
    kind: ColumnFormat = "text"
    width: float | None = None


@dataclass(slots=True)
class Sheet:
    """One data sheet of a report.

    ``rows`` are mappings keyed by column key (or sequences in column order).
    ``highlight=("status", {"hold", "reject"})`` fills rows whose status is one of those
    values (compared case-insensitively by the spreadsheet itself, so it still works after
    people edit or sort the sheet).
    """

    title: str
    columns: Sequence[Column]
    rows: Iterable[Mapping[str, Any] | Sequence[Any]]
    highlight: tuple[str, Iterable[str]] | None = None


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """A native Excel chart on the summary sheet: one category axis, one or more series."""

    title: str
    categories: Sequence[str]
    series: Mapping[str, Sequence[int | float | Decimal]]
    kind: Literal["bar", "pie"] = "bar"


@dataclass(slots=True)
class Summary:
    """The first sheet of a report: a title, key figures (label, value) and charts."""

    title: str
    figures: Sequence[tuple[str, Any]] = ()
    charts: Sequence[ChartSpec] = ()
    sheet_title: str = "Summary"


def _excel_value(value: Any) -> Any:
    """A value openpyxl can store: aware datetimes in UK local time (Excel has no zones)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        from zoneinfo import ZoneInfo

        return value.astimezone(ZoneInfo(_LONDON_TZ)).replace(tzinfo=None)
    if isinstance(value, bool | int | float | Decimal | dt.date) or value is None:
        return value
    return str(value)


def _safe_link(value: Any) -> str | None:
    text = str(value or "").strip()
    if not text or is_formula_like(text):
        return None
    if text.lower().startswith(_LINK_SCHEMES):
        return text
    if "://" in text or text.lower().startswith(("javascript:", "data:", "vbscript:")):
        return None
    # A local path (evidence screenshots, reports): link it as a file.
    return Path(text).resolve().as_uri() if Path(text).is_absolute() else text


def _set_cell(cell: Any, value: Any, column: Column) -> None:
    value = _excel_value(value)
    cell.value = value
    if isinstance(value, str):
        if is_formula_like(value) or cell.data_type == "f":
            # Outside text is never a formula: store it as a string and mark it quoted so
            # Excel keeps it text even when someone edits the cell.
            cell.data_type = "s"
            cell.quotePrefix = True
    elif column.kind in _NUMBER_FORMATS and value is not None:
        cell.number_format = _NUMBER_FORMATS[column.kind]
    elif isinstance(value, dt.datetime):
        cell.number_format = _NUMBER_FORMATS["datetime"]
    elif isinstance(value, dt.date):
        cell.number_format = _NUMBER_FORMATS["date"]


def _row_values(row: Mapping[str, Any] | Sequence[Any], columns: Sequence[Column]) -> list[Any]:
    if isinstance(row, Mapping):
        return [row.get(c.key) for c in columns]
    return list(row)


def _width_for(column: Column, samples: list[Any]) -> float:
    if column.width is not None:
        return column.width
    longest = max([len(column.header), *(len(str(v)) for v in samples if v is not None)], default=8)
    return float(min(max(longest + 2, _DEFAULT_WIDTHS.get(column.kind, 8)), 60))


def _highlight_rule(sheet: Sheet, last_row: int) -> tuple[str, Any] | None:
    from openpyxl.formatting.rule import FormulaRule
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    if sheet.highlight is None or last_row < 2:
        return None
    key, values = sheet.highlight
    keys = [c.key for c in sheet.columns]
    if key not in keys:
        raise ValueError(f"sheet {sheet.title!r}: highlight column {key!r} is not one of its columns")
    letter = get_column_letter(keys.index(key) + 1)
    wanted = sorted({str(v) for v in values})
    # Quotes in the values are doubled: they are ours (code), but keep the formula well-formed.
    tests = ",".join('${}2="{}"'.format(letter, v.replace('"', '""')) for v in wanted)
    rule = FormulaRule(
        formula=[f"OR({tests})"],
        fill=PatternFill(start_color=_HIGHLIGHT_FILL, end_color=_HIGHLIGHT_FILL, fill_type="solid"),
        font=Font(color="9C0006"),
    )
    return f"A2:{get_column_letter(len(sheet.columns))}{last_row}", rule


def _write_sheet_normal(wb: Any, sheet: Sheet) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(_sheet_title(sheet.title))
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill(start_color=_HEADER_FILL, end_color=_HEADER_FILL, fill_type="solid")
    for index, column in enumerate(sheet.columns, start=1):
        cell = ws.cell(row=1, column=index)
        _set_cell(cell, column.header, Column("h", column.header))
        cell.font, cell.fill = header_font, header_fill
        cell.alignment = Alignment(vertical="center", wrap_text=True)
    samples: list[list[Any]] = [[] for _ in sheet.columns]
    row_number = 1
    for row_number, row in enumerate(sheet.rows, start=2):
        values = _row_values(row, sheet.columns)
        for index, (column, value) in enumerate(zip(sheet.columns, values, strict=False), start=1):
            cell = ws.cell(row=row_number, column=index)
            _set_cell(cell, value, column)
            if column.kind == "link" and (target := _safe_link(value)):
                cell.hyperlink = target
                cell.style = "Hyperlink"
            if row_number <= 1001:
                samples[index - 1].append(value)
    for index, column in enumerate(sheet.columns, start=1):
        ws.column_dimensions[get_column_letter(index)].width = _width_for(column, samples[index - 1])
    _finish_sheet(ws, sheet, row_number)


def _finish_sheet(ws: Any, sheet: Sheet, last_row: int) -> None:
    from openpyxl.utils import get_column_letter

    ws.freeze_panes = "A2"
    if sheet.columns:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(sheet.columns))}{max(last_row, 1)}"
    if rule := _highlight_rule(sheet, last_row):
        ws.conditional_formatting.add(*rule)


def _write_sheet_streaming(wb: Any, sheet: Sheet) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(_sheet_title(sheet.title))
    # Write-only sheets need widths before the first row; no sampling, so kinds decide.
    for index, column in enumerate(sheet.columns, start=1):
        width = column.width or max(len(column.header) + 2, _DEFAULT_WIDTHS.get(column.kind, 14))
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.freeze_panes = "A2"
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill(start_color=_HEADER_FILL, end_color=_HEADER_FILL, fill_type="solid")
    header = []
    for column in sheet.columns:
        cell = WriteOnlyCell(ws)
        _set_cell(cell, column.header, Column("h", column.header))
        cell.font, cell.fill = header_font, header_fill
        header.append(cell)
    ws.append(header)
    last_row = 1
    for row in sheet.rows:
        cells = []
        for column, value in zip(sheet.columns, _row_values(row, sheet.columns), strict=False):
            cell = WriteOnlyCell(ws)
            _set_cell(cell, value, column)
            cells.append(cell)
        ws.append(cells)
        last_row += 1
    if sheet.columns:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(sheet.columns))}{last_row}"
    if rule := _highlight_rule(sheet, last_row):
        ws.conditional_formatting.add(*rule)


_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")


def _sheet_title(title: str) -> str:
    return _BAD_TITLE.sub("-", title).strip("'")[:31] or "Sheet"


def _write_summary(wb: Any, summary: Summary, write_only: bool) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.chart import BarChart, PieChart, Reference
    from openpyxl.styles import Font

    ws = wb.create_sheet(_sheet_title(summary.sheet_title))
    ws.column_dimensions["A"].width = 36
    ws.column_dimensions["B"].width = 18
    rows: list[list[Any]] = [[summary.title], []]
    rows += [[label, value] for label, value in summary.figures]
    data_start = len(rows) + 2
    tables: list[tuple[ChartSpec, int]] = []
    for chart in summary.charts:
        rows.append([])
        tables.append((chart, len(rows) + 1))
        rows.append([chart.title, *chart.series])
        for i, category in enumerate(chart.categories):
            rows.append([category, *(series[i] for series in chart.series.values())])
    del data_start
    for number, values in enumerate(rows, start=1):
        out = []
        for i, value in enumerate(values):
            kind: ColumnFormat = "money" if isinstance(value, Decimal) else "text"
            cell = WriteOnlyCell(ws) if write_only else ws.cell(row=number, column=i + 1)
            _set_cell(cell, value, Column("v", "", kind))
            if number == 1:
                cell.font = Font(bold=True, size=14)
            elif i == 0 and values and (number - 1) in {start - 1 for _, start in tables}:
                cell.font = Font(bold=True)
            out.append(cell)
        if write_only:
            ws.append(out)
    anchor_row = 1
    for chart, start in tables:
        end = start + len(chart.categories)
        chart_obj: Any = PieChart() if chart.kind == "pie" else BarChart()
        chart_obj.title = chart.title
        data = Reference(ws, min_col=2, max_col=1 + len(chart.series), min_row=start, max_row=end)
        cats = Reference(ws, min_col=1, min_row=start + 1, max_row=end)
        chart_obj.add_data(data, titles_from_data=True)
        chart_obj.set_categories(cats)
        chart_obj.height, chart_obj.width = 7.5, 14
        ws.add_chart(chart_obj, f"D{anchor_row}")
        anchor_row += 16


def write_report(
    path: str | Path,
    sheets: Sequence[Sheet],
    *,
    summary: Summary | None = None,
    write_only: bool = False,
) -> Path:
    """Write a report workbook: optional summary sheet with charts first, then the data sheets.

    Every data sheet gets a bold filled header, frozen header row, autofilter, £/date
    formats by column kind, sized columns and, with ``highlight``, conditional formatting
    of exception rows. Text that a spreadsheet would run as a formula is stored as text.
    ``write_only=True`` streams rows (constant memory for big outputs; column widths then
    come from the column kinds, and link columns are plain text).

    Example:
        >>> write_report(  # doctest: +SKIP
        ...     "matching.xlsx",
        ...     [Sheet("Invoices", [Column("invoice_number", "Invoice"), Column("net", "Net", "money"),
        ...                         Column("decision", "Decision")],
        ...            rows=[{"invoice_number": "INV-1", "net": Decimal("10.00"), "decision": "hold"}],
        ...            highlight=("decision", {"hold", "reject"}))],
        ...     summary=Summary("Invoice matching", [("Invoices", 1)],
        ...                     [ChartSpec("Decisions", ["hold"], {"Invoices": [1]}, kind="pie")]),
        ... )
    """
    from openpyxl import Workbook

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook(write_only=write_only)
    if not write_only:
        wb.remove(wb.active)
    if summary is not None:
        _write_summary(wb, summary, write_only)
    for sheet in sheets:
        if write_only:
            _write_sheet_streaming(wb, sheet)
        else:
            _write_sheet_normal(wb, sheet)
    if not summary and not sheets:
        wb.create_sheet("Report")
    tmp = path.with_name(f".{path.name}.tmp")
    wb.save(tmp)
    # Replace atomically: a reader never sees half a report.
    tmp.replace(path)
    return path
