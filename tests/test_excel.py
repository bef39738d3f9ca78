"""Excel reader details and the report writer, on real workbooks written and read back."""

from __future__ import annotations

import datetime as dt
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from pydantic import BaseModel

from connectors.excel import ChartSpec, Column, Sheet, Summary, read_rows, write_report
from connectors.rows import HeaderError, SpreadsheetError


class Line(BaseModel):
    po_number: str
    amount: Decimal


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def test_sheet_chosen_by_header_match_and_by_name(tmp_path: Path) -> None:
    """Without a name the first sheet with matching headers is read; a wrong name lists the sheets."""
    path = _workbook(
        tmp_path / "w.xlsx",
        {"Cover": [["Nothing"]], "Data": [["PO Number", "Amount"], ["PO-1", 0.1]], "Other": [["x"]]},
    )
    result = read_rows(path, Line)
    assert result.sheet == "Data"
    assert result.rows[0].amount == Decimal("0.1")
    with pytest.raises(SpreadsheetError, match=r"has no sheet 'Nope' \(sheets: Cover, Data, Other\)"):
        read_rows(path, Line, sheet="Nope")
    _workbook(tmp_path / "n.xlsx", {"Cover": [["a"]], "Other": [["b"]]})
    with pytest.raises(HeaderError, match="no sheet of Cover, Other"):
        read_rows(tmp_path / "n.xlsx", Line)


def test_offset_table_reports_true_excel_rows(tmp_path: Path) -> None:
    """A table starting at C3 reports errors at the row Excel shows."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["C3"], ws["D3"] = "po_number", "amount"
    ws["C4"], ws["D4"] = "PO-1", 5
    ws["C6"], ws["D6"] = "PO-2", "n/a"
    wb.save(tmp_path / "o.xlsx")
    result = read_rows(tmp_path / "o.xlsx", Line)
    assert result.header_row == 3
    assert result.row_numbers == [4]
    assert [(e.row, e.column, e.value) for e in result.errors] == [(6, "amount", "n/a")]


def test_external_links_can_be_allowed_with_a_warning() -> None:
    """allow_external_links=True reads the cached values and warns."""
    path = Path(__file__).parent / "fixtures" / "bad" / "orders_external_links.xlsx"
    from connectors.formats import OrderRow

    result = read_rows(path, OrderRow, allow_external_links=True)
    assert len(result.rows) == 2
    assert "links to other workbooks" in str(result.warnings[0])


def _report(tmp_path: Path, write_only: bool) -> Path:
    rows = [
        {
            "invoice": '=HYPERLINK("http://evil.example","x")',
            "net": Decimal("1234.5"),
            "date": dt.date(2025, 3, 2),
            "decision": "hold",
            "evidence": "https://portal.example/i/1",
        },
        {
            "invoice": "@SUM(1+1)*cmd|' /C calc'!A0",
            "net": Decimal("-12.00"),
            "date": None,
            "decision": "approve",
            "evidence": "javascript:alert(1)",
        },
        {
            "invoice": "+44 7700 900123",
            "net": Decimal("0.10"),
            "date": dt.datetime(2025, 3, 2, 9, tzinfo=dt.UTC),
            "decision": "reject",
            "evidence": None,
        },
    ]
    columns = [
        Column("invoice", "Invoice"),
        Column("net", "Net", "money"),
        Column("date", "Date", "date"),
        Column("decision", "Decision"),
        Column("evidence", "Evidence", "link"),
    ]
    summary = Summary(
        "Invoice matching",
        [("Invoices", 3), ("Net held", Decimal("1234.50"))],
        [
            ChartSpec("Decisions", ["approve", "hold", "reject"], {"Invoices": [1, 1, 1]}, kind="pie"),
            ChartSpec("Net by decision", ["approve", "hold"], {"Net": [Decimal("-12"), Decimal("1234.5")]}),
        ],
    )
    return write_report(
        tmp_path / f"report-{write_only}.xlsx",
        [Sheet("Invoices", columns, rows, highlight=("decision", {"hold", "reject"}))],
        summary=summary,
        write_only=write_only,
    )


@pytest.mark.parametrize("write_only", [False, True], ids=["normal", "write-only"])
def test_report_is_styled_and_formula_safe(tmp_path: Path, write_only: bool) -> None:
    """Header style, frozen pane, filter, £/date formats, highlight rule, charts; outside text stays text."""
    path = _report(tmp_path, write_only)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Summary", "Invoices"]
    ws = wb["Invoices"]
    assert ws["A1"].font.b
    assert ws["A1"].fill.fgColor.rgb.endswith("1F4E78")
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:E4"
    assert ws["B2"].number_format.startswith('"£"#,##0.00')
    assert ws["B2"].value == Decimal("1234.5")
    assert ws["C2"].number_format == "dd/mm/yyyy"
    assert ws["C4"].value == dt.datetime(2025, 3, 2, 9)  # 09:00 UTC is 09:00 GMT
    for ref in ("A2", "A3", "A4"):
        assert ws[ref].data_type == "s", ref
        assert ws[ref].quotePrefix, ref
    assert ws["A2"].value.startswith("=HYPERLINK")
    rules = [r for cf in ws.conditional_formatting for r in cf.rules]
    assert rules
    assert rules[0].formula == ['OR($D2="hold",$D2="reject")']
    if not write_only:
        assert ws["E2"].hyperlink.target == "https://portal.example/i/1"
        assert ws["E3"].hyperlink is None  # javascript: is never linked
        assert ws.column_dimensions["A"].width > 20
    with zipfile.ZipFile(path) as archive:
        sheet_xml = archive.read("xl/worksheets/sheet2.xml").decode()
        charts = [n for n in archive.namelist() if n.startswith("xl/charts/chart")]
    assert "<f>" not in sheet_xml  # no formula anywhere in the data sheet
    assert len(charts) == 2
    summary = wb["Summary"]
    assert summary["A1"].value == "Invoice matching"
    assert summary["B4"].value == Decimal("1234.50")
    assert summary["B4"].number_format.startswith('"£"')


def test_written_report_reads_back_through_the_reader(tmp_path: Path) -> None:
    """The writer's output is valid input: amounts come back exact, injected text comes back as text."""
    path = write_report(
        tmp_path / "r.xlsx",
        [
            Sheet(
                "Lines",
                [Column("po_number", "PO Number"), Column("amount", "Amount", "money")],
                [
                    {"po_number": "=1+1", "amount": Decimal("0.10")},
                    {"po_number": "PO-2", "amount": Decimal("7")},
                ],
            )
        ],
    )
    result = read_rows(path, Line)
    assert [(r.po_number, r.amount) for r in result.rows] == [
        ("=1+1", Decimal("0.1")),
        ("PO-2", Decimal("7")),
    ]
