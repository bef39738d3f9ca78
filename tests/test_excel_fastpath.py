"""The fast row path (memoised per-column validation, rows built without revalidation)
gives exactly what validating every row through pydantic gives."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from pydantic import ValidationError

from bots.domain.models import POLine, PurchaseOrder
from connectors.formats import InvoiceRow, OrderRow, ReceiptRow, load_orders
from connectors.rows import CellProblem, RowSchema, build_validated, to_decimal

ORDER_HEADER = [
    "PO Number",
    "Line No",
    "Supplier ID",
    "Supplier VAT",
    "Item Code",
    "Description",
    "Quantity",
    "Unit Price",
    "VAT Rate",
    "Receipt Required",
    "Need By",
]


def _order_rows() -> list[tuple[int, list[Any]]]:
    """Good rows with repeated values, and every kind of bad or unusual cell."""
    rows: list[tuple[int, list[Any]]] = [(1, list(ORDER_HEADER))]
    good = ["PO-1", 1.0, "SUP-1", "GB980780684", "5012345678900", "Gloves", 10.0, 4.5, 20.0, "yes", 45659.0]
    for n in range(2, 40):
        rows.append((n, [*good[:1], float(n), *good[2:]]))
    odd: list[list[Any]] = [
        ["PO-2", 1, "SUP-2", None, None, "  padded  ", "12", "£1,234.50", "5%", "no", "02/03/2025"],
        ["PO-2", 2.0, "SUP-2", "", "", "", 3.0, -0.0, 0.0, True, dt.datetime(2025, 3, 2, 9, 30)],
        ["PO-3", 1.0, "SUP-3", "GB123456789", "x", "bad VAT number", 1.0, 1.0, 20.0, "yes", None],
        ["PO-4", 1.0, "SUP-4", None, "x", "text quantity", "lots", 1.0, 20.0, "yes", None],
        ["PO-5", 1.0, "SUP-5", None, "x", "zero quantity", 0.0, 1.0, 20.0, "yes", None],
        ["PO-6", 1.0, "SUP-6", None, "x", "not a UK rate", 1.0, 1.0, 17.5, "yes", None],
        [None, 1.0, "SUP-7", None, "x", "no reference at all", 1.0, 1.0, 20.0, "yes", None],
        ["PO-8", 1.0, None, None, "x", "no supplier", 1.0, 1.0, 20.0, "yes", None],
        ["PO-9", 1.5, "SUP-9", None, "x", "fractional line", 1.0, 1.0, 20.0, "maybe", None],
        [
            "PO-10",
            1.0,
            "SUP-10",
            None,
            "x",
            "formula",
            CellProblem("formula =A1 has no value"),
            1.0,
            20,
            "y",
            None,
        ],
        ["PO-11", True, "SUP-11", None, "x", "bool line", 1.0, float("nan"), 20.0, "yes", "31/02/2025"],
        [None, None, None, None, None, None, None, None, None, None, None],
        ["PO-12", "1", "SUP-12", " GB 980 7806 84 ", 5012345678900.0, "number code", 1, 1, 0.2, 1, 45659],
    ]
    for offset, cells in enumerate(odd, start=40):
        rows.append((offset, cells))
    # The same odd rows again, so memoised values (good and bad) are looked up, not computed.
    for offset, cells in enumerate(odd, start=40 + len(odd)):
        rows.append((offset, list(cells)))
    return rows


def _both(model: Any, rows: list[tuple[int, list[Any]]], **kwargs: Any) -> tuple[Any, Any]:
    fast = RowSchema(model, **kwargs)
    assert fast.batched, "the batched path is the default"
    full = RowSchema(model, **kwargs)
    full.batched = False
    skip = {45: "hidden row skipped"}
    return (
        fast.validate("orders.xlsx", "Orders", rows, skip_rows=skip),
        full.validate("orders.xlsx", "Orders", rows, skip_rows=skip),
    )


def test_fast_path_matches_full_validation_row_for_row() -> None:
    """Rows, their numbers, field order, fields set, errors, warnings and rejected cells all agree."""
    fast, full = _both(OrderRow, _order_rows())
    assert fast.rows == full.rows
    assert fast.row_numbers == full.row_numbers
    assert [list(r.__dict__) for r in fast.rows] == [list(r.__dict__) for r in full.rows]
    assert [r.model_fields_set for r in fast.rows] == [r.model_fields_set for r in full.rows]
    assert fast.errors == full.errors
    assert fast.warnings == full.warnings
    assert fast.rejected.keys() == full.rejected.keys()
    # Good rows and every kind of error are really in the sample.
    assert len(fast.rows) > 40
    messages = " | ".join(e.message for e in fast.errors)
    for expected in ("check digit", "expected a number", "greater than 0", "not a UK rate", "po_number"):
        assert expected in messages.lower() or expected in messages


def test_fast_path_batches_many_rows_like_full_validation() -> None:
    """More rows than one batch, with a bad row near a batch boundary, agree too."""
    header = (1, ["grn_number", "po_number", "line_no", "quantity_received", "received_date"])
    rows: list[tuple[int, list[Any]]] = [header]
    for n in range(2, 5000):
        qty: Any = "n/a" if n == 2049 else float(n % 7)
        rows.append((n, [f"GRN-{n // 3}", f"PO-{n // 3}", float(n % 3 + 1), qty, 45659.0 + n % 30]))
    fast, full = _both(ReceiptRow, rows)
    assert fast.rows == full.rows
    assert fast.row_numbers == full.row_numbers
    assert fast.errors == full.errors
    assert [e.row for e in fast.errors] == [2049]


def test_fast_path_keeps_invoice_rules() -> None:
    """Before-validators (document type spellings) and cross-field rules (credit notes) still apply."""
    header = (
        1,
        [
            "document_type",
            "invoice_number",
            "supplier_vat",
            "invoice_date",
            "quantity",
            "unit_price",
            "vat_rate",
        ],
    )
    rows: list[tuple[int, list[Any]]] = [header]
    kinds = ["Invoice", "CRN", "credit note", "380", "bill"]
    for n in range(2, 60):
        quantity = -1.0 if n % 11 == 0 else 2.0
        rows.append((n, [kinds[n % 5], f"INV-{n}", "gb980780684", "01/04/2025", quantity, 3.5, "20%"]))
    fast, full = _both(InvoiceRow, rows)
    assert fast.rows == full.rows
    assert fast.errors == full.errors
    assert {r.document_type for r in fast.rows} == {"invoice", "credit_note"}
    assert any("not invoice or credit_note" in e.message for e in fast.errors)
    assert any("positive" in e.message for e in fast.errors)


def test_negative_zero_reads_as_zero() -> None:
    """-0.0 in a cell converts like 0.0 (a spreadsheet shows both as 0)."""
    assert str(to_decimal(-0.0)) == "0"
    assert to_decimal(0.0) == Decimal(0)


def test_build_validated_equals_validation_and_keeps_model_rules() -> None:
    """build_validated gives the validated model and still runs the model's cross-field rules."""
    values = {
        "line_no": 1,
        "item_code": "X",
        "description": "Gloves",
        "quantity": Decimal("2"),
        "unit_price": Decimal("4.50"),
        "vat_rate": Decimal("20"),
        "unit_code": "EA",
        "receipt_required": True,
    }
    line = build_validated(POLine, values)
    assert line == POLine.model_validate(values)
    assert line.model_fields_set == POLine.model_validate(values).model_fields_set
    order = build_validated(PurchaseOrder, {"po_number": "PO-1", "supplier_id": "S", "lines": [line]})
    assert order == PurchaseOrder(po_number="PO-1", supplier_id="S", lines=[line])
    assert order.gross_total == Decimal("10.80")
    with pytest.raises(ValidationError, match="line numbers repeat"):
        build_validated(PurchaseOrder, {"po_number": "PO-1", "supplier_id": "S", "lines": [line, line]})
    with pytest.raises(ValidationError, match="supplier_idd"):
        build_validated(PurchaseOrder, {"supplier_idd": "S", "lines": [line]})


def test_load_orders_builds_the_same_orders_as_full_validation(tmp_path: Path) -> None:
    """Every order load_orders builds revalidates to itself, and a repeated line number is an error."""
    wb = Workbook()
    ws = wb.active
    ws.append(["po_number", "line_no", "supplier_id", "quantity", "unit_price", "vat_rate"])
    for i in range(300):
        ws.append(
            [f"PO-{i // 3}", i % 3 + 1, f"SUP-{(i // 3) % 7}", i % 5 + 1, 0.25 * (i % 9), (20, 5, 0)[i % 3]]
        )
    ws.append(["PO-DUP", 1, "SUP-1", 1, 1, 20])
    ws.append(["PO-DUP", 1, "SUP-1", 2, 1, 20])
    path = tmp_path / "orders.xlsx"
    wb.save(path)
    orders, errors = load_orders(path)
    assert len(orders) == 100
    for order in orders:
        assert PurchaseOrder.model_validate(order.model_dump()) == order
    assert [(e.row, "line numbers repeat" in e.message) for e in errors] == [(302, True)]


_GC_SWITCHES = ("gc.disable(", "gc.freeze(", "gc.enable(")
_PYDANTIC_INTERNALS = ("__pydantic_core_schema__", "__pydantic_fields_set__", "__pydantic_decorators__")


def _product_files_using(needles: tuple[str, ...]) -> list[str]:
    """Product source files (bots, connectors, flows, config) that contain any of ``needles``."""
    root = Path(__file__).resolve().parents[1]
    return [
        str(path.relative_to(root))
        for package in ("bots", "connectors", "flows", "config")
        for path in (root / package).rglob("*.py")
        if any(needle in path.read_text(encoding="utf-8") for needle in needles)
    ]


def test_product_code_uses_no_pydantic_internals() -> None:
    """Rows are validated through pydantic's public API (model_validate), never built by
    writing a model's private fields or parsing its core schema."""
    assert _product_files_using(_PYDANTIC_INTERNALS) == []


def test_product_code_never_switches_the_garbage_collector() -> None:
    """Bulk reads run with the collector as the caller left it: no gc.disable/freeze in
    product code (the columnar readers build no object per row to spare it)."""
    assert _product_files_using(_GC_SWITCHES) == []


def test_columnar_xlsx_read_gives_the_row_readers_values_and_errors(tmp_path: Path) -> None:
    """connectors.columns (fastexcel, column rules, the row model for the rest) reads an
    order sheet as the row reader does: same values, same errors, same row numbers."""
    from connectors.columns import SCALE, read_typed
    from connectors.excel import read_rows
    from connectors.match_columns import _order_rules

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Orders"
    ws.append(["Title row, not the header"])
    ws.append(["PO Number", "Line No", "Supplier ID", "Supplier VAT", "Quantity", "Unit Price", "VAT Rate",
               "Receipt Required", "Need By"])  # fmt: skip
    ws.append(["PO-1", 1, "SUP-1", "GB980780684", 10, 1.5, 20, "yes", dt.date(2025, 5, 1)])
    ws.append(["PO-1", 2, "SUP-1", "GB980780684", 2, 0.1 + 0.2, 0.2, True, 45678])  # 20% cell, serial date
    ws.append(["PO-2", 1, "SUP-2", "GB 980 7806 84", "lots", "£1,234.50", 5, "no", "01/05/2025"])
    ws.append(["PO-2", 2, "SUP-2", None, 3, "£1,234.50", "5%", "n", "2025-05-02"])
    ws.append(["PO-3", 1, "SUP-3", "GB123456789", 1, 1, 0, "no", None])  # bad check digits
    path = tmp_path / "orders.xlsx"
    wb.save(path)

    schema = RowSchema(OrderRow, required=("line_no", "supplier_id", "quantity", "unit_price"))
    columnar = read_typed(path, schema, rules=_order_rules)
    rows = read_rows(path, OrderRow, required=("line_no", "supplier_id", "quantity", "unit_price"))

    assert [str(e) for e in columnar.errors] == [str(e) for e in rows.errors]
    assert len(rows.errors) == 2  # control: 'lots', and the VAT number's check digits
    frame = columnar.frame.sort("__row")
    assert frame["__row"].to_list() == rows.row_numbers == [3, 4, 6]
    for record, model in zip(frame.iter_rows(named=True), rows.rows, strict=True):
        for name in ("po_number", "line_no", "supplier_id", "supplier_vat", "receipt_required", "need_by"):
            assert record[name] == getattr(model, name), (record["__row"], name)
        for name in ("quantity", "unit_price", "vat_rate"):
            value: Decimal = getattr(model, name)
            if record["__inexact"]:
                assert value * SCALE != int(value * SCALE)  # control: really beyond 1/10,000
                assert columnar.models[record["__row"]] == model
            else:
                assert record[name] == value * SCALE, (record["__row"], name)
    assert frame.filter(frame["__row"] == 4)["vat_rate"].item() == 20 * SCALE
