"""Seed data and sample input files of the sandbox portal are valid, deterministic and complete."""

from __future__ import annotations

import csv
import hashlib
import io
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from bots.domain.identifiers import check_gb_vat, check_gtin
from sandbox.chaos import ChaosError, ChaosSpec
from sandbox.datafiles import ORDER_COLUMNS, RECEIPT_COLUMNS, REQUISITION_COLUMNS, write_input_files
from sandbox.seed import SCENARIOS, gb_vat, generate, gtin13, vat_is_valid
from sandbox.totp import totp, verify_totp
from sandbox.ubl import render_ubl

NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}


@pytest.fixture(scope="module")
def data():
    return generate(seed=1, orders=300)


def test_supplier_vat_numbers_pass_hmrc_check_in_both_schemes(data) -> None:
    """Every supplier VAT number passes the mod-97 or 9755 check, checked by the domain's own validator."""
    for supplier in data.suppliers:
        assert check_gb_vat(supplier.vat).valid, supplier.vat
        assert vat_is_valid(supplier.vat)
    # A wrong check pair is caught, so the check above could fail.
    assert not vat_is_valid(data.suppliers[0].vat[:-2] + f"{(int(data.suppliers[0].vat[-2:]) + 1) % 100:02d}")
    digits = "1234567"
    assert check_gb_vat(gb_vat(digits, "97")).valid
    assert check_gb_vat(gb_vat(digits, "9755")).valid


def test_catalogue_gtins_have_valid_check_digits(data) -> None:
    """Goods items carry GTIN-13s with the right GS1 check digit; services carry SVC codes."""
    goods = [i for i in data.items if i.receipt_required]
    services = [i for i in data.items if not i.receipt_required]
    assert goods
    assert services
    for item in goods:
        assert item.gtin == item.code
        assert len(item.gtin) == 13
        assert check_gtin(item.gtin).valid, item.gtin
    assert all(i.code.startswith("SVC-") and i.gtin is None for i in services)
    assert gtin13("501234567890") == "5012345678900"


def _digest(seed: int, orders: int) -> str:
    d = generate(seed=seed, orders=orders)
    text = repr(
        [(o.po_number, o.supplier_id, [(ln.item_code, ln.quantity) for ln in o.lines]) for o in d.orders]
    )
    text += repr([(i.invoice_number, i.scenario, str(i.document.gross_total)) for i in d.invoices])
    return hashlib.sha256(text.encode()).hexdigest()


def test_same_seed_gives_same_data_and_another_seed_does_not() -> None:
    """Generation is deterministic by seed."""
    assert _digest(5, 80) == _digest(5, 80)
    assert _digest(5, 80) != _digest(6, 80)


def test_reference_data_does_not_depend_on_order_count() -> None:
    """Suppliers and items are the same for one seed whatever the number of orders."""
    small, large = generate(3, 10), generate(3, 500)
    assert [(s.supplier_id, s.vat) for s in small.suppliers] == [
        (s.supplier_id, s.vat) for s in large.suppliers
    ]
    assert [i.code for i in small.items] == [i.code for i in large.items]


def test_ten_orders_already_show_every_invoice_scenario_and_partial_delivery() -> None:
    """Even a tiny seed has exact, over-priced, over-billed, duplicate, credit note and no-PO documents."""
    d = generate(seed=1, orders=12)
    assert {i.scenario for i in d.invoices} == set(SCENARIOS)
    assert any(o.status == "part_received" for o in generate(1, 40).orders)


def test_invoice_scenarios_differ_from_the_order_as_named(data) -> None:
    """Over-priced raises a price above tolerance, over-billed bills more than received, duplicates repeat."""
    orders = {o.po_number: o for o in data.orders}
    received: dict[tuple[str, int], Decimal] = {}
    for r in data.receipts:
        for line_no, q in r.lines:
            received[(r.po_number, line_no)] = received.get((r.po_number, line_no), Decimal(0)) + q
    seen_numbers: dict[tuple[str, str], int] = {}
    for inv in data.invoices:
        seen_numbers[(inv.supplier_vat, inv.invoice_number)] = (
            seen_numbers.get((inv.supplier_vat, inv.invoice_number), 0) + 1
        )
        if inv.scenario == "over_priced" and inv.document_type == "invoice":
            po = orders[inv.po_number]
            prices = {ln.line_no: ln.unit_price for ln in po.lines}
            assert any(
                ln.unit_price > prices[ln.order_line_ref] + Decimal("5") for ln in inv.document.lines
            ), inv.invoice_number
        if inv.scenario == "over_billed":
            po = orders[inv.po_number]
            limits = {
                ln.line_no: (
                    received.get((po.po_number, ln.line_no), Decimal(0))
                    if ln.receipt_required
                    else ln.quantity
                )
                for ln in po.lines
            }
            assert any(ln.quantity > limits[ln.order_line_ref] for ln in inv.document.lines), (
                inv.invoice_number
            )
        if inv.scenario == "no_po":
            assert inv.po_number is None
            assert inv.document.order_reference is None
        if inv.document_type == "credit_note":
            assert inv.billing_reference
            assert inv.document.billing_reference == inv.billing_reference
    duplicates = {inv.invoice_number for inv in data.invoices if inv.scenario == "duplicate"}
    assert duplicates
    assert all(seen_numbers[(v, n)] == 2 for (v, n) in seen_numbers if n in duplicates)


def test_ubl_documents_have_the_peppol_bis_shape_and_add_up(data) -> None:
    """Invoices and credit notes carry the BIS Billing 3 elements and consistent totals."""
    kinds = set()
    for inv in data.invoices[:80]:
        root = ET.fromstring(render_ubl(inv.document))
        credit = root.tag.endswith("CreditNote")
        kinds.add("credit_note" if credit else "invoice")
        assert root.findtext("cbc:ID", namespaces=NS) == inv.invoice_number
        assert root.findtext("cbc:DocumentCurrencyCode", namespaces=NS) == "GBP"
        assert root.findtext("cbc:IssueDate", namespaces=NS) == inv.issue_date.isoformat()
        assert (
            root.findtext(
                "cac:AccountingSupplierParty/cac:Party/cac:PartyTaxScheme/cbc:CompanyID", namespaces=NS
            )
            == inv.supplier_vat
        )
        assert root.findtext("cac:OrderReference/cbc:ID", namespaces=NS) == inv.po_number
        if credit:
            assert root.findtext("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", namespaces=NS)
        line_tag, qty_tag = (
            ("cac:CreditNoteLine", "cbc:CreditedQuantity")
            if credit
            else ("cac:InvoiceLine", "cbc:InvoicedQuantity")
        )
        lines = root.findall(line_tag, NS)
        assert lines
        total = Decimal(0)
        for line in lines:
            qty = Decimal(line.findtext(qty_tag, namespaces=NS))
            price = Decimal(line.findtext("cac:Price/cbc:PriceAmount", namespaces=NS))
            net = Decimal(line.findtext("cbc:LineExtensionAmount", namespaces=NS))
            assert net == (qty * price).quantize(Decimal("0.01"))
            assert line.findtext("cac:OrderLineReference/cbc:LineID", namespaces=NS)
            assert line.findtext("cac:Item/cac:ClassifiedTaxCategory/cbc:Percent", namespaces=NS) in (
                "20",
                "5",
                "0",
            )
            total += net
        money = root.find("cac:LegalMonetaryTotal", NS)
        assert Decimal(money.findtext("cbc:LineExtensionAmount", namespaces=NS)) == total
        tax = Decimal(root.findtext("cac:TaxTotal/cbc:TaxAmount", namespaces=NS))
        subtotals = sum(
            Decimal(t.text) for t in root.findall("cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount", NS)
        )
        assert tax == subtotals
        assert Decimal(money.findtext("cbc:TaxInclusiveAmount", namespaces=NS)) == total + tax
    assert kinds == {"invoice", "credit_note"}


def test_sample_input_files_are_complete_and_consistent(tmp_path: Path) -> None:
    """`sandbox data` writes orders/receipts CSV+XLSX, UBL invoices, new requisitions and contract PDFs."""
    import openpyxl
    import pypdf

    result = write_input_files(tmp_path, seed=2, orders=60)
    d = generate(seed=2, orders=60)
    with (tmp_path / "orders.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == ORDER_COLUMNS
    assert len(rows) == sum(len(o.lines) for o in d.orders) == result["order_lines"]
    assert {r["receipt_required"] for r in rows} == {"true", "false"}
    with (tmp_path / "receipts.csv").open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == RECEIPT_COLUMNS
    orders_xlsx = openpyxl.load_workbook(tmp_path / "orders.xlsx", read_only=True).active
    assert sum(1 for _ in orders_xlsx.iter_rows(values_only=True)) == len(rows) + 1

    req = list(openpyxl.load_workbook(tmp_path / "requisitions.xlsx").active.iter_rows(values_only=True))
    assert req[0] == REQUISITION_COLUMNS
    existing_refs = {o.requisition_ref for o in generate(seed=2, orders=1000).orders}
    suppliers = {s.supplier_id: s.vat for s in d.suppliers}
    items = {i.code: i.supplier_id for i in d.items}
    sites = {s for s, _ in d.sites}
    centres = {c for c, _ in d.cost_centres}
    for ref, supplier_id, vat, cc, site, _need_by, code, *_ in req[1:]:
        assert ref not in existing_refs
        assert suppliers[supplier_id] == vat
        assert items[code] == supplier_id
        assert site in sites
        assert cc in centres

    xml_files = sorted((tmp_path / "invoices").glob("*.xml"))
    assert len(xml_files) == len(d.invoices)
    ET.parse(xml_files[0])

    meta = list(
        openpyxl.load_workbook(tmp_path / "contracts" / "metadata.xlsx").active.iter_rows(values_only=True)
    )
    assert meta[0][:2] == ("file", "contract_id")
    for row in meta[1:]:
        reader = pypdf.PdfReader(io.BytesIO((tmp_path / "contracts" / row[0]).read_bytes()), strict=True)
        assert row[1] in reader.pages[0].extract_text()
        assert reader.metadata.title == row[1]


def test_cli_data_command_writes_files(tmp_path: Path) -> None:
    """`procbots sandbox data --out DIR` reports what it wrote."""
    from typer.testing import CliRunner

    from flows.commands.sandbox import app

    result = CliRunner().invoke(app, ["data", "--out", str(tmp_path), "--orders", "15", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "15 orders" in result.output
    assert (tmp_path / "requisitions.xlsx").exists()
    assert any((tmp_path / "contracts").glob("*.pdf"))


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param("error_rate=2", id="rate-above-one"),
        pytest.param("latency_ms=-1", id="negative-latency"),
        pytest.param("bogus=1", id="unknown-key"),
        pytest.param("shuffle=maybe", id="bad-flag"),
        pytest.param("latency_ms", id="no-value"),
    ],
)
def test_bad_chaos_specs_are_refused_with_the_reason(spec: str) -> None:
    with pytest.raises(ChaosError, match=spec.split("=")[0]):
        ChaosSpec.parse(spec)


def test_chaos_spec_round_trips_and_is_repeatable_with_a_seed() -> None:
    spec = ChaosSpec.parse(
        "error_rate=0.1,latency_ms=200,slow_render_ms=800,session_ttl_s=60,shuffle=1,seed=7"
    )
    assert ChaosSpec.parse(spec.to_spec()) == spec
    again = ChaosSpec.parse("seed=7")
    assert [ChaosSpec.parse("seed=7").random() for _ in range(1)] == [again.random()]


def test_totp_matches_rfc6238_vectors() -> None:
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp(secret, 59, digits=8) == "94287082"
    assert totp(secret, 1111111109, digits=8) == "07081804"
    assert verify_totp(secret, totp(secret, 1000), 1000 + 30)
    assert not verify_totp(secret, totp(secret, 1000), 1000 + 120)
