"""The stable orders/receipts/invoice-row formats: real files in, domain models and row errors out."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from bots.domain.models import CreditNote, Invoice
from connectors.formats import load_invoice_rows, load_orders, load_receipts
from connectors.rows import HeaderError, RowError, SpreadsheetError

GOOD = Path(__file__).parent / "fixtures" / "good"


def test_orders_xlsx_reads_title_rows_merged_cells_serial_dates_and_percent_cells() -> None:
    """The exported workbook becomes two purchase orders with exact Decimals; the hidden row is a warning."""
    warnings: list[RowError] = []
    orders, errors = load_orders(GOOD / "orders.xlsx", warnings=warnings)
    assert errors == []
    by_po = {o.po_number: o for o in orders}
    assert set(by_po) == {"PO-000101", "PO-000102"}
    first = by_po["PO-000101"]
    assert first.supplier_id == "SUP-0001"  # from the merged cell C4:C5
    assert first.supplier_vat == "GB980780684"
    assert first.need_by == dt.date(2025, 3, 14)
    assert [line.unit_price for line in first.lines] == [Decimal("0.1"), Decimal("1234.50")]
    assert [str(line.vat_rate) for line in first.lines] == ["20", "20"]
    assert first.lines[0].item_code == "5012345678900"  # a number cell read as a code, no ".0"
    service = by_po["PO-000102"]
    assert service.lines[0].receipt_required is False
    assert service.lines[0].quantity == Decimal("7.5")
    assert service.need_by == dt.date(2025, 3, 15)  # Excel serial 45731
    assert [(w.row, w.message) for w in warnings] == [(7, "hidden row skipped")]


def test_receipts_csv_with_semicolons_and_bom_group_by_grn() -> None:
    """Semicolon-delimited UTF-8-BOM receipts become GRNs with UK and ISO dates."""
    receipts, errors = load_receipts(GOOD / "receipts.csv")
    assert errors == []
    assert [(g.grn_number, len(g.lines), g.received_date) for g in receipts] == [
        ("GRN-1", 2, dt.date(2025, 3, 17)),
        ("GRN-2", 1, dt.date(2025, 3, 20)),
    ]
    assert receipts[0].lines[1].quantity_received == Decimal("50")


def test_invoice_rows_become_invoices_and_credit_notes_with_totals() -> None:
    """cp1252 invoice rows group by type+number; a credit note is a CreditNote with its reference."""
    invoices, errors = load_invoice_rows(GOOD / "invoices.csv")
    assert errors == []
    invoice, credit = invoices
    assert type(invoice) is Invoice
    assert isinstance(credit, CreditNote)
    assert invoice.supplier.name == "Café Supplies Ltd"
    assert invoice.totals.line_extension == Decimal("61735.00")
    assert invoice.totals.tax == Decimal("12347.00")  # stated per line, summed
    assert invoice.totals.payable == Decimal("74082.00")
    assert [line.order_line_reference for line in invoice.lines] == ["1", "2"]
    assert credit.billing_reference == "INV-9001"
    assert credit.lines[0].net_amount == Decimal("1234.50")  # computed from quantity x price
    assert credit.totals.tax == Decimal("246.90")  # computed per rate group


def test_order_with_one_bad_row_is_withheld_whole(tmp_path: Path) -> None:
    """A PO with a bad line is not loaded half: the bad cell and the withheld PO are both reported."""
    path = tmp_path / "orders.csv"
    path.write_text(
        "po_number,line_no,supplier_id,quantity,unit_price\n"
        "PO-1,1,SUP-1,2,3.00\n"
        "PO-1,2,SUP-1,2,three\n"
        "PO-2,1,SUP-2,1,1.00\n"
        "PO-3,1,SUP-3,1,1.00\n"
        "PO-3,2,SUP-4,1,1.00\n",
        encoding="utf-8",
    )
    orders, errors = load_orders(path)
    assert [o.po_number for o in orders] == ["PO-2"]
    texts = [str(e) for e in errors]
    assert "orders.csv row 3, column 'unit_price' ('three'): expected a number, e.g. 12 or £1,234.50" in texts
    assert "orders.csv row 2: purchase order PO-1 not loaded: its row(s) 3 have errors" in texts
    assert any(e.row == 6 and e.column == "supplier_id" and "differs from row 5" in e.message for e in errors)


def test_aliases_are_configurable(tmp_path: Path) -> None:
    """Headers the format does not know are mapped through caller-given aliases."""
    path = tmp_path / "orders.csv"
    path.write_text("Order No|Ln|Vendor|Qty|Cost each\nPO-9|1|SUP-9|4|2.50\n", encoding="utf-8")
    with pytest.raises(HeaderError, match="missing: line_no, supplier_id, quantity, unit_price"):
        load_orders(path)
    aliases = {
        "po_number": ["order no"],
        "line_no": ["ln"],
        "supplier_id": ["vendor"],
        "quantity": ["qty"],
        "unit_price": ["cost each"],
    }
    orders, errors = load_orders(path, aliases=aliases)
    assert errors == []
    assert orders[0].net_total == Decimal("10.00")


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    """A file that is neither CSV nor Excel gets a message naming it."""
    path = tmp_path / "orders.ods"
    path.write_bytes(b"x")
    with pytest.raises(SpreadsheetError, match=r"orders.ods: has an unsupported extension '.ods'"):
        load_orders(path)


def test_requisition_file_without_po_numbers_groups_by_requisition(tmp_path: Path) -> None:
    """Requisitions to be raised carry requisition_ref instead of po_number."""
    path = tmp_path / "requisitions.csv"
    path.write_text(
        "requisition_ref,line_no,supplier_id,quantity,unit_price,cost_centre\n"
        "REQ-1,1,SUP-1,1,1,CC100\nREQ-1,2,SUP-1,1,2,CC100\n",
        encoding="utf-8",
    )
    orders, errors = load_orders(path)
    assert errors == []
    assert [(o.requisition_ref, o.po_number, o.cost_centre, len(o.lines)) for o in orders] == [
        ("REQ-1", None, "CC100", 2)
    ]
