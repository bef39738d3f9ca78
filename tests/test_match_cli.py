"""`procbots match` end to end through a real process: real CSV, XLSX and UBL XML files
in, the stable JSON shape or a table out, a report workbook, and exit codes 0/1/2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

ROOT = Path(__file__).resolve().parents[1]
SUPPLIER_A = "GB980780684"
SUPPLIER_B = "GB100000132"

ORDER_HEADER = [
    "PO Number", "Line No", "Supplier ID", "Supplier VAT", "Item Code", "Description",
    "Quantity", "Unit Price", "VAT Rate", "Receipt Required",
]  # fmt: skip
ORDER_ROWS = [
    ["PO-100", 1, "SUP-A", SUPPLIER_A, "GLV-M", "Nitrile gloves, medium (box)", 10, "10.00", 20, "yes"],
    ["PO-100", 2, "SUP-A", SUPPLIER_A, "SRV-1", "Annual service visit", 1, "500.00", 20, "no"],
    ["PO-200", 1, "SUP-B", SUPPLIER_B, "SYR-5", "Syringe 5ml (pack)", 5, "100.00", 20, "yes"],
]
RECEIPTS_CSV = (
    "GRN Number,PO Number,Line No,Quantity Received,Received Date\n"
    "GRN-1,PO-100,1,10,28/04/2025\n"
    "GRN-2,PO-200,1,5,29/04/2025\n"
)
INVOICE_HEADER = (
    "Document Type,Invoice Number,Supplier VAT,Invoice Date,PO Number,Line No,Quantity,"
    "Unit Price,Net Amount,VAT Rate,VAT Amount,Billing Reference\n"
)
INVOICE_A1 = (
    f"invoice,INV-A1,{SUPPLIER_A},01/05/2025,PO-100,1,10,10.00,100.00,20%,20.00,\n"
    f"invoice,INV-A1,{SUPPLIER_A},01/05/2025,PO-100,2,1,500.00,500.00,20%,100.00,\n"
)
INVOICE_B1 = f"invoice,INV-B1,{SUPPLIER_B},02/05/2025,PO-200,1,5,106.00,530.00,20%,106.00,\n"


def ubl(
    number: str,
    issue_date: str,
    po: str,
    lines: list[tuple[str, str, str]],
    *,
    credit_of: str | None = None,
    vat: str = SUPPLIER_A,
) -> str:
    """A PEPPOL BIS 3 invoice (or credit note) with 20% VAT lines (PO line, quantity, price)."""
    root, line_tag, qty_tag = (
        ("CreditNote", "CreditNoteLine", "CreditedQuantity")
        if credit_of
        else ("Invoice", "InvoiceLine", "InvoicedQuantity")
    )
    type_code = (
        "<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>"
        if credit_of
        else ("<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>")
    )
    net = sum((Decimal(q) * Decimal(p) for _, q, p in lines), Decimal("0.00"))
    tax = (net * Decimal("0.2")).quantize(Decimal("0.01"))
    billing = (
        f"<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>{credit_of}</cbc:ID>"
        "</cac:InvoiceDocumentReference></cac:BillingReference>"
        if credit_of
        else ""
    )
    body = "".join(
        f"""<cac:{line_tag}><cbc:ID>{i}</cbc:ID><cbc:{qty_tag} unitCode="EA">{q}</cbc:{qty_tag}>
        <cbc:LineExtensionAmount currencyID="GBP">{Decimal(q) * Decimal(p):.2f}</cbc:LineExtensionAmount>
        <cac:OrderLineReference><cbc:LineID>{ref}</cbc:LineID></cac:OrderLineReference>
        <cac:Item><cbc:Name>Item {ref}</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID>
        <cbc:Percent>20</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>
        </cac:ClassifiedTaxCategory></cac:Item>
        <cac:Price><cbc:PriceAmount currencyID="GBP">{p}</cbc:PriceAmount></cac:Price></cac:{line_tag}>"""
        for i, (ref, q, p) in enumerate(lines, 1)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<{root} xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
 xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
 xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>{number}</cbc:ID>
  <cbc:IssueDate>{issue_date}</cbc:IssueDate>
  {type_code}
  <cbc:DocumentCurrencyCode>GBP</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>RX1-PAYABLES</cbc:BuyerReference>
  <cac:OrderReference><cbc:ID>{po}</cbc:ID></cac:OrderReference>
  {billing}
  <cac:AccountingSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="9932">{vat[2:]}</cbc:EndpointID>
    <cac:PostalAddress><cac:Country><cbc:IdentificationCode>GB</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyTaxScheme><cbc:CompanyID>{vat}</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>Acme Medical Ltd</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party>
    <cbc:EndpointID schemeID="0088">5012345678900</cbc:EndpointID>
    <cac:PostalAddress><cac:Country><cbc:IdentificationCode>GB</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyLegalEntity><cbc:RegistrationName>Example NHS Foundation Trust</cbc:RegistrationName>
    </cac:PartyLegalEntity>
  </cac:Party></cac:AccountingCustomerParty>
  <cac:TaxTotal><cbc:TaxAmount currencyID="GBP">{tax}</cbc:TaxAmount>
    <cac:TaxSubtotal><cbc:TaxableAmount currencyID="GBP">{net}</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="GBP">{tax}</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>20</cbc:Percent>
        <cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal></cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="GBP">{net}</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="GBP">{net}</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="GBP">{net + tax}</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="GBP">{net + tax}</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  {body}
</{root}>
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Orders (CSV and XLSX), receipts, invoice rows and two UBL documents:
    INV-A1 (CSV) bills PO-100 in full, CN-A1 (UBL) credits 2 units of line 1 and
    INV-A2 (UBL) bills those 2 again: all approve. INV-B1 (CSV) is 6% over price."""
    orders_csv = tmp_path / "orders.csv"
    with orders_csv.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([ORDER_HEADER, *ORDER_ROWS])
    orders_xlsx = tmp_path / "orders.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Orders"
    for row in [ORDER_HEADER, *ORDER_ROWS]:
        ws.append([float(v) if isinstance(v, str) and v.replace(".", "").isdigit() else v for v in row])
    wb.save(orders_xlsx)
    receipts = tmp_path / "receipts.csv"
    receipts.write_text(RECEIPTS_CSV, encoding="utf-8")
    invoices_a = tmp_path / "invoices-a.csv"
    invoices_a.write_text(INVOICE_HEADER + INVOICE_A1, encoding="utf-8")
    invoices_b = tmp_path / "invoices-b.csv"
    invoices_b.write_text(INVOICE_HEADER + INVOICE_B1, encoding="utf-8")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    credit = inbox / "CN-A1.xml"
    credit.write_text(ubl("CN-A1", "2025-05-03", "PO-100", [("1", "2", "10.00")], credit_of="INV-A1"))
    rebill = inbox / "INV-A2.xml"
    rebill.write_text(ubl("INV-A2", "2025-05-05", "PO-100", [("1", "2", "10.00")]))
    return {
        "orders_csv": orders_csv,
        "orders_xlsx": orders_xlsx,
        "receipts": receipts,
        "invoices_a": invoices_a,
        "invoices_b": invoices_b,
        "inbox": inbox,
        "credit": credit,
        "rebill": rebill,
    }


def procbots(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from flows.cli import main; main()", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "160", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def by_number(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {doc["invoice_number"]: doc for doc in payload["invoices"]}


def test_json_decisions_from_csv_and_ubl_exit_1_when_one_is_held(files: dict[str, Path]) -> None:
    result = procbots(
        "match", "--orders", files["orders_csv"], "--receipts", files["receipts"],
        "--invoices", files["invoices_a"], files["invoices_b"], files["credit"], files["rebill"], "--json",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    docs = by_number(payload)
    assert {n: d["decision"] for n, d in docs.items()} == {
        "INV-A1": "approve",
        "INV-B1": "hold",
        "CN-A1": "approve",
        "INV-A2": "approve",
    }
    assert docs["INV-B1"]["reasons"] == [
        {
            "code": "PRICE_OVER_TOLERANCE",
            "line_no": 1,
            "message": "Line 1: unit price £106.00 is 6.0% over the PO price £100.00 (tolerance 2% / £5.00)",
        }
    ]
    assert docs["CN-A1"]["document_type"] == "credit_note"
    assert docs["INV-A1"]["supplier_vat"] == SUPPLIER_A
    assert payload["summary"]["counts"] == {"approve": 3, "hold": 1, "reject": 0}
    assert payload["summary"]["values"]["hold"] == "636.00"
    # Processing order: by issue date.
    assert [d["invoice_number"] for d in payload["invoices"]] == ["INV-A1", "INV-B1", "CN-A1", "INV-A2"]


def test_all_approved_from_xlsx_orders_and_a_folder_exits_0(files: dict[str, Path]) -> None:
    result = procbots(
        "match", "--orders", files["orders_xlsx"], "--receipts", files["receipts"],
        "--invoices", files["invoices_a"], "--invoices", files["inbox"], "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert {d["decision"] for d in json.loads(result.stdout)["invoices"]} == {"approve"}
    assert len(json.loads(result.stdout)["invoices"]) == 3


def test_without_the_credit_note_the_rebill_is_held_over_quantity(files: dict[str, Path]) -> None:
    result = procbots(
        "match", "--orders", files["orders_csv"], "--receipts", files["receipts"],
        "--invoices", files["invoices_a"], files["rebill"], "--json",
    )  # fmt: skip
    assert result.returncode == 1
    codes = {r["code"] for r in by_number(json.loads(result.stdout))["INV-A2"]["reasons"]}
    assert codes == {"QTY_OVER_ORDERED", "QTY_OVER_RECEIVED"}


def test_policy_file_supplier_override_approves_the_price(files: dict[str, Path], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'vat_tolerance = "0.10"\n\n[suppliers."{SUPPLIER_B}"]\n'
        'price_tolerance_pct = "10"\nprice_tolerance_abs = "10.00"\n'
    )
    result = procbots(
        "match", "--orders", files["orders_csv"], "--receipts", files["receipts"],
        "--invoices", files["invoices_b"], "--policy", policy, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert by_number(json.loads(result.stdout))["INV-B1"]["decision"] == "approve"


def test_table_output_says_what_to_check(files: dict[str, Path]) -> None:
    result = procbots(
        "match", "--orders", files["orders_csv"], "--receipts", files["receipts"],
        "--invoices", files["invoices_a"], files["invoices_b"],
    )  # fmt: skip
    assert result.returncode == 1
    assert "INV-B1" in result.stdout
    assert "PRICE_OVER_TOLERANCE" in result.stdout
    assert "What to check" in result.stdout
    assert "1 held" in result.stdout


def test_report_workbook_has_summary_exceptions_and_all_decisions(
    files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "reports" / "matching.xlsx"
    result = procbots(
        "match", "--orders", files["orders_csv"], "--receipts", files["receipts"],
        "--invoices", files["invoices_a"], files["invoices_b"], files["rebill"], "--out", out, "--json",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["summary"]["report"] == str(out)
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames[:3] == ["Summary", "Exceptions", "All decisions"]
    assert len(wb["Summary"]._charts) >= 3
    header, *rows = [list(r) for r in wb["Exceptions"].iter_rows(values_only=True)]
    assert header[:9] == [
        "Decision", "Invoice", "Type", "Supplier VAT", "Invoice date", "PO", "Line", "Reason code",
        "What to check",
    ]  # fmt: skip
    exceptions = {(r[1], r[7]) for r in rows}
    assert exceptions == {
        ("INV-B1", "PRICE_OVER_TOLERANCE"),
        ("INV-A2", "QTY_OVER_ORDERED"),
        ("INV-A2", "QTY_OVER_RECEIVED"),
    }
    price_row = next(r for r in rows if r[7] == "PRICE_OVER_TOLERANCE")
    assert price_row[5] == "PO-200"
    assert price_row[6] == 1
    assert price_row[9] == pytest.approx(636.00)
    decisions = list(wb["All decisions"].iter_rows(values_only=True))
    assert len(decisions) == 4  # header + three documents


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("missing-orders", "--orders", id="missing-orders-file"),
        pytest.param("bad-row", "row 2", id="bad-invoice-row-named"),
        pytest.param("policy-typo", "price_tolerence_pct", id="unknown-policy-setting"),
        pytest.param("order-as-invoice", "not an invoice", id="order-xml-given-as-invoice"),
        pytest.param("broken-xml", "broken.xml", id="malformed-ubl"),
        pytest.param("wrong-suffix", "expected UBL .xml, .csv or .xlsx", id="unsupported-invoice-file"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    files: dict[str, Path], tmp_path: Path, case: str, expected: str
) -> None:
    args: list[str | Path] = ["match", "--orders", files["orders_csv"], "--receipts", files["receipts"]]
    invoices: list[str | Path] = [files["invoices_a"]]
    if case == "missing-orders":
        args[2] = tmp_path / "nope.csv"
    elif case == "bad-row":
        bad = tmp_path / "bad.csv"
        bad.write_text(INVOICE_HEADER + f"invoice,INV-X,{SUPPLIER_A},01/05/2025,PO-100,1,lots,10.00,,20,,\n")
        invoices = [bad]
    elif case == "policy-typo":
        policy = tmp_path / "policy.toml"
        policy.write_text(f'[suppliers."{SUPPLIER_A}"]\nprice_tolerence_pct = "5"\n')
        args += ["--policy", policy]
    elif case == "order-as-invoice":
        invoices = [ROOT / "tests/fixtures/peppol/order/Order_Example.xml"]
    elif case == "broken-xml":
        broken = tmp_path / "broken.xml"
        broken.write_text("<Invoice><cbc:ID>1</Invoice>")
        invoices = [broken]
    elif case == "wrong-suffix":
        pdf = tmp_path / "invoice.pdf"
        pdf.write_bytes(b"%PDF-1.4")
        invoices = [pdf]
    result = procbots(*args, "--invoices", *invoices, "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
