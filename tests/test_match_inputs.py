"""The matching inputs (connectors.match_inputs): real CSV, XLSX and UBL files in, models
or one error naming every bad file, row and field out."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from bots.domain.models import CreditNote, Invoice
from connectors.match_inputs import (
    MatchInputError,
    load_invoices,
    load_orders,
    load_policy,
    load_receipts,
)

ROOT = Path(__file__).resolve().parents[1]
PEPPOL = ROOT / "tests/fixtures/peppol"
SUPPLIER = "GB980780684"
ORDER_HEADER = (
    "PO Number,Line No,Supplier ID,Supplier VAT,Item Code,Description,Quantity,Unit Price,VAT Rate,"
    "Receipt Required\n"
)
INVOICE_HEADER = (
    "Document Type,Invoice Number,Supplier VAT,Invoice Date,PO Number,Line No,Quantity,"
    "Unit Price,Net Amount,VAT Rate,VAT Amount,Billing Reference\n"
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_orders_and_receipts_load_from_csv_and_xlsx_as_models(tmp_path: Path) -> None:
    """Rows group into one purchase order per po_number and one receipt per GRN, money as Decimal."""
    rows = [
        ["PO-100", 1, "SUP-A", SUPPLIER, "GLV-M", "Nitrile gloves (box)", 10, "10.00", 20, "yes"],
        ["PO-100", 2, "SUP-A", SUPPLIER, "SRV-1", "Annual service visit", 1, "500.00", 20, "no"],
    ]
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(ORDER_HEADER.strip().split(","))
    for row in rows:
        sheet.append(row)
    book.save(tmp_path / "orders.xlsx")
    receipts_csv = _write(
        tmp_path / "receipts.csv",
        "GRN Number,PO Number,Line No,Quantity Received,Received Date\nGRN-1,PO-100,1,10,28/04/2025\n",
    )

    orders = load_orders(tmp_path / "orders.xlsx")
    receipts = load_receipts(receipts_csv)

    assert [(o.po_number, len(o.lines)) for o in orders] == [("PO-100", 2)]
    assert orders[0].lines[1].unit_price == Decimal("500.00")
    assert [(r.grn_number, r.po_number) for r in receipts] == [("GRN-1", "PO-100")]


def test_invoices_load_from_a_folder_of_ubl_and_csv_with_credit_notes_typed(tmp_path: Path) -> None:
    """A folder stands for its invoice files; UBL credit notes come back as CreditNote."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("base-example.xml", "base-creditnote-correction.xml"):
        (inbox / name).write_bytes((PEPPOL / "invoice" / name).read_bytes())
    _write(inbox / "notes.txt", "not an invoice file: skipped")
    rows = _write(
        tmp_path / "rows.csv",
        INVOICE_HEADER + f"invoice,INV-1,{SUPPLIER},01/05/2025,PO-100,1,10,10.00,100.00,20%,20.00,\n",
    )

    documents = load_invoices([inbox, rows])

    assert len(documents) == 3
    assert all(isinstance(d, Invoice) for d in documents)
    assert sum(isinstance(d, CreditNote) for d in documents) == 1
    assert documents[-1].invoice_number == "INV-1"


def _requisitions(tmp: Path) -> Path:
    header = "Requisition Ref," + ORDER_HEADER.removeprefix("PO Number,")
    return _write(tmp / "reqs.csv", header + f"REQ-1,1,SUP-A,{SUPPLIER},X,Gloves,1,1.00,20,no\n")


def _bad_order_row(tmp: Path) -> Path:
    return _write(tmp / "o.csv", ORDER_HEADER + f"PO-1,1,SUP-A,{SUPPLIER},X,Gloves,lots,1,20,no\n")


def _empty_folder(tmp: Path) -> Path:
    (tmp / "inbox").mkdir()
    return tmp / "inbox"


@pytest.mark.parametrize(
    ("load", "expected"),
    [
        pytest.param(
            lambda tmp: load_orders(tmp / "nope.csv"),
            "--orders {tmp}/nope.csv: no such file",
            id="missing-orders",
        ),
        pytest.param(lambda tmp: load_orders(tmp), "--orders {tmp}: not a file", id="orders-is-a-folder"),
        pytest.param(
            lambda tmp: load_orders(_write(tmp / "orders.pdf", "%PDF-1.4")),
            "--orders {tmp}/orders.pdf: expected a .csv or .xlsx file",
            id="orders-pdf",
        ),
        pytest.param(
            lambda tmp: load_orders(_requisitions(tmp)),
            "--orders {tmp}/reqs.csv: rows without a po_number (requisition REQ-1); raise them first",
            id="requisition-not-yet-an-order",
        ),
        pytest.param(
            lambda tmp: load_orders(_bad_order_row(tmp)),
            "o.csv row 2, column 'Quantity' ('lots'): expected a number",
            id="bad-order-row-named",
        ),
        pytest.param(
            lambda tmp: load_receipts(tmp / "nope.csv"),
            "--receipts {tmp}/nope.csv: no such file",
            id="missing-receipts",
        ),
        pytest.param(
            lambda tmp: load_invoices([_empty_folder(tmp)]),
            "--invoices {tmp}/inbox: the folder holds no .xml, .csv or .xlsx files",
            id="empty-invoice-folder",
        ),
        pytest.param(
            lambda tmp: load_invoices([]),
            "--invoices: give at least one invoice file or folder",
            id="no-invoices",
        ),
        pytest.param(
            lambda tmp: load_invoices([PEPPOL / "order/Order_Example.xml"]),
            "Order_Example.xml: is a order, not an invoice or credit note",
            id="order-xml-as-invoice",
        ),
    ],
)
def test_bad_input_raises_one_error_naming_the_file_and_row(
    tmp_path: Path, load: Callable[[Path], object], expected: str
) -> None:
    """Each bad input stops the load with a message that says which file, row or option to fix."""
    with pytest.raises(MatchInputError) as raised:
        load(tmp_path)
    assert expected.format(tmp=tmp_path) in str(raised.value)


def test_every_bad_row_across_invoice_files_is_named_and_a_long_list_is_cut_at_fifty(tmp_path: Path) -> None:
    """Problems in several files come together in one message; beyond 50 it says how many more."""
    bad_row = f"invoice,INV-{{n}},{SUPPLIER},01/05/2025,PO-100,1,lots,10.00,,20,,\n"
    many = _write(tmp_path / "many.csv", INVOICE_HEADER + "".join(bad_row.format(n=n) for n in range(60)))
    broken = _write(tmp_path / "broken.xml", "<Invoice><cbc:ID>1</Invoice>")

    with pytest.raises(MatchInputError) as raised:
        load_invoices([broken, many])

    message = str(raised.value)
    assert message.startswith("61 problem(s) in the input:")
    assert "many.csv" in message
    assert "row 2" in message
    assert "column 'Quantity' ('lots')" in message
    assert "broken.xml" in message
    assert message.endswith("... and 11 more")


def test_policy_file_layers_over_the_settings_and_its_supplier_overrides_add_up(
    settings_env: Path, tmp_path: Path
) -> None:
    """A policy TOML (or a procbots config with a [matching] table) overrides what it names only."""
    base = load_policy(None)
    flat = _write(
        tmp_path / "policy.toml",
        f'price_tolerance_pct = "5"\n[suppliers."{SUPPLIER}"]\nprice_tolerance_abs = "1"\n',
    )
    nested = _write(tmp_path / "procbots.toml", '[matching]\nprice_tolerance_pct = "7"\n')

    policy = load_policy(flat)

    assert policy.price_tolerance_pct == Decimal("5")
    assert policy.price_tolerance_abs == base.price_tolerance_abs
    assert policy.for_supplier(SUPPLIER).price_tolerance_abs == Decimal("1")
    assert load_policy(nested).price_tolerance_pct == Decimal("7")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("price_tolerance_pct = ", "not valid TOML", id="not-toml"),
        pytest.param('price_tolerence_pct = "5"', "price_tolerence_pct='5'", id="typo-in-setting"),
        pytest.param('price_tolerance_pct = "-1"', "price_tolerance_pct='-1'", id="negative-tolerance"),
    ],
)
def test_bad_policy_file_names_the_file_and_the_setting(
    settings_env: Path, tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path / "policy.toml", text + "\n")
    with pytest.raises(MatchInputError, match=r"^--policy ") as raised:
        load_policy(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_a_missing_policy_file_is_named(settings_env: Path, tmp_path: Path) -> None:
    with pytest.raises(MatchInputError, match="no such file"):
        load_policy(tmp_path / "nope.toml")
